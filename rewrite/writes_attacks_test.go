package rewrite_test

import "testing"

// Hostile use of what issue 10's last three items allow, on the leak
// suite's database (canaries planted, hostile objects), in the simple and
// the extended protocol (runReview2, soundness_test.go): no canary the
// role may not see comes back on any channel, and a probe answers the
// same for a planted and for an absent value.
//
//	go test -run TestWritesAttacks ./rewrite/
//
// COPY … FROM with data is not in here (the wire harness gives up every
// copy): TestCopyFromLinked and TestCopyFromOptedOut run it in both
// protocols.
var writesAttacks = []review2Variant{
	// ON CONFLICT DO NOTHING without a target. Skipping a visible row's
	// conflict, the RETURNING of skipped and inserted rows.
	{soundVariant: soundVariant{name: "any_conflict_visible_returning", steps: []string{
		ins("${C1.customer_id}") + ` ON CONFLICT DO NOTHING RETURNING *`,
		`INSERT INTO customers (customer_id, customer_number, first_name, last_name, region, segment, created_at)
		 VALUES (991801, '${C1.customer_number}', 'a', 'b', 'north', 'consumer', now()) ON CONFLICT DO NOTHING RETURNING national_id, religion`}}},
	// A hidden row's key, alone or behind a visible one: an error, no
	// canary in it (the key is the role's own input).
	{soundVariant: soundVariant{name: "any_conflict_hidden_key", steps: []string{
		ins("${C2.customer_id}") + ` ON CONFLICT DO NOTHING RETURNING *`}}},
	{soundVariant: soundVariant{name: "any_conflict_hidden_number", steps: []string{
		`INSERT INTO customers (customer_id, customer_number, first_name, last_name, region, segment, created_at)
		 VALUES (991802, '${C2.customer_number}', 'a', 'b', 'north', 'consumer', now()) ON CONFLICT DO NOTHING RETURNING *`}}},
	{soundVariant: soundVariant{name: "any_conflict_child_twin", steps: []string{
		ins("${C9.customer_id}") + ` ON CONFLICT DO NOTHING RETURNING first_name, email`}}},
	// The proposals come from a read of hidden values: masked for the
	// NOT EXISTS as for any read, so whether a row is skipped does not
	// depend on them.
	{soundVariant: soundVariant{name: "any_conflict_from_hidden_values", probe: true, steps: []string{
		`INSERT INTO customers (customer_id, customer_number, first_name, last_name, region, segment, created_at)
		 SELECT customer_id, customer_number, first_name, last_name, region, segment, created_at FROM customers
		 WHERE national_id = '${C1.national_id}' OR religion = '${C1.religion}' ON CONFLICT DO NOTHING RETURNING customer_id`}}},
	{soundVariant: soundVariant{name: "any_conflict_number_from_hidden_row", probe: true, steps: []string{
		`INSERT INTO customers (customer_id, customer_number, first_name, last_name, region, segment, created_at)
		 SELECT 991803, coalesce((SELECT customer_number FROM customers WHERE first_name = '${C2.first_name}'), 'RV-W-1'), 'a', 'b', 'north', 'consumer', now()
		 ON CONFLICT DO NOTHING RETURNING customer_number`}}},
	// mia may not insert, and says so whatever the key (an opted-out
	// customer's included).
	{soundVariant: soundVariant{name: "any_conflict_opted_out_probe", login: "mia", probe: true, steps: []string{
		ins("${C4.customer_id}") + ` ON CONFLICT DO NOTHING`}}},
	// Review: the write-back comparison is with what the role is shown;
	// the real value of a masked column it may not write blind is refused
	// like any other, and of one it may write blind recorded like any
	// other (the request's NOTICE and UPDATE 0).
	{soundVariant: soundVariant{name: "review_writeback_probe_masked", login: "sam", probe: true, steps: []string{
		`UPDATE customers SET birth_date = '${C1.birth_date}' WHERE customer_id = ${C1.customer_id}`,
		`UPDATE customers SET annual_income = ${C1.annual_income}, segment = segment WHERE customer_id = ${C1.customer_id}`}}},
	{soundVariant: soundVariant{name: "review_writeback_probe_hidden", login: "sam", probe: true, steps: []string{
		`UPDATE customers SET national_id = '${C1.national_id}' WHERE customer_id = ${C1.customer_id} RETURNING customer_id`}}},
	{soundVariant: soundVariant{name: "review_writeback_probe_blind", login: "sam", probe: true, steps: []string{
		`UPDATE customers SET street = '${C1.street}', postal_code = '${C1.postal_code}' WHERE customer_id = ${C1.customer_id}`}}},
	{soundVariant: soundVariant{name: "review_writeback_probe_subselect", login: "sam", probe: true, steps: []string{
		`UPDATE customers SET street = (SELECT street FROM customers c2 WHERE c2.national_id = '${C1.national_id}') WHERE customer_id = ${C1.customer_id}`}}},
	// mia: a filter with a sub-select, a purpose; opted-out customers are
	// not hers to change or probe.
	{soundVariant: soundVariant{name: "review_writeback_opted_out_probe", login: "mia", probe: true, steps: []string{
		`UPDATE customers SET national_id = '${C4.national_id}', phone = '${C4.phone}' WHERE customer_id = ${C4.customer_id} RETURNING customer_id`}}},
	{soundVariant: soundVariant{name: "review_writeback_visible_probe", login: "mia", probe: true, steps: []string{
		`UPDATE customers SET birth_date = '${C1.birth_date}', religion = '${C1.religion}' WHERE customer_id = ${C1.customer_id}`}}},
}

func TestWritesAttacks(t *testing.T) { runReview2(t, writesAttacks) }

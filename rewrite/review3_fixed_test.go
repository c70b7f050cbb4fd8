package rewrite_test

// Reproducers from the third independent review (review3_attacks_test.go)
// of bypasses fixed since, as regression tests.
//
//	go test -run 'TestReview3Fixed' ./rewrite/

import "testing"

// review3Fixed are the reproducers of bypasses fixed on this branch.
var review3Fixed = []review2Variant{
	// Class target_scope: SET and RETURNING may read only columns the
	// role sees raw, also in their sub-selects (rewrite/targetrefs.go).
	// A bare name equal to the name of a FROM item of the sub-select is
	// taken for that item's whole row (shadowed: it.name == name). But
	// PostgreSQL looks a bare name up as a column at every level, the
	// write's target included, before it tries it as a whole row: with
	// orders aliased national_id, national_id is the target's raw column.
	{soundVariant: soundVariant{name: "target_scope_returning", steps: []string{
		`UPDATE customers SET segment = segment WHERE customer_id = ${C1.customer_id}
		RETURNING (SELECT national_id FROM orders national_id LIMIT 1), (SELECT health_notes FROM orders health_notes LIMIT 1)`}}},
	{soundVariant: soundVariant{name: "target_scope_set", steps: []string{
		`UPDATE customers SET segment = (SELECT national_id FROM orders national_id LIMIT 1) WHERE customer_id = ${C1.customer_id}`,
		`SELECT segment FROM customers WHERE customer_id = ${C1.customer_id}`}}},
	{soundVariant: soundVariant{name: "target_scope_delete_returning", steps: []string{
		`DELETE FROM orders WHERE order_id = ${O1.order_id} RETURNING (SELECT shipping_street FROM order_lines shipping_street LIMIT 1)`}}},
}

func TestReview3Fixed(t *testing.T) { runReview2(t, review3Fixed) }

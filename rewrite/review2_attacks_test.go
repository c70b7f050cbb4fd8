package rewrite_test

// Second review of issue 10's permissions (write-back, RETURNING of masked
// columns, INSERT … ON CONFLICT, session settings, GROUP BY a key,
// functional notation on catalog relations), as an attacker with a psql
// prompt. Every variant runs through the soundness suite's harness
// (soundness_test.go: both protocols, a session of its own, canaries
// checked on every channel, probes compared for a planted and an absent
// value).
//
//	go test -run 'TestReview2' ./rewrite/
//
// TestReview2Leaks holds the reproducers of bypasses that leaked on main
// at the time of the review (56a0276), closed since: a table with children
// is written through ctid and tableoid (a child repeats no key of its
// parent's), functional notation on a relation is refused (it cannot name
// the function's schema), and plain calls of built-ins are printed as
// pg_catalog.f. TestReview2Refused holds attacks that were refused or
// answered safely, as regression tests.

import (
	"context"
	"strings"
	"testing"
)

// review2Variant is a soundness variant with SQL the superuser runs first
// (objects a careless owner leaves behind).
type review2Variant struct {
	soundVariant
	super string
	// refresh: pgcloak's catalog snapshot is loaded after super ran
	// (else what super created is newer than the snapshot).
	refresh bool
}

// vipTwin is alice's way to make a key of a south customer visible to
// her: customers_vip inherits customers but not its primary key, so a
// north row with the south customer's id passes every check.
const vipTwin = `INSERT INTO customers_vip (customer_id, customer_number, first_name, last_name, region, segment, created_at)
	VALUES (${C2.customer_id}, 'RV2-TWIN', 'a', 'b', 'north', 'consumer', now())`

var review2Leaks = []review2Variant{
	// Class inherit_key: UPDATE and DELETE choose their rows by the
	// primary key the policy subquery returns, but a child table does not
	// inherit its parent's primary key. A visible child row with the key
	// of a hidden parent row makes the write touch the hidden row too: its
	// RETURNING shows the hidden row, and write-back compares against it.
	{soundVariant: soundVariant{name: "inherit_key_update_returning", steps: []string{vipTwin,
		`UPDATE customers SET segment = segment WHERE customer_id = ${C2.customer_id} RETURNING first_name, customer_number, region, phone`}}},
	// Not a probe: the twin's own row (with the key it was given) comes
	// back either way; before the fix the DELETE also reached C2.
	{soundVariant: soundVariant{name: "inherit_key_delete_returning", steps: []string{vipTwin,
		`DELETE FROM customers WHERE customer_id = ${C2.customer_id} RETURNING first_name, customer_number, phone`}}},
	{soundVariant: soundVariant{name: "inherit_key_cte_returning", steps: []string{vipTwin,
		`WITH x AS (UPDATE customers SET segment = segment WHERE customer_id = ${C2.customer_id} RETURNING *) SELECT first_name, email FROM x`}}},
	// The WITH CHECK of an UPDATE checks only rows visible before it: the
	// hidden twin moves into alice's region and is hers to read.
	{soundVariant: soundVariant{name: "inherit_key_steal_row", steps: []string{vipTwin,
		`UPDATE customers SET region = 'north' WHERE customer_id = ${C2.customer_id}`,
		`SELECT first_name, email, phone, customer_number FROM customers WHERE customer_id = ${C2.customer_id}`}}},
	// The write-back comparison runs on the hidden row: whether
	// national_id's mask of a south customer is a guess answers as an
	// error or an UPDATE count.
	{soundVariant: soundVariant{name: "inherit_key_writeback_probe", probe: true, steps: []string{vipTwin,
		`UPDATE customers SET first_name = CASE WHEN first_name = '${C2.first_name}' THEN 'x' ELSE first_name END WHERE customer_id = ${C2.customer_id} RETURNING first_name`}}},
	// Class catalog_notation: r.f on a relation whose columns the snapshot
	// does not list (pg_catalog, information_schema) is judged as a call
	// only when the snapshot knows a function f. A function created since
	// the last snapshot (up to catalog_refresh, a minute by default) is
	// not judged at all, and the server calls it.
	{super: `CREATE FUNCTION public.rv2_late(pg_catalog.pg_range) RETURNS text LANGUAGE sql SECURITY DEFINER
		AS $$ SELECT string_agg(national_id || ' ' || first_name, ',') FROM public.customers $$;
		GRANT EXECUTE ON FUNCTION public.rv2_late(pg_catalog.pg_range) TO PUBLIC`,
		soundVariant: soundVariant{name: "catalog_notation_late_function", steps: []string{
			`SELECT r.rv2_late FROM pg_range r LIMIT 1`}}},
	{super: `CREATE FUNCTION public.rv2_late_ind(pg_catalog.pg_am) RETURNS text LANGUAGE sql SECURITY DEFINER
		AS $$ SELECT string_agg(national_id || ' ' || first_name, ',') FROM public.customers $$;
		GRANT EXECUTE ON FUNCTION public.rv2_late_ind(pg_catalog.pg_am) TO PUBLIC`,
		soundVariant: soundVariant{name: "catalog_notation_late_function_indirection", steps: []string{
			`SELECT (a).rv2_late_ind FROM pg_catalog.pg_am a LIMIT 1`}}},
	// The same staleness behind a name the snapshot knows as built-in: a
	// new overload in public of a row type is the better match, and the
	// server calls it, in functional notation and in a plain call.
	{super: `CREATE FUNCTION public.to_jsonb(pg_catalog.pg_amop) RETURNS jsonb LANGUAGE sql SECURITY DEFINER
		AS $$ SELECT to_jsonb(string_agg(national_id || ' ' || first_name, ',')) FROM public.customers $$;
		GRANT EXECUTE ON FUNCTION public.to_jsonb(pg_catalog.pg_amop) TO PUBLIC`,
		soundVariant: soundVariant{name: "late_overload_of_builtin", steps: []string{
			`SELECT to_jsonb(o) FROM pg_amop o LIMIT 1`, `SELECT o.to_jsonb FROM pg_amop o LIMIT 1`}}},
	// Left open, documented (docs/rewrite.md, Known limits): s.f on a
	// sub-select's row, f a function created since the catalog snapshot,
	// is taken for a column until the next refresh.
}

var review2Refused = []review2Variant{
	// Settings: only the allow-list, with values that cannot send the
	// server's log to the client or change how SQL is read.
	{soundVariant: soundVariant{name: "client_min_messages_debug", noTx: true, steps: []string{
		`SET client_min_messages = debug5`, `SELECT first_name FROM customers LIMIT 1`}}},
	{soundVariant: soundVariant{name: "set_config_client_min_messages_log", noTx: true, steps: []string{
		`SELECT set_config('client_min_messages', 'log', false)`}}},
	{soundVariant: soundVariant{name: "set_local_client_min_messages", tx: true, steps: []string{
		`SET LOCAL client_min_messages TO 'log'`, `SELECT first_name FROM customers LIMIT 1`}}},
	{soundVariant: soundVariant{name: "debug_print_plan", noTx: true, steps: []string{
		`SET debug_print_plan = on`}}},
	{soundVariant: soundVariant{name: "set_config_search_path", noTx: true, steps: []string{
		`SELECT set_config('search_path', 'shadow, public', false)`, `SELECT first_name, street FROM customers`}}},
	{soundVariant: soundVariant{name: "set_role_none", noTx: true, steps: []string{
		`SET ROLE NONE`, `SET SESSION AUTHORIZATION DEFAULT`, `RESET ALL`, `SELECT first_name, street FROM customers`}}},
	{soundVariant: soundVariant{name: "set_config_lateral", noTx: true, steps: []string{
		`SELECT * FROM orders o, LATERAL (SELECT set_config('standard_conforming_strings', 'off', false)) s LIMIT 1`, backslashSplit}}},
	{soundVariant: soundVariant{name: "set_config_values", noTx: true, steps: []string{
		`VALUES (set_config('TimeZone', 'UTC', false)), (set_config('search_path', 'shadow', false))`, `SELECT first_name, street FROM customers`}}},
	{soundVariant: soundVariant{name: "set_config_order_by", noTx: true, steps: []string{
		`SELECT status FROM orders ORDER BY set_config('client_min_messages', 'debug5', false) LIMIT 1`}}},
	{soundVariant: soundVariant{name: "set_config_window", noTx: true, steps: []string{
		`SELECT count(*) OVER (PARTITION BY set_config('search_path', 'shadow', false)) FROM orders LIMIT 1`, `SELECT first_name, street FROM customers`}}},
	{soundVariant: soundVariant{name: "set_config_cte", noTx: true, steps: []string{
		`WITH s AS (SELECT set_config('search_path', 'shadow, public', false)) SELECT * FROM s`, `SELECT first_name, street FROM customers`}}},
	{soundVariant: soundVariant{name: "set_config_update_default", steps: []string{
		`UPDATE orders SET status = set_config('search_path', 'shadow, public', true) WHERE order_id = ${O1.order_id}`,
		`SELECT first_name, street FROM customers`}}},
	{soundVariant: soundVariant{name: "datestyle_masks", noTx: true, steps: []string{
		`SET DateStyle = 'SQL, DMY'`, `SET IntervalStyle = sql_standard`, `SET extra_float_digits = 3`, `SET TIME ZONE INTERVAL '+14:00' HOUR TO MINUTE`,
		`SELECT birth_date, annual_income, loyalty_points, birth_date::text FROM customers WHERE customer_id = ${C1.customer_id}`}}},
	// Write-back as an oracle on visible rows: the comparison is with
	// what the role is shown, never the stored value.
	{soundVariant: soundVariant{name: "writeback_probe_hidden", probe: true, steps: []string{
		`UPDATE customers SET religion = '${C1.religion}' WHERE customer_id = ${C1.customer_id} RETURNING religion`}}},
	{soundVariant: soundVariant{name: "writeback_probe_masked", probe: true, steps: []string{
		`UPDATE customers SET national_id = '${C1.national_id}', annual_income = ${C1.annual_income} WHERE customer_id = ${C1.customer_id}`}}},
	{soundVariant: soundVariant{name: "writeback_subselect_probe", probe: true, steps: []string{
		`UPDATE customers SET health_notes = (SELECT NULLIF(c2.health_notes, '${C1.health_notes}') FROM customers c2 WHERE c2.customer_id = ${C1.customer_id}) WHERE customer_id = ${C1.customer_id}`}}},
	{soundVariant: soundVariant{name: "writeback_opted_out_probe", login: "mia", probe: true, steps: []string{
		`UPDATE customers SET religion = '${C7.religion}' WHERE customer_id = ${C7.customer_id} RETURNING religion`}}},
	// A SET of a filter column with a sub-select: the WITH CHECK copies
	// the SET expression.
	{soundVariant: soundVariant{name: "check_copies_subselect_probe", probe: true, steps: []string{
		`UPDATE customers SET region = (SELECT CASE WHEN c2.first_name = '${C2.first_name}' THEN 'north' ELSE 'south' END FROM customers c2 WHERE c2.customer_id = ${C2.customer_id}) WHERE customer_id = ${C1.customer_id}`}}},
	// RETURNING and the target row.
	{soundVariant: soundVariant{name: "returning_indirection", steps: []string{
		`UPDATE customers c SET segment = segment WHERE customer_id = ${C1.customer_id} RETURNING (c).national_id, (c.*).religion`}}},
	{soundVariant: soundVariant{name: "returning_row_cast", steps: []string{
		`UPDATE customers c SET segment = segment WHERE customer_id = ${C1.customer_id} RETURNING (ROW(c.*)::customers).national_id`}}},
	{soundVariant: soundVariant{name: "returning_catalog_subselect", steps: []string{
		`UPDATE customers c SET segment = segment WHERE customer_id = ${C1.customer_id} RETURNING (SELECT national_id FROM pg_range LIMIT 1), (SELECT religion FROM pg_catalog.pg_am LIMIT 1)`}}},
	// ON CONFLICT.
	{soundVariant: soundVariant{name: "conflict_hidden_probe", probe: true, steps: []string{
		ins("73910002") + ` ON CONFLICT (customer_id) DO UPDATE SET segment = 'x' WHERE EXCLUDED.first_name = '${C2.first_name}'`}}},
	{soundVariant: soundVariant{name: "conflict_alias_excluded", steps: []string{
		`INSERT INTO customers AS excluded (customer_id, customer_number, first_name, last_name, region, segment, created_at) VALUES (${C1.customer_id}, 'RV2-1', 'a', 'b', 'north', 'consumer', now()) ON CONFLICT (customer_id) DO UPDATE SET segment = excluded.national_id RETURNING segment`}}},
	{soundVariant: soundVariant{name: "conflict_on_constraint", steps: []string{
		ins("${C1.customer_id}") + ` ON CONFLICT ON CONSTRAINT customers_pkey DO UPDATE SET segment = customers.religion RETURNING segment`}}},
	{soundVariant: soundVariant{name: "conflict_set_subselect_existing", steps: []string{
		ins("${C1.customer_id}") + ` ON CONFLICT (customer_id) DO UPDATE SET segment = (SELECT x FROM (SELECT customers.national_id) s(x)) RETURNING segment`}}},
	{soundVariant: soundVariant{name: "conflict_writeback_probe", probe: true, steps: []string{
		ins("${C1.customer_id}") + ` ON CONFLICT (customer_id) DO UPDATE SET national_id = '${C1.national_id}' RETURNING national_id`}}},
	{soundVariant: soundVariant{name: "conflict_number_hidden_returning", steps: []string{
		`INSERT INTO customers (customer_id, customer_number, first_name, last_name, region, segment, created_at) VALUES (991777, '${C2.customer_number}', 'a', 'b', 'north', 'consumer', now()) ON CONFLICT (customer_number) DO UPDATE SET segment = EXCLUDED.segment RETURNING *`}}},
	// DO NOTHING runs as a DO UPDATE whose WHERE is false: two proposed
	// rows with the same key now fail ("cannot affect row a second
	// time") where PostgreSQL's DO NOTHING skips the second.
	{soundVariant: soundVariant{name: "conflict_do_nothing_same_key_twice", steps: []string{
		`INSERT INTO customers (customer_id, customer_number, first_name, last_name, region, segment, created_at) VALUES
		(991779, 'RV2-3', 'a', 'b', 'north', 'consumer', now()), (991779, 'RV2-4', 'a', 'b', 'north', 'consumer', now()) ON CONFLICT (customer_id) DO NOTHING`}}},
	// The raw key the row choice carries: a bare pgcloak_k1 in the WHERE
	// of an UPDATE is not refused (UPDATE 0 here, as C2 is hidden and the
	// key is public); it would read a raw key a role sees masked.
	{soundVariant: soundVariant{name: "row_choice_raw_key", steps: []string{
		`UPDATE customers SET segment = segment WHERE pgcloak_k1 = ${C2.customer_id} RETURNING customer_id`,
		`DELETE FROM orders o WHERE o.pgcloak_k1 = ${O2.order_id}`}}},
	// INSERT of unseen columns.
	{soundVariant: soundVariant{name: "insert_unseen_from_select", probe: true, steps: []string{
		`INSERT INTO customers (customer_id, customer_number, first_name, last_name, region, segment, created_at, religion) SELECT 991778, 'RV2-2', 'a', 'b', 'north', 'consumer', now(), NULLIF(religion, '${C1.religion}') FROM customers WHERE customer_id = ${C1.customer_id}`}}},
	// GROUP BY a key: the added columns are the policy subquery's.
	{soundVariant: soundVariant{name: "group_by_key_hidden", steps: []string{
		`SELECT c.customer_id, c.national_id, c.religion, c.street, count(o.order_id) FROM customers c LEFT JOIN orders o ON o.customer_id = c.customer_id GROUP BY c.customer_id`,
		`SELECT customer_id, first_name FROM customers GROUP BY 1 HAVING min(national_id) IS NOT NULL ORDER BY health_notes`}}},
	// A function the snapshot does not know, called as a function.
	{super: `CREATE FUNCTION public.rv2_late_call(pg_catalog.pg_range) RETURNS text LANGUAGE sql SECURITY DEFINER
		AS $$ SELECT string_agg(national_id || ' ' || first_name, ',') FROM public.customers $$;
		GRANT EXECUTE ON FUNCTION public.rv2_late_call(pg_catalog.pg_range) TO PUBLIC`,
		soundVariant: soundVariant{name: "late_function_direct_call", steps: []string{
			`SELECT rv2_late_call(r) FROM pg_range r LIMIT 1`, `SELECT public.rv2_late_call(r) FROM pg_range r LIMIT 1`}}},
	{soundVariant: soundVariant{name: "startup_client_min_messages", noTx: true,
		params: map[string]string{"options": "-c client_min_messages=debug5"},
		steps:  []string{`SELECT first_name, national_id FROM customers WHERE customer_id = ${C1.customer_id}`}}},
	// Functional notation on a catalog relation with a function the
	// catalog snapshot knows: judged by the allow-list.
	{soundVariant: soundVariant{name: "catalog_notation_known_function", steps: []string{
		`SELECT r.leak_fn FROM pg_range r LIMIT 1`, `SELECT (r).leak_rows FROM pg_range r LIMIT 1`}}},
}

func TestReview2Leaks(t *testing.T)   { runReview2(t, review2Leaks) }
func TestReview2Refused(t *testing.T) { runReview2(t, review2Refused) }

func runReview2(t *testing.T, variants []review2Variant) {
	env := setupLeak(t)
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			if v.super != "" {
				if _, err := env.super.Exec(context.Background(), v.super); err != nil && !strings.Contains(err.Error(), "already exists") {
					t.Fatal(err)
				}
				if v.refresh {
					if err := env.eng.Refresh(context.Background()); err != nil {
						t.Fatal(err)
					}
				}
			}
			for _, mode := range leakModes {
				if v.simpleOnly && mode.name != "simple" {
					continue
				}
				t.Run(mode.name, func(t *testing.T) {
					o := env.runVariant(t, v.soundVariant, mode)
					t.Logf("%s: refused %v codes %v session ended %v\n%s\n%s", v.name, o.refused, o.codes, o.lost,
						strings.Join(o.outcome, "\n"), strings.Join(o.errors, "\n"))
				})
			}
		})
	}
}

package rewrite_test

// The soundness suite of issue 9: five classes of bypass that an
// independent review found by reading the rewrite code, each as a group
// of variants that reach the same root cause by different paths. Every
// variant runs on the leak suite's database (leak_test.go: canaries
// planted by leak_plant_test.go, hostile views and functions) through
// pgcloak, in the simple protocol and in the extended protocol, on a
// session of its own. A variant may be refused (any ErrorResponse, a
// FATAL that ends the session included) or answered; no canary the role
// may not see may come back on any channel (rows, errors, notices, tags),
// and a probe must answer the same for a planted and for an absent value.
//
//	go test -run TestSoundness ./rewrite/
//
// The classes:
//
//  1. deparser: pg_query's deparser prints some identifiers as they are
//     (a type name after pg_catalog., WINDOW and OVER names, named
//     arguments, the alias of JOIN … USING (…) AS, COPY options): a
//     quoted identifier holding SQL becomes SQL in the text pgcloak sends.
//  2. settings: standard_conforming_strings, client_encoding and
//     search_path changed without a SET pgcloak sees (pg_settings,
//     set_config, startup options), after which the server splits a
//     statement differently than pg_query did.
//  3. cte_target: a CTE named like the write target, which PostgreSQL
//     never resolves a write target to.
//  4. write_reads: sub-selects in SET, RETURNING, ON CONFLICT and the
//     WHERE of a write that read the target's raw row.
//  5. executor_errors: errors the executor raises itself (a scalar
//     sub-select of two rows, ARRAY dimensions, negative LIMIT/OFFSET,
//     …) below an unfenced policy subquery, which tell whether a hidden
//     row or value exists.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

// soundVariant is one attack: steps run in order on a fresh session.
type soundVariant struct {
	name   string
	login  string            // "" is alice, the north sales rep
	params map[string]string // startup parameters
	steps  []string          // with ${ROW.col} placeholders (leak_plant_test.go)
	// probe: run with the planted values and with absent ones; the
	// outcomes must be equal.
	probe bool
	// simpleOnly: a step holds several statements, which the extended
	// protocol cannot carry.
	simpleOnly bool
	// The steps run in a transaction that is rolled back when one of
	// them may write (or tx is set), unless noTx is set.
	tx, noTx bool
}

// soundClass is one class of the issue.
type soundClass struct {
	name     string
	variants []soundVariant
}

// rawTail is a payload of class 1: the end of a quoted identifier that,
// printed unquoted, ends the select list with a raw read of customers and
// comments out the rest (the policy subqueries pgcloak put after it).
// PostgreSQL truncates identifiers to 63 bytes, so payloads stay short.
const rawTail = `x, national_id, first_name FROM customers--`

// The statement of class 2 that pg_query reads as two string constants
// (no relation: pgcloak forwards it unchanged) and a server with
// standard_conforming_strings off reads as one string and a raw read.
const backslashSplit = `SELECT 'x\', ' , national_id, first_name FROM customers --'`

// The statement of class 2 that pg_query reads as one escape string and a
// server whose client_encoding is SJIS reads as a string and a raw read:
// U+0081 is 0xc2 0x81 in UTF-8, and in SJIS 0xc2 is one character and
// 0x81 0x5c (the backslash) another.
const sjisSplit = "SELECT E'\u0081\\' , national_id, first_name FROM customers --' AS x"

// insertCols is a full row of customers for INSERTs; %s is the id.
const insertCols = `INSERT INTO customers (customer_id, customer_number, first_name, last_name, region, segment, created_at)
	VALUES (%s, 'SND-%s', 'a', 'b', 'north', 'consumer', now())`

func ins(id string) string { return fmt.Sprintf(insertCols, id, id) }

var soundClasses = []soundClass{
	{name: "deparser", variants: []soundVariant{
		// The example of the issue.
		{name: "typecast_after_pg_catalog", steps: []string{`SELECT NULL::pg_catalog."int4,national_id, first_name FROM customers--" FROM orders`}},
		{name: "cast_as_pg_catalog", steps: []string{`SELECT CAST(NULL AS pg_catalog."int4 AS x, national_id, first_name FROM customers--") FROM orders`}},
		{name: "typed_literal_pg_catalog", steps: []string{`SELECT pg_catalog."text, national_id, first_name FROM customers--" 'x' FROM orders`}},
		{name: "array_type_pg_catalog", steps: []string{`SELECT ARRAY[1]::pg_catalog."int4[] ` + rawTail + `"[] FROM orders`}},
		{name: "xmlserialize_as_pg_catalog", steps: []string{`SELECT xmlserialize(content '<a/>' AS pg_catalog."text) ` + rawTail + `") FROM orders`}},
		{name: "column_definition_type", steps: []string{`SELECT * FROM orders, json_to_record('{"a":1}') AS x(a pg_catalog."int4), LATERAL (SELECT first_name FROM customers) y--")`}},
		{name: "typecast_in_where", steps: []string{`SELECT status FROM orders WHERE status = ANY (ARRAY[]::pg_catalog."text[]) OR true UNION SELECT first_name FROM customers--"[])`}},
		{name: "rows_from_column_type", steps: []string{`SELECT * FROM orders o, LATERAL ROWS FROM (json_to_record('{"a":1}') AS (a pg_catalog."int4)), LATERAL (SELECT first_name FROM customers) y--")) r`}},
		{name: "returning_typecast", steps: []string{`UPDATE orders SET status = status WHERE order_id = ${O1.order_id} RETURNING NULL::pg_catalog."int4,(SELECT string_agg(first_name,'') FROM customers)--"`}},
		{name: "over_window_name", steps: []string{`SELECT count(*) OVER "w, national_id, first_name FROM customers WINDOW w AS ()--" FROM orders WINDOW "w, national_id, first_name FROM customers WINDOW w AS ()--" AS ()`}},
		{name: "window_clause_name", steps: []string{`SELECT first_name FROM customers WINDOW "w AS () UNION ALL SELECT first_name FROM customers--" AS ()`}},
		{name: "named_argument", steps: []string{`SELECT make_interval("days => 1) ` + rawTail + `" => 1) FROM orders`}},
		{name: "named_argument_in_where", steps: []string{`SELECT status FROM orders WHERE make_interval("days=>1)IS NULL UNION SELECT first_name FROM customers--"=>1) IS NOT NULL`}},
		{name: "join_using_alias", steps: []string{`SELECT * FROM orders o JOIN customers c USING (customer_id) AS "j, public.customers x--"`}},
		{name: "join_using_alias_lateral", steps: []string{`SELECT * FROM orders o JOIN order_lines l USING (order_id) AS "j, LATERAL (SELECT first_name FROM customers) x--"`}},
		{name: "cursor", tx: true, steps: []string{`DECLARE c CURSOR FOR SELECT NULL::pg_catalog."int4,national_id, first_name FROM customers--" FROM orders`, `FETCH ALL FROM c`}},
		{name: "prepare_execute", steps: []string{`PREPARE p AS SELECT NULL::pg_catalog."int4,national_id, first_name FROM customers--" FROM orders`, `EXECUTE p`}},
		// COPY's options: the disclosure export may COPY TO.
		{name: "copy_header_option", login: "dex", simpleOnly: true, steps: []string{`COPY (SELECT order_id FROM orders) TO STDOUT (HEADER 'true); SELECT lower(first_name), lower(street) FROM customers --')`}},
		{name: "copy_table_header_option", login: "dex", simpleOnly: true, steps: []string{`COPY orders (order_id) TO STDOUT (DELIMITER ',', HEADER 'on); SELECT lower(last_name) FROM public.customers --')`}},
	}},
	{name: "settings", variants: []soundVariant{
		// The example of the issue.
		{name: "update_pg_settings_qualified", noTx: true, steps: []string{
			`UPDATE pg_catalog.pg_settings SET setting = 'off' WHERE name = 'standard_conforming_strings'`, backslashSplit}},
		{name: "update_pg_settings", noTx: true, steps: []string{
			`UPDATE pg_settings SET setting = 'off' WHERE name = 'standard_conforming_strings'`, backslashSplit}},
		{name: "update_pg_settings_alias", noTx: true, steps: []string{
			`UPDATE ONLY "pg_settings" AS s SET setting = 'off' WHERE s.name = 'standard_conforming_strings'`, backslashSplit}},
		{name: "update_pg_settings_from", noTx: true, steps: []string{
			`UPDATE pg_settings s SET setting = v.val FROM (VALUES ('standard_conforming_strings', 'off')) v(n, val) WHERE s.name = v.n`, backslashSplit}},
		{name: "update_pg_settings_with", noTx: true, steps: []string{
			`WITH x AS (SELECT 1) UPDATE pg_settings SET setting = 'off' WHERE name = 'standard_conforming_strings'`, backslashSplit}},
		{name: "update_pg_settings_prepared", noTx: true, steps: []string{
			`PREPARE s AS UPDATE pg_settings SET setting = $1 WHERE name = 'standard_conforming_strings'`, `EXECUTE s('off')`, backslashSplit}},
		{name: "update_pg_settings_in_transaction", tx: true, steps: []string{
			`UPDATE pg_settings SET setting = 'off' WHERE name = 'standard_conforming_strings'`, backslashSplit}},
		{name: "update_pg_settings_client_encoding", noTx: true, steps: []string{
			`UPDATE pg_settings SET setting = 'SJIS' WHERE name = 'client_encoding'`, sjisSplit}},
		{name: "update_pg_settings_search_path", noTx: true, steps: []string{
			`UPDATE pg_settings SET setting = 'shadow, public' WHERE name = 'search_path'`,
			`SELECT first_name, street FROM customers`, `TABLE customers`, `SELECT * FROM orders`}},
		{name: "set_config_select", noTx: true, steps: []string{
			`SELECT set_config('standard_conforming_strings', 'off', false)`, backslashSplit}},
		{name: "set_config_from", noTx: true, steps: []string{
			`SELECT * FROM pg_catalog.set_config('standard_conforming_strings', 'off', false)`, backslashSplit}},
		{name: "set_config_where", noTx: true, steps: []string{
			`SELECT count(*) FROM orders WHERE "set_config"('standard_conforming_strings', 'off', false) IS NOT NULL`, backslashSplit}},
		{name: "set_config_named_args", noTx: true, steps: []string{
			`SELECT set_config(setting_name => 'standard_conforming_strings', new_value => 'off', is_local => false)`, backslashSplit}},
		{name: "set_config_over_pg_settings", noTx: true, steps: []string{
			`SELECT set_config(name, 'off', false) FROM pg_settings WHERE name = 'standard_conforming_strings'`, backslashSplit}},
		{name: "set_config_client_encoding", noTx: true, steps: []string{
			`VALUES (set_config('client_encoding', 'SJIS', false))`, sjisSplit}},
		{name: "insert_pg_settings", noTx: true, steps: []string{
			`INSERT INTO pg_settings (name, setting) VALUES ('standard_conforming_strings', 'off')`, backslashSplit}},
		{name: "delete_pg_settings", steps: []string{
			`DELETE FROM pg_catalog.pg_settings WHERE name = 'standard_conforming_strings'`, backslashSplit}},
		{name: "update_catalog_table", steps: []string{
			`UPDATE pg_catalog.pg_class SET relname = relname WHERE false`,
			`UPDATE information_schema.sql_features SET comments = comments WHERE false`}},
		// Triggers a careless superuser left behind (settingsObjects)
		// change a setting as a side effect: the statement names no
		// setting, so only watching the session's reported parameters
		// catches them.
		{name: "trigger_sets_setting", steps: []string{`UPDATE campaigns SET name = name WHERE false`, backslashSplit}},
		{name: "trigger_sets_client_encoding", steps: []string{`DELETE FROM campaigns WHERE false`, sjisSplit}},
		{name: "set_spelled_differently", noTx: true, steps: []string{
			`SET SESSION "standard_conforming_strings" TO 'off'`, backslashSplit}},
		{name: "set_local", tx: true, steps: []string{`SET LOCAL standard_conforming_strings = off`, backslashSplit}},
		{name: "startup_options", params: map[string]string{"options": "-c standard_conforming_strings=off"}, noTx: true,
			steps: []string{backslashSplit}},
		{name: "startup_options_long_form", params: map[string]string{"options": "--standard-conforming-strings=off"}, noTx: true,
			steps: []string{backslashSplit}},
		{name: "startup_parameter", params: map[string]string{"standard_conforming_strings": "off"}, noTx: true,
			steps: []string{backslashSplit}},
		{name: "startup_options_client_encoding", params: map[string]string{"options": "-c client_encoding=SJIS"}, noTx: true,
			steps: []string{sjisSplit}},
	}},
	{name: "cte_target", variants: []soundVariant{
		// The example of the issue.
		{name: "update_returning", steps: []string{
			`WITH customers AS (SELECT 1) UPDATE customers SET segment = segment WHERE customer_id = ${C2.customer_id} RETURNING national_id || '', first_name`}},
		{name: "update_returning_visible_row", steps: []string{
			`WITH customers AS (SELECT 1 AS x) UPDATE customers SET segment = segment WHERE customer_id = ${C1.customer_id} RETURNING national_id || '', religion || ''`}},
		{name: "delete_returning", steps: []string{
			`WITH customers AS (SELECT 1) DELETE FROM customers WHERE customer_id = ${C9.customer_id} RETURNING first_name, street || ''`}},
		{name: "delete_orders_returning", steps: []string{
			`WITH orders AS (SELECT 1) DELETE FROM orders WHERE order_id = ${O2.order_id} RETURNING shipping_name, shipping_street || ''`}},
		{name: "insert_on_conflict_returning", steps: []string{
			`WITH customers AS (SELECT 1) ` + ins("${C2.customer_id}") + ` ON CONFLICT (customer_id) DO UPDATE SET segment = customers.segment RETURNING national_id || '', first_name`}},
		// The hidden row's key is a literal: that a key exists, a unique
		// index tells any INSERT (a unique violation; docs/rewrite.md).
		// The count must not depend on the hidden row's values.
		{name: "insert_conflict_count_probe", probe: true, steps: []string{
			`WITH customers AS (SELECT 1) INSERT INTO customers (customer_id, customer_number, first_name, last_name, region, segment, created_at)
			VALUES (73910002, 'SND-991002', '${C2.first_name}', '${C2.last_name}', 'north', 'consumer', now()) ON CONFLICT DO NOTHING`}},
		{name: "merge_count_probe", probe: true, steps: []string{
			`WITH customers AS (SELECT 1) MERGE INTO customers c USING (SELECT 1 AS one) s ON c.national_id = '${C2.national_id}' WHEN MATCHED THEN UPDATE SET segment = c.segment`}},
		{name: "recursive_cte_update", steps: []string{
			`WITH RECURSIVE customers AS (SELECT 1 AS n UNION ALL SELECT n FROM customers WHERE false) UPDATE customers SET segment = segment WHERE customer_id = ${C2.customer_id} RETURNING first_name, national_id || ''`}},
		{name: "materialized_cte_delete", steps: []string{
			`WITH support_tickets AS MATERIALIZED (SELECT 1) DELETE FROM support_tickets WHERE ticket_id = ${T2.ticket_id} RETURNING body || '', subject`}},
		{name: "nested_writable_cte", steps: []string{
			`WITH customers AS (SELECT 1), x AS (UPDATE customers SET segment = segment WHERE customer_id = ${C2.customer_id} RETURNING national_id, first_name) SELECT * FROM x`}},
		{name: "update_count_probe", probe: true, steps: []string{
			`WITH customers AS (SELECT 1) UPDATE customers SET segment = segment WHERE national_id = '${C2.national_id}'`}},
		{name: "delete_opt_outs", login: "mia", steps: []string{
			`WITH customer_opt_outs AS (SELECT 1) DELETE FROM customer_opt_outs WHERE purpose = 'direct_marketing'`,
			`SELECT first_name FROM customers WHERE customer_id = ${C4.customer_id}`}},
	}},
	{name: "write_reads", variants: []soundVariant{
		// The example of the issue.
		{name: "set_subselect", steps: []string{
			`UPDATE customers c SET segment = (SELECT c.national_id) WHERE customer_id = ${C1.customer_id} RETURNING segment`}},
		{name: "returning_subselect", steps: []string{
			`UPDATE customers c SET segment = segment WHERE customer_id = ${C1.customer_id} RETURNING (SELECT c.national_id), (SELECT c.religion)`}},
		{name: "set_nested_subselect", steps: []string{
			`UPDATE customers c SET segment = (SELECT (SELECT c.religion || c.national_id)) WHERE customer_id = ${C1.customer_id} RETURNING segment`}},
		{name: "returning_lateral", steps: []string{
			`UPDATE customers c SET segment = segment WHERE customer_id = ${C1.customer_id} RETURNING (SELECT x FROM (SELECT 1) o, LATERAL (SELECT c.national_id) s(x))`}},
		{name: "returning_row_constructor", steps: []string{
			`UPDATE customers c SET segment = segment WHERE customer_id = ${C1.customer_id} RETURNING (SELECT ROW(c.national_id, c.health_notes)::text)`}},
		{name: "returning_whole_row_subselect", steps: []string{
			`UPDATE customers c SET segment = segment WHERE customer_id = ${C1.customer_id} RETURNING (SELECT to_jsonb(c))`}},
		{name: "set_array_subselect", steps: []string{
			`UPDATE customers c SET segment = array_to_string(ARRAY(SELECT c.ethnicity), ',') WHERE customer_id = ${C1.customer_id} RETURNING segment`}},
		{name: "set_multi_subselect", steps: []string{
			`UPDATE customers c SET (segment, first_name) = (SELECT c.national_id, c.religion) WHERE customer_id = ${C1.customer_id} RETURNING segment, first_name`}},
		{name: "delete_returning_subselect", steps: []string{
			`DELETE FROM support_tickets t WHERE ticket_id = ${T1.ticket_id} RETURNING (SELECT t.body)`}},
		{name: "on_conflict_subselect", steps: []string{
			ins("${C1.customer_id}") + ` ON CONFLICT (customer_id) DO UPDATE SET segment = (SELECT customers.national_id) RETURNING segment`}},
		{name: "where_correlated_probe", probe: true, steps: []string{
			`UPDATE customers c SET segment = segment WHERE customer_id = ${C1.customer_id} AND EXISTS (SELECT 1 WHERE c.national_id = '${C1.national_id}')`}},
		{name: "returning_subselect_other_table", steps: []string{
			`UPDATE orders o SET status = status WHERE order_id = ${O1.order_id} RETURNING (SELECT o.shipping_street), (SELECT c.national_id || '' FROM customers c WHERE c.customer_id = o.customer_id)`}},
		{name: "set_exists_probe", probe: true, steps: []string{
			`UPDATE customers c SET segment = CASE WHEN EXISTS (SELECT 1 WHERE c.national_id = '${C1.national_id}') THEN 'yes' ELSE 'no' END WHERE customer_id = ${C1.customer_id} RETURNING segment`}},
	}},
	{name: "executor_errors", variants: []soundVariant{
		// The examples of the issue: each raises an error only on the
		// hidden row (orders and support tickets of another region, whose
		// row filter is a costly sub-select, or customers who opted out).
		{name: "scalar_subselect_two_rows", probe: true, steps: []string{
			`SELECT count(*) FROM orders WHERE (SELECT 1 FROM (VALUES (1), (2)) v(x) WHERE orders.order_id = ${O2.order_id}) IS NULL`}},
		{name: "scalar_subselect_two_rows_value", probe: true, steps: []string{
			`SELECT count(*) FROM orders WHERE (SELECT 1 FROM (VALUES (1), (2)) v(x) WHERE orders.status = '${O2.status}') IS NULL`}},
		{name: "row_subselect_two_rows", probe: true, steps: []string{
			`SELECT count(*) FROM orders WHERE (ROW(1, 1) = (SELECT 1, 1 FROM (VALUES (1), (2)) v(x) WHERE orders.order_id = ${O2.order_id})) IS NOT TRUE`}},
		{name: "array_subselect_mixed_dims", probe: true, steps: []string{
			`SELECT count(*) FROM orders WHERE ARRAY(SELECT v FROM (VALUES (ARRAY[1]), (CASE WHEN orders.order_id = ${O2.order_id} THEN ARRAY[[1]] ELSE ARRAY[2] END)) t(v)) IS NOT NULL`}},
		{name: "array_literal_mismatched", probe: true, steps: []string{
			`SELECT count(*) FROM customers WHERE ARRAY[ARRAY[1], CASE WHEN customer_id = ${C2.customer_id} THEN ARRAY[1, 2] ELSE ARRAY[2] END] IS NOT NULL`}},
		{name: "negative_limit", probe: true, steps: []string{
			`SELECT count(*) FROM orders WHERE EXISTS (SELECT 1 LIMIT CASE WHEN orders.order_id = ${O2.order_id} THEN -1 ELSE 1 END)`}},
		{name: "negative_offset", probe: true, steps: []string{
			`SELECT count(*) FROM support_tickets t WHERE EXISTS (SELECT 1 OFFSET CASE WHEN t.ticket_id = ${T2.ticket_id} THEN -1 ELSE 0 END)`}},
		{name: "negative_fetch_first", probe: true, steps: []string{
			`SELECT count(*) FROM order_lines l WHERE EXISTS (SELECT 1 FETCH FIRST (CASE WHEN l.order_id = ${L2.order_id} THEN -1 ELSE 1 END) ROWS ONLY)`}},
		{name: "division_inside_case", probe: true, steps: []string{
			`SELECT count(*) FROM orders WHERE (CASE WHEN order_id = ${O2.order_id} THEN 1 / (order_id - order_id) ELSE 1 END) = 1`}},
		{name: "generate_series_bad_step", probe: true, steps: []string{
			`SELECT count(*) FROM orders WHERE EXISTS (SELECT 1 FROM generate_series(1, 2, CASE WHEN orders.order_id = ${O2.order_id} THEN 0 ELSE 1 END))`}},
		{name: "xmlparse_bad_document", probe: true, steps: []string{
			`SELECT count(*) FROM orders WHERE XMLPARSE(DOCUMENT CASE WHEN order_id = ${O2.order_id} THEN '<a' ELSE '<a/>' END) IS NOT NULL`}},
		{name: "negative_window_frame", probe: true, steps: []string{
			`SELECT count(*) FROM orders WHERE EXISTS (SELECT count(*) OVER (ROWS BETWEEN CASE WHEN orders.order_id = ${O2.order_id} THEN -1 ELSE 0 END PRECEDING AND CURRENT ROW))`}},
		{name: "xmltable_bad_path", probe: true, steps: []string{
			`SELECT count(*) FROM orders WHERE EXISTS (SELECT 1 FROM XMLTABLE(CASE WHEN orders.order_id = ${O2.order_id} THEN '[' ELSE '/a' END PASSING '<a/>' COLUMNS x text PATH '.'))`}},
		{name: "opt_out_array_mismatch", login: "mia", probe: true, steps: []string{
			`SELECT count(*) FROM customers WHERE ARRAY[ARRAY[1], CASE WHEN first_name = '${C4.first_name}' THEN ARRAY[1, 2] ELSE ARRAY[2] END] IS NOT NULL`}},
		{name: "opt_out_scalar_subselect", login: "mia", probe: true, steps: []string{
			`SELECT count(*) FROM customers WHERE (SELECT 1 FROM (VALUES (1), (2)) v(x) WHERE customers.first_name = '${C4.first_name}') IS NULL`}},
		{name: "opt_out_negative_limit", login: "ana", probe: true, steps: []string{
			`SELECT count(*) FROM customers WHERE EXISTS (SELECT 1 LIMIT CASE WHEN customers.customer_id = ${C5.customer_id} THEN -1 ELSE 1 END)`}},
		{name: "join_on_two_rows", probe: true, steps: []string{
			`SELECT count(*) FROM orders o JOIN customers c ON c.customer_id = o.customer_id AND (SELECT 1 FROM (VALUES (1), (2)) v(x) WHERE o.order_id = ${O2.order_id}) IS NULL`}},
		{name: "write_where_two_rows", probe: true, steps: []string{
			`UPDATE orders SET status = status WHERE (SELECT 1 FROM (VALUES (1), (2)) v(x) WHERE orders.order_id = ${O2.order_id}) IS NULL`}},
	}},
}

// soundOutcome is what one run of a variant did.
type soundOutcome struct {
	outcome []string // every step's outcome, for probes
	refused bool     // some step got an ErrorResponse
	codes   []string
	errors  []string // the messages of the ErrorResponses, for the log
	lost    bool     // the session ended (after a FATAL)
}

// settingsObjects change settings as a side effect of writes a sales rep
// may make: statement triggers on campaigns, as a careless superuser might
// leave behind.
const settingsObjects = `
CREATE FUNCTION public.campaigns_touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF TG_OP = 'UPDATE' THEN
		PERFORM pg_catalog.set_config('standard_conforming_strings', 'off', false);
	ELSE
		PERFORM pg_catalog.set_config('client_encoding', 'SJIS', false);
	END IF;
	RETURN NULL;
END $$;
CREATE TRIGGER campaigns_touch AFTER UPDATE OR DELETE ON public.campaigns FOR EACH STATEMENT EXECUTE FUNCTION public.campaigns_touch();
`

func TestSoundness(t *testing.T) {
	env := setupLeak(t)
	if _, err := env.super.Exec(context.Background(), settingsObjects); err != nil {
		t.Fatal("settings objects:", err)
	}
	total, refused := 0, 0
	for _, class := range soundClasses {
		if len(class.variants) < 5 {
			t.Fatalf("class %s has %d variants; the issue asks for at least five", class.name, len(class.variants))
		}
		t.Run(class.name, func(t *testing.T) {
			for _, v := range class.variants {
				t.Run(v.name, func(t *testing.T) {
					for _, mode := range leakModes {
						if v.simpleOnly && mode.name != "simple" {
							continue
						}
						t.Run(mode.name, func(t *testing.T) {
							o := env.runVariant(t, v, mode)
							total++
							if o.refused {
								refused++
							}
							t.Logf("%s: refused %v codes %v session ended %v\n%s\n%s", v.name, o.refused, o.codes, o.lost,
								strings.Join(o.outcome, "\n"), strings.Join(o.errors, "\n"))
						})
					}
				})
			}
		})
	}
	t.Logf("%d variant runs, %d refused at some step", total, refused)
}

// runVariant runs v in one mode, twice for a probe, and checks both runs.
func (env *leakEnv) runVariant(t *testing.T, v soundVariant, mode leakMode) soundOutcome {
	t.Helper()
	login := v.login
	if login == "" {
		login = "alice"
	}
	forbidden := env.plant.forbidden(env.policy, env.role(login))
	check := newLeakChecker(forbidden)
	planted := env.runSteps(t, v, mode, login, check, nil)
	if !v.probe {
		return planted
	}
	absent := env.runSteps(t, v, mode, login, check, forbidden)
	if !slices.Equal(planted.outcome, absent.outcome) {
		t.Errorf("%s [%s] %s: probe outcome depends on a hidden value\nplanted: %s\nabsent:  %s",
			v.name, mode.name, login, strings.Join(planted.outcome, " ‖ "), strings.Join(absent.outcome, " ‖ "))
	}
	return planted
}

// runSteps runs the steps of v on a fresh session of login; placeholders
// whose tokens are in absent get values that exist nowhere.
func (env *leakEnv) runSteps(t *testing.T, v soundVariant, mode leakMode, login string, check *leakChecker,
	absent map[string]bool) soundOutcome {
	t.Helper()
	var o soundOutcome
	w, err := dialWire(context.Background(), env.addr, login, leakDB, v.params)
	if err != nil {
		// Refusing the session at connect (an ErrorResponse) is a refusal.
		var pe *pgconn.PgError
		if !errors.As(err, &pe) {
			t.Fatalf("%s: connecting as %s: %v", v.name, login, err)
		}
		t.Logf("%s: %s refused at connect: %v", v.name, login, err)
		o.refused = true
		o.outcome = append(o.outcome, "refused at connect")
		return o
	}
	defer w.close()
	tx := !v.noTx && (v.tx || slices.ContainsFunc(v.steps, writeWords.MatchString))
	if tx {
		if r := w.simple("BEGIN"); r.broken != nil || r.errored() {
			t.Fatalf("%s [%s]: BEGIN: %v %v", v.name, mode.name, r.broken, r.outcome)
		}
	}
	for i, step := range v.steps {
		sql, _ := env.plant.expand(t, step, absent)
		r := mode.run(w, sql, nil)
		o.outcome = append(o.outcome, fmt.Sprintf("step %d: %s", i+1, strings.Join(r.outcome, " | ")))
		o.codes = append(o.codes, r.codes...)
		o.errors = append(o.errors, r.errorMessages...)
		if r.errored() {
			o.refused = true
		}
		if leaked := check.find(sql, r); len(leaked) > 0 {
			t.Errorf("%s [%s] %s step %d: LEAK of %v\nquery: %s\ngot: %s", v.name, mode.name, login, i+1, leaked,
				sql, strings.Join(r.outcome, " ‖ "))
		}
		if r.broken != nil {
			// A session may end, but only with an ErrorResponse that says
			// why (a FATAL naming the rule).
			if !r.errored() {
				t.Errorf("%s [%s] %s step %d: the session ended without an ErrorResponse: %v\nquery: %s",
					v.name, mode.name, login, i+1, r.broken, sql)
			}
			o.lost = true
			return o
		}
	}
	if tx {
		w.simple("ROLLBACK")
	}
	return o
}

// soundSeeds are the statements of the suite with the planted values in,
// for the fuzzer's seed corpus (fuzz_test.go).
func soundSeeds() []string {
	p := buildPlanting(map[string]string{"north": "1", "south": "2", "east": "3", "west": "4"})
	var out []string
	for _, c := range soundClasses {
		for _, v := range c.variants {
			for _, s := range v.steps {
				out = append(out, placeholder.ReplaceAllStringFunc(s, func(m string) string {
					sm := placeholder.FindStringSubmatch(m)
					if cell := p.cells[sm[1]+"."+sm[2]]; cell != nil {
						return cell.value
					}
					return m
				}))
			}
		}
	}
	return out
}

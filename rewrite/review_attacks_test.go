package rewrite_test

// Attacks of an independent review of the issue 9 fixes (branch review).
// Each class is one root cause that the fixes leave open: a decision that
// rests on a list of known syntax, or on an assumption about what the
// server does that is not true. The variants run like the soundness suite
// (soundness_test.go: fresh session, both protocols, canary check on every
// channel, probes compared for planted and absent values).
//
//	go test -run TestReviewAttacks ./rewrite/
//
// Each class marked LEAK below leaked on main at the time of the review
// and is closed by a structural change (functional notation judged as a
// call or a whole-row read, FROM items scoped as PostgreSQL scopes them,
// implicit comparisons and run-time casts fence, SQL/JSON syntax refused):
// they are regression tests now. Two classes of the review stay outside
// pgcloak's threat model and are documented in docs/rewrite.md ("Known
// limits"): constraint violations as an existence oracle, and settings
// changed by database-side code (a trigger calling set_config), which the
// server reports only at the next ReadyForQuery — and search_path not at
// all before PostgreSQL 18.

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/pgcloak/pgcloak/internal/pgtest"
)

// reviewObjects are what a careless superuser may leave behind, as
// settingsObjects and hostileObjects are: functions that take a protected
// table's row type ("computed fields", as PostgREST and many ORMs use
// them), and functions named like the SQL/JSON constructors of later
// PostgreSQL versions.
const reviewObjects = `
CREATE FUNCTION public.customer_summary(customers) RETURNS text LANGUAGE sql STABLE SECURITY DEFINER
	AS $$ SELECT string_agg(national_id || ' ' || first_name || ' ' || coalesce(religion, ''), ',') FROM public.customers $$;
CREATE FUNCTION public.order_check(orders) RETURNS boolean LANGUAGE plpgsql COST 0.0001
	AS $$ BEGIN RAISE NOTICE 'order: % %', $1.order_id, $1.status; RETURN true; END $$;
CREATE FUNCTION public.json_scalar(integer) RETURNS text LANGUAGE sql STABLE SECURITY DEFINER
	AS $$ SELECT string_agg(national_id || ' ' || first_name, ',') FROM public.customers $$;
CREATE FUNCTION public.json_serialize(integer) RETURNS text LANGUAGE sql STABLE SECURITY DEFINER
	AS $$ SELECT string_agg(national_id || ' ' || first_name, ',') FROM public.customers $$;
CREATE FUNCTION public.json(integer) RETURNS text LANGUAGE sql STABLE SECURITY DEFINER
	AS $$ SELECT string_agg(national_id || ' ' || first_name, ',') FROM public.customers $$;
CREATE FUNCTION public.json_array(integer) RETURNS text LANGUAGE sql STABLE SECURITY DEFINER
	AS $$ SELECT string_agg(national_id || ' ' || first_name, ',') FROM public.customers $$;
`

var reviewClasses = []soundClass{
	// LEAK. Functional notation on the write target: c.to_json is
	// to_json(c), a whole-row read of the raw target row. readsOnlyVisible
	// (write.go) takes the last field of a ColumnRef for a column name, and
	// a name that is no column of the target (to_json) is let through.
	{name: "write_functional_notation", variants: []soundVariant{
		{name: "returning_to_json", steps: []string{
			`UPDATE customers c SET segment = segment WHERE customer_id = ${C1.customer_id} RETURNING c.to_json`}},
		{name: "returning_row_to_json_no_alias", steps: []string{
			`UPDATE customers SET segment = segment WHERE customer_id = ${C1.customer_id} RETURNING customers.row_to_json`}},
		{name: "set_to_jsonb", steps: []string{
			`UPDATE customers c SET segment = c.to_jsonb::text WHERE customer_id = ${C1.customer_id} RETURNING segment`}},
		{name: "returning_subselect_to_jsonb", steps: []string{
			`UPDATE customers c SET segment = segment WHERE customer_id = ${C1.customer_id} RETURNING (SELECT c.to_jsonb)`}},
		{name: "delete_returning_to_json", steps: []string{
			`DELETE FROM support_tickets t WHERE ticket_id = ${T1.ticket_id} RETURNING t.to_json`}},
		{name: "update_orders_set_to_json", steps: []string{
			`UPDATE orders o SET status = o.to_json::text WHERE order_id = ${O1.order_id} RETURNING status`}},
	}},
	// LEAK. targetrefs.go takes every FROM item of a sub-select as
	// shadowing the target for every reference in the sub-select, but a
	// non-LATERAL sub-select in FROM, a function in FROM before the item,
	// and a JOIN's ON clause do not see their sibling FROM items:
	// PostgreSQL resolves the name to the UPDATE's raw target row.
	{name: "targetrefs_scope", variants: []soundVariant{
		{name: "nonlateral_sibling_bare", steps: []string{
			`UPDATE customers c SET segment = (SELECT x FROM customers c2, (SELECT national_id AS x) t LIMIT 1) WHERE customer_id = ${C1.customer_id} RETURNING segment`}},
		{name: "nonlateral_sibling_qualified", steps: []string{
			`UPDATE customers c SET segment = (SELECT x FROM customers c, (SELECT c.religion AS x) t LIMIT 1) WHERE customer_id = ${C1.customer_id} RETURNING segment`}},
		{name: "sibling_after_subselect", steps: []string{
			`UPDATE customers c SET segment = (SELECT x FROM (SELECT health_notes) t(x), customers c2 LIMIT 1) WHERE customer_id = ${C1.customer_id} RETURNING segment`}},
		{name: "function_in_from_before_sibling", steps: []string{
			`UPDATE customers c SET segment = segment WHERE customer_id = ${C1.customer_id} RETURNING (SELECT x FROM upper(ethnicity) u(x), customers c2 LIMIT 1)`}},
		{name: "join_on_probe", probe: true, steps: []string{
			`UPDATE customers c SET segment = segment WHERE customer_id = ${C1.customer_id} RETURNING (SELECT count(*) > 0 FROM customers c2, orders o JOIN order_lines l ON national_id = '${C1.national_id}')`}},
		{name: "delete_returning_sibling", steps: []string{
			`DELETE FROM support_tickets t WHERE ticket_id = ${T1.ticket_id} RETURNING (SELECT x FROM support_tickets t2, (SELECT body AS x) s LIMIT 1)`}},
	}},
	// LEAK. Comparisons PostgreSQL inserts itself: the simple CASE (CASE x
	// WHEN y), the duplicate removal of UNION/INTERSECT/EXCEPT, JOIN
	// USING/NATURAL, and an operator whose left type walk.go guesses from
	// a column name of a substituted relation. record_eq raises "cannot
	// compare record types with different numbers of columns" on the
	// hidden row only; none of these calls is an AExpr, so qualSafe sees
	// only leakproof parts and the policy subquery stays unfenced.
	{name: "implicit_comparisons", variants: []soundVariant{
		{name: "simple_case_record", probe: true, steps: []string{
			`SELECT count(*) FROM orders WHERE CASE CASE WHEN order_id = ${O2.order_id} THEN ROW(1, 2) ELSE ROW(1) END WHEN ROW(1) THEN true ELSE true END`}},
		{name: "simple_case_record_value", probe: true, steps: []string{
			`SELECT count(*) FROM orders WHERE CASE CASE WHEN status = '${O2.status}' THEN ROW(1, 2) ELSE ROW(1) END WHEN ROW(1) THEN true ELSE true END`}},
		{name: "union_in_exists", probe: true, steps: []string{
			`SELECT count(*) FROM orders WHERE EXISTS (SELECT ROW(1) UNION SELECT CASE WHEN orders.order_id = ${O2.order_id} THEN ROW(1, 2) ELSE ROW(1) END)`}},
		{name: "join_using_in_exists", probe: true, steps: []string{
			`SELECT count(*) FROM orders WHERE EXISTS (SELECT 1 FROM (SELECT ROW(1) AS a) x JOIN (SELECT CASE WHEN orders.order_id = ${O2.order_id} THEN ROW(1, 2) ELSE ROW(1) END AS a) y USING (a))`}},
		{name: "natural_join_in_exists", probe: true, steps: []string{
			`SELECT count(*) FROM orders WHERE EXISTS (SELECT 1 FROM (SELECT ROW(1) AS a) x NATURAL JOIN (SELECT CASE WHEN orders.order_id = ${O2.order_id} THEN ROW(1, 2) ELSE ROW(1) END AS a) y)`}},
		{name: "operator_type_guessed_by_name", probe: true, steps: []string{
			`SELECT count(*) FROM orders WHERE EXISTS (SELECT 1 FROM (SELECT CASE WHEN orders.order_id = ${O2.order_id} THEN ROW(1, 2) ELSE ROW(1) END) s(status) WHERE status = ROW(1))`}},
		{name: "opt_out_simple_case", login: "mia", probe: true, steps: []string{
			`SELECT count(*) FROM customers WHERE CASE CASE WHEN first_name = '${C4.first_name}' THEN ROW(1, 2) ELSE ROW(1) END WHEN ROW(1) THEN true ELSE true END`}},
		{name: "join_on_simple_case", probe: true, steps: []string{
			`SELECT count(*) FROM orders o JOIN customers c ON c.customer_id = o.customer_id AND CASE CASE WHEN o.order_id = ${O2.order_id} THEN ROW(1, 2) ELSE ROW(1) END WHEN ROW(1) THEN true ELSE true END`}},
		{name: "write_where_simple_case", probe: true, steps: []string{
			`UPDATE orders SET status = status WHERE CASE CASE WHEN order_id = ${O2.order_id} THEN ROW(1, 2) ELSE ROW(1) END WHEN ROW(1) THEN true ELSE true END`}},
	}},
	// LEAK. "A cast of a constant happens when the statement is parsed or
	// planned" (qualSafe, constant) holds only when the cast's functions
	// are immutable: a literal cast to text and then to date, timestamptz
	// or regclass (whose input functions are stable) is a CoerceViaIO the
	// planner does not fold, evaluated per row wherever a CASE, an OR or a
	// COALESCE reaches it, on the hidden rows too.
	{name: "constant_casts_at_run_time", variants: []soundVariant{
		{name: "case_guarded_date", probe: true, steps: []string{
			`SELECT count(*) FROM orders WHERE (CASE WHEN order_id = ${O2.order_id} THEN '1x'::text::date END) IS NULL`}},
		{name: "case_guarded_date_value", probe: true, steps: []string{
			`SELECT count(*) FROM orders WHERE (CASE WHEN status = '${O2.status}' THEN '1x'::text::timestamptz END) IS NULL`}},
		{name: "or_guarded_regclass", probe: true, steps: []string{
			`SELECT count(*) FROM orders WHERE order_id <> ${O2.order_id} OR 'no_such_relation'::text::regclass IS NULL`}},
		// Answered without a leak: length() is not leakproof, so this one
		// is fenced (a regression test, not a reproducer).
		{name: "coalesce_guarded", probe: true, steps: []string{
			`SELECT count(*) FROM support_tickets t WHERE COALESCE(CASE WHEN ticket_id = ${T2.ticket_id} THEN NULL ELSE 1 END, length(CAST(CAST('1x' AS text) AS date)::text)) > 0`}},
		{name: "opt_out_case_guarded", login: "mia", probe: true, steps: []string{
			`SELECT count(*) FROM customers WHERE (CASE WHEN first_name = '${C4.first_name}' THEN '1x'::text::date END) IS NULL`}},
		{name: "write_where_case_guarded", probe: true, steps: []string{
			`UPDATE orders SET status = status WHERE (CASE WHEN order_id = ${O2.order_id} THEN '1x'::text::date END) IS NULL`}},
	}},
	// LEAK. Functional notation calls a function: c.customer_summary is
	// customer_summary(c). The function allow-list (funcCall) and the
	// leakproof check only see FuncCall nodes; a ColumnRef is a "value"
	// in qualSafe, so a non-leakproof function runs unfenced below the
	// row filter, and any function taking the row type runs at all.
	{name: "functional_notation_calls", variants: []soundVariant{
		{name: "security_definer_computed_field", steps: []string{
			`SELECT c.customer_summary FROM customers c LIMIT 1`}},
		{name: "computed_field_no_alias", steps: []string{
			`SELECT customers.customer_summary FROM customers LIMIT 1`}},
		{name: "computed_field_indirection", steps: []string{
			`SELECT (c).customer_summary FROM customers c LIMIT 1`}},
		{name: "computed_field_in_returning", steps: []string{
			`UPDATE customers c SET segment = segment WHERE customer_id = ${C1.customer_id} RETURNING c.customer_summary`}},
		{name: "notice_below_orders_filter", steps: []string{
			`SELECT count(*) FROM orders o WHERE o.order_check`}},
	}},
	// LEAK on servers before PostgreSQL 16. pg_query v6 parses with the
	// PostgreSQL 17 grammar: json_scalar(…), json_serialize(…), json(…)
	// and json_array(…) are SQL/JSON syntax nodes there, not FuncCalls, so
	// the function allow-list never sees a function; a PostgreSQL 15
	// server parses the same text (and pgcloak's deparse of it) as calls
	// of functions of those names, resolved through search_path.
	{name: "parser_version_skew", variants: []soundVariant{
		{name: "json_scalar_alone", steps: []string{`SELECT json_scalar(1)`}},
		{name: "json_scalar_with_protected", steps: []string{`SELECT json_scalar(1), status FROM orders LIMIT 1`}},
		{name: "json_serialize", steps: []string{`SELECT json_serialize(1) FROM orders LIMIT 1`}},
		{name: "json_parse", steps: []string{`SELECT json(1) FROM orders LIMIT 1`}},
		{name: "json_array", steps: []string{`SELECT json_array(1) FROM orders LIMIT 1`}},
	}},
}

func TestReviewAttacks(t *testing.T) {
	env := setupLeak(t)
	ctx := context.Background()
	if _, err := env.super.Exec(ctx, reviewObjects); err != nil {
		t.Fatal("review objects:", err)
	}
	env.logRewrites(t, reviewClasses)
	for _, class := range reviewClasses {
		t.Run(class.name, func(t *testing.T) {
			for _, v := range class.variants {
				t.Run(v.name, func(t *testing.T) {
					for _, mode := range leakModes {
						if v.simpleOnly && mode.name != "simple" {
							continue
						}
						t.Run(mode.name, func(t *testing.T) {
							o := env.runVariant(t, v, mode)
							t.Logf("%s: refused %v codes %v session ended %v\n%s\n%s", v.name, o.refused, o.codes, o.lost,
								strings.Join(o.outcome, "\n"), strings.Join(o.errors, "\n"))
						})
					}
				})
			}
		})
	}
}

// logRewrites logs what pgcloak sends for each step, for the report.
func (env *leakEnv) logRewrites(t *testing.T, classes []soundClass) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pg.DSN(pgtest.SuperUser, leakDB))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	sessions := map[string]*coldRewriter{}
	for _, c := range classes {
		for _, v := range c.variants {
			login := v.login
			if login == "" {
				login = "alice"
			}
			s := sessions[login]
			if s == nil {
				var err error
				if s, err = newColdRewriter(ctx, conn, env.policy, login); err != nil {
					t.Fatal(err)
				}
				sessions[login] = s
			}
			for _, step := range v.steps {
				sql, _ := env.plant.expand(t, step, nil)
				res := s.Cold(sql)
				t.Logf("rewrite %s/%s as %s:\n  in:  %s\n  out: %s", c.name, v.name, login, sql, res.SQL)
			}
		}
	}
}

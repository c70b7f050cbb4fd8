package rewrite_test

// Fifth independent review (branch review-operator): a column converted
// row by row to another type before the policy subquery's row filter,
// although the left-type fix of operator() (walk.go, fitsLeft) trusts it.

import (
	"context"
	"strings"
	"testing"
)

// Class coerced_common_type: COALESCE (and a CASE's branches) converts
// its arguments to their common type, and the common type of bigint and
// oid is oid (bigint -> oid is implicit, oid -> bigint is not): the qual
// runs COALESCE((o.order_id)::oid, '0'::oid) per row. qualSafe (walk.go)
// takes CoalesceExpr, CaseWhen and a searched CASE as unable to fail and
// never sees the conversion, so the policy subquery is not fenced and the
// conversion raises "OID out of range" on a hidden row of another region.
// The same common-type conversion hides in a VALUES list of a correlated
// sub-select, and JOIN … USING (order_id) with an oid column compares
// (o.order_id)::oid = x.order_id with an operator no AExpr names.
func TestReview5CoalesceCoercion(t *testing.T) {
	rv5Plant(t, "-739501")
	fencedForAlice(t,
		`SELECT count(*) FROM orders o WHERE COALESCE(o.order_id, '0'::oid) IS NOT NULL`,
		`SELECT count(*) FROM orders o WHERE CASE WHEN true THEN o.order_id ELSE '0'::oid END IS NOT NULL`,
		`SELECT count(*) FROM orders o WHERE EXISTS (SELECT 1 FROM (VALUES (o.order_id), ('0'::oid)) v(x))`,
		`SELECT count(*) FROM orders o JOIN (SELECT '1'::oid AS order_id) x USING (order_id)`,
	)
}

// Class coerced_function_argument: a function is judged by its name
// (catalog.FunctionLeakproof: every function of the name leakproof), but
// PostgreSQL converts an argument to the parameter type of the function
// it picks: oideq(o.order_id, 1) runs oideq((o.order_id)::oid, '1') on
// every row below the filter, the implicit int8-to-oid conversion
// raising on the planted south order. funcCall (walk.go) never looks at
// the arguments' types.
func TestReview5CoercedFunctionArgument(t *testing.T) {
	rv5Plant(t, "-739504")
	fencedForAlice(t,
		`SELECT count(*) FROM orders o WHERE oideq(o.order_id, 1)`,
		`SELECT count(*) FROM orders o WHERE oidlt(o.order_id, 1)`,
	)
}

// fencedForAlice checks that each statement, as alice (north), is fenced
// or refused, and that running it does not tell her, by an error, of the
// planted out-of-range order of another region (rv5Plant).
func fencedForAlice(t *testing.T, sqls ...string) {
	t.Helper()
	ctx := context.Background()
	for _, sql := range sqls {
		res, _, err := eng.Explain(ctx, "alice", []string{"public"}, sql)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Refused) == 0 && !strings.Contains(res.SQL, "OFFSET 0") {
			t.Errorf("%s: not fenced, although order_id is converted to oid per row:\n%s", sql, res.SQL)
		}
		err = as(t, "alice").PgConn().Exec(ctx, sql).Close()
		if err != nil && strings.Contains(err.Error(), "OID out of range") {
			t.Errorf("%s: alice (north) learns that an order outside her region has an id out of range: %v", sql, err)
		}
	}
}

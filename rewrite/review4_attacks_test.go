package rewrite_test

// Fourth independent review: a reproducer that leaks on this branch; it
// fails until the code is fixed. review4_fixed_test.go and
// review4_renamed_test.go hold the bypasses fixed on this branch.
//
//	go test -run 'TestReview4' ./rewrite/

import (
	"context"
	"strings"
	"testing"
)

// TestReview4CoercedOperator: class coerced_left_operand. An operator is
// judged by its left operand's type when pgcloak knows it (walk.go,
// operator and typeOf; catalog.OperatorLeakproof: every operator of the
// name whose left argument has that type). But PostgreSQL may coerce the
// left column to another type first: bigint = oid has no operator of
// its own, so o.order_id = '1'::oid runs (o.order_id)::oid = '1'::oid, a
// per-row int8-to-oid conversion that raises "OID out of range". The
// equalities of bigint are leakproof, so the policy subquery is not
// fenced, the conversion runs on orders of other regions before their
// filter, and the error tells alice (north) that a south customer's
// order has an id out of range. With a condition written before it
// (o.customer_id = …) it answers any question about hidden rows whose
// bigint columns hold such values.
func TestReview4CoercedOperator(t *testing.T) {
	ctx := context.Background()
	db := direct(t)
	const sql = `SELECT count(*) FROM orders o WHERE o.order_id = '1'::oid`
	res, _, err := eng.Explain(ctx, "alice", []string{"public"}, sql)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Refused) == 0 && !strings.Contains(res.SQL, "OFFSET 0") {
		t.Errorf("%s: not fenced, although the qual converts order_id to oid per row:\n%s", sql, res.SQL)
	}
	if _, err := db.Exec(ctx, `INSERT INTO orders (order_id, customer_id, ordered_at, status, total_amount,
		shipping_name, shipping_street, shipping_city, shipping_postal_code, shipping_region)
		SELECT -739499, customer_id, now(), 'x', 1, 'x', 'x', 'x', 'x', 'x' FROM customers WHERE region <> 'north' LIMIT 1`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Exec(context.Background(), `DELETE FROM orders WHERE order_id = -739499`) })
	var n int
	err = as(t, "alice").QueryRow(ctx, sql).Scan(&n)
	if err != nil && strings.Contains(err.Error(), "OID out of range") {
		t.Errorf("alice (north) learns that an order outside her region has an id out of range: %v", err)
	}
}

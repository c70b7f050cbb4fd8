package rewrite_test

// Fifth independent review (branch review-operator), fixed findings.

import (
	"context"
	"strings"
	"testing"
)

// rv5Plant inserts an order of another region than alice's whose id is
// out of oid's range, and removes it after the test.
func rv5Plant(t *testing.T, id string) {
	t.Helper()
	ctx := context.Background()
	db := direct(t)
	if _, err := db.Exec(ctx, `INSERT INTO orders (order_id, customer_id, ordered_at, status, total_amount,
		shipping_name, shipping_street, shipping_city, shipping_postal_code, shipping_region)
		SELECT `+id+`, customer_id, now(), 'x', 1, 'x', 'x', 'x', 'x', 'x' FROM customers WHERE region <> 'north' LIMIT 1`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { direct(t).Exec(context.Background(), `DELETE FROM orders WHERE order_id = `+id) })
}

// Class declared_param_type: PREPARE p(oid) AS … declares $1 an oid, but
// the rewrite of the PREPARE's query (statement.go, PrepareStmt) takes
// $1 as a parameter of unspecified type, which fitsLeft trusts: the
// equality is judged as bigint's (leakproof), and EXECUTE runs
// o.order_id::oid = $1 on every row below the filter.
func TestReview5PrepareDeclaredType(t *testing.T) {
	ctx := context.Background()
	rv5Plant(t, "-739502")
	const prep = `PREPARE rv5p(oid) AS SELECT count(*) FROM orders o WHERE o.order_id = $1`
	res, _, err := eng.Explain(ctx, "alice", []string{"public"}, prep)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Refused) == 0 && !strings.Contains(res.SQL, "OFFSET 0") {
		t.Errorf("%s: not fenced, although $1 is an oid:\n%s", prep, res.SQL)
	}
	alice := as(t, "alice").PgConn()
	if err := alice.Exec(ctx, prep).Close(); err != nil {
		return // refused: sound
	}
	err = alice.Exec(ctx, `EXECUTE rv5p('1')`).Close()
	if err != nil && strings.Contains(err.Error(), "OID out of range") {
		t.Errorf("EXECUTE rv5p: alice (north) learns that an order outside her region has an id out of range: %v", err)
	}
}

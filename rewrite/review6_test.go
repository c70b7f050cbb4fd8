package rewrite_test

// Sixth independent review (branch review-coercion): columns PostgreSQL
// converts row by row, below the policy subquery's row filter, in quals
// pgcloak does not fence.

import (
	"context"
	"strings"
	"testing"

	"github.com/pgcloak/pgcloak/examples/crm"
	"github.com/pgcloak/pgcloak/rules"
)

// Class sublink_column_scope: x IN (SELECT col …), x = ANY (SELECT col
// …) and x <> ALL (SELECT col …) are judged (walk.go, node's SubLink case,
// subLinkColumn and fitsLeft) before the sub-select is walked, so typeOf
// guesses the sub-select's output column with only the outer FROM items
// known: a bare order_id is taken for orders.order_id (bigint), and the
// comparison for bigint's leakproof equality. It is the sub-select's own
// column, an oid (from VALUES or a CTE), and PostgreSQL compares
// (o.order_id)::oid with it, on every row below the filter: the planted
// south order's id raises "OID out of range" for alice (north).
func TestReview6SubLinkColumnScope(t *testing.T) {
	rv5Plant(t, "-739601")
	fencedForAlice(t,
		`SELECT count(*) FROM orders o WHERE o.order_id IN (SELECT order_id FROM (VALUES ('1'::oid)) v(order_id))`,
		`SELECT count(*) FROM orders o WHERE o.order_id NOT IN (SELECT order_id FROM (VALUES ('1'::oid)) v(order_id))`,
		`SELECT count(*) FROM orders o WHERE o.order_id IN (SELECT o.order_id FROM (VALUES ('1'::oid)) o(order_id))`,
		`SELECT count(*) FROM orders o WHERE o.order_id = ANY (SELECT order_id FROM (VALUES ('1'::oid)) v(order_id))`,
		`SELECT count(*) FROM orders o WHERE o.order_id <> ALL (SELECT order_id FROM (VALUES ('1'::oid)) v(order_id))`,
		`WITH c AS (SELECT '1'::oid AS order_id) SELECT count(*) FROM orders o WHERE o.order_id IN (SELECT order_id FROM c)`,
	)
}

// Class mask_below_filter: a plain read is not fenced when its quals are
// judged safe, so PostgreSQL pulls the policy subquery up and a qual on a
// masked column runs the mask's expression in the scan's filter, on rows
// the row filter hides (orders and order_lines are filtered by a link, a
// sub-select, so their scan quals run before it). A generalize mask
// (date_trunc, whose result before 4714-11-24 BC is out of range; over a
// date it also converts to timestamptz, out of range after 294276 AD)
// and a bucket mask over an integer (floor(x / w) * w cast back to
// integer overflows for x near its minimum) raise on values of hidden
// rows, whatever the qual: o.ordered_at IS NULL is a NullTest, which
// qualSafe (walk.go) allows. With rules that mask orders.ordered_at to
// the year, or order_lines.quantity to bands of 1000, alice learns that
// a south order holds such a value.
func TestReview6MaskBelowFilter(t *testing.T) {
	quietAboutHiddenRange(t, maskedOrderRules(t, "points_band", ""), "-739602",
		`SELECT count(*) FROM orders o WHERE o.ordered_at IS NULL`,
		`SELECT count(*) FROM order_lines l WHERE l.quantity IS NULL`,
	)
}

// maskedOrderRules is the sample's rules with orders.ordered_at masked to
// the year (birth_year) and order_lines.quantity by quantityMask; masks
// is YAML added to the rules' masks.
func maskedOrderRules(t *testing.T, quantityMask, masks string) *rules.Policy {
	t.Helper()
	yaml := strings.Replace(string(crm.Rules), "      ordered_at: public\n", "      ordered_at: {class: personal, mask: birth_year}\n", 1)
	yaml = strings.Replace(yaml, "      quantity: public\n", "      quantity: {class: personal, mask: "+quantityMask+"}\n", 1)
	if masks != "" {
		yaml = strings.Replace(yaml, "masks:\n", "masks:\n"+masks, 1)
	}
	pol, err := rules.Parse("rules.yaml", []byte(yaml))
	if err != nil || !strings.Contains(yaml, "mask: birth_year}\n      status") || !strings.Contains(yaml, "quantity: {class: personal") {
		t.Fatalf("cannot mask ordered_at and quantity: %v", err)
	}
	return pol
}

// quietAboutHiddenRange plants a south order id whose ordered_at and one
// line's quantity are out of their masks' range, and checks that no
// statement, run as alice (north) through a pgcloak with pol, raises an
// out-of-range error: that would tell her of the hidden row.
func quietAboutHiddenRange(t *testing.T, pol *rules.Policy, id string, sqls ...string) {
	t.Helper()
	ctx := context.Background()
	login := cloakWith(t, pol)
	db := direct(t)
	if _, err := db.Exec(ctx, `INSERT INTO orders (order_id, customer_id, ordered_at, status, total_amount,
		shipping_name, shipping_street, shipping_city, shipping_postal_code, shipping_region)
		SELECT `+id+`, customer_id, '4714-11-24 00:00:00+00 BC', 'x', 1, 'x', 'x', 'x', 'x', 'x' FROM customers WHERE region <> 'north' LIMIT 1`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(ctx, `INSERT INTO order_lines (order_id, line_no, product_sku, quantity, unit_price)
		VALUES (`+id+`, 1, 'x', -2147483648, 1)`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { direct(t).Exec(context.Background(), `DELETE FROM orders WHERE order_id = `+id) })
	alice := login("alice").PgConn()
	for _, sql := range sqls {
		err := alice.Exec(ctx, sql).Close()
		if err != nil && strings.Contains(err.Error(), "out of range") {
			t.Errorf("%s: alice (north) learns that a hidden row's value is out of the mask's range: %v", sql, err)
		} else if err != nil {
			t.Logf("%s: %v", sql, err)
		}
	}
}

package rewrite_test

import (
	"context"
	"strings"
	"testing"

	"github.com/pgcloak/pgcloak/examples/crm"
	"github.com/pgcloak/pgcloak/rules"
)

// Class mask_below_filter, renamed: qualReadsRaisingMask (walk.go) matches
// a condition's column names against the protected relation's own column
// names, but an alias's column list (AS o(a, b, d)) renames them, so
// WHERE d IS NULL reads the generalized ordered_at under a name no column
// has, the statement is not fenced, and the mask raises on hidden rows.
func TestReview7MaskBelowFilterRenamed(t *testing.T) {
	ctx := context.Background()
	yaml := strings.Replace(string(crm.Rules), "      ordered_at: public\n", "      ordered_at: {class: personal, mask: birth_year}\n", 1)
	yaml = strings.Replace(yaml, "      quantity: public\n", "      quantity: {class: personal, mask: points_band}\n", 1)
	pol, err := rules.Parse("rules.yaml", []byte(yaml))
	if err != nil || !strings.Contains(yaml, "mask: birth_year}\n      status") || !strings.Contains(yaml, "quantity: {class: personal") {
		t.Fatalf("cannot mask ordered_at and quantity: %v", err)
	}
	login := cloakWith(t, pol)
	const id = "-739702"
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
	for _, sql := range []string{
		`SELECT count(*) FROM orders o WHERE o.ordered_at IS NULL`, // control: fenced since cbfef44
		`SELECT count(*) FROM orders o(a, b, d) WHERE d IS NULL`,
		`SELECT count(*) FROM orders o(a, b, d) WHERE o.d IS NULL`,
		`SELECT count(*) FROM order_lines l(a, b, c, q) WHERE q IS NULL`,
		`SELECT count(*) FROM (orders o CROSS JOIN (SELECT 1) z) j(a, b, d) WHERE d IS NULL`,
	} {
		err := alice.Exec(ctx, sql).Close()
		if err != nil && strings.Contains(err.Error(), "out of range") {
			t.Errorf("%s: alice (north) learns that a hidden row's value is out of the mask's range: %v", sql, err)
		} else if err != nil {
			t.Logf("%s: %v", sql, err)
		}
	}
}

// Class mask_below_filter, with no condition at all: a mask that is not
// strict (a custom CASE, or HideIfOptedOut's CASE around any mask) read
// from the nullable side of an outer join becomes a PlaceHolderVar when
// PostgreSQL pulls the plain policy subquery up, and a PlaceHolderVar is
// computed at the scan of the relation its columns come from, below the
// semi-join the linked row filter (EXISTS over orders and customers)
// becomes. The statement has no qual reading quantity, so cbfef44 does
// not fence it, and the mask raises on the hidden south line.
func TestReview7NonStrictMaskOuterJoin(t *testing.T) {
	ctx := context.Background()
	yaml := strings.Replace(string(crm.Rules), "      ordered_at: public\n", "      ordered_at: {class: personal, mask: birth_year}\n", 1)
	yaml = strings.Replace(yaml, "      quantity: public\n", "      quantity: {class: personal, mask: qcase}\n", 1)
	yaml = strings.Replace(yaml, "masks:\n", "masks:\n  qcase: {sql: \"CASE WHEN :value IS NULL THEN 0 ELSE ((:value)::bigint * 4)::integer END\"}\n", 1)
	pol, err := rules.Parse("rules.yaml", []byte(yaml))
	if err != nil || !strings.Contains(yaml, "mask: birth_year}\n      status") || !strings.Contains(yaml, "quantity: {class: personal") {
		t.Fatalf("cannot mask ordered_at and quantity: %v", err)
	}
	login := cloakWith(t, pol)
	const id = "-739703"
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
	for _, sql := range []string{
		`SELECT l.quantity FROM (SELECT 1) x LEFT JOIN order_lines l ON true`,
	} {
		err := alice.Exec(ctx, sql).Close()
		if err != nil && strings.Contains(err.Error(), "out of range") {
			t.Errorf("%s: alice (north) learns that a hidden row's value is out of the mask's range: %v", sql, err)
		}
	}
}

// Class mask_below_filter, grouping sets: with GROUPING SETS, ROLLUP or
// CUBE, PostgreSQL wraps every non-Var expression of a pulled-up
// subquery in a PlaceHolderVar, computed at the scan of its relation,
// below the semi-join the linked row filter becomes. Grouping by a
// bucketed or generalized column reads it in no qual, so the statement is
// not fenced, and the mask raises on the hidden south row.
func TestReview7GroupingSets(t *testing.T) {
	ctx := context.Background()
	yaml := strings.Replace(string(crm.Rules), "      ordered_at: public\n", "      ordered_at: {class: personal, mask: birth_year}\n", 1)
	yaml = strings.Replace(yaml, "      quantity: public\n", "      quantity: {class: personal, mask: points_band}\n", 1)
	pol, err := rules.Parse("rules.yaml", []byte(yaml))
	if err != nil || !strings.Contains(yaml, "mask: birth_year}\n      status") || !strings.Contains(yaml, "quantity: {class: personal") {
		t.Fatalf("cannot mask ordered_at and quantity: %v", err)
	}
	login := cloakWith(t, pol)
	const id = "-739704"
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
	for _, sql := range []string{
		`SELECT l.quantity, count(*) FROM order_lines l GROUP BY GROUPING SETS ((l.quantity), ())`,
		`SELECT o.ordered_at, count(*) FROM orders o GROUP BY ROLLUP (o.ordered_at)`,
		`SELECT l.quantity FROM order_lines l GROUP BY CUBE (l.quantity, l.line_no)`,
	} {
		err := alice.Exec(ctx, sql).Close()
		if err != nil && strings.Contains(err.Error(), "out of range") {
			t.Errorf("%s: alice (north) learns that a hidden row's value is out of the mask's range: %v", sql, err)
		} else if err != nil {
			t.Logf("%s: %v", sql, err)
		}
	}
}

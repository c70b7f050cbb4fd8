package rewrite_test

import (
	"context"
	"slices"
	"strings"
	"testing"
)

// TestGroupByKey: a query grouped by a table's primary key that selects
// the table's other columns (Django's annotate(), Rails' group(:id)) works
// through pgcloak in both protocols and gives the numbers of the rules'
// meaning: alice's customers with their masked columns and the count of
// their orders, computed from the raw data.
func TestGroupByKey(t *testing.T) {
	ctx := context.Background()
	f := loadFixture(t, ctx, direct(t))
	alice := as(t, "alice")
	c, o := f.raw["customers"], f.raw["orders"]
	orders := map[int64]int64{}
	for _, r := range o.rows {
		if f.visible("alice", "orders", r) {
			orders[r[o.col("customer_id")].(int64)]++
		}
	}
	row := func(v []any, cols ...string) string {
		parts := make([]string, len(cols))
		for i, col := range cols {
			if col == "n" {
				parts[i] = render(orders[v[c.col("customer_id")].(int64)])
			} else {
				parts[i] = render(v[c.col(col)])
			}
		}
		return strings.Join(parts, " | ")
	}
	expect := func(cols ...string) []string {
		var out []string
		for _, r := range c.rows {
			if f.visible("alice", "customers", r) {
				out = append(out, row(f.view("alice", "customers", r), cols...))
			}
		}
		slices.Sort(out)
		return out
	}
	cases := []struct {
		name string
		sql  string
		cols []string
	}{
		{"django annotate", `SELECT "customers"."customer_id", "customers"."first_name", "customers"."last_name", "customers"."email", COUNT("orders"."order_id") AS "n"
			FROM "customers" LEFT OUTER JOIN "orders" ON ("customers"."customer_id" = "orders"."customer_id")
			GROUP BY "customers"."customer_id"`, []string{"customer_id", "first_name", "last_name", "email", "n"}},
		{"rails group(:id) with customers.*", `SELECT customers.*, COUNT(orders.order_id) AS n FROM customers
			LEFT JOIN orders ON orders.customer_id = customers.customer_id GROUP BY customers.customer_id`,
			append(slices.Clone(c.cols), "n")},
		{"aliases, bare names, HAVING and ORDER BY", `SELECT c.customer_id, first_name, c.postal_code, count(o.order_id) AS n
			FROM customers c LEFT JOIN orders o USING (customer_id)
			GROUP BY c.customer_id HAVING count(o.order_id) >= 0 OR c.city IS NULL ORDER BY c.last_name, n`,
			[]string{"customer_id", "first_name", "postal_code", "n"}},
		{"a correlated sub-select", `SELECT c.customer_id, (SELECT c.birth_date) AS b, count(o.order_id) AS n
			FROM customers c LEFT JOIN orders o ON o.customer_id = c.customer_id GROUP BY 1`,
			[]string{"customer_id", "birth_date", "n"}},
	}
	for _, q := range cases {
		want := expect(q.cols...)
		if len(want) < 100 {
			t.Fatalf("%s: only %d customers expected", q.name, len(want))
		}
		for _, m := range modes {
			res := run(ctx, alice, goldenQuery{sql: q.sql}, nil, m.mode)
			if res.err != nil {
				t.Errorf("%s [%s]: %v", q.name, m.name, res.err)
				continue
			}
			if !slices.Equal(res.rows, want) {
				t.Errorf("%s [%s]: %s", q.name, m.name, diffRows(res.rows, want))
			}
		}
	}
}

package rewrite_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
)

// TestOneAnalysis: the access record of a restricted statement lists the
// relations the decision was made on, as the rewrite resolved them: a
// write target named like a CTE is the table the server writes, not the
// CTE; a CTE in FROM is no relation at all.
func TestOneAnalysis(t *testing.T) {
	ctx := context.Background()
	cases := []struct{ sql, want string }{
		{`WITH customers AS (SELECT 1 AS segment) UPDATE customers SET segment = 'x' WHERE customer_id = 1`,
			`[public.customers write [customer_id segment]]`},
		{`WITH orders AS (SELECT 1 AS status) SELECT status FROM orders`, `[]`},
		{`SELECT o.status, c.first_name FROM orders o JOIN customers c ON c.customer_id = o.customer_id`,
			`[public.orders read [customer_id status] public.customers read [customer_id first_name]]`},
		{`DELETE FROM orders WHERE order_id = 1`, `[public.orders write [order_id]]`},
	}
	for _, c := range cases {
		res, _, err := eng.Explain(ctx, "alice", []string{"public"}, c.sql)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Refused) > 0 || len(res.Statements) != 1 {
			t.Fatalf("%s: %+v", c.sql, res)
		}
		var got []any
		for _, o := range res.Statements[0].Objects {
			var cols []string
			for col := range o.Columns {
				cols = append(cols, col)
			}
			slices.Sort(cols)
			got = append(got, o.Relation, o.Access, cols)
		}
		if s := fmt.Sprint(got); s != c.want {
			t.Errorf("%s:\n got  %s\n want %s", c.sql, s, c.want)
		}
	}
}

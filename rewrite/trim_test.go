package rewrite_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/pgcloak/pgcloak/rewrite"
)

// trimCases are reads whose answers must not change when the masks of
// columns they do not read are left out (trim.go). whole marks those that
// may read every column of customers, so none may be left out.
var trimCases = []struct {
	sql   string
	whole bool
}{
	{sql: "SELECT customer_id, city FROM customers WHERE customer_id % 7 = 0"},
	{sql: `SELECT "email", birth_date FROM customers WHERE customer_id % 7 = 0`},
	{sql: "SELECT c.email, c.annual_income FROM customers c WHERE c.customer_id % 7 = 0"},
	{sql: "SELECT public.customers.email FROM public.customers WHERE customer_id % 7 = 0"},
	{sql: "SELECT count(*), count(email), count(DISTINCT birth_date), sum(loyalty_points) FROM customers"},
	{sql: "SELECT birth_date, count(*) FROM customers GROUP BY 1 ORDER BY 1 LIMIT 10"},
	{sql: "SELECT DISTINCT ON (city) city, email FROM customers ORDER BY city, email LIMIT 20"},
	{sql: "SELECT customer_id, total_amount FROM customers JOIN orders USING (customer_id) WHERE customer_id % 7 = 0"},
	{sql: "SELECT o.order_id, (SELECT c.email FROM customers c WHERE c.customer_id = o.customer_id) FROM orders o WHERE o.order_id % 199 = 0"},
	// city is customers', not orders': the inner reference reaches out.
	{sql: "SELECT (SELECT city FROM orders o WHERE o.customer_id = c.customer_id LIMIT 1) FROM customers c WHERE customer_id % 97 = 0"},
	{sql: "SELECT email FROM customers UNION SELECT phone FROM customers ORDER BY 1 LIMIT 30"},
	{sql: "WITH x AS (SELECT email, postal_code FROM customers) SELECT postal_code FROM x LIMIT 30"},
	{sql: "SELECT s FROM (SELECT email, street FROM customers WHERE customer_id % 7 = 0) s"},
	{sql: "SELECT email FROM customers WHERE religion IS NULL AND customer_id % 7 = 0"},
	{sql: "SELECT * FROM customers WHERE customer_id % 7 = 0", whole: true},
	{sql: "SELECT c FROM customers c WHERE c.customer_id % 7 = 0", whole: true},
	{sql: "SELECT customers FROM customers WHERE customer_id % 7 = 0", whole: true},
	{sql: "SELECT row_to_json(c) FROM customers c WHERE c.customer_id % 7 = 0", whole: true},
	{sql: "SELECT to_jsonb(c) - 'email' FROM customers c WHERE c.customer_id % 7 = 0", whole: true},
	{sql: "SELECT (c).birth_date FROM customers c WHERE c.customer_id % 7 = 0", whole: true},
	{sql: "SELECT c.* FROM customers c WHERE c.customer_id % 7 = 0", whole: true},
	{sql: "SELECT a, g FROM customers AS x(a, b, c, d, e, f, g) WHERE a % 7 = 0", whole: true},
	{sql: "SELECT order_id, total_amount FROM customers NATURAL JOIN orders WHERE order_id % 5 = 0", whole: true},
	{sql: "TABLE customers LIMIT 20", whole: true},
	{sql: "SELECT email FROM (SELECT * FROM customers) s WHERE customer_id % 7 = 0", whole: true},
	// An aliased join's row, and its column aliases, reach the columns
	// under other names.
	{sql: "SELECT j FROM (customers JOIN orders USING (customer_id)) AS j WHERE order_id % 199 = 0", whole: true},
	{sql: "SELECT x7 FROM (customers CROSS JOIN (SELECT 1 AS one) o) AS j(x1, x2, x3, x4, x5, x6, x7) WHERE x1 % 7 = 0", whole: true},
}

// TestTrimSameAnswers runs each read through pgcloak twice, with and
// without trimming, as a sales rep and as an analyst (whose masks hide
// opted-out customers' values), and wants the same rows.
func TestTrimSameAnswers(t *testing.T) {
	ctx := context.Background()
	for _, login := range []string{"alice", "connie", "mia", "ana"} {
		conn := as(t, login)
		for i, c := range trimCases {
			run := func(on bool) ([]string, error) {
				prev := rewrite.SetTrim(on)
				defer rewrite.SetTrim(prev)
				// A comment of its own keeps each from the caches.
				rows, err := conn.Query(ctx, fmt.Sprintf("/* trim %v %d */ %s", on, i, c.sql))
				if err != nil {
					return nil, err
				}
				defer rows.Close()
				var out []string
				for rows.Next() {
					vals, err := rows.Values()
					if err != nil {
						return nil, err
					}
					out = append(out, fmt.Sprint(vals...))
				}
				slices.Sort(out)
				return out, rows.Err()
			}
			trimmed, err1 := run(true)
			whole, err2 := run(false)
			if (err1 == nil) != (err2 == nil) {
				t.Errorf("%s: %s: trimmed error %v, untrimmed error %v", login, c.sql, err1, err2)
				continue
			}
			if err1 != nil && login == "alice" {
				t.Errorf("%s: %s: %v", login, c.sql, err1)
			}
			if err1 != nil {
				continue // refused either way (the others may not read some of them)
			}
			if len(whole) == 0 {
				t.Errorf("%s: %s: no rows; the case tests nothing", login, c.sql)
			}
			if !slices.Equal(trimmed, whole) {
				t.Errorf("%s: %s: trimming changed the answer:\ntrimmed %.300q\nwhole   %.300q", login, c.sql, trimmed, whole)
			}
		}
	}
}

// TestTrimLeavesOutUnread checks what is sent: a read keeps the masks of
// the columns it names and no others, and a read that may see whole rows
// keeps them all.
func TestTrimLeavesOutUnread(t *testing.T) {
	ctx := context.Background()
	// The sales rep's masks (examples/crm/rules.yaml): birth_date to its
	// year, street withheld.
	const birthMask, streetMask = "date_trunc('year', birth_date)", "(street withheld)"
	for _, c := range trimCases {
		res, _, err := eng.Explain(ctx, "alice", []string{"public"}, c.sql)
		if err != nil || len(res.Refused) > 0 {
			t.Fatalf("%s: %v %v", c.sql, err, res.Refused)
		}
		readsBirth := strings.Contains(c.sql, "birth_date")
		if got := strings.Contains(res.SQL, birthMask); got != (c.whole || readsBirth) {
			t.Errorf("%s: birth_date's mask sent: %v, want %v:\n%s", c.sql, got, c.whole || readsBirth, res.SQL)
		}
		if !c.whole && !strings.Contains(c.sql, "street") && strings.Contains(res.SQL, streetMask) {
			t.Errorf("%s: street's mask sent although unread:\n%s", c.sql, res.SQL)
		}
	}
	// A literal names no column: the template of the shape, where it is
	// a parameter, must be trimmed as the statement is.
	res, _, err := eng.Explain(ctx, "alice", []string{"public"}, "SELECT customer_id FROM customers WHERE segment = 'street'")
	if err != nil || len(res.Refused) > 0 {
		t.Fatal(err, res.Refused)
	}
	if strings.Contains(res.SQL, streetMask) {
		t.Errorf("a literal kept a mask:\n%s", res.SQL)
	}
	// Writes keep every column: their checks read them.
	res, _, err = eng.Explain(ctx, "alice", []string{"public"}, "UPDATE customers SET email = 'x@example.com' WHERE customer_id = 1")
	if err != nil || len(res.Refused) > 0 {
		t.Fatal(err, res.Refused)
	}
	if !strings.Contains(res.SQL, birthMask) {
		t.Errorf("an UPDATE's policy subquery was trimmed:\n%s", res.SQL)
	}
}

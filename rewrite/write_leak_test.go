package rewrite_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Write attacks: a north sales rep (alice) tries to learn, through writes,
// what she may not see: hidden columns of her own customers and anything of
// other regions. Canaries planted in those cells must never come back, in
// rows, errors, notices or command tags, and probes must answer the same
// whether the probed value exists or not. Every attack runs in a
// transaction that is rolled back.

// The planted rows: a north customer whose hidden columns hold canaries, a
// south customer and its order holding canaries everywhere.
const (
	wlNorth = 990001
	wlSouth = 990002
	wlOrder = 990003
)

var writeCanaries = []string{"WCAN-NID", "WCAN-REL", "WCAN-HEALTH", "WCAN-ETH", "WCAN-SFIRST", "WCAN-SLAST",
	"WCAN-SMAIL", "WCAN-SPHONE", "WCAN-SNID", "WCAN-SHIP", "WCAN-SSTREET", "WCAN-BODY"}

func plantWriteCanaries(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	db := direct(t)
	stmts := []string{
		fmt.Sprintf(`INSERT INTO customers (customer_id, customer_number, first_name, last_name, email, phone, region, segment, created_at,
			national_id, religion, ethnicity, health_notes)
			VALUES (%d, 'C-WL-1', 'Nell', 'Northway', 'nell@example.com', '+44 1', 'north', 'consumer', now(),
			'WCAN-NID', 'WCAN-REL', 'WCAN-ETH', 'WCAN-HEALTH')`, wlNorth),
		fmt.Sprintf(`INSERT INTO customers (customer_id, customer_number, first_name, last_name, email, phone, region, segment, created_at, national_id)
			VALUES (%d, 'C-WL-2', 'WCAN-SFIRST', 'WCAN-SLAST', 'WCAN-SMAIL@x.example', 'WCAN-SPHONE', 'south', 'consumer', now(), 'WCAN-SNID')`, wlSouth),
		fmt.Sprintf(`INSERT INTO orders (order_id, customer_id, ordered_at, status, total_amount, shipping_name, shipping_street, shipping_city, shipping_postal_code, shipping_region)
			VALUES (%d, %d, now(), 'open', 1, 'WCAN-SHIP', 'WCAN-SSTREET', 'x', 'x', 'south')`, wlOrder, wlSouth),
		fmt.Sprintf(`INSERT INTO support_tickets (ticket_id, customer_id, opened_at, channel, status, subject, body)
			VALUES (%d, %d, now(), 'email', 'open', 's', 'xxxxxxxxxxxxxxxxxxxxxxxx WCAN-BODY')`, wlNorth, wlNorth),
	}
	for _, s := range stmts {
		if _, err := db.Exec(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		db := direct(t)
		db.Exec(ctx, fmt.Sprintf("DELETE FROM support_tickets WHERE ticket_id = %d", wlNorth))
		db.Exec(ctx, fmt.Sprintf("DELETE FROM orders WHERE order_id = %d", wlOrder))
		db.Exec(ctx, fmt.Sprintf("DELETE FROM customers WHERE customer_id IN (%d, %d)", wlNorth, wlSouth))
	})
}

// writeAttacks are grouped by technique. %[1]d is the north customer, %[2]d
// the south one, %[3]d the south order; CANARY is replaced by a planted
// value and by one that exists nowhere, for the probes.
var writeAttacks = []struct{ group, sql string }{
	// Row-count probes on hidden columns and other regions.
	{"count", "UPDATE customers SET region = region WHERE national_id = 'CANARY'"},
	{"count", "UPDATE customers SET first_name = first_name WHERE national_id LIKE 'CANARY%%'"},
	{"count", "UPDATE customers SET first_name = first_name WHERE religion = 'CANARY'"},
	{"count", "UPDATE customers SET first_name = first_name WHERE health_notes = 'CANARY' OR ethnicity = 'CANARY'"},
	{"count", "UPDATE customers SET first_name = first_name WHERE first_name = 'CANARY'"},
	{"count", "UPDATE customers SET first_name = first_name WHERE email LIKE 'CANARY%%'"},
	{"count", "UPDATE customers SET first_name = first_name WHERE customer_id = %[2]d AND national_id = 'CANARY'"},
	{"count", "DELETE FROM customers WHERE national_id = 'CANARY'"},
	{"count", "DELETE FROM orders WHERE shipping_name = 'CANARY'"},
	{"count", "DELETE FROM orders WHERE shipping_street = 'CANARY'"},
	{"count", "DELETE FROM support_tickets WHERE body LIKE '%%CANARY%%'"},
	{"count", "UPDATE orders SET status = status WHERE customer_id IN (SELECT customer_id FROM customers WHERE national_id = 'CANARY')"},
	{"count", "UPDATE orders SET status = status WHERE EXISTS (SELECT 1 FROM customers c WHERE c.customer_id = orders.customer_id AND c.religion = 'CANARY')"},
	{"count", "UPDATE customers c SET first_name = c.first_name FROM orders o WHERE o.customer_id = c.customer_id AND o.shipping_name = 'CANARY'"},
	{"count", "DELETE FROM orders o USING customers c WHERE o.customer_id = c.customer_id AND c.national_id = 'CANARY'"},
	{"count", "UPDATE customers SET first_name = first_name WHERE customer_id = %[2]d"},
	{"count", "DELETE FROM customers WHERE customer_id = %[2]d"},
	{"count", "UPDATE orders SET status = 'x' WHERE order_id = %[3]d"},
	{"count", "WITH x AS (UPDATE customers SET first_name = first_name WHERE national_id = 'CANARY' RETURNING customer_id) SELECT count(*) FROM x"},
	{"count", "WITH x AS (DELETE FROM orders WHERE shipping_name = 'CANARY' RETURNING order_id) SELECT count(*) FROM x"},
	{"count", "UPDATE customers SET first_name = first_name WHERE national_id IS NOT NULL"},
	{"count", "UPDATE customers SET first_name = first_name WHERE length(national_id) > 0"},
	{"count", "UPDATE customers SET first_name = first_name WHERE (SELECT national_id FROM customers c2 WHERE c2.customer_id = %[1]d) = 'CANARY'"},
	{"count", "UPDATE customers SET first_name = first_name WHERE customer_id = %[1]d AND 1/(CASE WHEN national_id = 'CANARY' THEN 0 ELSE 1 END) = 1"},
	{"count", "UPDATE customers SET first_name = first_name WHERE customer_id = %[2]d AND 1/(CASE WHEN first_name = 'CANARY' THEN 0 ELSE 1 END) = 1"},
	// RETURNING of what the role does not see.
	{"returning", "UPDATE customers SET first_name = first_name WHERE customer_id = %[1]d RETURNING national_id"},
	{"returning", "UPDATE customers SET first_name = first_name WHERE customer_id = %[1]d RETURNING *"},
	{"returning", "UPDATE customers c SET first_name = first_name WHERE customer_id = %[1]d RETURNING c"},
	{"returning", "UPDATE customers c SET first_name = first_name WHERE customer_id = %[1]d RETURNING row_to_json(c)"},
	{"returning", "UPDATE customers SET first_name = first_name WHERE customer_id = %[1]d RETURNING to_jsonb(customers.*)"},
	{"returning", "UPDATE customers SET first_name = first_name WHERE customer_id = %[1]d RETURNING religion || ''"},
	{"returning", "UPDATE customers SET first_name = first_name WHERE customer_id = %[1]d RETURNING (SELECT national_id FROM customers WHERE customer_id = %[1]d)"},
	{"returning", "UPDATE customers SET first_name = first_name WHERE customer_id = %[1]d RETURNING (SELECT first_name FROM customers WHERE customer_id = %[2]d)"},
	{"returning", "DELETE FROM support_tickets WHERE ticket_id = %[1]d RETURNING body"},
	{"returning", "DELETE FROM orders WHERE order_id = %[3]d RETURNING shipping_name"},
	{"returning", "INSERT INTO customers (customer_id, customer_number, first_name, last_name, region, segment, created_at) VALUES (990010, 'C-WL-10', 'a', 'b', 'north', 'consumer', now()) RETURNING (SELECT national_id FROM customers WHERE customer_id = %[1]d)"},
	{"returning", "INSERT INTO customers (customer_id, customer_number, first_name, last_name, region, segment, created_at) VALUES (990011, 'C-WL-11', 'a', 'b', 'north', 'consumer', now()) RETURNING health_notes"},
	{"returning", "WITH x AS (UPDATE customers SET first_name = first_name WHERE customer_id = %[1]d RETURNING national_id) SELECT * FROM x"},
	{"returning", "WITH x AS (DELETE FROM orders WHERE order_id = %[3]d RETURNING *) SELECT * FROM x"},
	// SET that copies a hidden value somewhere visible.
	{"set", "UPDATE customers SET first_name = national_id WHERE customer_id = %[1]d"},
	{"set", "UPDATE customers SET last_name = religion || '' WHERE customer_id = %[1]d"},
	{"set", "UPDATE customers SET email = health_notes WHERE customer_id = %[1]d"},
	{"set", "UPDATE customers SET segment = coalesce(ethnicity, segment) WHERE customer_id = %[1]d"},
	{"set", "UPDATE customers SET first_name = (SELECT national_id FROM customers c2 WHERE c2.customer_id = %[1]d) WHERE customer_id = %[1]d"},
	{"set", "UPDATE customers SET first_name = (SELECT first_name FROM customers c2 WHERE c2.customer_id = %[2]d) WHERE customer_id = %[1]d"},
	{"set", "UPDATE support_tickets SET subject = body WHERE ticket_id = %[1]d"},
	{"set", "UPDATE orders SET status = shipping_street WHERE customer_id = %[1]d"},
	{"set", "UPDATE customers c SET first_name = o.shipping_name FROM orders o WHERE o.customer_id = c.customer_id"},
	{"set", "UPDATE customers SET (first_name, last_name) = (SELECT national_id, religion FROM customers WHERE customer_id = %[1]d) WHERE customer_id = %[1]d"},
	{"set", "INSERT INTO orders (order_id, customer_id, ordered_at, status, total_amount, shipping_name, shipping_street, shipping_city, shipping_postal_code, shipping_region) SELECT 990012, customer_id, now(), national_id, 1, 'n', 's', 'c', 'p', 'north' FROM customers WHERE customer_id = %[1]d"},
	{"set", "INSERT INTO orders (order_id, customer_id, ordered_at, status, total_amount, shipping_name, shipping_street, shipping_city, shipping_postal_code, shipping_region) SELECT 990013, %[1]d, now(), shipping_name, 1, 'n', 's', 'c', 'p', 'north' FROM orders WHERE order_id = %[3]d"},
	// Errors that could carry values.
	{"error", "UPDATE customers SET first_name = NULL WHERE customer_id = %[1]d"},
	{"error", "UPDATE customers SET region = 'nowhere' WHERE customer_id = %[1]d"},
	{"error", "UPDATE customers SET customer_number = 'C-WL-2' WHERE customer_id = %[1]d"},
	{"error", "INSERT INTO customers (customer_id, customer_number, first_name, last_name, region, segment, created_at) VALUES (%[1]d, 'C-WL-12', 'a', 'b', 'north', 'consumer', now())"},
	{"error", "INSERT INTO customers (customer_id, customer_number, first_name, last_name, region, segment, created_at) VALUES (%[2]d, 'C-WL-13', 'a', 'b', 'north', 'consumer', now())"},
	{"error", "DELETE FROM customers WHERE customer_id = %[1]d"},
	{"error", "UPDATE customers SET customer_id = %[2]d WHERE customer_id = %[1]d"},
	{"error", "UPDATE customers SET first_name = first_name::int::text WHERE customer_id = %[1]d"},
	// Moving rows out of, or into, the filter.
	{"check", "UPDATE customers SET region = 'south' WHERE customer_id = %[1]d"},
	{"check", "UPDATE orders SET customer_id = %[2]d WHERE customer_id = %[1]d"},
	{"check", "INSERT INTO orders (order_id, customer_id, ordered_at, status, total_amount, shipping_name, shipping_street, shipping_city, shipping_postal_code, shipping_region) VALUES (990014, %[2]d, now(), 'o', 1, 'n', 's', 'c', 'p', 'south')"},
	{"check", "UPDATE customers SET region = CASE WHEN national_id = 'CANARY' THEN 'south' ELSE region END WHERE customer_id = %[1]d"},
	{"check", "UPDATE customers SET region = CASE WHEN first_name = 'CANARY' THEN 'north' ELSE 'south' END"},
	// Writes of what the role may not write.
	{"blind", "UPDATE customers SET national_id = 'x' WHERE customer_id = %[1]d"},
	{"blind", "UPDATE customers SET national_id = national_id WHERE customer_id = %[1]d"},
	{"blind", "INSERT INTO customers (customer_id, customer_number, first_name, last_name, region, segment, created_at, religion) VALUES (990015, 'C-WL-15', 'a', 'b', 'north', 'consumer', now(), 'r')"},
	{"blind", "MERGE INTO customers c USING (SELECT %[1]d AS id) s ON c.customer_id = s.id WHEN MATCHED THEN UPDATE SET first_name = 'm'"},
	{"blind", "INSERT INTO customers (customer_id, customer_number, first_name, last_name, region, segment, created_at) VALUES (%[1]d, 'x', 'a', 'b', 'north', 'consumer', now()) ON CONFLICT (customer_id) DO UPDATE SET first_name = excluded.first_name"},
	{"blind", "TRUNCATE customers"},
	// Write-back (writeback.go) as an oracle: writing a guess into a hidden
	// or masked column must answer the same whether the guess is the real
	// value or not, and change nothing.
	{"writeback", "UPDATE customers SET national_id = 'CANARY' WHERE customer_id = %[1]d"},
	{"writeback", "UPDATE customers SET religion = 'CANARY', first_name = first_name WHERE customer_id = %[1]d"},
	{"writeback", "UPDATE customers SET national_id = 'CANARY' WHERE customer_id IN (%[1]d, %[2]d)"},
	{"writeback", "UPDATE customers SET national_id = 'CANARY' WHERE customer_id = %[2]d"},
	{"writeback", "UPDATE customers SET health_notes = NULL WHERE customer_id = %[1]d RETURNING health_notes"},
	{"writeback", "UPDATE customers SET national_id = NULLIF('CANARY', 'CANARY') WHERE customer_id = %[1]d RETURNING national_id, religion"},
	{"writeback", "UPDATE customers SET ethnicity = (SELECT 'CANARY') WHERE customer_id = %[1]d"},
	{"writeback", "UPDATE customers SET national_id = CASE WHEN first_name = 'Nell' THEN 'CANARY' END WHERE customer_id = %[1]d"},
	{"writeback", "WITH x AS (UPDATE customers SET national_id = 'CANARY' WHERE customer_id = %[1]d RETURNING *) SELECT * FROM x"},
	{"writeback", "UPDATE orders SET shipping_street = 'CANARY' WHERE order_id = %[3]d RETURNING shipping_street"},
	{"writeback", "UPDATE orders SET shipping_street = '(street withheld)' WHERE order_id = %[3]d RETURNING *"},
	// ON CONFLICT (onconflict.go) on keys outside the filter, and reading
	// the existing row's unseen columns.
	{"conflict", "INSERT INTO customers (customer_id, customer_number, first_name, last_name, region, segment, created_at) VALUES (%[2]d, 'C-WL-20', 'a', 'b', 'north', 'consumer', now()) ON CONFLICT (customer_id) DO UPDATE SET first_name = EXCLUDED.first_name RETURNING *"},
	{"conflict", "INSERT INTO customers (customer_id, customer_number, first_name, last_name, region, segment, created_at) VALUES (%[2]d, 'C-WL-21', 'a', 'b', 'north', 'consumer', now()) ON CONFLICT (customer_id) DO UPDATE SET first_name = customers.first_name RETURNING first_name, last_name, email"},
	{"conflict", "INSERT INTO customers (customer_id, customer_number, first_name, last_name, region, segment, created_at) VALUES (%[2]d, 'C-WL-22', 'a', 'b', 'north', 'consumer', now()) ON CONFLICT (customer_id) DO UPDATE SET segment = CASE WHEN customers.first_name = 'CANARY' THEN 'a' ELSE 'b' END"},
	{"conflict", "INSERT INTO customers (customer_id, customer_number, first_name, last_name, region, segment, created_at) VALUES (%[2]d, 'C-WL-23', 'a', 'b', 'north', 'consumer', now()) ON CONFLICT (customer_id) DO UPDATE SET segment = 'x' WHERE customers.first_name = 'CANARY'"},
	{"conflict", "INSERT INTO customers (customer_id, customer_number, first_name, last_name, region, segment, created_at) VALUES (%[2]d, 'C-WL-24', 'a', 'b', 'north', 'consumer', now()) ON CONFLICT (customer_id) DO NOTHING"},
	{"conflict", "INSERT INTO customers (customer_id, customer_number, first_name, last_name, region, segment, created_at) VALUES (990025, 'C-WL-2', 'a', 'b', 'north', 'consumer', now()) ON CONFLICT (customer_number) DO UPDATE SET first_name = EXCLUDED.first_name RETURNING customer_id, national_id, %[1]d AS n"},
	{"conflict", "INSERT INTO customers (customer_id, customer_number, first_name, last_name, region, segment, created_at) VALUES (%[1]d, 'C-WL-26', 'a', 'b', 'north', 'consumer', now()) ON CONFLICT (customer_id) DO UPDATE SET first_name = 'x' WHERE customers.national_id = 'CANARY'"},
	{"conflict", "INSERT INTO customers (customer_id, customer_number, first_name, last_name, region, segment, created_at) VALUES (%[1]d, 'C-WL-27', 'a', 'b', 'north', 'consumer', now()) ON CONFLICT (customer_id) DO UPDATE SET first_name = customers.religion"},
	{"conflict", "INSERT INTO customers (customer_id, customer_number, first_name, last_name, region, segment, created_at) VALUES (%[1]d, 'C-WL-28', 'a', 'b', 'north', 'consumer', now()) ON CONFLICT (customer_id) DO UPDATE SET national_id = 'CANARY' RETURNING national_id"},
	{"conflict", "INSERT INTO customers (customer_id, customer_number, first_name, last_name, region, segment, created_at) VALUES (%[1]d, 'C-WL-29', 'a', 'b', 'north', 'consumer', now()) ON CONFLICT (customer_id) DO UPDATE SET region = 'south' RETURNING *"},
	{"conflict", "INSERT INTO orders (order_id, customer_id, ordered_at, status, total_amount, shipping_name, shipping_street, shipping_city, shipping_postal_code, shipping_region) VALUES (%[3]d, %[1]d, now(), 'o', 1, 'n', 's', 'c', 'p', 'north') ON CONFLICT (order_id) DO UPDATE SET status = EXCLUDED.status RETURNING shipping_name, shipping_street"},
	{"conflict", "WITH x AS (INSERT INTO customers (customer_id, customer_number, first_name, last_name, region, segment, created_at) VALUES (%[2]d, 'C-WL-30', 'a', 'b', 'north', 'consumer', now()) ON CONFLICT (customer_id) DO UPDATE SET first_name = EXCLUDED.first_name RETURNING *) SELECT * FROM x"},
	// RETURNING through data-modifying CTEs, and * in expressions.
	{"returning", "WITH x AS (UPDATE customers SET first_name = first_name WHERE customer_id = %[1]d RETURNING *) SELECT national_id, religion, health_notes, ethnicity FROM x"},
	{"returning", "WITH x AS (UPDATE customers SET first_name = first_name WHERE customer_id = %[1]d RETURNING *) SELECT to_jsonb(x) FROM x"},
	{"returning", "WITH x AS (DELETE FROM support_tickets WHERE ticket_id = %[1]d RETURNING body) SELECT * FROM x"},
	{"returning", "WITH x AS (INSERT INTO customers (customer_id, customer_number, first_name, last_name, region, segment, created_at) VALUES (990017, 'C-WL-17', 'a', 'b', 'north', 'consumer', now()) RETURNING *) SELECT * FROM x"},
	{"returning", "UPDATE customers c SET first_name = first_name WHERE customer_id = %[1]d RETURNING row_to_json(c.*)"},
	{"returning", "UPDATE customers c SET first_name = first_name WHERE customer_id = %[1]d RETURNING (c.*)::text"},
	{"returning", "UPDATE customers c SET first_name = first_name WHERE customer_id = %[1]d RETURNING (SELECT c.national_id)"},
	{"returning", "UPDATE customers c SET first_name = first_name WHERE customer_id = %[1]d RETURNING (SELECT string_agg(x::text, ',') FROM (SELECT c.*) x)"},
	{"blind", "COPY customers (customer_id, customer_number, first_name, last_name, region, segment, created_at, national_id) FROM STDIN"},
}

func TestWriteAttacks(t *testing.T) {
	plantWriteCanaries(t)
	ctx := context.Background()
	if len(writeAttacks) < 60 {
		t.Fatalf("only %d write attacks", len(writeAttacks))
	}
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeExec} {
		var notices []string
		cfg, err := pgx.ParseConfig(as(t, "alice").Config().ConnString())
		if err != nil {
			t.Fatal(err)
		}
		cfg.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) { notices = append(notices, n.Message+" "+n.Detail) }
		alice, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer alice.Close(ctx)
		for i, a := range writeAttacks {
			sql := fmt.Sprintf(a.sql, wlNorth, wlSouth, wlOrder)
			name := fmt.Sprintf("%s/%s/%d", mode, a.group, i)
			outcomes := map[string]string{}
			for _, probe := range []string{"planted", "absent"} {
				value := "NOPE-NOT-PLANTED"
				if probe == "planted" {
					value = writeCanaries[i%len(writeCanaries)]
				}
				q := strings.ReplaceAll(sql, "CANARY", value)
				notices = nil
				out := runWriteAttack(t, ctx, alice, mode, q)
				seen := out + " " + strings.Join(notices, " ")
				for _, c := range writeCanaries {
					if strings.Contains(seen, c) && !strings.Contains(q, c) {
						t.Errorf("%s: canary %s leaked: %s\n%s", name, c, seen, q)
					}
				}
				outcomes[probe] = out
			}
			if strings.Contains(sql, "CANARY") && outcomes["planted"] != outcomes["absent"] {
				t.Errorf("%s: the probe tells a planted value from an absent one:\n planted: %s\n absent: %s\n%s",
					name, outcomes["planted"], outcomes["absent"], sql)
			}
		}
	}
}

// runWriteAttack runs one statement in a rolled-back transaction and
// returns everything the client saw: rows, command tag or error fields.
func runWriteAttack(t *testing.T, ctx context.Context, conn *pgx.Conn, mode pgx.QueryExecMode, sql string) string {
	t.Helper()
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if strings.HasPrefix(sql, "COPY") {
		_, err := conn.PgConn().CopyFrom(ctx, strings.NewReader("990016\tC\ta\tb\tnorth\tconsumer\t2026-01-01\tx\n"), sql)
		return describeErr(err)
	}
	rows, err := tx.Query(ctx, sql, mode)
	if err != nil {
		return describeErr(err)
	}
	var b strings.Builder
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			break
		}
		fmt.Fprint(&b, vals, ";")
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return b.String() + describeErr(err)
	}
	return b.String() + rows.CommandTag().String()
}

func describeErr(err error) string {
	if err == nil {
		return "ok"
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return strings.Join([]string{pe.Code, pe.Message, pe.Detail, pe.Hint, pe.Where}, " | ")
	}
	return err.Error()
}

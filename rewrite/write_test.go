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

// A north sales rep works through a CRM screen flow in both protocols:
// everything she may do succeeds, and the database holds exactly what she
// did.
func TestWriteFlowSalesRep(t *testing.T) {
	ctx := context.Background()
	db := direct(t)
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeExec, pgx.QueryExecModeCacheStatement} {
		t.Run(mode.String(), func(t *testing.T) {
			alice := as(t, "alice")
			id := 900000 + int(mode)*10
			email := fmt.Sprintf("new.customer%d@example.com", id)
			tag, err := alice.Exec(ctx, `INSERT INTO customers (customer_id, customer_number, first_name, last_name, email, region, segment, created_at)
				VALUES ($1, $2, 'Nora', 'North', $3, 'north', 'consumer', now())`, mode, id, fmt.Sprintf("C-%d", id), email)
			if err != nil || tag.RowsAffected() != 1 {
				t.Fatalf("insert customer: %v %v", tag, err)
			}
			tag, err = alice.Exec(ctx, "UPDATE customers SET email = $1, phone = $2 WHERE customer_id = $3",
				mode, "nora@example.org", "+44 20 7946 0000", id)
			if err != nil || tag.RowsAffected() != 1 {
				t.Fatalf("update email and phone: %v %v", tag, err)
			}
			tag, err = alice.Exec(ctx, `INSERT INTO orders (order_id, customer_id, ordered_at, status, total_amount,
				shipping_name, shipping_street, shipping_city, shipping_postal_code, shipping_region)
				VALUES ($1, $2, now(), 'draft', 10.50, 'Nora North', '1 High St', 'Leeds', 'LS1', 'north'),
				       ($3, $2, now(), 'open', 99, 'Nora North', '1 High St', 'Leeds', 'LS1', 'north')`, mode, id, id, id+1)
			if err != nil || tag.RowsAffected() != 2 {
				t.Fatalf("add orders: %v %v", tag, err)
			}
			var ticket int
			if err := db.QueryRow(ctx, `INSERT INTO support_tickets (ticket_id, customer_id, opened_at, channel, status, subject, body)
				VALUES ($1, $1, now(), 'email', 'open', 's', 'b') RETURNING ticket_id`, id).Scan(&ticket); err != nil {
				t.Fatal(err)
			}
			tag, err = alice.Exec(ctx, "UPDATE support_tickets SET status = 'closed' WHERE ticket_id = $1", mode, ticket)
			if err != nil || tag.RowsAffected() != 1 {
				t.Fatalf("close ticket: %v %v", tag, err)
			}
			tag, err = alice.Exec(ctx, "DELETE FROM orders WHERE order_id = $1 AND status = 'draft' RETURNING order_id", mode, id)
			if err != nil || tag.RowsAffected() != 1 {
				t.Fatalf("delete draft order: %v %v", tag, err)
			}
			var gotEmail, gotPhone, status string
			var orders int
			if err := db.QueryRow(ctx, `SELECT c.email, c.phone, (SELECT count(*) FROM orders o WHERE o.customer_id = c.customer_id),
				(SELECT status FROM support_tickets WHERE ticket_id = $1) FROM customers c WHERE customer_id = $1`, id).
				Scan(&gotEmail, &gotPhone, &orders, &status); err != nil {
				t.Fatal(err)
			}
			if gotEmail != "nora@example.org" || gotPhone != "+44 20 7946 0000" || orders != 1 || status != "closed" {
				t.Fatalf("database holds %q %q %d orders, ticket %q", gotEmail, gotPhone, orders, status)
			}
		})
	}
}

func wantRefused(t *testing.T, err error, code, part string) {
	t.Helper()
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != code || !strings.Contains(pe.Message, part) {
		t.Fatalf("want %s %q, got %v", code, part, err)
	}
}

// Writes outside the filter change nothing: those that would create or
// move a row out are errors (as WITH CHECK), those that target rows she
// cannot see affect 0 rows.
func TestWriteRefusalsChangeNothing(t *testing.T) {
	ctx := context.Background()
	db := direct(t)
	var south, north int // customers with orders
	if err := db.QueryRow(ctx, `SELECT min(customer_id) FILTER (WHERE region = 'south'), min(customer_id) FILTER (WHERE region = 'north')
		FROM customers WHERE customer_id < 900000 AND customer_id IN (SELECT customer_id FROM orders)`).Scan(&south, &north); err != nil {
		t.Fatal(err)
	}
	digest := func() string {
		var d string
		if err := db.QueryRow(ctx, `SELECT md5(string_agg(c::text, ',' ORDER BY customer_id)) || md5(coalesce((SELECT string_agg(o::text, ',' ORDER BY order_id) FROM orders o), ''))
			FROM customers c`).Scan(&d); err != nil {
			t.Fatal(err)
		}
		return d
	}
	before := digest()
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeExec} {
		alice := as(t, "alice")
		_, err := alice.Exec(ctx, "INSERT INTO customers (customer_id, customer_number, first_name, last_name, region, segment, created_at) VALUES (950001, 'C-950001', 'S', 'S', 'south', 'consumer', now())", mode)
		wantRefused(t, err, "42501", "outside the row filter")
		_, err = alice.Exec(ctx, `INSERT INTO customers (customer_id, customer_number, first_name, last_name, region, segment, created_at)
			VALUES (950002, 'C-950002', 'a', 'b', 'north', 'consumer', now()), (950003, 'C-950003', 'c', 'd', 'west', 'consumer', now())`, mode)
		wantRefused(t, err, "42501", "outside the row filter")
		_, err = alice.Exec(ctx, "UPDATE customers SET region = 'south' WHERE customer_id = $1", mode, north)
		wantRefused(t, err, "42501", "outside the row filter")
		tag, err := alice.Exec(ctx, "UPDATE customers SET first_name = 'X' WHERE customer_id = $1", mode, south)
		if err != nil || tag.RowsAffected() != 0 {
			t.Fatalf("update of a south customer: %v %v", tag, err)
		}
		tag, err = alice.Exec(ctx, "DELETE FROM orders WHERE customer_id = $1", mode, south)
		if err != nil || tag.RowsAffected() != 0 {
			t.Fatalf("delete of south orders: %v %v", tag, err)
		}
		_, err = alice.Exec(ctx, "INSERT INTO orders (order_id, customer_id, ordered_at, status, total_amount, shipping_name, shipping_street, shipping_city, shipping_postal_code, shipping_region) VALUES (950010, $1, now(), 'open', 1, 'n', 's', 'c', 'p', 'south')", mode, south)
		wantRefused(t, err, "42501", "outside the row filter")
		_, err = alice.Exec(ctx, "UPDATE orders SET customer_id = $1 WHERE customer_id = $2", mode, south, north)
		wantRefused(t, err, "42501", "outside the row filter")
		_, err = alice.Exec(ctx, "INSERT INTO customers (customer_id, customer_number, first_name, last_name) VALUES (950004, 'C-950004', 'n', 'r')", mode)
		wantRefused(t, err, "42501", "must give column region")
		_, err = alice.Exec(ctx, "INSERT INTO customers ON CONFLICT DO NOTHING", mode)
		if err == nil {
			t.Fatal("malformed insert accepted")
		}
		_, err = alice.Exec(ctx, "INSERT INTO customers (customer_id, customer_number, first_name, last_name, region, segment, created_at) VALUES (950005, 'C', 'a', 'b', 'south', 'consumer', now()) ON CONFLICT DO NOTHING", mode)
		wantRefused(t, err, "42501", "outside the row filter")
		_, err = alice.Exec(ctx, "MERGE INTO customers c USING (SELECT 1 AS id) s ON c.customer_id = s.id WHEN MATCHED THEN UPDATE SET first_name = 'm'", mode)
		wantRefused(t, err, "42501", "MERGE statements")
	}
	// COPY FROM with one bad row writes nothing.
	alice := as(t, "alice")
	_, err := alice.PgConn().CopyFrom(ctx, strings.NewReader("950020\tC-950020\ta\tb\tnorth\tconsumer\t2026-01-01\n950021\tC-950021\tc\td\tsouth\tconsumer\t2026-01-01\n"),
		"COPY customers (customer_id, customer_number, first_name, last_name, region, segment, created_at) FROM STDIN")
	wantRefused(t, err, "42501", "outside the row filter")
	tag, err := alice.PgConn().CopyFrom(ctx, strings.NewReader("950022\tC-950022\ta\tb\tnorth\tconsumer\t2026-01-01\n"),
		"COPY customers (customer_id, customer_number, first_name, last_name, region, segment, created_at) FROM STDIN")
	if err != nil || tag.RowsAffected() != 1 {
		t.Fatalf("good COPY: %v %v", tag, err)
	}
	if _, err := db.Exec(ctx, "DELETE FROM customers WHERE customer_id = 950022"); err != nil {
		t.Fatal(err)
	}
	if after := digest(); after != before {
		t.Fatal("refused writes changed the database")
	}
}

// Writes cannot be used to read what the role may not see.
func TestWriteOracles(t *testing.T) {
	ctx := context.Background()
	db := direct(t)
	var north int
	if err := db.QueryRow(ctx, "SELECT min(customer_id) FROM customers WHERE region = 'north' AND national_id IS NOT NULL AND customer_id < 900000").Scan(&north); err != nil {
		t.Fatal(err)
	}
	alice := as(t, "alice")
	// The WHERE sees the hidden column as NULL: no row matches, whatever
	// the real values are.
	tag, err := alice.Exec(ctx, "UPDATE customers SET region = region WHERE national_id IS NOT NULL")
	if err != nil || tag.RowsAffected() != 0 {
		t.Fatalf("row-count probe: %v %v", tag, err)
	}
	// RETURNING gives what a read gives: the hidden column is NULL.
	var nid *string
	if err := alice.QueryRow(ctx, "UPDATE customers SET first_name = first_name WHERE customer_id = $1 RETURNING national_id", north).Scan(&nid); err != nil || nid != nil {
		t.Fatalf("RETURNING of a hidden column: %v %v", nid, err)
	}
	_, err = alice.Exec(ctx, "UPDATE customers SET first_name = first_name WHERE customer_id = $1 RETURNING to_jsonb(customers.*)", north)
	wantRefused(t, err, "42501", "every column")
	_, err = alice.Exec(ctx, "UPDATE customers SET first_name = national_id WHERE customer_id = $1", north)
	wantRefused(t, err, "42501", "SET may not read column national_id")
	_, err = alice.Exec(ctx, "UPDATE customers SET national_id = 'x' WHERE customer_id = $1", north)
	wantRefused(t, err, "42501", "blind_writes")
	_, err = alice.Exec(ctx, "UPDATE customers c SET first_name = first_name WHERE c.customer_id = $1 RETURNING c", north)
	wantRefused(t, err, "42501", "every column")
	tag, err = alice.Exec(ctx, "DELETE FROM orders o USING customers c WHERE o.customer_id = c.customer_id AND c.national_id LIKE '%'")
	if err != nil || tag.RowsAffected() != 0 {
		t.Fatalf("DELETE USING a join on a hidden column: %v %v", tag, err)
	}
	rows, err := alice.Query(ctx, "WITH x AS (UPDATE customers SET first_name = first_name WHERE customer_id = $1 RETURNING customer_id, email) SELECT * FROM x", north)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for rows.Next() {
		n++
	}
	if rows.Err() != nil || n != 1 {
		t.Fatalf("CTE-wrapped update: %d rows, %v", n, rows.Err())
	}
	// support may write the phone blind, but not read it back.
	sam := as(t, "sam")
	_, err = sam.Exec(ctx, "UPDATE customers SET phone = '+1 555 0100' WHERE customer_id = $1", north)
	if err != nil {
		t.Fatalf("blind write: %v", err)
	}
	_, err = sam.Exec(ctx, "UPDATE customers SET phone = '+1 555 0101' WHERE customer_id = $1 RETURNING phone", north)
	wantRefused(t, err, "42501", "RETURNING may not read column phone")
}

package rewrite_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// rowJSON is a customer's stored row as JSON, from the direct connection.
func rowJSON(t *testing.T, db *pgx.Conn, table, key string, id int64) string {
	t.Helper()
	var s string
	if err := db.QueryRow(context.Background(), fmt.Sprintf("SELECT to_jsonb(x)::text FROM %s x WHERE %s = $1", table, key), id).Scan(&s); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestWriteBack: an ORM's save() writes every column of the row it read;
// writing back what the role was shown keeps the stored values, anything
// else in a column the role does not see raw is refused with nothing
// written, in both protocols; and the refusal tells nothing about the
// hidden value (the real value and an absent one get the same answer).
func TestWriteBack(t *testing.T) {
	ctx := context.Background()
	db := direct(t)
	var id int64
	var realNID, realPostal string
	if err := db.QueryRow(ctx, `SELECT customer_id, national_id, postal_code FROM customers
		WHERE region = 'north' AND national_id IS NOT NULL AND postal_code IS NOT NULL AND birth_date IS NOT NULL
		  AND annual_income IS NOT NULL AND customer_id < 900000 ORDER BY customer_id LIMIT 1`).Scan(&id, &realNID, &realPostal); err != nil {
		t.Fatal(err)
	}
	alice := as(t, "alice")
	for _, m := range modes {
		before := rowJSON(t, db, "customers", "customer_id", id)
		// Read the row as alice, then write every column back with the
		// phone changed: Django's save().
		rows, err := alice.Query(ctx, "SELECT * FROM customers WHERE customer_id = $1", m.mode, id)
		if err != nil {
			t.Fatal(err)
		}
		var cols []string
		for _, fd := range rows.FieldDescriptions() {
			cols = append(cols, fd.Name)
		}
		if !rows.Next() {
			t.Fatalf("[%s] alice does not see customer %d", m.name, id)
		}
		vals, err := rows.Values()
		rows.Close()
		if err != nil {
			t.Fatal(err)
		}
		var sets []string
		args := []any{m.mode, id}
		for i, c := range cols {
			v := vals[i]
			if c == "phone" {
				v = "+1 555 0177"
			}
			args = append(args, v)
			sets = append(sets, fmt.Sprintf("%s = $%d", c, len(args)-1))
		}
		tag, err := alice.Exec(ctx, "UPDATE customers SET "+strings.Join(sets, ", ")+" WHERE customer_id = $1", args...)
		if err != nil || tag.RowsAffected() != 1 {
			t.Fatalf("[%s] save() of every column as shown: %v %v", m.name, tag, err)
		}
		after := rowJSON(t, db, "customers", "customer_id", id)
		if strings.Replace(after, `"+1 555 0177"`, "PHONE", 1) == after {
			t.Fatalf("[%s] the phone was not written: %s", m.name, after)
		}
		var wantAfter string
		if err := db.QueryRow(ctx, "SELECT (to_jsonb(x) || jsonb_build_object('phone', '+1 555 0177'))::text FROM (SELECT ($1::jsonb) AS j) s, jsonb_populate_record(NULL::customers, s.j) x", before).Scan(&wantAfter); err != nil {
			t.Fatal(err)
		}
		if after != wantAfter {
			t.Fatalf("[%s] save() changed columns it only wrote back:\nbefore %s\nafter  %s", m.name, before, after)
		}

		// Other values in unseen columns: refused, nothing written, and
		// the same answer for the real hidden value as for an absent one.
		for _, c := range []struct{ col, real, absent string }{
			{"national_id", realNID, "ZZ-absent-0"},
			{"postal_code", realPostal, "00000"},
		} {
			var msgs []string
			for _, v := range []string{c.real, c.absent} {
				_, err := alice.Exec(ctx, "UPDATE customers SET "+c.col+" = $2 WHERE customer_id = $1", m.mode, id, v)
				wantRefused(t, err, "42501", "write back")
				msgs = append(msgs, strings.ReplaceAll(err.Error(), v, "V"))
			}
			if msgs[0] != msgs[1] {
				t.Errorf("[%s] the refusal depends on the hidden value:\n%s\n%s", m.name, msgs[0], msgs[1])
			}
		}
		// A multi-row UPDATE: one row whose shown value differs fails the
		// whole statement.
		_, err = alice.Exec(ctx, "UPDATE customers SET postal_code = (SELECT postal_code FROM customers WHERE customer_id = $1) WHERE region = 'north'", m.mode, id)
		wantRefused(t, err, "42501", "write back")
		if got := rowJSON(t, db, "customers", "customer_id", id); got != after {
			t.Fatalf("[%s] refused writes changed the row:\n%s\n%s", m.name, after, got)
		}

		// RETURNING, also through a data-modifying CTE, shows what a read
		// shows: the hidden column NULL, the masked one masked.
		var nid *string
		var postal string
		if err := alice.QueryRow(ctx, `WITH x AS (UPDATE customers SET first_name = first_name WHERE customer_id = $1 RETURNING *)
			SELECT national_id, postal_code FROM x`, m.mode, id).Scan(&nid, &postal); err != nil {
			t.Fatalf("[%s] RETURNING * through a CTE: %v", m.name, err)
		}
		if nid != nil || postal != realPostal[:2]+strings.Repeat("*", len(realPostal)-2) {
			t.Fatalf("[%s] RETURNING * gave national_id %v, postal_code %q", m.name, nid, postal)
		}
		if _, err := db.Exec(ctx, "UPDATE customers SET phone = ($1::jsonb)->>'phone' WHERE customer_id = $2", before, id); err != nil {
			t.Fatal(err)
		}
	}
}

// TestBlindWriteBack: a column the role may write blind takes a new value,
// but writing back its own mask never replaces the real one.
func TestBlindWriteBack(t *testing.T) {
	ctx := context.Background()
	db := direct(t)
	var order int64
	if err := db.QueryRow(ctx, `SELECT o.order_id FROM orders o JOIN customers c USING (customer_id)
		WHERE c.region = 'north' ORDER BY o.order_id LIMIT 1`).Scan(&order); err != nil {
		t.Fatal(err)
	}
	alice := as(t, "alice")
	var shown, street string
	if err := alice.QueryRow(ctx, "SELECT shipping_street FROM orders WHERE order_id = $1", order).Scan(&shown); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow(ctx, "SELECT shipping_street FROM orders WHERE order_id = $1", order).Scan(&street); err != nil {
		t.Fatal(err)
	}
	for _, m := range modes {
		if _, err := alice.Exec(ctx, "UPDATE orders SET shipping_street = $2 WHERE order_id = $1", m.mode, order, shown); err != nil {
			t.Fatal(err)
		}
		var now string
		if err := db.QueryRow(ctx, "SELECT shipping_street FROM orders WHERE order_id = $1", order).Scan(&now); err != nil || now != street {
			t.Fatalf("[%s] writing back the mask replaced the street: %q → %q %v", m.name, street, now, err)
		}
		if _, err := alice.Exec(ctx, "UPDATE orders SET shipping_street = $2 WHERE order_id = $1", m.mode, order, "1 New Street"); err != nil {
			t.Fatal(err)
		}
		if err := db.QueryRow(ctx, "SELECT shipping_street FROM orders WHERE order_id = $1", order).Scan(&now); err != nil || now != "1 New Street" {
			t.Fatalf("[%s] the blind write did not land: %q %v", m.name, now, err)
		}
		if _, err := db.Exec(ctx, "UPDATE orders SET shipping_street = $2 WHERE order_id = $1", order, street); err != nil {
			t.Fatal(err)
		}
	}
}

// TestInsertDefaults: an ORM's create() lists every column; the ones the
// role does not see raw may be given NULL, DEFAULT or the column's default
// (loyalty_points DEFAULT 0), nothing else, in both protocols and with
// parameters.
func TestInsertDefaults(t *testing.T) {
	ctx := context.Background()
	db := direct(t)
	const id = 950200
	t.Cleanup(func() {
		direct(t).Exec(context.Background(), "DELETE FROM customers WHERE customer_id BETWEEN $1 AND $1 + 10", id)
	})
	alice := as(t, "alice")
	const cols = "customer_id, customer_number, first_name, last_name, region, segment, created_at, "
	for _, m := range modes {
		if _, err := db.Exec(ctx, "DELETE FROM customers WHERE customer_id BETWEEN $1 AND $1 + 10", id); err != nil {
			t.Fatal(err)
		}
		ok := []struct {
			sql  string
			args []any
		}{
			{"INSERT INTO customers (" + cols + "national_id, birth_date, loyalty_points) VALUES ($1, 'C-D1', 'a', 'b', 'north', 'consumer', now(), NULL, NULL, 0)", []any{id}},
			{"INSERT INTO customers (" + cols + "national_id, loyalty_points) VALUES ($1, 'C-D2', 'a', 'b', 'north', 'consumer', now(), $2, $3)", []any{id + 1, nil, 0}},
			{"INSERT INTO customers (" + cols + "religion, loyalty_points) VALUES ($1, 'C-D3', 'a', 'b', 'north', 'consumer', now(), DEFAULT, DEFAULT), ($2, 'C-D4', 'a', 'b', 'north', 'consumer', now(), DEFAULT, DEFAULT)", []any{id + 2, id + 3}},
		}
		for _, c := range ok {
			if _, err := alice.Exec(ctx, c.sql, append([]any{m.mode}, c.args...)...); err != nil {
				t.Fatalf("[%s] %s: %v", m.name, c.sql, err)
			}
		}
		refused := []struct {
			sql  string
			args []any
		}{
			{"INSERT INTO customers (" + cols + "national_id) VALUES ($1, 'C-D5', 'a', 'b', 'north', 'consumer', now(), 'x')", []any{id + 5}},
			{"INSERT INTO customers (" + cols + "loyalty_points) VALUES ($1, 'C-D6', 'a', 'b', 'north', 'consumer', now(), $2)", []any{id + 6, 5}},
			{"INSERT INTO customers (" + cols + "religion) VALUES ($1, 'C-D7', 'a', 'b', 'north', 'consumer', now(), NULL), ($2, 'C-D8', 'a', 'b', 'north', 'consumer', now(), 'r')", []any{id + 7, id + 8}},
			{"INSERT INTO customers (" + cols + "religion) SELECT $1::bigint, 'C-D9', 'a', 'b', 'north', 'consumer', now(), 'r'", []any{id + 9}},
		}
		for _, c := range refused {
			_, err := alice.Exec(ctx, c.sql, append([]any{m.mode}, c.args...)...)
			wantRefused(t, err, "42501", "blind_writes")
		}
		var n int
		if err := db.QueryRow(ctx, `SELECT count(*) FROM customers WHERE customer_id BETWEEN $1 AND $1 + 10
			AND national_id IS NULL AND religion IS NULL AND loyalty_points = 0`, id).Scan(&n); err != nil || n != 4 {
			t.Fatalf("[%s] %d rows as expected, want 4 (%v)", m.name, n, err)
		}
		if err := db.QueryRow(ctx, "SELECT count(*) FROM customers WHERE customer_id BETWEEN $1 AND $1 + 10", id).Scan(&n); err != nil || n != 4 {
			t.Fatalf("[%s] refused inserts wrote rows: %d %v", m.name, n, err)
		}
	}
}

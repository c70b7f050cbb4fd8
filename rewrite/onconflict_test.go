package rewrite_test

import (
	"context"
	"testing"
)

// TestOnConflict: INSERT … ON CONFLICT into a protected table, in both
// protocols: new rows and updated rows pass the row filter as a WITH
// CHECK, a conflict with a row outside the filter is an error and changes
// nothing, SET follows UPDATE's rules, RETURNING shows what a read shows.
func TestOnConflict(t *testing.T) {
	ctx := context.Background()
	db := direct(t)
	var south int64
	if err := db.QueryRow(ctx, "SELECT min(customer_id) FROM customers WHERE region = 'south'").Scan(&south); err != nil {
		t.Fatal(err)
	}
	const id = 950100
	t.Cleanup(func() { direct(t).Exec(context.Background(), "DELETE FROM customers WHERE customer_id = $1", id) })
	alice := as(t, "alice")
	const ins = `INSERT INTO customers AS c (customer_id, customer_number, first_name, last_name, phone, region, segment, created_at)
		VALUES ($1, 'C-950100', 'Ona', 'Conflict', $2, $3, 'consumer', now()) `
	phone := func(id int64) string {
		var p string
		if err := db.QueryRow(ctx, "SELECT coalesce(phone, 'NULL') FROM customers WHERE customer_id = $1", id).Scan(&p); err != nil {
			return err.Error()
		}
		return p
	}
	for _, m := range modes {
		if _, err := db.Exec(ctx, "DELETE FROM customers WHERE customer_id = $1", id); err != nil {
			t.Fatal(err)
		}
		upsert := ins + "ON CONFLICT (customer_id) DO UPDATE SET phone = EXCLUDED.phone"
		// A new row, then an update of the visible row it conflicts with.
		for _, p := range []string{"+1 555 0001", "+1 555 0002"} {
			tag, err := alice.Exec(ctx, upsert, m.mode, id, p, "north")
			if err != nil || tag.RowsAffected() != 1 || phone(id) != p {
				t.Fatalf("[%s] upsert %s: %v %v, phone %s", m.name, p, tag, err, phone(id))
			}
		}
		tag, err := alice.Exec(ctx, ins+"ON CONFLICT (customer_id) DO NOTHING", m.mode, id, "+1 555 0003", "north")
		if err != nil || tag.RowsAffected() != 0 || phone(id) != "+1 555 0002" {
			t.Fatalf("[%s] DO NOTHING on a visible row: %v %v", m.name, tag, err)
		}
		// A conflict with a row of another region: an error, nothing changed.
		before := rowJSON(t, db, "customers", "customer_id", south)
		_, err = alice.Exec(ctx, upsert, m.mode, south, "+1 555 0004", "north")
		wantRefused(t, err, "42501", "outside the row filter")
		_, err = alice.Exec(ctx, ins+"ON CONFLICT (customer_id) DO NOTHING", m.mode, south, "+1 555 0004", "north")
		wantRefused(t, err, "42501", "outside the row filter")
		// Without a target the proposal also conflicts with the visible
		// row on customer_number, which alone decides: skipped
		// (onconflict_any_test.go has the conflicts with hidden rows).
		if tag, err := alice.Exec(ctx, ins+"ON CONFLICT DO NOTHING", m.mode, south, "+1 555 0004", "north"); err != nil || tag.RowsAffected() != 0 {
			t.Fatalf("[%s] DO NOTHING without a target on a visible customer_number: %v %v", m.name, tag, err)
		}
		if after := rowJSON(t, db, "customers", "customer_id", south); after != before {
			t.Fatalf("[%s] a refused upsert changed a hidden row:\n%s\n%s", m.name, before, after)
		}
		// New and updated rows must stay inside the filter.
		_, err = alice.Exec(ctx, ins+"ON CONFLICT (customer_id) DO NOTHING", m.mode, 950101, "+1", "south")
		wantRefused(t, err, "42501", "outside the row filter")
		_, err = alice.Exec(ctx, upsert+", region = 'south'", m.mode, id, "+1 555 0005", "north")
		wantRefused(t, err, "42501", "outside the row filter")
		// SET follows UPDATE: no reading unseen columns of the existing
		// row, unseen columns only written back.
		_, err = alice.Exec(ctx, upsert+", first_name = c.national_id", m.mode, id, "+1 555 0005", "north")
		wantRefused(t, err, "42501", "national_id")
		_, err = alice.Exec(ctx, upsert+", national_id = 'x'", m.mode, id, "+1 555 0005", "north")
		wantRefused(t, err, "42501", "write back")
		if phone(id) != "+1 555 0002" {
			t.Fatalf("[%s] refused upserts changed the row: phone %s", m.name, phone(id))
		}
		// RETURNING * shows the masked and hidden columns as a read does.
		var postal, nid *string
		if err := alice.QueryRow(ctx, `WITH x AS (`+upsert+`, national_id = NULL RETURNING *) SELECT postal_code, national_id FROM x`,
			m.mode, id, "+1 555 0006", "north").Scan(&postal, &nid); err != nil || nid != nil || phone(id) != "+1 555 0006" {
			t.Fatalf("[%s] upsert RETURNING *: %v %v %v", m.name, postal, nid, err)
		}
	}
}

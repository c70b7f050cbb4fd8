package rewrite_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgcloak/pgcloak/examples/crm"
	"github.com/pgcloak/pgcloak/rules"
)

// TestOnConflictAnyTarget: INSERT … ON CONFLICT DO NOTHING without a
// conflict target (Rails' insert_all) into customers, which has two unique
// indexes (customer_id, customer_number), in both protocols. A conflict
// with a row alice can read is skipped; a conflict with a row she cannot
// read, on either index, is an error that inserts nothing (never the
// silent skip that would tell her the hidden key exists); new rows pass
// her row filter.
func TestOnConflictAnyTarget(t *testing.T) {
	ctx := context.Background()
	db := direct(t)
	var north, south int64
	var northNumber, southNumber string
	if err := db.QueryRow(ctx, `SELECT
		(SELECT customer_id FROM customers WHERE region = 'north' AND customer_id < 900000 ORDER BY customer_id LIMIT 1),
		(SELECT customer_number FROM customers WHERE region = 'north' AND customer_id < 900000 ORDER BY customer_id LIMIT 1),
		(SELECT customer_id FROM customers WHERE region = 'south' AND customer_id < 900000 ORDER BY customer_id LIMIT 1),
		(SELECT customer_number FROM customers WHERE region = 'south' AND customer_id < 900000 ORDER BY customer_id LIMIT 1)`).
		Scan(&north, &northNumber, &south, &southNumber); err != nil {
		t.Fatal(err)
	}
	const id = 950200
	clean := func() {
		if _, err := direct(t).Exec(context.Background(), "DELETE FROM customers WHERE customer_id BETWEEN $1 AND $1 + 9", id); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(clean)
	digest := func() string {
		var d string
		if err := db.QueryRow(ctx, `SELECT md5(string_agg(c::text, ',' ORDER BY customer_id)) FROM customers c`).Scan(&d); err != nil {
			t.Fatal(err)
		}
		return d
	}
	count := func(from, to int64) (n int) {
		if err := db.QueryRow(ctx, "SELECT count(*) FROM customers WHERE customer_id BETWEEN $1 AND $2", from, to).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	alice := as(t, "alice")
	const cols = `INSERT INTO customers (customer_id, customer_number, first_name, last_name, region, segment, created_at) VALUES `
	row := func(id any, number, region string) string {
		return fmt.Sprintf("(%v, '%s', 'Ina', 'Insertall', '%s', 'consumer', now())", id, number, region)
	}
	for _, m := range modes {
		clean()
		exec := func(sql string, args ...any) (pgconn.CommandTag, error) {
			return alice.Exec(ctx, sql, append([]any{m.mode}, args...)...)
		}
		// New rows go in; the same again are skipped (a visible conflict on
		// the primary key), and so is a new key with the number of a
		// visible customer (a visible conflict on the other index).
		tag, err := exec(cols + row(id, "C-950200", "north") + ", " + row(id+1, "C-950201", "north") + " ON CONFLICT DO NOTHING")
		if err != nil || tag.RowsAffected() != 2 || count(id, id+1) != 2 {
			t.Fatalf("[%s] new rows: %v %v", m.name, tag, err)
		}
		tag, err = exec(cols + row(id, "C-950200", "north") + ", " + row(id+2, northNumber, "north") + ", " + row(id+3, "C-950203", "north") + " ON CONFLICT DO NOTHING")
		if err != nil || tag.RowsAffected() != 1 || count(id, id+3) != 3 || count(id+2, id+2) != 0 {
			t.Fatalf("[%s] visible conflicts are skipped, the new row goes in: %v %v", m.name, tag, err)
		}
		// RETURNING gives the inserted rows only, in both protocols (Rails
		// asks for the key back).
		rows, err := alice.Query(ctx, cols+row("$1::bigint", "C-950204", "north")+", "+row(north, "C-950205", "north")+" ON CONFLICT DO NOTHING RETURNING customer_id, national_id", m.mode, id+4)
		if err != nil {
			t.Fatalf("[%s] RETURNING: %v", m.name, err)
		}
		type ret struct {
			ID  int64
			NID *string
		}
		got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[ret])
		if err != nil || len(got) != 1 || got[0].ID != id+4 || got[0].NID != nil {
			t.Fatalf("[%s] RETURNING: %+v %v", m.name, got, err)
		}
		// Hidden conflicts: on the primary key, on customer_number, alone or
		// with new rows, are errors with nothing inserted; the answer does
		// not depend on whether the hidden key exists beyond being an error.
		before := digest()
		for _, sql := range []string{
			cols + row(south, "C-950206", "north") + " ON CONFLICT DO NOTHING",
			cols + row(id+6, "C-950206", "north") + ", " + row(south, "C-950207", "north") + " ON CONFLICT DO NOTHING",
			cols + row(id+6, southNumber, "north") + " ON CONFLICT DO NOTHING",
			cols + row(id+7, "C-950207", "north") + ", " + row(id+6, southNumber, "north") + " ON CONFLICT DO NOTHING RETURNING customer_id",
		} {
			_, err := exec(sql)
			var pe *pgconn.PgError
			if !errors.As(err, &pe) || (pe.Code != "42501" && pe.Code != "23505") {
				t.Fatalf("[%s] a conflict with a hidden row must be an error:\n%s\n%v", m.name, sql, err)
			}
			if pe.Code == "42501" && !strings.Contains(pe.Message, "outside the row filter") {
				t.Fatalf("[%s] %s: %v", m.name, sql, err)
			}
		}
		if after := digest(); after != before {
			t.Fatalf("[%s] a refused INSERT … ON CONFLICT DO NOTHING changed the table", m.name)
		}
		// New rows must pass the row filter, conflicting or not.
		_, err = exec(cols + row(id+8, "C-950208", "south") + " ON CONFLICT DO NOTHING")
		wantRefused(t, err, "42501", "outside the row filter")
		_, err = exec(cols + row(id, "C-950200", "south") + " ON CONFLICT DO NOTHING")
		wantRefused(t, err, "42501", "outside the row filter")
		if count(id+8, id+8) != 0 {
			t.Fatalf("[%s] a south row went in", m.name)
		}
		// INSERT … SELECT and a data-modifying CTE get the same treatment.
		// Both proposals meet the visible rows they were read from: skipped.
		var n int
		if err := alice.QueryRow(ctx, `WITH x AS (INSERT INTO customers (customer_id, customer_number, first_name, last_name, region, segment, created_at)
			SELECT customer_id, customer_number, 'x', 'y', 'north', 'consumer', now() FROM customers WHERE customer_id IN ($1, $2)
			ON CONFLICT DO NOTHING RETURNING customer_id) SELECT count(*) FROM x`, m.mode, north, int64(id)).Scan(&n); err != nil || n != 0 {
			t.Fatalf("[%s] INSERT … SELECT in a CTE: %d %v", m.name, n, err)
		}
		_, err = exec(`INSERT INTO customers (customer_id, customer_number, first_name, last_name, region, segment, created_at)
			SELECT $1::bigint, $2::text, 'x', 'y', 'north', 'consumer', now() ON CONFLICT DO NOTHING`, int64(id+9), southNumber)
		wantRefused(t, err, "23505", "")
		if after := digest(); after != before {
			t.Fatalf("[%s] skipped INSERT … SELECT changed the table", m.name)
		}
	}
}

// TestOnConflictOptedOut: a role working for a purpose cannot read a
// customer of its region who opted out of that purpose; ON CONFLICT on
// that customer's key is then an error like a conflict with any other row
// it cannot read, not the silent skip (or update) that would tell it the
// customer opted out. Both protocols, with and without a target.
func TestOnConflictOptedOut(t *testing.T) {
	ctx := context.Background()
	yaml := strings.Replace(string(crm.Rules), "  sales_rep:                    # own region only\n    profile: standard\n",
		"  sales_rep:                    # own region only\n    profile: standard\n    purpose: direct_marketing\n", 1)
	if yaml == string(crm.Rules) {
		t.Fatal("the sample rules changed: cannot give sales_rep a purpose")
	}
	pol, err := rules.Parse("rules.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	login := cloakWith(t, pol)
	db := direct(t)
	var id int64
	var number string
	if err := db.QueryRow(ctx, `SELECT customer_id, customer_number FROM customers c WHERE region = 'north' AND customer_id < 900000
		AND NOT EXISTS (SELECT 1 FROM customer_opt_outs o WHERE o.customer_id = c.customer_id) ORDER BY customer_id DESC LIMIT 1`).Scan(&id, &number); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(ctx, "INSERT INTO customer_opt_outs (customer_id, purpose, opted_out_at) VALUES ($1, 'direct_marketing', now())", id); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		direct(t).Exec(context.Background(), "DELETE FROM customer_opt_outs WHERE customer_id = $1 AND purpose = 'direct_marketing'", id)
	})
	alice := login("alice")
	var seen int
	if err := alice.QueryRow(ctx, "SELECT count(*) FROM customers WHERE customer_id = $1", id).Scan(&seen); err != nil || seen != 0 {
		t.Fatalf("alice reads the opted-out customer: %d %v", seen, err)
	}
	before := rowJSON(t, db, "customers", "customer_id", id)
	ins := `INSERT INTO customers AS c (customer_id, customer_number, first_name, last_name, region, segment, created_at)
		VALUES ($1, $2, 'Opt', 'Out', 'north', 'consumer', now()) `
	for _, m := range modes {
		for _, tail := range []string{"ON CONFLICT (customer_id) DO NOTHING", "ON CONFLICT DO NOTHING",
			"ON CONFLICT (customer_id) DO UPDATE SET segment = EXCLUDED.segment"} {
			// The conflict on the key, and (new key) on the customer number.
			for _, args := range [][]any{{id, "C-OPT-NEW"}, {int64(950300), number}} {
				tag, err := alice.Exec(ctx, ins+tail, append([]any{m.mode}, args...)...)
				var pe *pgconn.PgError
				if !errors.As(err, &pe) || (pe.Code != "42501" && pe.Code != "23505") {
					t.Fatalf("[%s] %s %v on an opted-out customer: %v %v", m.name, tail, args, tag, err)
				}
			}
		}
	}
	if after := rowJSON(t, db, "customers", "customer_id", id); after != before {
		t.Fatalf("the opted-out customer changed:\n%s\n%s", before, after)
	}
	var n int
	if err := db.QueryRow(ctx, "SELECT count(*) FROM customers WHERE customer_id = 950300").Scan(&n); err != nil || n != 0 {
		t.Fatalf("a row went in: %d %v", n, err)
	}
}

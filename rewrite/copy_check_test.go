package rewrite_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgcloak/pgcloak/examples/crm"
	"github.com/pgcloak/pgcloak/internal/cloaktest"
	"github.com/pgcloak/pgcloak/rules"
)

// copyOrders is COPY … FROM STDIN into orders, whose check needs a
// sub-select (the customer an order links to must pass the filter).
const copyOrders = `COPY orders (order_id, customer_id, ordered_at, status, total_amount, shipping_name, shipping_street,
	shipping_city, shipping_postal_code, shipping_region) FROM STDIN`

func orderLine(id, customer int64) string {
	return fmt.Sprintf("%d\t%d\t2026-01-01\tplaced\t10.00\tN\tS\tC\tP\tnorth\n", id, customer)
}

// copyBoth runs a COPY … FROM STDIN with data through pgcloak in the
// simple protocol (pgx's CopyFrom) or in the extended one (Parse, Bind,
// Execute, the data, Sync); it returns the tag or the SQLSTATE and message.
func copyBoth(t *testing.T, login string, extended bool, sql, data string) string {
	t.Helper()
	if !extended {
		tag, err := as(t, login).PgConn().CopyFrom(context.Background(), strings.NewReader(data), sql)
		if err != nil {
			return "error " + err.Error()
		}
		return "tag " + tag.String()
	}
	out := cloaktest.DialRaw(t, proxyAddr, login).RoundTrip(t, 1, &pgproto3.Parse{Query: sql}, &pgproto3.Bind{}, &pgproto3.Execute{},
		&pgproto3.CopyData{Data: []byte(data)}, &pgproto3.CopyDone{}, &pgproto3.Sync{})
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "CommandComplete ") {
			return "tag " + strings.TrimPrefix(l, "CommandComplete ")
		}
		if strings.HasPrefix(l, "ErrorResponse ") {
			return "error " + strings.TrimPrefix(l, "ErrorResponse ")
		}
	}
	return "no answer: " + out
}

// TestCopyFromLinked: COPY … FROM into tables whose check needs a
// sub-select (orders, linked to customers; contacts, whose filter reads
// accounts), in both protocols: rows that pass go in; one row outside the
// filter fails the whole COPY with 42501 and nothing written; a hidden
// customer and a customer that does not exist get the same answer.
func TestCopyFromLinked(t *testing.T) {
	ctx := context.Background()
	db := direct(t)
	var north, south, nowhere int64
	var northAccount, southAccount int64
	if err := db.QueryRow(ctx, `SELECT
		(SELECT min(customer_id) FROM customers WHERE region = 'north'),
		(SELECT min(customer_id) FROM customers WHERE region = 'south'),
		(SELECT max(customer_id) + 1000 FROM customers),
		(SELECT min(account_id) FROM accounts WHERE region = 'north'),
		(SELECT min(account_id) FROM accounts WHERE region = 'south')`).Scan(&north, &south, &nowhere, &northAccount, &southAccount); err != nil {
		t.Fatal(err)
	}
	const id = 950400
	clean := func() {
		db := direct(t)
		if _, err := db.Exec(ctx, "DELETE FROM orders WHERE order_id BETWEEN $1 AND $1 + 99", id); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(ctx, "DELETE FROM contacts WHERE contact_id BETWEEN $1 AND $1 + 99", id); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(clean)
	count := func(table, key string) (n int) {
		if err := db.QueryRow(ctx, fmt.Sprintf("SELECT count(*) FROM %s WHERE %s BETWEEN $1 AND $1 + 99", table, key), id).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	const copyContacts = "COPY contacts (contact_id, account_id, first_name, last_name) FROM STDIN"
	for _, extended := range []bool{false, true} {
		name := map[bool]string{false: "simple", true: "extended"}[extended]
		clean()
		if got := copyBoth(t, "alice", extended, copyOrders, orderLine(id, north)+orderLine(id+1, north)); got != "tag COPY 2" || count("orders", "order_id") != 2 {
			t.Fatalf("[%s] COPY of orders of a north customer: %s", name, got)
		}
		// One hidden row among good ones: nothing written. The hidden
		// customer and a missing one answer alike.
		var answers []string
		for _, bad := range []int64{south, nowhere} {
			for _, data := range []string{orderLine(id+2, bad), orderLine(id+2, north) + orderLine(id+3, bad) + orderLine(id+4, north)} {
				got := copyBoth(t, "alice", extended, copyOrders, data)
				if !strings.HasPrefix(got, "error ") || !strings.Contains(got, "42501") || !strings.Contains(got, "outside the row filter") {
					t.Fatalf("[%s] COPY of an order of customer %d: %s", name, bad, got)
				}
				answers = append(answers, got)
			}
		}
		if answers[0] != answers[2] || answers[1] != answers[3] {
			t.Fatalf("[%s] a hidden customer and a missing one answer differently:\n%s", name, strings.Join(answers, "\n"))
		}
		if n := count("orders", "order_id"); n != 2 {
			t.Fatalf("[%s] a refused COPY wrote rows: %d orders", name, n)
		}
		// contacts: the filter itself has a sub-select.
		line := func(id, account int64) string { return fmt.Sprintf("%d\t%d\tCora\tCopy\n", id, account) }
		if got := copyBoth(t, "alice", extended, copyContacts, line(id, northAccount)); got != "tag COPY 1" {
			t.Fatalf("[%s] COPY of a north contact: %s", name, got)
		}
		if got := copyBoth(t, "alice", extended, copyContacts, line(id+1, northAccount)+line(id+2, southAccount)); !strings.Contains(got, "42501") {
			t.Fatalf("[%s] COPY of a south contact: %s", name, got)
		}
		if n := count("contacts", "contact_id"); n != 1 {
			t.Fatalf("[%s] contacts written: %d", name, n)
		}
		// The check cannot be turned off or around by the COPY's options
		// or its own WHERE.
		for _, sql := range []string{copyOrders + " WHERE true", copyOrders + " WITH (FORMAT text, FREEZE false)"} {
			if got := copyBoth(t, "alice", extended, sql, orderLine(id+5, south)); !strings.Contains(got, "42501") {
				t.Fatalf("[%s] %s: %s", name, sql, got)
			}
		}
		// The function pgcloak calls is not the client's to call.
		_, err := as(t, "alice").Exec(ctx, `SELECT pgcloak.row_check('SELECT count(*) > 0 FROM customers WHERE region = ''south''', 1)`)
		wantRefused(t, err, "42501", "row_check")
	}
}

// TestCopyFromOptedOut: for a role working for a purpose, an order of a
// customer of its region who opted out of that purpose is outside what
// it may write; COPY of it fails, in both protocols.
func TestCopyFromOptedOut(t *testing.T) {
	ctx := context.Background()
	yaml := strings.Replace(string(crm.Rules), "  sales_rep:                    # own region only\n    profile: standard\n",
		"  sales_rep:                    # own region only\n    profile: standard\n    purpose: direct_marketing\n", 1)
	pol, err := rules.Parse("rules.yaml", []byte(yaml))
	if err != nil || yaml == string(crm.Rules) {
		t.Fatalf("cannot give sales_rep a purpose: %v", err)
	}
	login := cloakWith(t, pol)
	db := direct(t)
	var out, in int64
	if err := db.QueryRow(ctx, `SELECT min(customer_id), max(customer_id) FROM customers c WHERE region = 'north' AND customer_id < 900000
		AND NOT EXISTS (SELECT 1 FROM customer_opt_outs o WHERE o.customer_id = c.customer_id)`).Scan(&out, &in); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(ctx, "INSERT INTO customer_opt_outs (customer_id, purpose, opted_out_at) VALUES ($1, 'direct_marketing', now())", out); err != nil {
		t.Fatal(err)
	}
	const id = 950500
	t.Cleanup(func() {
		db := direct(t)
		db.Exec(context.Background(), "DELETE FROM customer_opt_outs WHERE customer_id = $1 AND purpose = 'direct_marketing'", out)
		db.Exec(context.Background(), "DELETE FROM orders WHERE order_id BETWEEN $1 AND $1 + 9", id)
	})
	// The customer who did not opt out: the order goes in.
	if tag, err := login("alice").PgConn().CopyFrom(ctx, strings.NewReader(orderLine(id+9, in)), copyOrders); err != nil || tag.RowsAffected() != 1 {
		t.Fatalf("COPY of an order of a customer who did not opt out: %v %v", tag, err)
	}
	if _, err := db.Exec(ctx, "DELETE FROM orders WHERE order_id = $1", id+9); err != nil {
		t.Fatal(err)
	}
	for _, extended := range []bool{false, true} {
		alice := login("alice")
		var got string
		if !extended {
			tag, err := alice.PgConn().CopyFrom(ctx, strings.NewReader(orderLine(id, in)+orderLine(id+1, out)), copyOrders)
			got = fmt.Sprint(tag, err)
		} else {
			r := cloaktest.Hijack(t, alice.PgConn())
			got = r.RoundTrip(t, 1, &pgproto3.Parse{Query: copyOrders}, &pgproto3.Bind{}, &pgproto3.Execute{},
				&pgproto3.CopyData{Data: []byte(orderLine(id, in) + orderLine(id+1, out))}, &pgproto3.CopyDone{}, &pgproto3.Sync{})
		}
		if !strings.Contains(got, "42501") {
			t.Fatalf("[extended=%v] COPY of an order of an opted-out customer: %s", extended, got)
		}
		var n int
		if err := db.QueryRow(ctx, "SELECT count(*) FROM orders WHERE order_id BETWEEN $1 AND $1 + 9", id).Scan(&n); err != nil || n != 0 {
			t.Fatalf("[extended=%v] orders written: %d %v", extended, n, err)
		}
	}
}

package rewrite_test

// The privacy model means what it says (issue 16): anonymized views that
// do not single anyone out, opt-outs only their writers change, and review
// of every change to a person's record. Each test plays a role through
// pgcloak and checks against the raw data read directly.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgcloak/pgcloak/anonymity"
	"github.com/pgcloak/pgcloak/examples/crm"
	"github.com/pgcloak/pgcloak/internal/pgtest"
	"github.com/pgcloak/pgcloak/schema"
)

func sqlstate(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

func strs(t *testing.T, conn *pgx.Conn, sql string) []string {
	t.Helper()
	rows, err := conn.Query(context.Background(), sql)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return out
}

func int64s(t *testing.T, conn *pgx.Conn, sql string, args ...any) []int64 {
	t.Helper()
	rows, err := conn.Query(context.Background(), sql, args...)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return out
}

// The analyst's and the disclosure role's views of the customers: the
// test groups by every column the role can query except the pseudonymized
// key, through pgcloak, and the smallest group has at least min_k
// customers; the anonymity package's figure, computed by its own rewritten
// GROUP BY, agrees.
func TestAnonymizedViewsAreKAnonymous(t *testing.T) {
	ctx := context.Background()
	minK := policy.MinK()
	if minK < 5 {
		t.Fatalf("the sample rules set anonymity.min_k %d, want at least 5", minK)
	}
	db := direct(t)
	for _, login := range []string{"ana", "dex"} {
		conn := as(t, login)
		// Every column the role can query (denied ones are refused), but
		// the pseudonymized key.
		var cols []string
		for _, c := range strs(t, db, "SELECT column_name::text FROM information_schema.columns WHERE table_name = 'customers' ORDER BY ordinal_position") {
			if c == "customer_id" {
				continue
			}
			if _, err := conn.Exec(ctx, `SELECT "`+c+`" FROM customers LIMIT 0`); err == nil {
				cols = append(cols, `"`+c+`"`)
			}
		}
		var k, groups, n int64
		q := "SELECT min(n), count(*), sum(n) FROM (SELECT count(*) AS n FROM customers GROUP BY " + strings.Join(cols, ", ") + ") g"
		if err := conn.QueryRow(ctx, q).Scan(&k, &groups, &n); err != nil {
			t.Fatalf("%s: %v", login, err)
		}
		if k < int64(minK) || n < 100 {
			t.Fatalf("%s: k = %d over %d customers in %d groups, want k >= %d", login, k, n, groups, minK)
		}
		pr, _ := policy.Principal(login)
		res, err := anonymity.Measure(ctx, db, policy, pr.Role.Name)
		if err != nil {
			t.Fatal(err)
		}
		if res.K != k || res.Subjects != n || !res.OK || len(res.RawKeys) != 0 {
			t.Fatalf("%s: measured %+v, the test's GROUP BY found k %d over %d", login, res, k, n)
		}
		t.Logf("%s: k = %d, %d customers in %d groups", login, k, n, groups)

		// No raw key: the customer and order keys the role reads are not
		// the database's, in any table, but they still join.
		raw := map[int64]bool{}
		for _, id := range int64s(t, db, "SELECT customer_id FROM customers UNION SELECT order_id FROM orders") {
			raw[id] = true
		}
		for _, q := range []string{"SELECT customer_id FROM customers", "SELECT customer_id FROM orders",
			"SELECT order_id FROM orders", "SELECT order_id FROM order_lines"} {
			ids := int64s(t, conn, q)
			if len(ids) == 0 {
				t.Fatalf("%s: %s returned nothing", login, q)
			}
			for _, id := range ids {
				if raw[id] {
					t.Fatalf("%s: %s returned the raw key %d", login, q, id)
				}
			}
		}
		var joined int64
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM orders o JOIN customers c ON c.customer_id = o.customer_id").Scan(&joined); err != nil || joined == 0 {
			t.Fatalf("%s: pseudonymized keys do not join within the view: %d %v", login, joined, err)
		}
		// Nothing of the free text and no partial mask.
		var phones, bodies int64
		conn.QueryRow(ctx, "SELECT count(phone) + count(postal_code) + count(email) + count(first_name) FROM customers").Scan(&phones)
		if phones != 0 {
			t.Fatalf("%s sees %d phone, postcode, email or name values", login, phones)
		}
		if login == "ana" {
			if err := conn.QueryRow(ctx, "SELECT count(body) + count(subject) FROM support_tickets").Scan(&bodies); err != nil || bodies != 0 {
				t.Fatalf("ana sees %d ticket texts (%v)", bodies, err)
			}
		}
	}
	// Pseudonyms of two recipients do not join.
	a := int64s(t, as(t, "ana"), "SELECT customer_id FROM customers")
	d := int64s(t, as(t, "dex"), "SELECT customer_id FROM customers")
	common := 0
	for _, id := range d {
		if slices.Contains(a, id) {
			common++
		}
	}
	if common != 0 {
		t.Fatalf("%d of dex's customer pseudonyms are also ana's", common)
	}
	// And a restricted role cannot compute another role's pseudonyms.
	if _, err := as(t, "alice").Exec(ctx, "SELECT pgcloak.pseudonym(customer_id, 63, 'analyst') FROM customers"); sqlstate(err) != "42501" {
		t.Fatalf("alice computed the analyst's pseudonyms: %v", err)
	}
}

// Opt-outs are written only by the roles the rules name for it.
func TestOptOutWriters(t *testing.T) {
	ctx := context.Background()
	db := direct(t)
	var north int64
	if err := db.QueryRow(ctx, `SELECT c.customer_id FROM customers c JOIN customer_opt_outs o USING (customer_id)
		WHERE c.region = 'north' AND o.purpose = 'direct_marketing' ORDER BY 1 LIMIT 1`).Scan(&north); err != nil {
		t.Fatal(err)
	}
	alice := as(t, "alice")
	if _, err := alice.Exec(ctx, "DELETE FROM customer_opt_outs WHERE customer_id = $1", north); sqlstate(err) != "42501" ||
		!strings.Contains(err.Error(), "subject.opt_outs.writers") {
		t.Fatalf("alice deleting an opt-out: %v", err)
	}
	if _, err := alice.Exec(ctx, "INSERT INTO customer_opt_outs (customer_id, purpose, opted_out_at) VALUES ($1, 'automated_decision', now())", north); sqlstate(err) != "42501" {
		t.Fatalf("alice inserting an opt-out: %v", err)
	}
	if _, err := alice.Exec(ctx, "UPDATE customer_opt_outs SET purpose = 'sensitive_data' WHERE customer_id = $1", north); sqlstate(err) != "42501" {
		t.Fatalf("alice updating an opt-out: %v", err)
	}
	var n int
	db.QueryRow(ctx, "SELECT count(*) FROM customer_opt_outs WHERE customer_id = $1 AND purpose = 'direct_marketing'", north).Scan(&n)
	if n != 1 {
		t.Fatal("the opt-out changed")
	}
	// A sales rep no longer erases customers either (and with them their
	// opt-outs): that is the privacy officer's.
	if _, err := alice.Exec(ctx, "DELETE FROM customers WHERE customer_id = $1", north); sqlstate(err) != "42501" {
		t.Fatalf("alice deleting a customer: %v", err)
	}
	// The privacy officer records and withdraws them.
	petra := as(t, "petra")
	if _, err := petra.Exec(ctx, "INSERT INTO customer_opt_outs (customer_id, purpose, opted_out_at) VALUES ($1, 'automated_decision', now()) ON CONFLICT DO NOTHING", north); err != nil {
		// ON CONFLICT is refused on protected tables: use a plain insert.
		if _, err := petra.Exec(ctx, "DELETE FROM customer_opt_outs WHERE customer_id = $1 AND purpose = 'automated_decision'", north); err != nil {
			t.Fatal(err)
		}
		if _, err := petra.Exec(ctx, "INSERT INTO customer_opt_outs (customer_id, purpose, opted_out_at) VALUES ($1, 'automated_decision', now())", north); err != nil {
			t.Fatalf("petra recording an opt-out: %v", err)
		}
	}
	if tag, err := petra.Exec(ctx, "DELETE FROM customer_opt_outs WHERE customer_id = $1 AND purpose = 'automated_decision'", north); err != nil || tag.RowsAffected() != 1 {
		t.Fatalf("petra withdrawing an opt-out: %v %v", tag, err)
	}
	// The privacy officer may not change commissions, though she reads them.
	if _, err := petra.Exec(ctx, "UPDATE commissions SET amount = 0"); sqlstate(err) != "42501" {
		t.Fatalf("petra updating commissions: %v", err)
	}
	// Erin's region comes from sales_reps: she may not change it.
	if _, err := as(t, "erin").Exec(ctx, "UPDATE sales_reps SET region = 'north' WHERE login = 'erin'"); sqlstate(err) != "42501" {
		t.Fatalf("erin updating sales_reps: %v", err)
	}
}

// The cross-region opt-out probe: a north rep inserting a customer with
// the key of a south customer learns nothing about that customer's
// opt-outs, and no restricted role changes a subject's key.
func TestOptOutProbeAnswersTheSame(t *testing.T) {
	ctx := context.Background()
	db := direct(t)
	var opted, plain int64
	if err := db.QueryRow(ctx, `SELECT min(customer_id) FILTER (WHERE o),  min(customer_id) FILTER (WHERE NOT o) FROM (
		SELECT c.customer_id, EXISTS (SELECT 1 FROM customer_opt_outs x WHERE x.customer_id = c.customer_id) AS o
		FROM customers c WHERE c.region = 'south') s`).Scan(&opted, &plain); err != nil {
		t.Fatal(err)
	}
	answer := func(login string, id int64) string {
		_, err := as(t, login).Exec(ctx, `INSERT INTO customers (customer_id, customer_number, first_name, last_name, region, segment, created_at)
			VALUES ($1, 'PROBE-' || $1::text, 'P', 'Robe', 'north', 'consumer', now())`, id)
		if err == nil {
			t.Fatalf("%s inserted customer %d again", login, id)
		}
		return sqlstate(err)
	}
	if a, b := answer("alice", opted), answer("alice", plain); a != b {
		t.Fatalf("alice's probe: %s for an opted-out key, %s for another", a, b)
	}
	var north int64
	if err := db.QueryRow(ctx, "SELECT min(customer_id) FROM customers WHERE region = 'north'").Scan(&north); err != nil {
		t.Fatal(err)
	}
	if _, err := as(t, "alice").Exec(ctx, "UPDATE customers SET customer_id = customer_id + 1000000 WHERE customer_id = $1", north); sqlstate(err) != "42501" ||
		!strings.Contains(err.Error(), "subject.key") {
		t.Fatalf("renumbering by alice: %v", err)
	}
	// Setting it to itself, as an ORM's save() does, is no change.
	if tag, err := as(t, "alice").Exec(ctx, "UPDATE customers SET customer_id = $1, segment = segment WHERE customer_id = $1", north); err != nil || tag.RowsAffected() != 1 {
		t.Fatalf("save() of alice's customer: %v %v", tag, err)
	}
}

// Each review gap: the change is held (or refused), a request cannot be
// redirected by renumbering nor applied to a changed row, and only an
// authenticated approver with approve_changes decides.
func TestReviewCoversTheRecord(t *testing.T) {
	ctx := context.Background()
	db := direct(t)
	var cust, ticket, order int64
	if err := db.QueryRow(ctx, `SELECT c.customer_id, t.ticket_id, o.order_id FROM customers c
		JOIN support_tickets t ON t.customer_id = c.customer_id JOIN orders o ON o.customer_id = c.customer_id
		WHERE c.customer_id < 900000 ORDER BY c.customer_id DESC LIMIT 1`).Scan(&cust, &ticket, &order); err != nil {
		t.Fatal(err)
	}
	snapshot := func() string {
		var s string
		if err := db.QueryRow(ctx, `SELECT (SELECT c::text FROM customers c WHERE customer_id = $1) ||
			(SELECT t::text FROM support_tickets t WHERE ticket_id = $2) || (SELECT o::text FROM orders o WHERE order_id = $3)`,
			cust, ticket, order).Scan(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	before := snapshot()
	sam, notices := connectNotices(t, "sam")
	for _, q := range []string{
		"UPDATE customers SET region = 'east' WHERE customer_id = $1",       // public, moves the customer to another rep
		"UPDATE customers SET segment = 'premium' WHERE customer_id = $1",   // public
		"UPDATE support_tickets SET subject = 'x' WHERE customer_id = $1",   // free text classed public
		"UPDATE support_tickets SET customer_id = 1 WHERE customer_id = $1", // a link
		"UPDATE orders SET customer_id = 1 WHERE customer_id = $1",          // a link
		"UPDATE orders SET status = 'returned' WHERE customer_id = $1",      // public
		"UPDATE support_tickets SET body = 'hello' WHERE customer_id = $1",  // free text
	} {
		*notices = nil
		tag, err := sam.Exec(ctx, q, cust)
		if err != nil || tag.RowsAffected() != 0 || !slices.ContainsFunc(*notices, requestNotice.MatchString) {
			t.Fatalf("%s: %v %v, notices %q", q, tag, err, *notices)
		}
	}
	if after := snapshot(); after != before {
		t.Fatalf("a held change was applied:\n%s\n%s", before, after)
	}
	// The subject key: refused.
	if _, err := sam.Exec(ctx, "UPDATE customers SET customer_id = 9999999 WHERE customer_id = $1", cust); sqlstate(err) != "42501" {
		t.Fatalf("sam renumbering a customer: %v", err)
	}
	// Exempt: closing a ticket applies at once.
	if tag, err := sam.Exec(ctx, "UPDATE support_tickets SET status = 'closed' WHERE ticket_id = $1", ticket); err != nil || tag.RowsAffected() != 1 {
		t.Fatalf("closing a ticket: %v %v", tag, err)
	}
	// Senior marketing: changes to its customers are held, deletes refused.
	var member int64
	if err := db.QueryRow(ctx, `SELECT m.customer_id FROM campaign_members m JOIN campaigns c USING (campaign_id)
		WHERE c.manager = 'mia' AND NOT EXISTS (SELECT 1 FROM customer_opt_outs o WHERE o.customer_id = m.customer_id AND o.purpose = 'direct_marketing')
		ORDER BY 1 LIMIT 1`).Scan(&member); err != nil {
		t.Fatal(err)
	}
	mia, miaNotices := connectNotices(t, "mia")
	if tag, err := mia.Exec(ctx, "UPDATE customers SET email = 'new@example.org' WHERE customer_id = $1", member); err != nil || tag.RowsAffected() != 0 ||
		len(*miaNotices) == 0 {
		t.Fatalf("mia changing an email: %v %v %q", tag, err, *miaNotices)
	}
	if _, err := mia.Exec(ctx, "DELETE FROM customers WHERE customer_id = $1", member); sqlstate(err) != "42501" {
		t.Fatalf("mia deleting a customer: %v", err)
	}

	// Renumbering cannot redirect a request: two fresh customers, a request
	// for the first, the first renumbered away and the second renumbered to
	// its key.
	const a, b = int64(990001), int64(990002)
	for _, id := range []int64{a, b} {
		if _, err := db.Exec(ctx, `INSERT INTO customers (customer_id, customer_number, first_name, last_name, email, region, segment, created_at)
			VALUES ($1, $2, 'Re', 'Number', $3, 'west', 'consumer', now())`, id, fmt.Sprint("R-", id), fmt.Sprint("r", id, "@example.org")); err != nil {
			t.Fatal(err)
		}
	}
	*notices = nil
	if _, err := sam.Exec(ctx, "UPDATE customers SET email = 'redirected@example.org' WHERE customer_id = $1", a); err != nil {
		t.Fatal(err)
	}
	req := requestFrom(t, *notices)
	for _, q := range []string{"UPDATE customers SET customer_id = 990003 WHERE customer_id = $1", "UPDATE customers SET customer_id = $1 WHERE customer_id = 990002"} {
		if _, err := db.Exec(ctx, q, a); err != nil {
			t.Fatal(err)
		}
	}
	petra := petraLogin(t)
	if err := eng.ApplyChange(ctx, db, req, petra); err == nil {
		t.Fatal("a request for customer 990001 applied to the customer renumbered to 990001")
	}
	var email string
	db.QueryRow(ctx, "SELECT email FROM customers WHERE customer_id = $1", a).Scan(&email)
	if email == "redirected@example.org" {
		t.Fatal("the request was applied to another person")
	}
	// A stale request (the row changed since) is not applied either.
	*notices = nil
	if _, err := sam.Exec(ctx, "UPDATE customers SET email = 'stale@example.org' WHERE customer_id = $1", a); err != nil {
		t.Fatal(err)
	}
	stale := requestFrom(t, *notices)
	if _, err := db.Exec(ctx, "UPDATE customers SET segment = 'premium' WHERE customer_id = $1", a); err != nil {
		t.Fatal(err)
	}
	if err := eng.ApplyChange(ctx, db, stale, petra); err == nil {
		t.Fatal("a stale request was applied")
	}
	// Approvers: the requester, a role without approve_changes and a
	// login the rules do not know are refused; the authenticated privacy
	// officer applies.
	*notices = nil
	if _, err := sam.Exec(ctx, "UPDATE customers SET email = 'approved@example.org' WHERE customer_id = $1", a); err != nil {
		t.Fatal(err)
	}
	good := requestFrom(t, *notices)
	for _, who := range []string{"sam", "alice", "ana", "crm_app", "nobody"} {
		if err := eng.ApplyChange(ctx, db, good, who); err == nil {
			t.Fatalf("%s approved a change", who)
		}
	}
	if err := eng.ApplyChange(ctx, db, good, petra); err != nil {
		t.Fatal(err)
	}
	db.QueryRow(ctx, "SELECT email FROM customers WHERE customer_id = $1", a).Scan(&email)
	if email != "approved@example.org" {
		t.Fatalf("approved change not applied: %q", email)
	}
	// A trusted component's request for a key that names no row is
	// recorded like any (no oracle) and never applied.
	if _, err := db.Exec(ctx, `SELECT pgcloak.request_change('sam', 'support', 'public.customers', '{"customer_id": 990009}',
		'{"email": "ghost@example.org"}', 'UPDATE customers SET email = $1 WHERE customer_id = $2')`); err != nil {
		t.Fatal(err)
	}
	var ghost int64
	db.QueryRow(ctx, "SELECT max(id) FROM pgcloak.change_requests").Scan(&ghost)
	if _, err := db.Exec(ctx, `INSERT INTO customers (customer_id, customer_number, first_name, last_name, region, segment, created_at)
		VALUES (990009, 'R-990009', 'G', 'Host', 'west', 'consumer', now())`); err != nil {
		t.Fatal(err)
	}
	if err := eng.ApplyChange(ctx, db, ghost, petra); err == nil {
		t.Fatal("a request recorded for a missing row applied to the row created later")
	}
	db.Exec(ctx, "DELETE FROM customers WHERE customer_id IN (990001, 990002, 990003, 990009)")
}

func requestFrom(t *testing.T, notices []string) int64 {
	t.Helper()
	for _, n := range notices {
		if m := requestNotice.FindStringSubmatch(n); m != nil {
			var id int64
			fmt.Sscan(m[1], &id)
			return id
		}
	}
	t.Fatalf("no change request notice in %q", notices)
	return 0
}

// petraLogin authenticates the privacy officer as the approving command
// does: by connecting as her own database login.
func petraLogin(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, fmt.Sprintf("host=%s port=%d user=petra password=%s dbname=%s sslmode=disable",
		pg.Host, pg.Port, crm.DemoPassword, pgtest.Database))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	login, err := schema.Approver(ctx, conn.Query)
	if err != nil || login != "petra" {
		t.Fatalf("approver %q, %v", login, err)
	}
	return login
}

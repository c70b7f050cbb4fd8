package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/pgcloak/pgcloak/audit"
	"github.com/pgcloak/pgcloak/examples/crm"
	"github.com/pgcloak/pgcloak/internal/pgtest"
)

// pgcloak review lists, shows, approves and rejects change requests, and
// will not let the requester decide their own.
func TestReviewCommand(t *testing.T) {
	pg := crmDB(t)
	ctx := context.Background()
	dsn := pg.DSN(pgtest.SuperUser, pgtest.Database)
	path := writeRules(t, crm.Rules)
	var id int64
	var ids [2]int64
	for i := range ids {
		conn := directConn(t, dsn)
		if err := conn.QueryRow(ctx, "SELECT min(customer_id) FROM customers WHERE region = 'north'").Scan(&id); err != nil {
			t.Fatal(err)
		}
		// As a trusted component records one (CHANGES_API): the function
		// binds the request to the row's current version.
		if _, err := conn.Exec(ctx, `SELECT pgcloak.request_change('sam', 'support', 'public.customers', jsonb_build_object('customer_id', $1::bigint),
			jsonb_build_object('phone', $2::text), 'UPDATE customers SET phone = $1')`, id, fmt.Sprintf("+1 555 01%02d", i)); err != nil {
			t.Fatal(err)
		}
		if err := conn.QueryRow(ctx, "SELECT max(id) FROM pgcloak.change_requests").Scan(&ids[i]); err != nil {
			t.Fatal(err)
		}
	}
	if code := runReview([]string{"list", "--database", dsn}); code != 0 {
		t.Fatalf("list: %d", code)
	}
	if code := runReview([]string{"show", "--database", dsn, fmt.Sprint(ids[0])}); code != 0 {
		t.Fatalf("show: %d", code)
	}
	log := filepath.Join(t.TempDir(), "review-access.log")
	// The approver is the login PostgreSQL authenticates, not a name.
	as := func(login string) string {
		return fmt.Sprintf("host=%s port=%d user=%s password=%s dbname=%s sslmode=disable", pg.Host, pg.Port, login, crm.DemoPassword, pgtest.Database)
	}
	if code := runReview([]string{"approve", "--database", dsn, "--rules", path, "--approver-database", as("sam"), "--audit-file", log, fmt.Sprint(ids[0])}); code != 1 {
		t.Fatalf("the requester approving their own request: exit %d", code)
	}
	if code := runReview([]string{"approve", "--database", dsn, "--rules", path, "--approver-database", as("alice"), "--audit-file", log, fmt.Sprint(ids[0])}); code != 1 {
		t.Fatalf("a login without approve_changes approving: exit %d", code)
	}
	if code := runReview([]string{"approve", "--database", dsn, "--rules", path, "--approver", "petra", "--approver-database", as("alice"), fmt.Sprint(ids[0])}); code != 1 {
		t.Fatalf("--approver naming another login than the one authenticated: exit %d", code)
	}
	if code := runReview([]string{"approve", "--database", dsn, "--rules", path, "--approver-database", as("petra"), "--audit-file", log, fmt.Sprint(ids[0])}); code != 0 {
		t.Fatalf("approve: %d", code)
	}
	if code := runReview([]string{"reject", "--database", dsn, "--rules", path, "--approver-database", as("petra"), "--note", "dup", "--audit-file", log, fmt.Sprint(ids[1])}); code != 0 {
		t.Fatalf("reject: %d", code)
	}
	// Every decision, refused ones included, is in the access log, and the
	// chain verifies; the new values are not in it.
	// Each run continues the chain; earlier files are set aside beside it.
	files, _ := filepath.Glob(strings.TrimSuffix(log, ".log") + "-*.log")
	sort.Strings(files)
	files = append(files, log)
	if _, err := audit.Verify(files, audit.VerifyOptions{}); err != nil {
		t.Fatalf("verify: %v", err)
	}
	var data []byte
	for _, f := range files {
		b, _ := os.ReadFile(f)
		data = append(data, b...)
	}
	for _, want := range []string{`"decision":"refused"`, `"decision":"applied"`, `"decision":"rejected"`, `"kind":"review_approve"`} {
		if !strings.Contains(string(data), want) {
			t.Fatalf("access log lacks %s:\n%s", want, data)
		}
	}
	if strings.Contains(string(data), "555 01") {
		t.Fatalf("a new value reached the access log:\n%s", data)
	}

	conn := directConn(t, dsn)
	var phone, s0, s1 string
	if err := conn.QueryRow(ctx, `SELECT c.phone, (SELECT status FROM pgcloak.change_requests WHERE id = $2), (SELECT status FROM pgcloak.change_requests WHERE id = $3)
		FROM customers c WHERE customer_id = $1`, id, ids[0], ids[1]).Scan(&phone, &s0, &s1); err != nil {
		t.Fatal(err)
	}
	if phone != "+1 555 0100" || s0 != "applied" || s1 != "rejected" {
		t.Fatalf("phone %q, statuses %q %q", phone, s0, s1)
	}
}

func directConn(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

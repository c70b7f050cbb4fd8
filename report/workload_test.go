package report_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgcloak/pgcloak/audit"
	"github.com/pgcloak/pgcloak/engine"
	"github.com/pgcloak/pgcloak/examples/crm"
	"github.com/pgcloak/pgcloak/internal/cloaktest"
	"github.com/pgcloak/pgcloak/internal/pgtest"
	"github.com/pgcloak/pgcloak/proxy"
	"github.com/pgcloak/pgcloak/rules"
)

var (
	pg        *pgtest.Server
	eng       *engine.Engine
	policy    *rules.Policy
	rulesFile string
)

const testCustomers = 600

func TestMain(m *testing.M) {
	cloaktest.Main(m, cloaktest.Options{CRM: crm.Options{Customers: testCustomers, Seed: 5}}, &pg, startEngine)
}

// startEngine writes the sample's rules and starts the rewrite engine.
func startEngine(ctx context.Context) error {
	rulesFile = filepath.Join(pg.Dir, "rules.yaml")
	if err := os.WriteFile(rulesFile, crm.Rules, 0o644); err != nil {
		return err
	}
	var err error
	if policy, err = rules.Load(rulesFile); err != nil {
		return err
	}
	eng, err = cloaktest.StartEngine(ctx, pg, func() *rules.Policy { return policy }, slog.New(slog.DiscardHandler))
	return err
}

func adminConn(t testing.TB) *pgx.Conn { return cloaktest.Admin(t, pg) }

// runWorkload drives a fixed mix of statements through a real pgcloak
// with the access log on, into dir/audit.log: reads that are rewritten,
// allowed and refused, a server error, opt-out changes, a change request
// (approved afterwards), and an application acting for an end user. It
// returns the log file once pgcloak has closed it, and when the workload
// began (the tests share one database: a period from then holds only this
// workload's change requests).
func runWorkload(t testing.TB, dir string) (string, time.Time) {
	t.Helper()
	ctx := context.Background()
	start := time.Now()
	file := filepath.Join(dir, "audit.log")
	log, err := audit.Open(audit.Options{File: file, RulesVersion: policy.Version})
	if err != nil {
		t.Fatal(err)
	}
	srv := cloaktest.Serve(t, proxy.Config{Upstream: pg.Addr(), Policy: eng, AccessLog: log, Logger: slog.New(slog.DiscardHandler)})
	connect := func(login string) *pgx.Conn {
		cfg, err := pgx.ParseConfig(srv.DSN(login, crm.DemoPassword))
		if err != nil {
			t.Fatal(err)
		}
		cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
		conn, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			t.Fatalf("connect as %s: %v", login, err)
		}
		return conn
	}
	// run executes sql and reports whether it succeeded; failures are
	// part of the workload.
	run := func(conn *pgx.Conn, sql string) bool {
		_, err := conn.Exec(ctx, sql)
		if err != nil {
			t.Logf("%s: %v", sql, err)
		}
		return err == nil
	}
	admin := adminConn(t)
	var lastID int64
	if err := admin.QueryRow(ctx, "SELECT coalesce(max(id), 0) FROM pgcloak.change_requests").Scan(&lastID); err != nil {
		t.Fatal(err)
	}
	var north []int64
	rows, err := admin.Query(ctx, `SELECT customer_id FROM customers c WHERE region = 'north'
		AND NOT EXISTS (SELECT 1 FROM customer_opt_outs o WHERE o.customer_id = c.customer_id) ORDER BY customer_id LIMIT 3`)
	if err != nil {
		t.Fatal(err)
	}
	north, err = pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil || len(north) < 3 {
		t.Fatalf("north customers without opt-outs: %v %v", north, err)
	}

	alice := connect("alice")
	for i := range 20 {
		run(alice, fmt.Sprintf("SELECT customer_id, email FROM customers WHERE customer_id = %d", i+1))
	}
	for range 3 {
		run(alice, "SELECT amount FROM commissions")
	}
	for range 2 {
		run(alice, "DROP TABLE customers")
	}
	run(alice, "SELECT 1/0")
	// Opt-outs recorded and withdrawn: by the sales rep who works for
	// these customers, or, where the rules keep that to the privacy
	// officer (subject.opt_outs.writers), by her.
	writer := alice
	if !run(writer, fmt.Sprintf("INSERT INTO customer_opt_outs (customer_id, purpose, opted_out_at) VALUES (%d, 'direct_marketing', now())", north[0])) {
		writer = connect("petra")
		defer writer.Close(ctx)
		if !run(writer, fmt.Sprintf("INSERT INTO customer_opt_outs (customer_id, purpose, opted_out_at) VALUES (%d, 'direct_marketing', now())", north[0])) {
			t.Fatal("neither alice nor petra could record an opt-out")
		}
	}
	run(writer, fmt.Sprintf("INSERT INTO customer_opt_outs (customer_id, purpose, opted_out_at) VALUES (%d, 'automated_decision', now())", north[1]))
	if !run(writer, fmt.Sprintf("DELETE FROM customer_opt_outs WHERE customer_id = %d AND purpose = 'automated_decision'", north[1])) {
		t.Fatal("the opt-out could not be withdrawn")
	}
	alice.Close(ctx)

	ana := connect("ana")
	for range 10 {
		run(ana, "SELECT birth_date, annual_income, region FROM customers LIMIT 5")
	}
	for range 2 {
		run(ana, "SELECT * FROM sales_reps")
	}
	ana.Close(ctx)

	sam := connect("sam")
	run(sam, fmt.Sprintf("UPDATE customers SET phone = '+1 555 0100' WHERE customer_id = %d", north[2]))
	run(sam, fmt.Sprintf("UPDATE customers SET street = 'Elsewhere' WHERE customer_id = %d", north[2]))
	sam.Close(ctx)

	dana := connect("dana")
	for range 5 {
		run(dana, "SELECT count(*) FROM customers")
	}
	dana.Close(ctx)

	app := connect("crm_app")
	run(app, "SET pgcloak.end_user = 'bob'")
	for range 4 {
		run(app, "SELECT customer_id, last_name FROM customers LIMIT 3")
	}
	app.Close(ctx)

	srv.Stop()
	if err := log.Close(); err != nil {
		t.Fatal(err)
	}

	// The approver decides one of sam's requests.
	var id int64
	if err := admin.QueryRow(ctx, "SELECT min(id) FROM pgcloak.change_requests WHERE status = 'pending' AND id > $1", lastID).Scan(&id); err != nil || id == 0 {
		t.Fatalf("no pending change request: %v", err)
	}
	if err := eng.ApplyChange(ctx, admin, id, "petra"); err != nil {
		t.Fatal(err)
	}
	return file, start
}

// generated is what writeGenerated wrote.
type generated struct {
	file      string
	start     time.Time // of the first record; the others follow, 30 s apart for n = 120
	incidents int
	columns   int
	denied    map[string]int
}

// writeGenerated writes a log with the audit package's writer: n
// statement records over the hour after now (after the log's start
// record, as in a real log), some refused, some with
// wire-check incidents (which a working rewrite never produces), and a
// rules reload half-way.
func writeGenerated(t testing.TB, dir string, n int) generated {
	t.Helper()
	g := generated{file: filepath.Join(dir, "generated.log"), denied: map[string]int{}, start: time.Now().Add(time.Second)}
	log, err := audit.Open(audit.Options{File: g.file, RulesVersion: func() string { return "aaaaaaaaaaaa" }})
	if err != nil {
		t.Fatal(err)
	}
	roles := []string{"sales_rep", "analyst", "support", "disclosure_export"}
	logins := []string{"alice", "ana", "sam", "dex"}
	reasons := []string{"tables.public.commissions", "roles.analyst.statements", "fail_closed"}
	for i := range n {
		at := g.start.Add(time.Duration(i) * time.Hour / time.Duration(n))
		if i == n/2 {
			log.Emit(&audit.Record{Time: at, Type: audit.TypeRules, RulesVersion: "bbbbbbbbbbbb"})
		}
		st := &audit.Statement{Role: roles[i%4], Kind: "select", Decision: audit.Rewritten,
			Query: fmt.Sprintf("SELECT c%d FROM customers WHERE customer_id = $1", i%3),
			Objects: []audit.Object{{Relation: "public.customers", Access: "read", Protected: true,
				Columns: map[string]string{"customer_id": "public", "email": "identity"}}}}
		r := &audit.Record{Time: at, Type: audit.TypeStatement, Session: "gen", Login: logins[i%4], Statement: st}
		if i%7 == 3 {
			st.Decision, st.Reason = audit.Denied, reasons[i%3]
			g.denied[st.Reason]++
		}
		if i%11 == 5 && st.Decision != audit.Denied {
			r.WireCheck = 1 + i%2
			g.incidents++
			g.columns += r.WireCheck
		}
		log.Emit(r)
	}
	// Customers' own opt-out changes, as the portal records them.
	for i, c := range []struct{ kind, purpose, decision string }{
		{"portal_opt_out", "direct_marketing", "applied"},
		{"portal_opt_out", "direct_marketing", "applied"},
		{"portal_opt_out", "third_party_disclosure", "applied"},
		{"portal_opt_in", "direct_marketing", "applied"},
		{"portal_opt_out", "direct_marketing", "unchanged"},
	} {
		log.Emit(&audit.Record{Time: g.start.Add(time.Duration(i) * time.Minute), Type: "portal", Login: "pgcloak_portal",
			Statement: &audit.Statement{Role: "portal", Kind: c.kind, Purpose: c.purpose, Decision: c.decision,
				Objects: []audit.Object{{Relation: "public.customer_opt_outs", Access: "write", Protected: true}}}})
	}
	if err := log.Close(); err != nil {
		t.Fatal(err)
	}
	return g
}

// optOutHistorySQL is pgcloak.opt_out_history as docs/portal.md describes
// it, for a database where the portal's setup has not created it.
const optOutHistorySQL = `CREATE TABLE IF NOT EXISTS pgcloak.opt_out_history (
	id bigserial PRIMARY KEY, changed_at timestamptz NOT NULL DEFAULT now(), subject text NOT NULL,
	purpose text NOT NULL, opted_out boolean NOT NULL, source text NOT NULL DEFAULT 'portal',
	changed_by text NOT NULL DEFAULT current_user)`

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pgcloak/pgcloak/audit"
	"github.com/pgcloak/pgcloak/engine"
	"github.com/pgcloak/pgcloak/examples/crm"
	"github.com/pgcloak/pgcloak/internal/cloaktest"
	"github.com/pgcloak/pgcloak/internal/pgtest"
	"github.com/pgcloak/pgcloak/proxy"
	"github.com/pgcloak/pgcloak/rules"
)

// The access-log tests run pgcloak's parts in this process, wired as serve
// wires them: proxy, engine and access log. They have a server of their
// own (they change the CRM's data) and one engine on it, both started by
// the first test that needs them and stopped by TestMain.
var (
	accessDB = cloaktest.NewShared(cloaktest.Options{CRM: crm.Options{Customers: testCustomers, Seed: 3}})

	accessCtx, stopAccess = context.WithCancel(context.Background())
	accessOnce            sync.Once
	accessEngine          *engine.Engine
	accessErr             error
	engineLog             = &syncBuffer{} // the engine's operational log
)

const testCustomers = 1000

// accessFixture returns the access-log tests' server and engine.
func accessFixture(t *testing.T) (*pgtest.Server, *engine.Engine) {
	t.Helper()
	pg := accessDB.Get(t)
	accessOnce.Do(func() {
		policy, err := rules.Parse("rules.yaml", crm.Rules)
		if err != nil {
			accessErr = err
			return
		}
		accessEngine, accessErr = cloaktest.StartEngine(accessCtx, pg, func() *rules.Policy { return policy },
			slog.New(slog.NewJSONHandler(engineLog, &slog.HandlerOptions{Level: slog.LevelDebug})))
	})
	if accessErr != nil {
		t.Fatal(accessErr)
	}
	return pg, accessEngine
}

// syncBuffer is an operational log shared by goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// cloak is a pgcloak in front of the test server with an access log.
type cloak struct {
	*cloaktest.Cloak
	file    string
	log     *audit.Log
	reg     *prometheus.Registry
	ops     *syncBuffer // the operational log, JSON, at debug level
	stopped bool
}

func startCloak(t *testing.T, policy proxy.Policy, opts audit.Options) *cloak {
	t.Helper()
	pg, _ := accessFixture(t)
	c := &cloak{reg: prometheus.NewRegistry(), ops: &syncBuffer{}}
	logger := slog.New(slog.NewJSONHandler(c.ops, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if opts.File == "" && opts.Stream == nil {
		opts.File = filepath.Join(t.TempDir(), "audit.log")
	}
	c.file = opts.File
	opts.Logger, opts.Registerer = logger, c.reg
	var err error
	if c.log, err = audit.Open(opts); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.stop(t) })
	c.Cloak = cloaktest.Serve(t, proxy.Config{Upstream: pg.Addr(), Policy: policy, AccessLog: c.log,
		Metrics: proxy.NewMetrics(c.reg), Logger: logger})
	return c
}

// stop shuts pgcloak down and closes the access log.
func (c *cloak) stop(t *testing.T) {
	if c.stopped {
		return
	}
	c.stopped = true
	c.Stop()
	if err := c.log.Close(); err != nil {
		t.Errorf("closing the access log: %v", err)
	}
}

func (c *cloak) connect(t *testing.T, login string) *pgconn.PgConn {
	t.Helper()
	conn, err := pgconn.Connect(context.Background(), c.DSN(login, crm.DemoPassword)+" application_name=audit_test")
	if err != nil {
		t.Fatalf("connect as %s: %v", login, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// records reads the access log.
func records(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r map[string]any
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("%v: %s", err, sc.Text())
		}
		out = append(out, r)
	}
	return out
}

// want is what one statement record should say.
type want struct {
	kind, decision, protocol string
	rows                     int64 // -1: no row count
	sqlstate                 string
}

func (w want) String() string {
	return fmt.Sprintf("%s/%s/%s rows=%d sqlstate=%q", w.kind, w.decision, w.protocol, w.rows, w.sqlstate)
}

func got(r map[string]any) want {
	w := want{rows: -1}
	w.kind, _ = r["kind"].(string)
	w.decision, _ = r["decision"].(string)
	w.protocol, _ = r["protocol"].(string)
	w.sqlstate, _ = r["sqlstate"].(string)
	if n, ok := r["rows"].(float64); ok {
		w.rows = int64(n)
	}
	return w
}

// script runs statements on one session and keeps what their records must
// say.
type script struct {
	t     *testing.T
	conn  *pgconn.PgConn
	wants []want
}

func (s *script) expect(w ...want) { s.wants = append(s.wants, w...) }

// simple runs a simple-protocol Query and expects one record per result
// (and one for the statement that failed, if one did).
func (s *script) simple(sql string, kinds []string, decisions []string) {
	s.t.Helper()
	results, err := s.conn.Exec(context.Background(), sql).ReadAll()
	for i, r := range results {
		w := want{kind: kinds[i], decision: decisions[i], protocol: "simple", rows: -1}
		if r.Err == nil && hasRows(r.CommandTag) {
			w.rows = r.CommandTag.RowsAffected()
		}
		s.expect(w)
	}
	if err != nil {
		i := len(results)
		s.expect(want{kind: kinds[i], decision: decisions[i], protocol: "simple", rows: -1, sqlstate: sqlstate(err)})
	}
}

func hasRows(tag pgconn.CommandTag) bool {
	return tag.Select() || tag.Insert() || tag.Update() || tag.Delete() ||
		strings.HasPrefix(tag.String(), "COPY") || strings.HasPrefix(tag.String(), "FETCH")
}

func sqlstate(err error) string {
	if pe, ok := err.(*pgconn.PgError); ok {
		return pe.Code
	}
	return "?"
}

// check compares the statement records of a login with the script.
func (s *script) check(recs []map[string]any, login string) {
	s.t.Helper()
	var gots []want
	for _, r := range recs {
		if r["type"] == "statement" && r["login"] == login {
			gots = append(gots, got(r))
		}
	}
	if len(gots) != len(s.wants) {
		for i := range max(len(gots), len(s.wants)) {
			var g, w string
			if i < len(gots) {
				g = gots[i].String()
			}
			if i < len(s.wants) {
				w = s.wants[i].String()
			}
			if g != w {
				s.t.Logf("%d: got %s, want %s", i, g, w)
			}
		}
		s.t.Fatalf("%s: %d statement records, want %d", login, len(gots), len(s.wants))
	}
	for i := range gots {
		if gots[i] != s.wants[i] {
			s.t.Errorf("%s record %d: got %s, want %s", login, i, gots[i], s.wants[i])
		}
	}
}

// TestMixedWorkload runs simple and extended protocol, denials, errors,
// COPY in both directions and 1,000 executions of one prepared statement
// through pgcloak, for a restricted and an unrestricted session, and checks
// that each execution gave exactly one record with the right kind,
// decision and row count, that the metrics agree, and that the chain
// verifies.
func TestMixedWorkload(t *testing.T) {
	pg, eng := accessFixture(t)
	c := startCloak(t, eng, audit.Options{File: os.Getenv("AUDIT_DUMP")})
	ctx := context.Background()

	// alice: a sales rep, restricted to her region.
	alice := &script{t: t, conn: c.connect(t, "alice")}
	alice.simple("SELECT customer_id, email FROM customers ORDER BY customer_id LIMIT 5; SELECT count(*) FROM orders",
		[]string{"select", "select"}, []string{"rewritten", "rewritten"})
	alice.simple("SELECT 1 AS one", []string{"select"}, []string{"allowed"})
	alice.simple("DROP TABLE customers", []string{"ddl"}, []string{"denied"})
	alice.simple("SELECT amount FROM commissions", []string{"select"}, []string{"denied"})
	alice.simple("SELECT 1; SELECT 1/0; SELECT 2", []string{"select", "select", "select"}, []string{"allowed", "allowed", "allowed"})
	alice.simple("BEGIN; SELECT count(*) FROM customers; COMMIT", []string{"transaction", "select", "transaction"},
		[]string{"allowed", "rewritten", "allowed"})
	alice.simple("SELEC oops", []string{"unknown"}, []string{"denied"})

	// 1,000 executions of one prepared statement: one record each, with
	// the rows that execution returned.
	if _, err := alice.conn.Prepare(ctx, "by_id", "SELECT customer_id, birth_date FROM customers WHERE customer_id = $1", nil); err != nil {
		t.Fatal(err)
	}
	visible := 0
	for i := 1; i <= 1000; i++ {
		res := alice.conn.ExecPrepared(ctx, "by_id", [][]byte{[]byte(strconv.Itoa(i))}, nil, nil).Read()
		if res.Err != nil {
			t.Fatal(res.Err)
		}
		n := res.CommandTag.RowsAffected()
		visible += int(n)
		alice.expect(want{"select", "rewritten", "extended", n, ""})
	}
	if visible == 0 || visible == 1000 {
		t.Fatalf("alice sees %d of the first 1000 customers; the filter should show some, not all", visible)
	}
	// Errors and denials in the extended protocol: at Execute, at Bind (a
	// parameter that is not a number), at Parse (a refused statement).
	res := alice.conn.ExecParams(ctx, "SELECT $1::int / 0", [][]byte{[]byte("1")}, nil, nil, nil).Read()
	alice.expect(want{"select", "allowed", "extended", -1, sqlstate(res.Err)})
	res = alice.conn.ExecParams(ctx, "SELECT customer_id FROM customers WHERE customer_id = $1", [][]byte{[]byte("not a number")}, nil, nil, nil).Read()
	alice.expect(want{"select", "rewritten", "extended", -1, sqlstate(res.Err)})
	res = alice.conn.ExecParams(ctx, "DELETE FROM commissions", nil, nil, nil, nil).Read()
	alice.expect(want{"delete", "denied", "extended", -1, sqlstate(res.Err)})
	if sqlstate(res.Err) != "42501" {
		t.Fatalf("DELETE FROM commissions: %v", res.Err)
	}
	// COPY FROM STDIN into a table of her own (copy_from is hers).
	alice.simple("CREATE TEMP TABLE notes (n int)", []string{"ddl"}, []string{"denied"})

	// dana: unrestricted (dba): passes through, and is recorded all the same.
	if err := pg.Exec(ctx, "DROP TABLE IF EXISTS audit_scratch", "CREATE TABLE audit_scratch (n int, s text)",
		"GRANT ALL ON audit_scratch TO dana"); err != nil {
		t.Fatal(err)
	}
	dana := &script{t: t, conn: c.connect(t, "dana")}
	dana.simple("TRUNCATE audit_scratch; SELECT count(*) FROM audit_scratch",
		[]string{"truncate", "select"}, []string{"allowed", "allowed"})
	tag, err := dana.conn.CopyFrom(ctx, strings.NewReader("1\ta\n2\tb\n3\tc\n"), "COPY audit_scratch FROM STDIN")
	if err != nil {
		t.Fatal(err)
	}
	dana.expect(want{"copy_from", "allowed", "simple", tag.RowsAffected(), ""})
	var out bytes.Buffer
	tag, err = dana.conn.CopyTo(ctx, &out, "COPY customers TO STDOUT")
	if err != nil || tag.RowsAffected() != testCustomers {
		t.Fatalf("COPY TO: %v, %v", tag, err)
	}
	dana.expect(want{"copy_to", "allowed", "simple", testCustomers, ""})
	dana.simple("UPDATE audit_scratch SET s = 'x' WHERE n < 3", []string{"update"}, []string{"allowed"})
	res = dana.conn.ExecParams(ctx, "SELECT n FROM audit_scratch WHERE n > $1", [][]byte{[]byte("1")}, nil, nil, nil).Read()
	dana.expect(want{"select", "allowed", "extended", int64(len(res.Rows)), ""})
	dana.simple("CREATE TEMP TABLE t (n int)", []string{"ddl"}, []string{"allowed"})

	// A portal read in batches: each Execute is recorded with the rows it
	// sent, the suspended ones marked so.
	batches := c.connect(t, "victor")
	fe := batches.Frontend()
	fe.Send(&pgproto3.Parse{Query: "SELECT n FROM generate_series(1, 5) AS n"})
	fe.Send(&pgproto3.Bind{})
	for range 3 {
		fe.Send(&pgproto3.Execute{MaxRows: 2})
	}
	fe.Send(&pgproto3.Sync{})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	var sent []int64
	var tags []string
	n := int64(0)
	for done := false; !done; {
		msg, err := fe.Receive()
		if err != nil {
			t.Fatal(err)
		}
		switch m := msg.(type) {
		case *pgproto3.DataRow:
			n++
		case *pgproto3.PortalSuspended:
			sent, n = append(sent, n), 0
		case *pgproto3.CommandComplete:
			sent, n = append(sent, n), 0
			tags = append(tags, string(m.CommandTag))
		case *pgproto3.ErrorResponse:
			t.Fatalf("batches: %s", m.Message)
		case *pgproto3.ReadyForQuery:
			done = true
		}
	}
	if fmt.Sprint(sent) != "[2 2 1]" {
		t.Fatalf("rows per Execute %v, tags %v", sent, tags)
	}
	batched := 0

	dex := &script{t: t, conn: c.connect(t, "dex")}
	dex.simple("BEGIN", []string{"transaction"}, []string{"allowed"})
	out.Reset()
	tag, err = dex.conn.CopyTo(ctx, &out, "COPY (SELECT customer_id FROM customers) TO STDOUT")
	if err != nil {
		t.Fatal(err)
	}
	dex.expect(want{"copy_to", "rewritten", "simple", tag.RowsAffected(), ""})
	dex.simple("COMMIT", []string{"transaction"}, []string{"allowed"})

	// A delegating application names its end user: the records say both.
	app := &script{t: t, conn: c.connect(t, "crm_app")}
	app.simple("SET pgcloak.end_user = 'alice'", []string{"set"}, []string{"allowed"})
	app.simple("SELECT count(*) FROM customers", []string{"select"}, []string{"rewritten"})

	for _, conn := range []*pgconn.PgConn{alice.conn, dana.conn, dex.conn, app.conn, batches} {
		conn.Close(ctx)
	}
	c.stop(t)

	rep, err := audit.Verify([]string{c.file}, audit.VerifyOptions{})
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	recs := records(t, c.file)
	alice.check(recs, "alice")
	dana.check(recs, "dana")
	dex.check(recs, "dex")
	app.check(recs, "crm_app")
	for _, r := range recs {
		if r["type"] == "statement" && r["query"] == "SELECT n FROM generate_series($1, $2) AS n" {
			want := fmt.Sprintf("rows=%d suspended=%v", sent[batched], batched < 2)
			if got := fmt.Sprintf("rows=%v suspended=%v", r["rows"], r["suspended"] == true); got != want {
				t.Errorf("Execute %d of a portal read in batches: %s, want %s", batched, got, want)
			}
			batched++
		}
	}
	if batched != 3 {
		t.Errorf("%d records for 3 Executes of one portal", batched)
	}
	for _, r := range recs {
		if r["login"] == "crm_app" && r["kind"] == "select" && (r["end_user"] != "alice" || r["role"] != "sales_rep") {
			t.Errorf("a delegated statement's record: %v", r)
		}
		if r["login"] == "crm_app" && r["kind"] == "set" && strings.Contains(fmt.Sprint(r), "'alice'") {
			t.Errorf("the delegation statement's value is in the log: %v", r)
		}
	}

	// One connect, auth and disconnect record per session.
	counts := map[string]int{}
	for _, r := range recs {
		counts[r["type"].(string)]++
		if r["type"] == "auth" && r["login"] == "alice" && (r["outcome"] != "ok" || r["role"] != "sales_rep") {
			t.Errorf("alice's auth record: %v", r)
		}
	}
	if counts["connect"] != 5 || counts["auth"] != 5 || counts["disconnect"] != 5 {
		t.Errorf("connection records: %v", counts)
	}
	statements := len(alice.wants) + len(dana.wants) + len(dex.wants) + len(app.wants) + batched
	if counts["statement"] != statements || rep.Records != len(recs) {
		t.Errorf("%d statement records, want %d; verify counted %d of %d", counts["statement"], statements, rep.Records, len(recs))
	}

	// What a record says about the tables a statement read.
	for _, r := range recs {
		if r["login"] == "alice" && r["kind"] == "select" && r["protocol"] == "extended" && r["decision"] == "rewritten" {
			objs := r["objects"].([]any)
			o := objs[0].(map[string]any)
			if o["relation"] != "public.customers" || o["protected"] != true ||
				o["columns"].(map[string]any)["birth_date"] != "personal" || fmt.Sprint(o["masked"]) != "map[birth_date:mask]" ||
				!strings.Contains(fmt.Sprint(o["filters"]), "row_filter") {
				t.Errorf("objects: %v", objs)
			}
			if r["role"] != "sales_rep" || r["fingerprint"] == "" || r["query"] != "SELECT customer_id, birth_date FROM customers WHERE customer_id = $1" ||
				r["application_name"] != "audit_test" {
				t.Errorf("record: %v", r)
			}
			break
		}
	}

	// The metrics say the same.
	m := gatheredAll(t, c.reg)
	if v := m[`pgcloak_statements_total{decision="rewritten",kind="select",role="sales_rep"}`]; v < 1000 {
		t.Errorf("rewritten selects of sales_rep: %v", v)
	}
	total := 0.0
	for k, v := range m {
		if strings.HasPrefix(k, "pgcloak_statements_total{") {
			total += v
		}
	}
	if int(total) != statements {
		t.Errorf("pgcloak_statements_total sums to %v, want %d", total, statements)
	}
	if v := m[`pgcloak_statements_denied_total{reason="roles"}`] + m[`pgcloak_statements_denied_total{reason="tables"}`] +
		m[`pgcloak_statements_denied_total{reason="fail_closed"}`] + m[`pgcloak_statements_denied_total{reason="statements"}`]; v != 5 {
		t.Errorf("denials: %v", v)
	}
	if m["pgcloak_proxy_client_connections_total"] != 5 || m["pgcloak_proxy_client_connections_active"] != 0 {
		t.Errorf("connections: %v total, %v active", m["pgcloak_proxy_client_connections_total"], m["pgcloak_proxy_client_connections_active"])
	}
	if m["pgcloak_masked_columns_served_total"] < 1000 {
		t.Errorf("masked columns: %v", m["pgcloak_masked_columns_served_total"])
	}
	if int(m[`pgcloak_audit_records_written_total{sink="file"}`]) != len(recs) {
		t.Errorf("records written %v, file has %d", m[`pgcloak_audit_records_written_total{sink="file"}`], len(recs))
	}
}

// gatheredAll flattens a registry into "name{labels}" → value (histograms
// by their count).
func gatheredAll(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			k := mf.GetName()
			if len(labels) > 0 {
				k += "{" + strings.Join(labels, ",") + "}"
			}
			out[k] = m.GetCounter().GetValue() + m.GetGauge().GetValue() + float64(m.GetHistogram().GetSampleCount())
		}
	}
	return out
}

// TestSinkFailureThroughProxy: with the access log on a full device,
// fail_closed refuses new statements (simple and extended protocol) with
// SQLSTATE 53000 and runs them again once the log can be written;
// fail_open runs them and counts what it could not record.
func TestSinkFailureThroughProxy(t *testing.T) {
	_, eng := accessFixture(t)
	ctx := context.Background()
	t.Run("fail_closed", func(t *testing.T) {
		path, heal := cloaktest.FailingFile(t)
		c := startCloak(t, eng, audit.Options{File: path})
		pgtest.Eventually(t, 10*time.Second, "the sink to fail", func() bool { return c.log.Healthy() != nil })
		conn := c.connect(t, "alice")
		_, err := conn.Exec(ctx, "SELECT count(*) FROM customers").ReadAll()
		if sqlstate(err) != "53000" || !strings.Contains(err.Error(), "access log cannot be written") {
			t.Fatalf("simple protocol while the log fails: %v", err)
		}
		res := conn.ExecParams(ctx, "SELECT $1::int", [][]byte{[]byte("1")}, nil, nil, nil).Read()
		if sqlstate(res.Err) != "53000" {
			t.Fatalf("extended protocol while the log fails: %v", res.Err)
		}
		heal()
		pgtest.Eventually(t, 10*time.Second, "the log to recover", func() bool { return c.log.Admit() == nil })
		results, err := conn.Exec(ctx, "SELECT count(*) FROM customers").ReadAll()
		if err != nil || len(results[0].Rows) != 1 {
			t.Fatalf("after recovery: %v", err)
		}
		res = conn.ExecParams(ctx, "SELECT $1::int", [][]byte{[]byte("1")}, nil, nil, nil).Read()
		if res.Err != nil {
			t.Fatalf("extended protocol after recovery: %v", res.Err)
		}
		conn.Close(ctx)
		c.stop(t)
		if _, err := audit.Verify([]string{path}, audit.VerifyOptions{}); err != nil {
			t.Fatal(err)
		}
		recs := records(t, path)
		var stmts, lost int
		for _, r := range recs {
			if r["type"] == "statement" {
				stmts++
			}
			if r["type"] == "lost" {
				lost++
			}
		}
		m := gatheredAll(t, c.reg)
		if stmts != 2 || lost != 0 || m[`pgcloak_audit_dropped_records_total{sink="file"}`] != 0 ||
			m[`pgcloak_statements_denied_total{reason="audit_unavailable"}`] != 2 {
			t.Fatalf("%d statement records, %d lost records, metrics %v", stmts, lost, m)
		}
	})
	t.Run("fail_open", func(t *testing.T) {
		path, heal := cloaktest.FailingFile(t)
		c := startCloak(t, eng, audit.Options{File: path, OnFailure: audit.FailOpen})
		pgtest.Eventually(t, 10*time.Second, "the sink to fail", func() bool { return c.log.Healthy() != nil })
		conn := c.connect(t, "alice")
		for range 3 {
			if _, err := conn.Exec(ctx, "SELECT count(*) FROM customers").ReadAll(); err != nil {
				t.Fatalf("fail_open refused: %v", err)
			}
		}
		// connect, auth, three statements.
		pgtest.Eventually(t, 10*time.Second, "5 lost records", func() bool { return c.log.Stats().Lost == 5 })
		heal()
		pgtest.Eventually(t, 10*time.Second, "the log to recover", func() bool {
			conn.Exec(ctx, "SELECT 1").ReadAll()
			return c.log.Healthy() == nil
		})
		conn.Close(ctx)
		c.stop(t)
		if _, err := audit.Verify([]string{path}, audit.VerifyOptions{}); err != nil {
			t.Fatal(err)
		}
		lost := 0.0
		for _, r := range records(t, path) {
			if n, ok := r["lost"].(float64); ok {
				lost += n
			}
		}
		m := gatheredAll(t, c.reg)
		if dropped := m[`pgcloak_audit_dropped_records_total{sink="file"}`]; dropped < 5 || dropped != lost {
			t.Fatalf("dropped %v, lost records say %v", dropped, lost)
		}
	})
}

// TestCanaries: a value in a query literal, in a comment, in a parameter,
// in a result and in an error message reaches neither the access log nor
// the operational log, for restricted, unrestricted and rule-less
// sessions.
func TestCanaries(t *testing.T) {
	pg, eng := accessFixture(t)
	ctx := context.Background()
	if err := pg.Exec(ctx,
		"UPDATE customers SET first_name = 'CANARY_RESULT_a1' WHERE customer_id = (SELECT min(customer_id) FROM customers WHERE region = 'north')",
		"DROP TABLE IF EXISTS canary_t", "CREATE TABLE canary_t (s text)", "INSERT INTO canary_t VALUES ('CANARY_RESULT_b2')",
		"GRANT SELECT ON canary_t TO dana"); err != nil {
		t.Fatal(err)
	}
	workload := func(conn *pgconn.PgConn, table, column string) {
		q := func(sql string) { conn.Exec(ctx, sql).ReadAll() }
		q("SELECT 'CANARY_LIT_c3' AS x, 4242424242 AS y")
		q("SELECT 1 /* CANARY_COMMENT_d4 */ -- CANARY_COMMENT_e5\n")
		q("SELECT " + column + " FROM " + table + " WHERE " + column + " LIKE 'CANARY%'")
		q("SELECT 'CANARY_ERR_f6'::int")
		q("SELECT 'CANARY_DENIED_g7' FROM commissions")
		q("SELEC 'CANARY_SYNTAX_h8'")
		q("PREPARE canary_p AS SELECT 'CANARY_PREPARE_i9'; EXECUTE canary_p; DEALLOCATE canary_p")
		q("DO $$ BEGIN RAISE NOTICE 'CANARY_DO_j0'; END $$")
		conn.ExecParams(ctx, "SELECT $1::text", [][]byte{[]byte("CANARY_PARAM_k1")}, nil, nil, nil).Read()
		conn.ExecParams(ctx, "SELECT $1::int", [][]byte{[]byte("CANARY_PARAM_l2")}, nil, nil, nil).Read()
		conn.ExecParams(ctx, "SELECT "+column+" FROM "+table+" WHERE "+column+" LIKE $1", [][]byte{[]byte("CANARY%")}, nil, nil, nil).Read()
	}
	check := func(c *cloak, others ...string) {
		t.Helper()
		b, err := os.ReadFile(c.file)
		if err != nil {
			t.Fatal(err)
		}
		for name, text := range map[string]string{"access log": string(b), "operational log": c.ops.String() + strings.Join(others, "")} {
			if i := strings.Index(text, "CANARY"); i >= 0 {
				t.Errorf("%s holds a canary: …%s…", name, text[max(i-200, 0):min(i+60, len(text))])
			}
			if strings.Contains(text, "4242424242") {
				t.Errorf("%s holds a numeric literal", name)
			}
		}
		if strings.Count(string(b), `"type":"statement"`) < 10 {
			t.Errorf("too few statement records:\n%s", b)
		}
	}

	c := startCloak(t, eng, audit.Options{})
	workload(c.connect(t, "alice"), "customers", "first_name")
	workload(c.connect(t, "dana"), "canary_t", "s")
	c.stop(t)
	check(c, engineLog.String())

	// Without rules: every session passes through, observed.
	c = startCloak(t, engine.Observer{}, audit.Options{})
	conn, err := pgconn.Connect(ctx, c.DSN(pgtest.SuperUser, pgtest.Password))
	if err != nil {
		t.Fatal(err)
	}
	workload(conn, "canary_t", "s")
	conn.Close(ctx)
	c.stop(t)
	check(c)
}

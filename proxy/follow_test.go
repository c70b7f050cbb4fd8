package proxy_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/pgcloak/pgcloak/audit"
	"github.com/pgcloak/pgcloak/internal/pgtest"
	"github.com/pgcloak/pgcloak/proxy"
)

// memLog is an access log in memory.
type memLog struct {
	mu   sync.Mutex
	recs []*audit.Record
}

func (l *memLog) Emit(r *audit.Record) {
	l.mu.Lock()
	l.recs = append(l.recs, r)
	l.mu.Unlock()
}

func (l *memLog) Admit() error { return nil }

func (l *memLog) reset() {
	l.mu.Lock()
	l.recs = nil
	l.mu.Unlock()
}

// statements returns the statement records: the SQL each was decided on,
// and its SQLSTATE ("" when it succeeded).
func (l *memLog) statements() (sqls, codes []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range l.recs {
		if r.Type == audit.TypeStatement {
			sqls = append(sqls, r.Statement.Query)
			codes = append(codes, r.SQLState)
		}
	}
	return sqls, codes
}

// followPolicy forwards everything, describes each statement by its SQL
// for the access log, checks results on the wire (so pgcloak describes
// portals on its own) and, with generational set, has a generation the
// test moves, under which Parse messages are rewritten: "select 'v'"
// becomes "select 'v<generation>'".
type followPolicy struct {
	generational bool
	gen          atomic.Uint64
}

func (p *followPolicy) Open(context.Context, proxy.SessionInfo) (proxy.SessionPolicy, error) {
	if p.generational {
		return &genSession{followSession{p}}, nil
	}
	return &followSession{p}, nil
}

type followSession struct{ p *followPolicy }

func (s *followSession) decide(sql string) proxy.Decision {
	return proxy.Decision{Audit: []*audit.Statement{{Kind: "select", Query: sql, Decision: audit.Allowed}}}
}
func (s *followSession) Query(sql string) proxy.Decision { return s.decide(sql) }
func (s *followSession) Parse(_, sql string, _ []uint32) proxy.Decision {
	d := s.decide(sql)
	if s.p.generational && sql == "select 'v'" {
		d.Action, d.SQL = proxy.Rewrite, fmt.Sprintf("select 'v%d'", s.p.gen.Load())
	}
	return d
}
func (s *followSession) FunctionCall(uint32) proxy.Decision { return s.decide("function call") }
func (s *followSession) Close()                             {}
func (s *followSession) MaskColumns([]proxy.Column) []bool {
	return nil
}

type genSession struct{ followSession }

func (s *genSession) Generation() uint64 { return s.p.gen.Load() }

// readToMarker reads until the answer to the marker query
// (select 'end-marker') is complete.
func (w *wireConn) readToMarker() []string {
	w.t.Helper()
	var out []string
	marker := false
	for {
		msg, err := w.fe.Receive()
		if err != nil {
			w.t.Fatalf("reading: %v after %s", err, strings.Join(out, "\n"))
		}
		out = append(out, describe(msg))
		if d, ok := msg.(*pgproto3.DataRow); ok && len(d.Values) == 1 && string(d.Values[0]) == "end-marker" {
			marker = true
		}
		if _, ok := msg.(*pgproto3.ReadyForQuery); ok && marker {
			return out
		}
	}
}

var endMarker = []pgproto3.FrontendMessage{&pgproto3.Sync{}, query("select 'end-marker'")}

// runBoth sends the same messages directly to PostgreSQL and through a
// pgcloak, and checks that both answer alike; it returns the answer.
func runBoth(t *testing.T, addr string, msgs []pgproto3.FrontendMessage) []string {
	t.Helper()
	msgs = append(append([]pgproto3.FrontendMessage(nil), msgs...), endMarker...)
	direct := dialWire(t, pg.Addr())
	direct.startup(pgtest.TrustUser)
	direct.send(msgs...)
	want := direct.readToMarker()
	via := dialWire(t, addr)
	via.startup(pgtest.TrustUser)
	via.send(msgs...)
	got := via.readToMarker()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("through pgcloak:\n%s\n\ndirectly:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	return want
}

// wantRecords checks the statement records against the SQL of the
// statements that ran, in order, and the SQLSTATEs ("" for success).
func wantRecords(t *testing.T, log *memLog, sqls, codes []string) {
	t.Helper()
	gotSQL, gotCodes := log.statements()
	if strings.Join(gotSQL, "|") != strings.Join(sqls, "|") || strings.Join(gotCodes, "|") != strings.Join(codes, "|") {
		t.Fatalf("access records:\n got %q %q\nwant %q %q", gotSQL, gotCodes, sqls, codes)
	}
}

// After an error in the extended protocol the server ignores everything
// until Sync, a simple Query included, and answers none of it: the Query
// gets no record, and the statements after the Sync get theirs.
func TestFollowSkipUntilSync(t *testing.T) {
	log := &memLog{}
	_, addr := startProxy(t, proxy.Config{Policy: &followPolicy{}, AccessLog: log})
	runBoth(t, addr, []pgproto3.FrontendMessage{
		parse("", "selec 1"), bind("", ""), execute("", 0),
		query("select 'skipped query'"),
		parse("", "select 'skipped parse'"), bind("", ""), describePortal(""), execute("", 0),
		&pgproto3.Sync{},
		query("select 'after'"),
		parse("", "select 'extended after'"), bind("", ""), execute("", 0),
	})
	wantRecords(t, log,
		[]string{"selec 1", "select 'after'", "select 'extended after'", "select 'end-marker'"},
		[]string{pgerrcode.SyntaxError, "", "", ""})
}

// Sync sent during COPY FROM STDIN (libpq clients do) is ignored by the
// server.
func TestFollowSyncDuringCopy(t *testing.T) {
	ctx := context.Background()
	if err := pg.Exec(ctx, "drop table if exists follow_copy",
		"create table follow_copy (a int)", "grant insert on follow_copy to "+pgtest.TrustUser); err != nil {
		t.Fatal(err)
	}
	log := &memLog{}
	_, addr := startProxy(t, proxy.Config{Policy: &followPolicy{}, AccessLog: log})
	t.Run("simple", func(t *testing.T) {
		log.reset()
		runBoth(t, addr, []pgproto3.FrontendMessage{
			query("copy follow_copy from stdin"), copyData("1\n"), &pgproto3.Sync{}, copyData("2\n"),
			&pgproto3.Sync{}, &pgproto3.CopyDone{},
			query("select 'after copy'"),
		})
		wantRecords(t, log, []string{"copy follow_copy from stdin", "select 'after copy'", "select 'end-marker'"},
			[]string{"", "", ""})
	})
	t.Run("extended", func(t *testing.T) {
		log.reset()
		runBoth(t, addr, []pgproto3.FrontendMessage{
			parse("", "copy follow_copy from stdin"), bind("", ""), execute("", 0), &pgproto3.Sync{},
			copyData("3\n"), &pgproto3.Sync{}, &pgproto3.CopyDone{}, &pgproto3.Sync{},
			query("select 'after copy'"),
		})
		wantRecords(t, log, []string{"copy follow_copy from stdin", "select 'after copy'", "select 'end-marker'"},
			[]string{"", "", ""})
	})
	t.Run("copy fail", func(t *testing.T) {
		log.reset()
		runBoth(t, addr, []pgproto3.FrontendMessage{
			parse("", "copy follow_copy from stdin"), bind("", ""), execute("", 0), &pgproto3.Sync{},
			copyData("4\n"), &pgproto3.Sync{}, &pgproto3.CopyFail{Message: "changed my mind"}, &pgproto3.Sync{},
			query("select 'after copy'"),
		})
		wantRecords(t, log, []string{"copy follow_copy from stdin", "select 'after copy'", "select 'end-marker'"},
			[]string{pgerrcode.QueryCanceled, "", ""})
	})
}

// A re-Parse the server skipped (an earlier error in its batch) leaves the
// old statement in place: pgcloak prepares it again before the next Bind.
func TestFollowSkippedReparse(t *testing.T) {
	pol := &followPolicy{generational: true}
	pol.gen.Store(1)
	_, addr := startProxy(t, proxy.Config{Policy: pol, AccessLog: &memLog{}})
	w := dialWire(t, addr)
	w.startup(pgtest.TrustUser)
	w.send(parse("s", "select 'v'"), &pgproto3.Sync{})
	w.readUntil('Z', 1)
	pol.gen.Store(2)
	w.send(parse("bad", "selec"), closeStmt("s"), parse("s", "select 'v'"), &pgproto3.Sync{})
	w.readUntil('Z', 1)
	w.send(bind("", "s"), execute("", 0), &pgproto3.Sync{})
	out, err := w.readUntil('Z', 1)
	if err != nil || !strings.Contains(strings.Join(out, "\n"), `"v2"`) {
		t.Fatalf("want the statement as decided under generation 2, got %v %v", out, err)
	}
}

// A portal bound under an older generation is not executed; neither is
// one pgcloak did not see bound, nor a statement not prepared with Parse.
func TestFollowStalePortal(t *testing.T) {
	pol := &followPolicy{generational: true}
	pol.gen.Store(1)
	_, addr := startProxy(t, proxy.Config{Policy: pol, AccessLog: &memLog{}})
	w := dialWire(t, addr)
	w.startup(pgtest.TrustUser)
	w.send(query("begin"))
	w.readUntil('Z', 1)
	w.send(parse("s", "select * from generate_series(1, 10)"), bind("p", "s"), execute("p", 2), &pgproto3.Sync{})
	w.readUntil('Z', 1)
	pol.gen.Store(2)
	w.send(execute("p", 2), &pgproto3.Sync{})
	out, _ := w.readUntil('Z', 1)
	if s := strings.Join(out, "\n"); !strings.Contains(s, pgerrcode.InsufficientPrivilege) || strings.Contains(s, "DataRow") {
		t.Fatalf("Execute of a stale portal: %s", s)
	}
	w.send(query("rollback"))
	w.readUntil('Z', 1)

	w.send(query("begin; declare c cursor for select 1"))
	w.readUntil('Z', 1)
	w.send(execute("c", 0), &pgproto3.Sync{})
	out, _ = w.readUntil('Z', 1)
	if s := strings.Join(out, "\n"); !strings.Contains(s, pgerrcode.InsufficientPrivilege) || strings.Contains(s, "DataRow") {
		t.Fatalf("Execute of a SQL cursor: %s", s)
	}
	w.send(query("rollback"))
	w.readUntil('Z', 1)

	w.send(query("prepare x as select 1"))
	w.readUntil('Z', 1)
	w.send(bind("", "x"), execute("", 0), &pgproto3.Sync{})
	out, _ = w.readUntil('Z', 1)
	if s := strings.Join(out, "\n"); !strings.Contains(s, pgerrcode.InsufficientPrivilege) || strings.Contains(s, "DataRow") {
		t.Fatalf("Bind of a SQL-prepared statement: %s", s)
	}
}

// The property: any interleaving of Parse, Bind, Describe, Execute, Close,
// Sync, Flush and Query, with errors, is answered through pgcloak exactly
// as directly (so pgcloak's queue matched the server's answers: its own
// Describes never reached the client), and every statement that ran has
// exactly one record, in order, with its own SQL. The seed budget is
// fixed; PGCLOAK_PIPELINE_SEEDS raises it.
func TestFollowRandomPipelines(t *testing.T) {
	seeds := 60
	if n, err := strconv.Atoi(os.Getenv("PGCLOAK_PIPELINE_SEEDS")); err == nil {
		seeds = n
	}
	log := &memLog{}
	_, addr := startProxy(t, proxy.Config{Policy: &followPolicy{}, AccessLog: log})
	for seed := range seeds {
		log.reset()
		r := rand.New(rand.NewPCG(uint64(seed), 15))
		msgs, _ := randomPipeline(r)
		want := runBoth(t, addr, msgs)
		// The statements that ran are those whose row reached the client
		// before a CommandComplete: each selects its own label.
		var ran []string
		last := ""
		errs := 0
		for _, m := range want {
			switch {
			case strings.HasPrefix(m, "*pgproto3.DataRow"):
				last = m
			case strings.HasPrefix(m, "*pgproto3.CommandComplete"):
				ran = append(ran, last)
				last = ""
			case strings.HasPrefix(m, "*pgproto3.ErrorResponse"):
				errs++
			}
		}
		sqls, codes := log.statements()
		var okSQL []string
		nErr := 0
		for i, s := range sqls {
			if codes[i] == "" {
				okSQL = append(okSQL, s)
			} else {
				nErr++
			}
		}
		if len(okSQL) != len(ran) {
			t.Fatalf("seed %d: %d successful records for %d completed statements\nrecords: %q\nanswers:\n%s",
				seed, len(okSQL), len(ran), sqls, strings.Join(want, "\n"))
		}
		for i, s := range okSQL {
			label := s[strings.Index(s, "'")+1 : strings.LastIndex(s, "'")]
			if !strings.Contains(ran[i], label) {
				t.Fatalf("seed %d: record %d is %q, but the statement that ran returned %s", seed, i, s, ran[i])
			}
		}
		if nErr > errs {
			t.Fatalf("seed %d: %d error records for %d errors", seed, nErr, errs)
		}
	}
}

// randomPipeline builds a random sequence of messages; every statement
// returns one row holding its own label (n<i>), or fails.
func randomPipeline(r *rand.Rand) ([]pgproto3.FrontendMessage, int) {
	var msgs []pgproto3.FrontendMessage
	names := []string{"", "a", "b"}
	portals := []string{"", "p"}
	label := 0
	sql := func() string {
		label++
		switch r.IntN(6) {
		case 0:
			return fmt.Sprintf("selec 'n%d'", label) // fails at Parse
		case 1:
			return fmt.Sprintf("select 'n%d' where 1/0 = 1", label) // fails at Execute
		default:
			return fmt.Sprintf("select 'n%d'", label)
		}
	}
	n := 5 + r.IntN(25)
	for range n {
		switch r.IntN(10) {
		case 0, 1:
			msgs = append(msgs, parse(names[r.IntN(3)], sql()))
		case 2, 3:
			msgs = append(msgs, bind(portals[r.IntN(2)], names[r.IntN(3)]))
		case 4:
			if r.IntN(2) == 0 {
				msgs = append(msgs, describeStmt(names[r.IntN(3)]))
			} else {
				msgs = append(msgs, describePortal(portals[r.IntN(2)]))
			}
		case 5, 6:
			msgs = append(msgs, execute(portals[r.IntN(2)], 0))
		case 7:
			if r.IntN(2) == 0 {
				msgs = append(msgs, closeStmt(names[r.IntN(3)]))
			} else {
				msgs = append(msgs, closePortal(portals[r.IntN(2)]))
			}
		case 8:
			if r.IntN(3) == 0 {
				msgs = append(msgs, &pgproto3.Flush{})
			} else {
				msgs = append(msgs, &pgproto3.Sync{})
			}
		case 9:
			msgs = append(msgs, query(sql()))
		}
	}
	return msgs, label
}

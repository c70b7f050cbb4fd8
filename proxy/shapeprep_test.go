package proxy_test

// Shape statements (shapeprep.go) with a policy of the test's own, which
// offers a prepared form for Queries of a few fixed shapes: each Query
// answers exactly as PostgreSQL answers it directly, message by message,
// while the server connection holds the statements pgcloak prepared, no
// more than the bound, and never one of the client's.

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/pgcloak/pgcloak/internal/pgtest"
	"github.com/pgcloak/pgcloak/proxy"
)

// shapePolicy forwards everything; a Query of a form in shapeForms comes
// with its prepared form. Its generation is the test's.
type shapePolicy struct{ gen atomic.Uint64 }

func (p *shapePolicy) Open(context.Context, proxy.SessionInfo) (proxy.SessionPolicy, error) {
	return &shapeSession{p}, nil
}

type shapeSession struct{ p *shapePolicy }

// shapeForms map a Query's text to its template: the literal is the
// first submatch.
var shapeForms = []struct {
	re   *regexp.Regexp
	name string
	sql  string
	oid  uint32
}{
	{regexp.MustCompile(`^select (\d+) \+ 1 as v$`), "plus1", "select $1 + 1 as v", 23},
	{regexp.MustCompile(`^select (\d+) \+ 2 as v$`), "plus2", "select $1 + 2 as v", 23},
	{regexp.MustCompile(`^select (\d+) \+ 3 as v$`), "plus3", "select $1 + 3 as v", 23},
	{regexp.MustCompile(`^select 10 / (\d+) as v$`), "div", "select 10 / $1 as v", 23},
	{regexp.MustCompile(`^select n from generate_series\(1, (\d+)\) n$`), "series", "select n from generate_series(1, $1) n", 23},
	{regexp.MustCompile(`^select '(\w*)' is null as v$`), "unprepareable", "select $1 is null as v", 0},
	{regexp.MustCompile(`^select (\d+)::int \+ 100 as v$`), "dup", "select $1::int + 100 as v", 23},
}

func (s *shapeSession) Query(sql string) proxy.Decision {
	for _, f := range shapeForms {
		if m := f.re.FindStringSubmatch(sql); m != nil {
			return proxy.Decision{Action: proxy.Rewrite, SQL: sql, Prepared: &proxy.PreparedQuery{
				Name: proxy.ShapePrefix + f.name, SQL: f.sql, OIDs: []uint32{f.oid}, Values: [][]byte{[]byte(m[1])}}}
		}
	}
	return proxy.Decision{}
}
func (s *shapeSession) Parse(string, string, []uint32) proxy.Decision { return proxy.Decision{} }
func (s *shapeSession) FunctionCall(uint32) proxy.Decision            { return proxy.Decision{} }
func (s *shapeSession) Close()                                        {}
func (s *shapeSession) Generation() uint64                            { return s.p.gen.Load() }

// bothWays runs each Query on its own, directly and through pgcloak, and
// fails unless the answers are the same messages.
type bothWays struct {
	t           *testing.T
	direct, via *wireConn
}

func newBothWays(t *testing.T, addr string) *bothWays {
	b := &bothWays{t: t, direct: dialWire(t, pg.Addr()), via: dialWire(t, addr)}
	b.direct.startup(pgtest.TrustUser)
	b.via.startup(pgtest.TrustUser)
	return b
}

func (b *bothWays) run(sqls ...string) {
	b.t.Helper()
	for _, sql := range sqls {
		b.direct.send(query(sql))
		want, err := b.direct.readUntil('Z', 1)
		if err != nil {
			b.t.Fatal(err)
		}
		b.via.send(query(sql))
		got, err := b.via.readUntil('Z', 1)
		if err != nil {
			b.t.Fatal(err)
		}
		if !sameAnswer(got, want) {
			b.t.Fatalf("%s\nthrough pgcloak:\n%s\ndirectly:\n%s", sql, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
}

// sameAnswer says whether pgcloak's answer got is PostgreSQL's want. An
// error PostgreSQL raises while it plans the Query, folding an expression
// of its constants, comes under a prepared statement's generic plan while
// the statement runs, after the result's RowDescription: as any error of
// a running statement does.
func sameAnswer(got, want []string) bool {
	if sourceless(got) == sourceless(want) {
		return true
	}
	return len(got) == len(want)+1 && strings.HasPrefix(got[0], "*pgproto3.RowDescription") &&
		strings.HasPrefix(want[0], "*pgproto3.ErrorResponse") && sourceless(got[1:]) == sourceless(want)
}

// sourceless joins messages without the place in PostgreSQL's source an
// error was raised at: a Bind's error is raised in exec_bind_message where
// the Query's is raised in exec_simple_query.
func sourceless(msgs []string) string {
	return errorSource.ReplaceAllString(strings.Join(msgs, "\n"), "")
}

var errorSource = regexp.MustCompile(`"File":"[^"]*","Line":\d+,"Routine":"[^"]*"`)

// prepared lists the statements the server connection behind pgcloak
// holds, asked through it.
func (b *bothWays) prepared() string {
	b.t.Helper()
	b.via.send(query("select coalesce(string_agg(name || ': ' || statement, ', ' order by name), '') from pg_prepared_statements"))
	out, err := b.via.readUntil('Z', 1)
	if err != nil {
		b.t.Fatal(err)
	}
	return out[1]
}

func TestShapeStatementsAnswerAsQueries(t *testing.T) {
	srv, addr := startProxy(t, proxy.Config{Policy: &shapePolicy{}})
	b := newBothWays(t, addr)
	var sqls []string
	for i := range 5 {
		sqls = append(sqls, fmt.Sprintf("select %d + 1 as v", i), fmt.Sprintf("select n from generate_series(1, %d) n", i))
	}
	b.run(sqls...)
	if p, _, e := srv.ShapeStatements(); p != 2 || e != 6 {
		t.Fatalf("prepared %d, executed %d; want 2 and 6", p, e)
	}
	// Errors, in and out of transaction blocks, and what follows them.
	b.run("select 10 / 2 as v", "select 10 / 0 as v", "select 10 / 5 as v",
		"begin", "select 10 / 1 as v", "select 10 / 0 as v", "select 10 / 1 as v", "rollback",
		"begin", "select 1 + 1 as v", "select 2 + 1 as v", "commit",
		"select 3 + 1 as v", "select 2147483646 + 1 as v", "select 2147483647 + 1 as v", "select 4 + 1 as v")
	// A template the server cannot prepare: out of the client's sight.
	b.run("select 'a' is null as v", "select '' is null as v", "select 'b' is null as v")
	if _, f, _ := srv.ShapeStatements(); f != 1 {
		t.Fatalf("%d statements failed to prepare, want 1", f)
	}
	if got := b.prepared(); !strings.Contains(got, "pgcloak_shape_div") || strings.Contains(got, "unprepareable") {
		t.Fatalf("the server holds %s", got)
	}
	// DISCARD ALL drops them all; they are prepared again.
	b.run("discard all", "select 5 + 1 as v", "select 6 + 1 as v")
	if got := b.prepared(); !strings.Contains(got, `pgcloak_shape_plus1: select $1 + 1 as v"`) || strings.Contains(got, "div") {
		t.Fatalf("after DISCARD ALL the server holds %s", got)
	}
	// Pipelined Queries: the answers in order.
	b.direct.send(query("select 7 + 1 as v"), query("select 10 / 0 as v"), query("select 8 + 1 as v"), query("select 9 + 1 as v"))
	want, _ := b.direct.readUntil('Z', 4)
	b.via.send(query("select 7 + 1 as v"), query("select 10 / 0 as v"), query("select 8 + 1 as v"), query("select 9 + 1 as v"))
	got, _ := b.via.readUntil('Z', 4)
	if !sameAnswer(got, want) {
		t.Fatalf("pipelined through pgcloak:\n%s\ndirectly:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// A shape's first Query on a server connection runs as text and prepares
// nothing (a connection that runs it once pays no Parse); the second
// prepares it, the third runs as it.
func TestShapeStatementsPreparedAtSecondUse(t *testing.T) {
	srv, addr := startProxy(t, proxy.Config{Policy: &shapePolicy{}})
	b := newBothWays(t, addr)
	counts := func() [2]int64 { p, _, e := srv.ShapeStatements(); return [2]int64{p, e} }
	for i, want := range [][2]int64{{0, 0}, {1, 0}, {1, 1}, {1, 2}} {
		b.run(fmt.Sprintf("select %d + 2 as v", i))
		if got := counts(); got != want {
			t.Fatalf("after Query %d: prepared and executed %v, want %v", i+1, got, want)
		}
	}
	if got := b.prepared(); !strings.Contains(got, "pgcloak_shape_plus2") {
		t.Fatalf("the server holds %s", got)
	}
}

// The server connection holds at most the bound; the least recently used
// statement is closed first.
func TestShapeStatementsBounded(t *testing.T) {
	defer proxy.SetMaxShapeStmts(2)()
	_, addr := startProxy(t, proxy.Config{Policy: &shapePolicy{}})
	b := newBothWays(t, addr)
	b.run("select 1 + 1 as v", "select 2 + 1 as v", "select 1 + 2 as v", "select 2 + 2 as v",
		"select 3 + 1 as v", // plus1 is used after plus2: plus2 goes first
		"select 1 + 3 as v", "select 2 + 3 as v")
	if got := b.prepared(); !strings.Contains(got, "plus1") || !strings.Contains(got, "plus3") || strings.Contains(got, "plus2") {
		t.Fatalf("the server holds %s", got)
	}
	b.run("select 3 + 2 as v", "select 4 + 2 as v", "select 4 + 3 as v")
	if got := b.prepared(); strings.Count(got, "pgcloak_shape_") != 2 {
		t.Fatalf("the server holds %s", got)
	}
}

// A statement of the reserved name the client made (in SQL, which this
// test's policy lets through) is never run as pgcloak's: it is closed and
// prepared again. A rules change (a new generation) prepares again too.
func TestShapeStatementsNeverTheClients(t *testing.T) {
	pol := &shapePolicy{}
	srv, addr := startProxy(t, proxy.Config{Policy: pol})
	b := newBothWays(t, addr)
	b.via.send(query("prepare pgcloak_shape_dup(int) as select 'the client''s' as v"))
	if out, err := b.via.readUntil('Z', 1); err != nil || strings.Contains(strings.Join(out, ""), "Error") {
		t.Fatalf("%v %v", out, err)
	}
	b.run("select 1::int + 100 as v", "select 2::int + 100 as v", "select 3::int + 100 as v", "select 4::int + 100 as v")
	if got := b.prepared(); !strings.Contains(got, "select $1::int + 100 as v") {
		t.Fatalf("the server holds %s", got)
	}
	p, _, _ := srv.ShapeStatements()
	pol.gen.Add(1)
	b.run("select 5::int + 100 as v", "select 6::int + 100 as v")
	if p2, _, _ := srv.ShapeStatements(); p2 != p+1 {
		t.Fatalf("prepared %d after a new generation, want %d", p2, p+1)
	}
	// Protocol messages naming it are refused.
	b.via.send(closeStmt("pgcloak_shape_dup"), sync_)
	out, _ := b.via.readUntil('Z', 1)
	if !strings.Contains(strings.Join(out, ""), `"Code":"42501"`) {
		t.Fatalf("Close: %v", out)
	}
	b.via.send(parse("pgcloak_shape_x", "select 1"), sync_)
	out, _ = b.via.readUntil('Z', 1)
	if !strings.Contains(strings.Join(out, ""), `"Code":"42501"`) {
		t.Fatalf("Parse: %v", out)
	}
	b.run("select 7::int + 100 as v")
}

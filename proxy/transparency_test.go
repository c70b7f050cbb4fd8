package proxy_test

import (
	"encoding/binary"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/pgcloak/pgcloak/internal/pgtest"
	"github.com/pgcloak/pgcloak/proxy"
)

// A wire script is a list of steps: messages to send, and how far to read
// the answer. Each script runs in a fresh session, directly against
// PostgreSQL and through pgcloak, and the backend messages must be the same
// (describe normalizes process ids, cancel keys and temporary table OIDs).
type wireScript struct {
	name  string
	steps []wireStep
}

type wireStep struct {
	send []pgproto3.FrontendMessage
	// until is the backend message type that ends the answer, n how many
	// of them. By default: one ReadyForQuery per Query, Sync and
	// FunctionCall sent, or one for the end of a COPY FROM STDIN.
	until byte
	n     int
}

func send(msgs ...pgproto3.FrontendMessage) wireStep { return wireStep{send: msgs} }

// upTo ends the step's answer at the first message of type typ.
func (s wireStep) upTo(typ byte) wireStep { s.until, s.n = typ, 1; return s }

func (s wireStep) readRule() (byte, int) {
	if s.until != 0 {
		return s.until, s.n
	}
	n, copyEnd := 0, false
	for _, m := range s.send {
		switch m.(type) {
		case *pgproto3.Query, *pgproto3.Sync, *pgproto3.FunctionCall:
			n++
		case *pgproto3.CopyDone, *pgproto3.CopyFail:
			copyEnd = true
		}
	}
	if n == 0 && copyEnd { // the end of a simple-protocol COPY FROM STDIN
		n = 1
	}
	return 'Z', n
}

// Shorthands for the frontend messages the scripts use.
func query(sql string) *pgproto3.Query { return &pgproto3.Query{String: sql} }
func parse(name, sql string, oids ...uint32) *pgproto3.Parse {
	return &pgproto3.Parse{Name: name, Query: sql, ParameterOIDs: oids}
}

// bind binds text parameters (nil is NULL) with text results.
func bind(portal, stmt string, params ...any) *pgproto3.Bind {
	b := &pgproto3.Bind{DestinationPortal: portal, PreparedStatement: stmt}
	for _, p := range params {
		switch p := p.(type) {
		case nil:
			b.Parameters = append(b.Parameters, nil)
		case string:
			b.Parameters = append(b.Parameters, []byte(p))
		default:
			panic(fmt.Sprintf("bind: parameter %T", p))
		}
	}
	return b
}
func execute(portal string, maxRows uint32) *pgproto3.Execute {
	return &pgproto3.Execute{Portal: portal, MaxRows: maxRows}
}
func describeStmt(name string) *pgproto3.Describe {
	return &pgproto3.Describe{ObjectType: 'S', Name: name}
}
func describePortal(name string) *pgproto3.Describe {
	return &pgproto3.Describe{ObjectType: 'P', Name: name}
}
func closeStmt(name string) *pgproto3.Close   { return &pgproto3.Close{ObjectType: 'S', Name: name} }
func closePortal(name string) *pgproto3.Close { return &pgproto3.Close{ObjectType: 'P', Name: name} }
func copyData(s string) *pgproto3.CopyData    { return &pgproto3.CopyData{Data: []byte(s)} }
func int4(v int32) []byte                     { return binary.BigEndian.AppendUint32(nil, uint32(v)) }
func funcCall(oid uint32, format uint16, args ...[]byte) *pgproto3.FunctionCall {
	return &pgproto3.FunctionCall{Function: oid, ArgFormatCodes: []uint16{format}, Arguments: args, ResultFormatCode: format}
}

var (
	sync_ = &pgproto3.Sync{}
	flush = &pgproto3.Flush{}
)

// OIDs of built-in functions, fixed in pg_proc.dat.
const (
	oidInt4pl  = 177
	oidInt4div = 154
	oidUpper   = 871 // upper(text)
	oidTextlen = 1257
)

var wireScripts = []wireScript{
	{"simple query", []wireStep{
		send(query("select 1 as a, 'x'::text as b, null::int as c, 1.5::numeric as d")),
		send(query("select 1; select 2 as two; values (1, 'a'), (2, 'b')")),
		send(query("select 1 as before; select 1/0; select 3 as never")),
		send(query("select nonexistent_column from pg_class")), // an error with a position
		send(query("selec 1")),
		send(query("")),
		send(query(";")),
		send(query("select 1 where false")),
		send(query("select repeat('x', 100000) as big")), // a row larger than the relay's buffer
		send(query("select g, md5(g::text) from generate_series(1, 2000) g")),
	}},
	{"transactions", []wireStep{
		send(query("begin")),
		send(query("select 1/0")),
		send(query("select 1")), // 25P02: the transaction is aborted
		send(query("rollback")),
		send(query("begin; select 1; commit")),
		send(query("begin; select 1/0; commit")), // the commit never runs
		send(query("commit")),                    // WARNING: no transaction in progress
		send(query("begin; savepoint s; select 1/0")),
		send(query("rollback to s; select 'recovered'; commit")),
	}},
	{"extended unnamed", []wireStep{
		send(parse("", "select $1::int + 1 as n", 23), bind("", "", "41"), describePortal(""), execute("", 0), sync_),
		send(parse("", "select $1::text as t, $2::int as i"), describeStmt(""), bind("", "", nil, "7"), execute("", 0), sync_),
		send(parse("", "select $1::int4 * 2 as doubled", 23),
			&pgproto3.Bind{ParameterFormatCodes: []int16{1}, Parameters: [][]byte{int4(21)}, ResultFormatCodes: []int16{1}},
			describePortal(""), execute("", 0), sync_), // binary parameters and results
		send(parse("", "select 1/0"), bind("", ""), execute("", 0), sync_),
		send(parse("", ""), bind("", ""), describePortal(""), execute("", 0), sync_),    // empty query
		send(parse("", "begin"), describeStmt(""), bind("", ""), execute("", 0), sync_), // NoData
		send(parse("", "select 1/0"), bind("", ""), execute("", 0), sync_),              // in a transaction
		send(parse("", "select 1"), bind("", ""), execute("", 0), sync_),                // 25P02
		send(query("rollback")),
	}},
	{"named statements and portals", []wireStep{
		send(query("begin")),
		send(parse("s1", "select g from generate_series(1, $1::int) g"), describeStmt("s1"), sync_),
		send(bind("p1", "s1", "5"), describePortal("p1"), execute("p1", 2), execute("p1", 2), sync_),
		send(execute("p1", 0), execute("p1", 0), closePortal("p1"), sync_),
		send(bind("", "s1", "2"), execute("", 0), sync_),
		send(query("commit")),
		send(execute("p1", 0), sync_),        // 34000: the portal ended with the transaction
		send(parse("s1", "select 2"), sync_), // 42P05: the statement did not
		send(closeStmt("s1"), closeStmt("never-existed"), closePortal("never-existed"), sync_),
		send(bind("", "s1"), execute("", 0), sync_), // 26000: gone
		send(describeStmt("nope"), sync_),
		send(describePortal("nope"), sync_),
		send(parse("s2", "select $1::int"), bind("", "s2"), sync_), // 08P01: wrong parameter count
		send(bind("", "s2", "not a number"), execute("", 0), sync_),
	}},
	{"pipelines", []wireStep{
		send(
			parse("", "select 1 as one"), bind("", ""), execute("", 0),
			parse("a", "select $1::text as echo"), bind("", "a", "x"), execute("", 0),
			bind("", "a", "y"), execute("", 0),
			parse("", "select 3 as three"), bind("", ""), describePortal(""), execute("", 0),
			sync_),
		// An error in the middle: everything up to Sync is discarded.
		send(
			parse("", "select 1"), bind("", ""), execute("", 0),
			parse("", "selec broken"), bind("", ""), execute("", 0),
			parse("b", "select 99"), bind("", "b"), execute("", 0),
			sync_),
		send(sync_),
		send(describeStmt("b"), sync_), // never parsed: 26000
		// Several Syncs in one write, an error in the middle one.
		send(
			parse("", "select 1"), bind("", ""), execute("", 0), sync_,
			parse("", "select 1/0"), bind("", ""), execute("", 0), sync_,
			parse("", "select 3"), bind("", ""), execute("", 0), sync_),
		// Inside a transaction an error poisons the following Syncs.
		send(query("begin"),
			parse("", "select 1/0"), bind("", ""), execute("", 0), sync_,
			parse("", "select 2"), bind("", ""), execute("", 0), sync_,
			query("rollback")),
		send(many(300)...), // more than one read of the relay's buffer
	}},
	{"flush", []wireStep{
		send(parse("f", "select 42 as answer"), flush).upTo('1'),
		send(bind("", "f"), describePortal(""), execute("", 0), flush).upTo('C'),
		send(sync_),
		send(parse("", "selec"), flush).upTo('E'),
		send(bind("", ""), execute("", 0), sync_), // discarded until Sync
		send(parse("", "select pg_sleep(0.01)"), bind("", ""), execute("", 0), flush).upTo('C'),
		send(sync_),
	}},
	{"copy", []wireStep{
		send(query("create temp table ct (id int, name text)")),
		send(query("copy ct from stdin")).upTo('G'),
		send(copyData("1\tone\n"), copyData("2\ttwo\n3\tth"), copyData("ree\n"), &pgproto3.CopyDone{}),
		send(query("copy ct to stdout")),
		send(query("copy (select * from ct order by id) to stdout with (format binary)")),
		send(query("copy ct from stdin")).upTo('G'),
		send(copyData("bad line\n"), &pgproto3.CopyDone{}),
		send(query("copy ct from stdin")).upTo('G'),
		send(copyData("4\tfour\n"), &pgproto3.CopyFail{Message: "client gave up"}),
		send(query("copy ct (id, name) from stdin with (format csv)")).upTo('G'),
		send(copyData(strings.Repeat("5,\"a long, quoted value\"\n", 2000)), &pgproto3.CopyDone{}),
		send(query("select count(*), count(distinct name) from ct")),
		send(parse("", "copy (select id from ct order by id limit 3) to stdout"), bind("", ""), execute("", 0), sync_),
		send(parse("", "copy ct from stdin"), bind("", ""), execute("", 0), flush).upTo('G'),
		send(copyData("6\tsix\n"), &pgproto3.CopyDone{}, sync_),
		send(query("copy (select g, repeat('y', 50000) from generate_series(1, 3) g) to stdout")), // CopyData over the buffer
		send(query("select count(*) from ct")),
	}},
	{"notices and parameter status", []wireStep{
		send(query("do $$ begin raise notice 'hello %', 42; end $$")),
		send(query("do $$ begin raise warning 'careful' using detail = 'a detail', hint = 'a hint'; end $$")),
		send(query("set client_min_messages = warning; do $$ begin raise notice 'hidden'; raise warning 'shown'; end $$")),
		send(query("set application_name = 'wire-script'")),
		send(query("set TimeZone = 'UTC'; set DateStyle = 'German'; select '2024-01-02'::date")),
		send(parse("", "set application_name = 'extended'"), bind("", ""), execute("", 0), sync_),
		send(query("begin; set local application_name = 'local'; commit")), // two changes
		send(query("reset all")),
		send(query("do $$ begin raise exception 'custom' using errcode = 'P0042', detail = 'd'; end $$")),
	}},
	{"listen notify", []wireStep{
		send(query("listen wire_script_channel")),
		send(query("notify wire_script_channel, 'payload'")),
		send(query("select pg_notify('wire_script_channel', 'from a function')")),
		send(query("begin; notify wire_script_channel, 'held'; select 1; commit")),
		send(parse("", "notify wire_script_channel, 'extended'"), bind("", ""), execute("", 0), sync_),
		send(query("unlisten *; notify wire_script_channel, 'unheard'")),
	}},
	{"function call", []wireStep{
		send(funcCall(oidInt4pl, 1, int4(40), int4(2))),
		send(funcCall(oidTextlen, 0, []byte("hello"))), // text format
		send(funcCall(oidUpper, 0, []byte("shout"))),   // 42P22: no collation on this path
		send(funcCall(oidInt4pl, 1, nil, int4(2))),     // strict: NULL
		send(funcCall(oidInt4div, 1, int4(1), int4(0))),
		send(funcCall(4294967000, 1)), // no such function
		send(query("begin"), funcCall(oidInt4div, 1, int4(1), int4(0)), funcCall(oidInt4pl, 1, int4(1), int4(1)), query("rollback")),
	}},
}

// many is a pipeline of n small statements and one Sync.
func many(n int) []pgproto3.FrontendMessage {
	msgs := []pgproto3.FrontendMessage{parse("m", "select $1::int as i, repeat('z', $1::int) as pad")}
	for i := range n {
		msgs = append(msgs, bind("", "m", fmt.Sprint(i)), execute("", 0))
	}
	return append(msgs, sync_)
}

// runScript runs a script in a new session on addr and returns the
// normalized answer to the start-up and to each step, then checks that
// Terminate closes the connection.
func runScript(t *testing.T, addr string, sc wireScript) [][]string {
	t.Helper()
	w := dialWire(t, addr)
	answers := [][]string{w.startup(pgtest.TrustUser, "application_name", "wire-script-start")}
	for i, st := range sc.steps {
		w.send(st.send...)
		typ, n := st.readRule()
		got, err := w.readUntil(typ, n)
		if err != nil {
			t.Fatalf("%s step %d: %v after %q", addr, i, err, got)
		}
		answers = append(answers, got)
	}
	w.send(&pgproto3.Terminate{})
	w.expectClosed()
	return answers
}

// The same wire scripts get the same answers directly and through pgcloak,
// with a pass-through session (nothing decoded; on the event loop, and on
// the goroutine relay) and with a policy that decodes every SQL-carrying
// message and forwards it.
func TestTransparency(t *testing.T) {
	_, plain := startProxy(t, proxy.Config{})
	_, goroutines := startProxy(t, proxy.Config{GoroutineRelay: true})
	_, decoding := startProxy(t, proxy.Config{Policy: passPolicy{}})
	for _, sc := range wireScripts {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			want := runScript(t, pg.Addr(), sc)
			for _, via := range []struct{ name, addr string }{
				{"pgcloak", plain}, {"pgcloak, goroutine relay", goroutines}, {"pgcloak with policy", decoding},
			} {
				got := runScript(t, via.addr, sc)
				for i := range want {
					if strings.Join(got[i], "\n") != strings.Join(want[i], "\n") {
						what := "start-up"
						if i > 0 {
							what = fmt.Sprintf("step %d (%T…)", i-1, sc.steps[i-1].send[0])
						}
						t.Fatalf("%s, %s differs:\ndirect:\n\t%s\n%s:\n\t%s", via.name, what,
							strings.Join(want[i], "\n\t"), via.name, strings.Join(got[i], "\n\t"))
					}
				}
			}
		})
	}
}

// Start-ups that PostgreSQL negotiates rather than refuses (a 3.x minor
// version it does not speak, a protocol option it does not know) get the
// same answer through pgcloak.
func TestTransparencyNegotiation(t *testing.T) {
	_, addr := startProxy(t, proxy.Config{})
	for _, packet := range [][]byte{
		startupPacket(3<<16|1, "user", pgtest.TrustUser, "database", pgtest.Database),
		startupPacket(3<<16|2, "user", pgtest.TrustUser, "database", pgtest.Database),
		startupPacket(3<<16, "user", pgtest.TrustUser, "database", pgtest.Database, "_pq_.pgcloak_test", "on"),
	} {
		var answers [2][]string
		for i, a := range []string{pg.Addr(), addr} {
			w := dialWire(t, a)
			w.sendRaw(packet)
			var err error
			if answers[i], err = w.readUntil('Z', 1); err != nil {
				t.Fatalf("%s, start-up %q: %v after %v", a, packet, err, answers[i])
			}
		}
		if strings.Join(answers[0], "\n") != strings.Join(answers[1], "\n") {
			t.Fatalf("start-up %q:\ndirect:\n\t%s\npgcloak:\n\t%s", packet,
				strings.Join(answers[0], "\n\t"), strings.Join(answers[1], "\n\t"))
		}
	}
}

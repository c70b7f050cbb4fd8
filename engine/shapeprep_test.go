package engine_test

// A shape hit run as a prepared statement (rewrite/shapeprep.go,
// proxy/shapeprep.go), end to end through pgcloak as the sample sales rep
// in the simple protocol: every statement of a shape gets the answer the
// cold rewrite of the statement gets (rows, masks, tags, errors), the
// prepared statement is what the server ran, and the session's state
// (transactions, errors, DISCARD ALL, pipelines) stays the client's.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgcloak/pgcloak/audit"
	"github.com/pgcloak/pgcloak/examples/crm"
	"github.com/pgcloak/pgcloak/internal/cloaktest"
	"github.com/pgcloak/pgcloak/proxy"
	"github.com/pgcloak/pgcloak/rewrite"
)

// recordLog keeps the access records in memory.
type recordLog struct {
	mu   sync.Mutex
	recs []*audit.Record
}

func (l *recordLog) Emit(r *audit.Record) { l.mu.Lock(); l.recs = append(l.recs, r); l.mu.Unlock() }
func (l *recordLog) Admit() error         { return nil }

func (l *recordLog) last() *audit.Record {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := len(l.recs) - 1; i >= 0; i-- {
		if l.recs[i].Type == audit.TypeStatement {
			return l.recs[i]
		}
	}
	return nil
}

// prepFront is a pgcloak of its own on the package's engine, whose
// counts and access log the test reads, and a tap between it and the
// server.
type prepFront struct {
	*cloaktest.Cloak
	log *recordLog
	tap *tap
}

func newPrepFront(t *testing.T) *prepFront {
	log := &recordLog{}
	tp := newTap(t)
	return &prepFront{cloaktest.Serve(t, proxy.Config{Upstream: tp.addr, Policy: eng, AccessLog: log}), log, tp}
}

// tap relays connections to the server and records what pgcloak sends
// on them: each message's type, with the statement name of a Parse, Bind
// or Close.
type tap struct {
	addr string
	mu   sync.Mutex
	msgs []string
}

func newTap(t *testing.T) *tap {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	tp := &tap{addr: l.Addr().String()}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", pg.Addr())
			if err != nil {
				c.Close()
				continue
			}
			go func() {
				io.Copy(c, up)
				c.Close()
			}()
			go func() {
				tp.read(io.TeeReader(c, up))
				up.Close()
			}()
		}
	}()
	return tp
}

func (tp *tap) read(r io.Reader) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:4]); err != nil {
		return
	}
	if _, err := io.CopyN(io.Discard, r, int64(binary.BigEndian.Uint32(hdr[:4]))-4); err != nil {
		return
	}
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return
		}
		body := make([]byte, binary.BigEndian.Uint32(hdr[1:])-4)
		if _, err := io.ReadFull(r, body); err != nil {
			return
		}
		m := string(hdr[0])
		switch hdr[0] {
		case 'P':
			m += " " + string(body[:bytes.IndexByte(body, 0)])
		case 'B':
			portal := bytes.IndexByte(body, 0)
			m += " " + string(body[portal+1:portal+1+bytes.IndexByte(body[portal+1:], 0)])
		case 'C':
			m += " " + string(body[1:len(body)-1])
		}
		tp.mu.Lock()
		tp.msgs = append(tp.msgs, m)
		tp.mu.Unlock()
	}
}

// count returns how many messages recorded start with prefix.
func (tp *tap) count(prefix string) int {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	n := 0
	for _, m := range tp.msgs {
		if strings.HasPrefix(m, prefix) {
			n++
		}
	}
	return n
}

func (f *prepFront) as(t *testing.T, login string) *pgconn.PgConn {
	t.Helper()
	c, err := pgconn.Connect(context.Background(), f.DSN(login, crm.DemoPassword))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

func (f *prepFront) executed() int64 { _, _, e := f.ShapeStatements(); return e }
func (f *prepFront) prepared() int64 { p, _, _ := f.ShapeStatements(); return p }

// answer runs sql in the simple protocol and prints what came back: for
// each result its columns (name and type), rows and tag, or the error.
func answer(c *pgconn.PgConn, sql string) string {
	results, err := c.Exec(context.Background(), sql).ReadAll()
	var b strings.Builder
	for _, r := range results {
		for _, f := range r.FieldDescriptions {
			fmt.Fprintf(&b, "%s:%d ", f.Name, f.DataTypeOID)
		}
		for _, row := range r.Rows {
			b.WriteString("\n")
			for _, v := range row {
				if v == nil {
					b.WriteString("NULL|")
				} else {
					fmt.Fprintf(&b, "%s|", v)
				}
			}
		}
		fmt.Fprintf(&b, "\n%s\n", r.CommandTag)
	}
	if err != nil {
		var pe *pgconn.PgError
		if errors.As(err, &pe) {
			fmt.Fprintf(&b, "ERROR %s %s", pe.Code, pe.Message)
		} else {
			fmt.Fprintf(&b, "ERROR %v", err)
		}
	}
	return b.String()
}

// cold is sql as its own shape (a comment no other statement has): the
// cold rewrite's answer.
var coldN int

func cold(sql string) string {
	coldN++
	return fmt.Sprintf("/* cold %d */ %s", coldN, sql)
}

// northIDs returns customers of alice's region, and of another.
func northIDs(t *testing.T) (north, south []int64) {
	t.Helper()
	ctx := context.Background()
	db := cloaktest.Admin(t, pg)
	for region, dst := range map[string]*[]int64{"north": &north, "south": &south} {
		rows, err := db.Query(ctx, "SELECT customer_id FROM customers WHERE region = $1 ORDER BY customer_id LIMIT 10", region)
		if err != nil {
			t.Fatal(err)
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil || len(ids) < 5 {
			t.Fatalf("customers of %s: %v %v", region, ids, err)
		}
		*dst = ids
	}
	return north, south
}

// inBlock runs sql in a transaction block that end ends, as a statement
// of its shape and as its cold rewrite, and returns both answers.
func inBlock(c *pgconn.PgConn, sql, end string) (hit, coldAnswer string) {
	for _, s := range []struct {
		out *string
		sql string
	}{{&hit, "/* prepared */ " + sql}, {&coldAnswer, cold(sql)}} {
		answer(c, "BEGIN")
		*s.out = answer(c, s.sql)
		answer(c, end)
	}
	return hit, coldAnswer
}

// sameAsColdRun runs each statement as a hit (after two that prime the
// shape) and as a cold rewrite, and fails unless both answers are equal.
// It returns how many ran as the prepared statement.
func sameAsColdRun(t *testing.T, f *prepFront, c *pgconn.PgConn, stmts []string) int64 {
	t.Helper()
	before := f.executed()
	for i, sql := range stmts {
		hit := answer(c, "/* prepared */ "+sql)
		if want := answer(c, cold(sql)); hit != want {
			t.Fatalf("statement %d answered\n%s\nits cold rewrite\n%s\n%s", i, hit, want, sql)
		}
	}
	return f.executed() - before
}

func TestShapePreparedAnswers(t *testing.T) {
	f := newPrepFront(t)
	alice := f.as(t, "alice")
	north, south := northIDs(t)
	var stmts []string
	for i := range 10 {
		for _, id := range []int64{north[i], south[i]} {
			stmts = append(stmts, fmt.Sprintf(
				"SELECT customer_id, first_name, last_name, email, phone, city, region, national_id FROM customers WHERE customer_id = %d", id))
		}
	}
	stmts = append(stmts, "SELECT customer_id, first_name, last_name, email, phone, city, region, national_id FROM customers WHERE customer_id = 999999999")
	if n := sameAsColdRun(t, f, alice, stmts); n < int64(len(stmts))-4 {
		t.Fatalf("%d of %d statements ran as the prepared statement", n, len(stmts))
	}
	// On the wire: one Parse of the template, a Bind for each statement
	// run as it.
	if p, b := f.tap.count("P "+rewrite.PreparedPrefix), f.tap.count("B "+rewrite.PreparedPrefix); p != 1 || int64(b) != f.executed() {
		t.Fatalf("the server got %d Parses and %d Binds of shape statements; %d ran as one", p, b, f.executed())
	}
	// The access log has the statement as a simple Query, with its rows.
	answer(alice, "/* prepared */ "+stmts[0])
	if r := f.log.last(); r == nil || r.Protocol != "simple" || r.Rows == nil || *r.Rows != 1 || r.Statement == nil {
		t.Fatalf("access record %+v", r)
	}
	answer(alice, "/* prepared */ "+stmts[len(stmts)-1])
	if r := f.log.last(); r == nil || r.Rows == nil || *r.Rows != 0 {
		t.Fatalf("access record %+v", r)
	}
}

// Literals of every type the prepared form takes, values and strings with
// quotes, against the cold rewrite.
func TestShapePreparedLiterals(t *testing.T) {
	f := newPrepFront(t)
	alice := f.as(t, "alice")
	north, _ := northIDs(t)
	var stmts []string
	// Each list primes its shapes with two statements, and then runs the
	// same shapes with int4, int8 and numeric parameters: statements of
	// another name, each prepared at its first statement and used at the
	// next ones.
	for _, n := range []string{"1", "2", "3", "2147483647", "7",
		"1.5", "2.5", "2147483648", "3000000000", "9223372036854775807", "4000000000",
		"99999999999999999999", "1e3", ".5", "0.000001", "12345678901234567890123"} {
		stmts = append(stmts,
			fmt.Sprintf("SELECT count(*), sum(total_amount) FROM orders WHERE total_amount > %s AND customer_id < %s", n, n),
			fmt.Sprintf("SELECT %s AS n, customer_id FROM customers WHERE customer_id = %d", n, north[0]))
	}
	for _, s := range []string{"'O''Brien'", "''", "'a''b''''c'", `'back\slash'`, "'€ unicode'", "'$1'", "'x'' OR ''1''=''1'"} {
		stmts = append(stmts,
			fmt.Sprintf("SELECT %s::text AS v, first_name FROM customers WHERE customer_id = %d", s, north[1]),
			fmt.Sprintf("SELECT customer_id, email FROM customers WHERE last_name = %s OR city = %s", s, s))
	}
	// int4: 1 of 5 statements of each shape; int8: 2 of 4; numeric: 3
	// of 5; strings: 3 of 7.
	if n := sameAsColdRun(t, f, alice, stmts); n != 2*(1+2+3+3) {
		t.Fatalf("%d statements ran as a prepared statement", n)
	}
	if n := f.tap.count("P " + rewrite.PreparedPrefix); n != 2*4 {
		t.Fatalf("%d statements prepared", n)
	}
	if got := answer(alice, fmt.Sprintf("/* prepared */ SELECT 'O''Brien'::text AS v, first_name FROM customers WHERE customer_id = %d", north[1])); !strings.Contains(got, "O'Brien|") {
		t.Fatalf("a quoted string came back as %s", got)
	}
}

// Errors in the prepared execution reach the client as the Query's, and
// the session goes on.
func TestShapePreparedErrors(t *testing.T) {
	f := newPrepFront(t)
	alice := f.as(t, "alice")
	north, _ := northIDs(t)
	div := func(d int) string {
		return fmt.Sprintf("SELECT customer_id, 100 / %d AS q FROM customers WHERE customer_id = %d", d, north[0])
	}
	byKey := func(k string) string { return "SELECT first_name FROM customers WHERE customer_id = " + k }
	stmts := []string{div(1), div(2), div(3), div(4), div(0), div(5), div(0),
		byKey("'1'"), byKey("'2'"), byKey("'3'"), byKey(fmt.Sprintf("'%d'", north[2])), byKey("'abc'"), byKey("'4'")}
	if n := sameAsColdRun(t, f, alice, stmts); n < 5 {
		t.Fatalf("%d statements ran as the prepared statement", n)
	}
	for _, want := range []struct{ sql, code string }{{div(0), "22012"}, {byKey("'abc'"), "22P02"}} {
		executed := f.executed()
		if got := answer(alice, "/* prepared */ "+want.sql); !strings.Contains(got, "ERROR "+want.code) {
			t.Fatalf("%s: %s", want.sql, got)
		}
		if r := f.log.last(); f.executed() != executed+1 || r == nil || r.SQLState != want.code || r.Protocol != "simple" {
			t.Fatalf("%s: access record %+v", want.sql, r)
		}
	}

	// A failed transaction, then a transaction rolled back: as cold.
	executed := f.executed()
	var answers []string
	for _, run := range []func(string) string{
		func(sql string) string { return answer(alice, "/* prepared */ "+sql) },
		func(sql string) string { return answer(alice, cold(sql)) },
	} {
		var got []string
		// (Not the texts that primed the shapes, which the result cache
		// answers with their cold rewrite.)
		for _, sql := range []string{"BEGIN", div(11), div(0), div(12), "ROLLBACK", div(6),
			"BEGIN", div(7), byKey("'5'"), "ROLLBACK", div(8)} {
			if sql == "BEGIN" || sql == "ROLLBACK" {
				got = append(got, answer(alice, sql))
				continue
			}
			got = append(got, run(sql))
		}
		if status := alice.TxStatus(); status != 'I' {
			t.Fatalf("transaction status %c", status)
		}
		if !strings.Contains(got[3], "ERROR 25P02") || !strings.Contains(got[2], "ERROR 22012") {
			t.Fatalf("in a failed transaction: %v", got)
		}
		answers = append(answers, strings.Join(got, "\n"))
	}
	if answers[0] != answers[1] {
		t.Fatalf("in transactions:\n%s\ncold:\n%s", answers[0], answers[1])
	}
	if n := f.executed() - executed; n != 7 {
		t.Fatalf("%d statements in transactions ran as the prepared statement", n)
	}
}

// DISCARD ALL and DEALLOCATE ALL drop the server's statements: the shape
// is prepared again.
func TestShapePreparedDiscard(t *testing.T) {
	f := newPrepFront(t)
	alice := f.as(t, "alice")
	north, _ := northIDs(t)
	sql := func(i int) string {
		return fmt.Sprintf("/* prepared */ SELECT first_name, phone FROM customers WHERE customer_id = %d", north[i%len(north)])
	}
	for i := range 5 {
		answer(alice, sql(i))
	}
	for _, reset := range []string{"DISCARD ALL", "DEALLOCATE ALL", "DISCARD ALL"} {
		prepared, executed := f.prepared(), f.executed()
		if got := answer(alice, reset); strings.Contains(got, "ERROR") {
			t.Fatalf("%s: %s", reset, got)
		}
		for i := range 4 {
			got := answer(alice, sql(i))
			if want := answer(alice, cold(sql(i))); got != want || strings.Contains(got, "ERROR") {
				t.Fatalf("after %s: %s, want %s", reset, got, want)
			}
		}
		if f.prepared() != prepared+1 || f.executed() <= executed {
			t.Fatalf("after %s: prepared %d → %d, executed %d → %d", reset, prepared, f.prepared(), executed, f.executed())
		}
	}
}

// Writes: the tags are the cold rewrite's.
func TestShapePreparedWrites(t *testing.T) {
	f := newPrepFront(t)
	alice := f.as(t, "alice")
	north, south := northIDs(t)
	var got, want []string
	for i := range 8 {
		for _, id := range []int64{north[i], south[i]} {
			sql := fmt.Sprintf("UPDATE customers SET segment = 'premium' WHERE customer_id = %d AND segment <> 'x''y'", id)
			hit, c := inBlock(alice, sql, "ROLLBACK")
			got, want = append(got, hit), append(want, c)
		}
	}
	if strings.Join(got, "") != strings.Join(want, "") {
		t.Fatalf("updates answered\n%v\ncold\n%v", got, want)
	}
	if !strings.Contains(strings.Join(got, ""), "UPDATE 1") || !strings.Contains(strings.Join(got, ""), "UPDATE 0") {
		t.Fatalf("tags %v", got)
	}
	if f.executed() == 0 {
		t.Fatal("no update ran as a prepared statement")
	}
}

// Pipelined Queries get their answers in order.
func TestShapePreparedPipeline(t *testing.T) {
	f := newPrepFront(t)
	north, south := northIDs(t)
	raw := cloaktest.DialRaw(t, f.Addr, "alice")
	q := func(id int64) *pgproto3.Query {
		return &pgproto3.Query{String: fmt.Sprintf("/* prepared */ SELECT customer_id, first_name, phone FROM customers WHERE customer_id = %d", id)}
	}
	var one []string
	for i := range 6 {
		one = append(one, raw.RoundTrip(t, 1, q(north[i])))
	}
	one = append(one, raw.RoundTrip(t, 1, q(south[0])))
	if f.executed() == 0 {
		t.Fatal("no statement ran as a prepared statement")
	}
	want := strings.Join(one, "")
	got := raw.RoundTrip(t, 7, q(north[0]), q(north[1]), q(north[2]), q(north[3]), q(north[4]), q(north[5]), q(south[0]))
	if got != want {
		t.Fatalf("pipelined:\n%s\none by one:\n%s", got, want)
	}
	// An error inside the pipeline ends only its own Query.
	bad := &pgproto3.Query{String: "/* prepared */ SELECT customer_id, first_name, phone FROM customers WHERE customer_id = 1/0"}
	got = raw.RoundTrip(t, 3, q(north[0]), bad, q(north[1]))
	if !strings.HasPrefix(got, one[0]) || !strings.HasSuffix(got, one[1]) || !strings.Contains(got, "ErrorResponse 22012") {
		t.Fatalf("pipeline with an error:\n%s", got)
	}
}

// Statement names with pgcloak's prefix are refused to restricted
// sessions, in every form.
func TestShapePreparedNamesReserved(t *testing.T) {
	f := newPrepFront(t)
	alice := f.as(t, "alice")
	name := rewrite.PreparedPrefix + "0123"
	if rewrite.PreparedPrefix != proxy.ShapePrefix {
		t.Fatalf("prefixes %q and %q", rewrite.PreparedPrefix, proxy.ShapePrefix)
	}
	_, err := alice.Prepare(context.Background(), name, "SELECT first_name FROM customers WHERE customer_id = $1", nil)
	wantRefused(t, err, "42501", "(rule: fail_closed)")
	for _, sql := range []string{
		"PREPARE " + name + " AS SELECT first_name FROM customers WHERE customer_id = 1",
		"EXECUTE " + name,
		"DEALLOCATE " + name,
		"DEALLOCATE PREPARE " + name,
	} {
		if got := answer(alice, sql); !strings.Contains(got, "ERROR 42501") || !strings.Contains(got, "reserved") {
			t.Fatalf("%s: %s", sql, got)
		}
	}
	raw := cloaktest.DialRaw(t, f.Addr, "alice")
	got := raw.RoundTrip(t, 1, &pgproto3.Close{ObjectType: 'S', Name: name}, &pgproto3.Sync{})
	if !strings.Contains(got, "ErrorResponse 42501 pgcloak: statement names starting with") {
		t.Fatalf("Close: %s", got)
	}
	got = raw.RoundTrip(t, 1, &pgproto3.Bind{PreparedStatement: name}, &pgproto3.Execute{}, &pgproto3.Sync{})
	if !strings.Contains(got, "ErrorResponse 42501") {
		t.Fatalf("Bind: %s", got)
	}
	got = raw.RoundTrip(t, 1, &pgproto3.Describe{ObjectType: 'S', Name: name}, &pgproto3.Sync{})
	if !strings.Contains(got, "ErrorResponse 42501 pgcloak: statement names starting with") {
		t.Fatalf("Describe: %s", got)
	}
}

// A template PostgreSQL cannot prepare (a string parameter whose type
// nothing determines) fails out of the client's sight: its statements go
// as text, and answer as cold.
func TestShapePreparedUnpreparable(t *testing.T) {
	f := newPrepFront(t)
	alice := f.as(t, "alice")
	north, _ := northIDs(t)
	var stmts []string
	for i := range 6 {
		stmts = append(stmts, fmt.Sprintf("SELECT 'v%d' IS NULL AS n, first_name FROM customers WHERE customer_id = %d", i, north[i]))
	}
	if n := sameAsColdRun(t, f, alice, stmts); n != 0 {
		t.Fatalf("%d statements ran as a prepared statement", n)
	}
	if _, failed, _ := f.ShapeStatements(); failed != 1 {
		t.Fatalf("%d statements failed to prepare, want 1 (and only once)", failed)
	}
	for _, sql := range stmts {
		if got := answer(alice, "/* prepared */ "+sql); strings.Contains(got, "ERROR") {
			t.Fatal(got)
		}
	}
	// A bare string in the select list is typed text, as the literal is.
	stmts = stmts[:0]
	for i := range 6 {
		stmts = append(stmts, fmt.Sprintf("SELECT 'it''s %d' AS v, first_name FROM customers WHERE customer_id = %d", i, north[i]))
	}
	if n := sameAsColdRun(t, f, alice, stmts); n != 2 {
		t.Fatalf("%d statements ran as a prepared statement", n)
	}
}

// A client that runs every statement in a transaction block (psycopg2's
// default) gets the prepared statement too: it is prepared while the
// session is idle, before the next BEGIN.
func TestShapePreparedInTransactions(t *testing.T) {
	f := newPrepFront(t)
	alice := f.as(t, "alice")
	north, south := northIDs(t)
	var got, want []string
	for i := range 8 {
		sql := fmt.Sprintf("SELECT first_name, phone, national_id FROM customers WHERE customer_id IN (%d, %d)", north[i], south[i])
		hit, c := inBlock(alice, sql, "COMMIT")
		got, want = append(got, hit), append(want, c)
	}
	if strings.Join(got, "") != strings.Join(want, "") {
		t.Fatalf("answered\n%v\ncold\n%v", got, want)
	}
	// Statements 3 (a hit, run as text), 4 (a hit: wanted) and 5
	// (prepared before its BEGIN, run) on: 4 of 8.
	if n := f.executed(); n != 4 {
		t.Fatalf("%d statements ran as a prepared statement", n)
	}
}

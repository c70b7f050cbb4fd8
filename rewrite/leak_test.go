package rewrite_test

// The leak suite of issue 4: canaries are planted in every protected cell
// some restricted role must not see raw (leak_plant_test.go), then the
// hostile queries of testdata/hostile/*.sql run as every restricted login
// through pgcloak, in the simple protocol and in the extended protocol
// (as pgx sends them in its simple protocol and statement cache modes),
// and no canary may come back in any message. Error and existence probes must behave the same whether or not
// the hidden value they probe exists. Every query of the suite must also
// survive a parse → deparse → parse round trip with the same fingerprint.
//
// The suite runs in a database of its own (pgcloak_leak) with its own
// engine and proxy, so that its canaries, views and functions never meet
// the golden tests' data.

import (
	"context"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"
	pg_query "github.com/pganalyze/pg_query_go/v6"

	"github.com/pgcloak/pgcloak/engine"
	"github.com/pgcloak/pgcloak/examples/crm"
	"github.com/pgcloak/pgcloak/internal/pgtest"
	"github.com/pgcloak/pgcloak/proxy"
	"github.com/pgcloak/pgcloak/rules"
	"github.com/pgcloak/pgcloak/schema"
)

const (
	leakDB       = "pgcloak_leak"
	leakPassword = crm.DemoPassword
)

// hostileObjects are what a careless or hostile superuser leaves in the
// database: views, a materialized view, a copy, a child table of a
// protected table, functions and an operator that read or leak protected
// data, a shadow schema, and statistics that hold every value.
const hostileObjects = `
CREATE TABLE customers_vip (vip_note text) INHERITS (customers);
CREATE SCHEMA shadow;
CREATE FUNCTION leak_fn() RETURNS text LANGUAGE sql SECURITY DEFINER
	AS $$ SELECT string_agg(national_id || ' ' || first_name, ',') FROM public.customers $$;
CREATE FUNCTION leak_rows() RETURNS SETOF customers LANGUAGE sql SECURITY DEFINER
	AS $$ SELECT * FROM public.customers $$;
CREATE FUNCTION leak_notice(text) RETURNS boolean LANGUAGE plpgsql COST 0.0001
	AS $$ BEGIN RAISE NOTICE 'leak: %', $1; RETURN true; END $$;
CREATE FUNCTION leak_notice2(text, text) RETURNS boolean LANGUAGE plpgsql LEAKPROOF COST 0.0001
	AS $$ BEGIN RAISE NOTICE 'leak: % %', $1, $2; RETURN true; END $$;
CREATE OPERATOR === (LEFTARG = text, RIGHTARG = text, FUNCTION = leak_notice2);
CREATE FUNCTION public.initcap(integer) RETURNS text LANGUAGE sql AS $$ SELECT leak_fn() $$;
CREATE PROCEDURE leak_proc() LANGUAGE sql AS $$ SELECT 1 $$;
`

const hostileViews = `
CREATE VIEW v_customers AS SELECT * FROM customers;
CREATE VIEW v_sb_customers WITH (security_barrier) AS SELECT * FROM customers WHERE region = 'south';
CREATE VIEW v_invoker_customers WITH (security_invoker) AS SELECT national_id, first_name FROM customers;
CREATE VIEW v_nested AS SELECT * FROM v_customers;
CREATE VIEW v_func AS SELECT leak_fn() AS x;
CREATE VIEW v_stats AS SELECT tablename, attname, most_common_vals::text AS mcv, histogram_bounds::text AS histogram FROM pg_stats;
CREATE MATERIALIZED VIEW mv_customers AS SELECT customer_id, national_id, first_name FROM customers;
CREATE TABLE customers_copy AS SELECT * FROM customers;
CREATE VIEW shadow.customers AS SELECT * FROM public.customers;
CREATE TABLE shadow.orders AS SELECT * FROM public.orders;
CREATE TABLE shadow.accounts AS SELECT account_id, 'north'::text AS region FROM public.accounts;
CREATE TABLE shadow.customer_opt_outs AS SELECT * FROM public.customer_opt_outs WHERE false;
CREATE STATISTICS customers_mcv (mcv) ON religion, national_id FROM customers;
ALTER TABLE customers ALTER COLUMN national_id SET STATISTICS 10000;
ALTER TABLE customers ALTER COLUMN first_name SET STATISTICS 10000;
ALTER TABLE customers ALTER COLUMN street SET STATISTICS 10000;
ANALYZE;
GRANT USAGE ON SCHEMA shadow TO PUBLIC;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public, shadow TO PUBLIC;
`

// leakEnv is the suite's database, engine and proxy.
type leakEnv struct {
	addr   string
	policy *rules.Policy
	plant  *planting
	super  *pgx.Conn
	eng    *engine.Engine
}

func setupLeak(t *testing.T) *leakEnv {
	t.Helper()
	ctx := context.Background()
	admin := direct(t)
	if _, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+leakDB+" WITH (FORCE)"); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+leakDB); err != nil {
		t.Fatal(err)
	}
	dsn := pg.DSN(pgtest.SuperUser, leakDB)
	super, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { super.Close(context.Background()) })
	if _, err := crm.Load(ctx, super, crm.Options{Customers: 40, Seed: 11}); err != nil {
		t.Fatal(err)
	}
	if err := schema.Setup(ctx, super.Exec); err != nil {
		t.Fatal(err)
	}
	if _, err := super.Exec(ctx, hostileObjects); err != nil {
		t.Fatal("hostile objects:", err)
	}
	plant, err := plantCanaries(ctx, super)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := super.Exec(ctx, hostileViews); err != nil {
		t.Fatal("hostile views:", err)
	}
	pol, err := rules.Parse("rules.yaml", crm.Rules)
	if err != nil {
		t.Fatal(err)
	}
	eng := engine.NewEngine(func() *rules.Policy { return pol }, dsn, nil)
	ectx, cancel := context.WithCancel(ctx)
	t.Cleanup(cancel)
	if err := eng.Start(ectx, time.Minute); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := proxy.New(proxy.Config{Upstream: pg.Addr(), Database: leakDB, Policy: eng})
	go srv.Serve(l)
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	})
	return &leakEnv{addr: l.Addr().String(), policy: pol, plant: plant, super: super, eng: eng}
}

// hostileQuery is one entry of testdata/hostile.
type hostileQuery struct {
	pos      string // file:line
	group    string
	sql      string // with ${ROW.col} placeholders
	probe    bool   // compare the outcome for the hidden value and for an absent one
	args     []string
	multi    bool // several statements: simple protocol only
	write    bool // may write: runs inside a transaction that is rolled back
	stateful bool // may leave session state behind (cursors, statements, settings, listeners)
}

// loadHostile reads the data files. A file is a sequence of groups, each
// opened by a line "-- group: technique"; comment lines right after it
// describe the group. Entries are separated by blank lines. Lines "-- @probe"
// and "-- @args a, b" at the start of an entry are directives; any other
// comment line belongs to the SQL.
func loadHostile(t testing.TB) []*hostileQuery {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "hostile", "*.sql"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no hostile query files: %v", err)
	}
	sort.Strings(files)
	var out []*hostileQuery
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		group := ""
		var cur *hostileQuery
		var lines []string
		flush := func() {
			if cur != nil && group != "" {
				sql := strings.TrimSpace(strings.Join(lines, "\n"))
				allComments := true
				for _, l := range lines {
					if s := strings.TrimSpace(l); s != "" && !strings.HasPrefix(s, "--") {
						allComments = false
					}
				}
				if !allComments {
					cur.sql = sql
					out = append(out, cur)
				}
			}
			cur, lines = nil, nil
		}
		for i, line := range strings.Split(string(data), "\n") {
			line = strings.TrimRight(line, " ")
			switch {
			case strings.HasPrefix(line, "-- group: "):
				flush()
				group = strings.TrimPrefix(line, "-- group: ")
			case strings.TrimSpace(line) == "":
				flush()
			default:
				if cur == nil {
					cur = &hostileQuery{pos: fmt.Sprintf("%s:%d", filepath.Base(f), i+1), group: group}
				}
				switch {
				case len(lines) == 0 && line == "-- @probe":
					cur.probe = true
				case len(lines) == 0 && strings.HasPrefix(line, "-- @args "):
					for _, a := range strings.Split(strings.TrimPrefix(line, "-- @args "), ",") {
						cur.args = append(cur.args, strings.TrimSpace(a))
					}
				default:
					lines = append(lines, line)
				}
			}
		}
		flush()
	}
	for _, q := range out {
		if tree, err := pg_query.Parse(q.sql); err == nil && len(tree.Stmts) > 1 {
			q.multi = true
		}
		q.write = writeWords.MatchString(q.sql)
		q.stateful = stateWords.MatchString(q.sql)
	}
	return out
}

// writeWords marks requests that may change the planted data, stateWords
// those that may change the session.
var (
	writeWords = regexp.MustCompile(`(?i)\b(insert|update|delete|merge|truncate|copy)\b`)
	stateWords = regexp.MustCompile(`(?i)\b(prepare|declare|listen|set|reset|begin|start|load|discard)\b`)
)

var placeholder = regexp.MustCompile(`\$\{([A-Z][A-Z0-9]*(?:_[a-z_]+)?)\.([a-z_]+)\}`)

// expand replaces the placeholders by the cells' values and returns the
// cells named. The cells whose tokens are in absent get values that exist
// nowhere instead: a probe varies only what the role may not see.
func (p *planting) expand(t testing.TB, s string, absent map[string]bool) (string, []*leakCell) {
	var cells []*leakCell
	out := placeholder.ReplaceAllStringFunc(s, func(m string) string {
		sm := placeholder.FindStringSubmatch(m)
		c := p.cells[sm[1]+"."+sm[2]]
		if c == nil {
			t.Fatalf("unknown placeholder %s", m)
		}
		cells = append(cells, c)
		if absent[c.token] {
			return c.absent
		}
		return c.value
	})
	return out, cells
}

// leakChecker finds forbidden tokens in responses.
type leakChecker struct {
	tokens []string // lower case
}

func newLeakChecker(forbidden map[string]bool) *leakChecker {
	c := &leakChecker{}
	for tok := range forbidden {
		c.tokens = append(c.tokens, strings.ToLower(tok))
	}
	sort.Strings(c.tokens)
	return c
}

// variants are the forms a token could take on the way out: as is (case
// folded), reversed, and hex encoded.
func variants(tok string) []string {
	out := []string{tok}
	if strings.HasPrefix(tok, "cnry_") {
		r := []rune(tok)
		slices.Reverse(r)
		out = append(out, string(r), hex.EncodeToString([]byte(tok)), hex.EncodeToString([]byte(strings.ToUpper(tok))))
	}
	return out
}

// find returns the forbidden tokens in r that the request itself did not
// name (a probe that spells a hidden value may get it back in an error
// message about its own text: that is no leak).
func (c *leakChecker) find(request string, r *response) []string {
	req := strings.ToLower(request)
	got := strings.ToLower(strings.Join(r.texts, "\x00"))
	var found []string
	for _, tok := range c.tokens {
		if strings.Contains(req, tok) {
			continue
		}
		for _, v := range variants(tok) {
			if strings.Contains(got, v) {
				found = append(found, tok)
				break
			}
		}
	}
	return found
}

type leakMode struct {
	name string
	run  func(w *wireConn, sql string, args []string) *response
}

// leakModes are pgx's simple protocol mode and its statement cache mode.
// (pgx's exec mode, an unnamed statement, reaches the same Parse decision
// as the named one; rawMessages sends unnamed ones.)
var leakModes = []leakMode{
	{"simple", func(w *wireConn, sql string, args []string) *response { return w.simple(inlineArgs(sql, args)) }},
	{"prepared", (*wireConn).prepared},
}

// inlineArgs puts arguments into the text, as pgx's simple protocol does.
func inlineArgs(sql string, args []string) string {
	for i := len(args); i >= 1; i-- {
		sql = strings.ReplaceAll(sql, fmt.Sprintf("$%d", i), rules.QuoteLiteral(args[i-1]))
	}
	return sql
}

// roleTally counts what happened to one role's requests.
type roleTally struct {
	runs, refused, failed, probes int
}

func TestLeak(t *testing.T) {
	queries := loadHostile(t)
	if len(queries) < 150 {
		t.Fatalf("%d hostile queries; the suite needs at least 150", len(queries))
	}
	for _, g := range rowGroups {
		if !slices.ContainsFunc(queries, func(q *hostileQuery) bool { return q.group == g }) {
			t.Fatalf("rowGroups names %q, which no data file has", g)
		}
	}
	env := setupLeak(t)

	t.Run("roles", func(t *testing.T) {
		for _, role := range leakRoles {
			t.Run(role.login, func(t *testing.T) {
				t.Parallel()
				env.runRole(t, role, queries)
			})
		}
	})
	t.Run("variants", func(t *testing.T) { env.variants(t, queries) })
	t.Run("client_encoding", env.clientEncoding)
	t.Run("late_view", env.lateView)
	t.Run("other_database", env.otherDatabase)
	t.Run("raw_messages", env.rawMessages)
	t.Run("explain_analyze", explainAnalyzeProbe)

	groups := map[string]int{}
	var order []string
	for _, q := range queries {
		if groups[q.group] == 0 {
			order = append(order, q.group)
		}
		groups[q.group]++
	}
	var b strings.Builder
	for _, g := range order {
		fmt.Fprintf(&b, "\n  %3d  %s", groups[g], g)
	}
	t.Logf("%d hostile queries in %d groups:%s", len(queries), len(order), b.String())
}

func (env *leakEnv) role(login string) *leakRole {
	for _, r := range leakRoles {
		if r.login == login {
			return r
		}
	}
	panic(login)
}

// runRole runs every query as one login in every mode and checks each
// response; probes run twice and must agree.
func (env *leakEnv) runRole(t *testing.T, role *leakRole, queries []*hostileQuery) {
	ctx := context.Background()
	w, err := dialWire(ctx, env.addr, role.login, leakDB, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.close()
	forbidden := env.plant.forbidden(env.policy, role)
	check := newLeakChecker(forbidden)
	var tally roleTally
	for _, q := range queries {
		if role.groups != nil && !slices.Contains(role.groups, q.group) {
			continue
		}
		sql, cells := env.plant.expand(t, q.sql, nil)
		var args []string
		for _, a := range q.args {
			e, c := env.plant.expand(t, a, nil)
			args, cells = append(args, e), append(cells, c...)
		}
		// A probe compares the hidden values it names with absent ones;
		// it is no probe for a role that may see all it names.
		probe := q.probe && slices.ContainsFunc(cells, func(c *leakCell) bool { return forbidden[c.token] })
		var absentSQL string
		var absentArgs []string
		if probe {
			absentSQL, _ = env.plant.expand(t, q.sql, forbidden)
			for _, a := range q.args {
				e, _ := env.plant.expand(t, a, forbidden)
				absentArgs = append(absentArgs, e)
			}
		}
		for _, mode := range leakModes {
			if q.multi && mode.name != "simple" {
				continue
			}
			r := env.runOne(t, w, check, q, mode, sql, args, &tally)
			if !probe {
				continue
			}
			tally.probes++
			a := env.runOne(t, w, check, q, mode, absentSQL, absentArgs, &tally)
			if !slices.Equal(r.outcome, a.outcome) {
				t.Errorf("%s [%s] %s: probe outcome depends on a hidden value\nquery:  %s\nexists: %s\nabsent: %s",
					q.pos, mode.name, role.login, sql, strings.Join(r.outcome, " ‖ "), strings.Join(a.outcome, " ‖ "))
			}
		}
	}
	t.Logf("%s: %d forbidden canaries; %d requests (%d refused by pgcloak, %d other errors), %d probe comparisons",
		role.login, len(forbidden), tally.runs, tally.refused, tally.failed, tally.probes)
}

func (env *leakEnv) runOne(t *testing.T, w *wireConn, check *leakChecker, q *hostileQuery, mode leakMode,
	sql string, args []string, tally *roleTally) *response {
	t.Helper()
	if q.write && !q.multi {
		// Writes the role may make must not change the canaries for the
		// next request, nor for the other roles.
		if r := w.simple("BEGIN"); r.broken != nil || r.errored() {
			t.Fatalf("%s [%s] %s: BEGIN: %v %v", q.pos, mode.name, w.login, r.broken, r.outcome)
		}
	}
	start := time.Now()
	r := mode.run(w, sql, args)
	if d := time.Since(start); d > 2*time.Second {
		t.Logf("%s [%s] %s: slow (%v): %s", q.pos, mode.name, w.login, d.Round(time.Millisecond), sql)
	}
	tally.runs++
	switch {
	case slices.ContainsFunc(r.codes, func(c string) bool { return c == "42501" || c == "0A000" }):
		tally.refused++
	case r.errored():
		tally.failed++
	}
	if r.broken != nil {
		t.Errorf("%s [%s] %s: the connection broke: %v\nquery: %s", q.pos, mode.name, w.login, r.broken, sql)
	}
	if leaked := check.find(sql+"\x00"+strings.Join(args, "\x00"), r); len(leaked) > 0 {
		t.Errorf("%s [%s] %s: LEAK of %v\nquery: %s\ngot: %s", q.pos, mode.name, w.login, leaked, sql,
			strings.Join(r.outcome, " ‖ "))
	}
	if err := w.reset(q.stateful); err != nil {
		t.Fatalf("%s [%s] %s: resetting the session: %v", q.pos, mode.name, w.login, err)
	}
	return r
}

// variants runs the direct reads of the suite for sessions that start
// with parameters or statements meant to change what pgcloak applies:
// another purpose than the role's, a search_path through the shadow
// schema (where same-named relations wait), and the delegating
// application naming its end user (it must then see what that user sees,
// and no more).
func (env *leakEnv) variants(t *testing.T, queries []*hostileQuery) {
	cases := []struct {
		login  string
		params map[string]string
		init   string
		as     string // whose canaries apply; the login's when empty
	}{
		{login: "mia", params: map[string]string{"pgcloak.purpose": rules.AutomatedDecision}},
		{login: "ana", params: map[string]string{"pgcloak.purpose": rules.DirectMarketing}},
		{login: "dex", params: map[string]string{"pgcloak.purpose": rules.SensitiveData}},
		{login: "alice", params: map[string]string{"search_path": "shadow, public"}},
		{login: "alice", params: map[string]string{"options": "-c search_path=shadow,public"}},
		{login: "mia", params: map[string]string{"search_path": "shadow, public"}},
		{login: "alice", params: map[string]string{"search_path": "pg_temp, public"}},
		{login: "alice", params: map[string]string{"options": "-c standard_conforming_strings=off"}},
		{login: "alice", params: map[string]string{"pgcloak.end_user": "petra"}},
		{login: "crm_app", init: "SET pgcloak.end_user = 'alice'", as: "alice"},
		{login: "crm_app", init: "SET pgcloak.end_user = 'walt'", as: "walt"},
		{login: "crm_app", init: "SET pgcloak.end_user = 'dana'", as: "walt"}, // refused: the app stays nobody
		{login: "crm_app", as: "walt"}, // nobody: less than the warehouse
	}
	for _, c := range cases {
		t.Run(c.login, func(t *testing.T) {
			w, err := dialWire(context.Background(), env.addr, c.login, leakDB, c.params)
			if err != nil {
				t.Logf("%s with %v refused at connect: %v", c.login, c.params, err)
				return
			}
			defer w.close()
			as := c.as
			if as == "" {
				as = c.login
			}
			check := newLeakChecker(env.plant.forbidden(env.policy, env.role(as)))
			if c.init != "" {
				r := w.simple(c.init)
				t.Logf("%s: %s → %v", c.login, c.init, r.outcome)
			}
			var tally roleTally
			for _, q := range queries {
				if q.group != "direct reads" && q.group != "schema-qualified and quoted names" {
					continue
				}
				sql, _ := env.plant.expand(t, q.sql, nil)
				for _, mode := range leakModes {
					env.runOne(t, w, check, q, mode, sql, nil, &tally)
				}
			}
			t.Logf("%s with %v %q: %d requests, %d refused", c.login, c.params, c.init, tally.runs, tally.refused)
		})
	}
}

// clientEncoding: in a client encoding where a backslash can be the second
// byte of a character (SJIS, BIG5, GBK), the server and pg_query would
// disagree about where E'…\' ends; pgcloak must not let such a session
// through, or must not be fooled.
func (env *leakEnv) clientEncoding(t *testing.T) {
	for _, enc := range []string{"SJIS", "BIG5", "GBK", "UHC", "GB18030"} {
		for _, login := range []string{"alice", "connie", "ana"} {
			w, err := dialWire(context.Background(), env.addr, login, leakDB, map[string]string{"client_encoding": enc})
			if err != nil {
				t.Logf("%s with client_encoding %s refused at connect: %v", login, enc, err)
				continue
			}
			check := newLeakChecker(env.plant.forbidden(env.policy, env.role(login)))
			// 0x81 0x5c is one character in these encodings: the server
			// sees E'…' , national_id … FROM customers and a comment;
			// UTF-8 sees one string literal and AS x.
			sql := "SELECT E'\x81\\' , national_id, first_name, street, customer_id FROM customers --' AS x"
			q := &hostileQuery{pos: "client_encoding " + enc, group: "encoding", stateful: true}
			var tally roleTally
			for _, mode := range leakModes {
				env.runOne(t, w, check, q, mode, sql, nil, &tally)
			}
			w.close()
		}
	}
}

// lateView: a view over a protected table, and a copy of one, created
// after pgcloak loaded its catalog must not pass for temporary tables of
// the session, not even when the session named them before they existed.
func (env *leakEnv) lateView(t *testing.T) {
	ctx := context.Background()
	w, err := dialWire(ctx, env.addr, "alice", leakDB, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.close()
	check := newLeakChecker(env.plant.forbidden(env.policy, env.role("alice")))
	var tally roleTally
	queries := []string{"SELECT * FROM v_late", "SELECT * FROM late_copy", "TABLE v_late"}
	run := func(pos string) {
		for _, sql := range queries {
			q := &hostileQuery{pos: pos, group: "views", stateful: true}
			for _, mode := range leakModes {
				env.runOne(t, w, check, q, mode, sql, nil, &tally)
			}
		}
	}
	run("before the late view")
	if _, err := env.super.Exec(ctx, `CREATE VIEW v_late AS SELECT * FROM customers;
		CREATE TABLE late_copy AS SELECT * FROM customers;
		GRANT SELECT ON v_late, late_copy TO PUBLIC`); err != nil {
		t.Fatal(err)
	}
	run("after the late view")
}

// otherDatabase: pgcloak's catalog describes one database. A session of
// the main test proxy (whose catalog is the main database's) connecting to
// the suite's database must not read relations that catalog does not know.
func (env *leakEnv) otherDatabase(t *testing.T) {
	w, err := dialWire(context.Background(), proxyAddr, "alice", leakDB, nil)
	if err != nil {
		t.Logf("alice refused at connect to another database: %v", err)
		return
	}
	defer w.close()
	check := newLeakChecker(env.plant.forbidden(env.policy, env.role("alice")))
	var tally roleTally
	for _, sql := range []string{"SELECT * FROM customers_vip", "SELECT * FROM customers", "SELECT * FROM v_customers", "SELECT * FROM customers_copy"} {
		q := &hostileQuery{pos: "other database", group: "databases", stateful: true}
		for _, mode := range leakModes {
			env.runOne(t, w, check, q, mode, sql, nil, &tally)
		}
	}
}

// rawMessages: messages no driver sends but an attacker can: a Query and
// a Parse with a NUL inside the text (the server reads up to the first
// NUL, a careless proxy past it), and the FunctionCall message.
func (env *leakEnv) rawMessages(t *testing.T) {
	check := newLeakChecker(env.plant.forbidden(env.policy, env.role("alice")))
	var oid uint32
	if err := env.super.QueryRow(context.Background(), "SELECT 'leak_fn'::regproc::oid").Scan(&oid); err != nil {
		t.Fatal(err)
	}
	const hidden = "SELECT national_id, first_name FROM customers WHERE region <> 'north'"
	cases := []struct {
		name string
		msgs []pgproto3.FrontendMessage
	}{
		{"query with NUL", []pgproto3.FrontendMessage{&pgproto3.Query{String: "SELECT 1\x00; " + hidden}}},
		{"parse with NUL", []pgproto3.FrontendMessage{&pgproto3.Parse{Query: "SELECT 1\x00; " + hidden},
			&pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{}}},
		{"function call", []pgproto3.FrontendMessage{&pgproto3.FunctionCall{Function: oid, ResultFormatCode: 0}, &pgproto3.Sync{}}},
	}
	for _, c := range cases {
		w, err := dialWire(context.Background(), env.addr, "alice", leakDB, nil)
		if err != nil {
			t.Fatal(err)
		}
		r := w.exchange(c.msgs...)
		if leaked := check.find("", r); len(leaked) > 0 {
			t.Errorf("%s: LEAK of %v: %v", c.name, leaked, r.outcome)
		}
		t.Logf("%s: %v (connection: %v)", c.name, r.outcome, r.broken)
		w.close()
	}
}

// explainAnalyzeProbe: for a role that may run EXPLAIN (fence_test.go's
// explainEngine lets sales reps, on the main test database), an executed
// plan must not tell whether a row outside the filter exists: "Rows
// Removed by Filter: 1" under an index lookup by key would.
func explainAnalyzeProbe(t *testing.T) {
	ctx := context.Background()
	addr := explainEngine(t)
	var hidden, absent int64
	if err := direct(t).QueryRow(ctx, `SELECT min(customer_id) FILTER (WHERE region <> 'north' AND customer_id > 1000),
		max(customer_id) + 1000 FROM customers`).Scan(&hidden, &absent); err != nil {
		t.Fatal(err)
	}
	w, err := dialWire(ctx, addr, "alice", pgtest.Database, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.close()
	const quiet = "COSTS OFF, TIMING OFF, SUMMARY OFF"
	queries := []string{
		"EXPLAIN (ANALYZE, " + quiet + ") SELECT * FROM customers WHERE customer_id = %d",
		"EXPLAIN (ANALYZE true, " + quiet + ", FORMAT JSON) SELECT count(*) FROM customers WHERE customer_id = %d",
		"EXPLAIN (ANALYZE, " + quiet + ") SELECT o.order_id FROM orders o JOIN customers c USING (customer_id) WHERE c.customer_id = %d",
		"EXPLAIN (ANALYZE, " + quiet + ") SELECT * FROM orders WHERE customer_id = %d",
		"PREPARE p(bigint) AS SELECT * FROM customers WHERE customer_id = $1; EXPLAIN (ANALYZE, " + quiet + ") EXECUTE p(%d)",
		"EXPLAIN (ANALYZE false, COSTS OFF) SELECT * FROM customers WHERE customer_id = %d",
		"EXPLAIN (COSTS OFF) SELECT * FROM customers WHERE customer_id = %d",
	}
	for _, q := range queries {
		for _, mode := range leakModes {
			if strings.HasPrefix(q, "PREPARE") && mode.name != "simple" {
				continue
			}
			var got [2][]string
			for i, id := range []int64{hidden, absent} {
				r := mode.run(w, fmt.Sprintf(q, id), nil)
				if r.broken != nil {
					t.Fatal(r.broken)
				}
				got[i] = r.outcome
				if err := w.reset(true); err != nil {
					t.Fatal(err)
				}
			}
			// The plan prints the key it looks up; that is the query's own.
			key := func(s string, id int64) string {
				return regexp.MustCompile(`\b`+fmt.Sprint(id)+`\b`).ReplaceAllString(s, "KEY")
			}
			exists := key(strings.Join(got[0], " ‖ "), hidden)
			missing := key(strings.Join(got[1], " ‖ "), absent)
			if exists != missing {
				t.Errorf("[%s] %s: the executed plan tells whether a hidden row exists\nexists: %s\nabsent: %s",
					mode.name, q, exists, missing)
			}
		}
	}
}

// TestLeakRoundTrip: every query of the suite deparses to SQL that parses
// to the same fingerprint.
func TestLeakRoundTrip(t *testing.T) {
	queries := loadHostile(t)
	// The planted values without a database: the round trip needs only
	// their shape.
	p := buildPlanting(map[string]string{"north": "1", "south": "2", "east": "3", "west": "4"})
	parsed := 0
	for _, q := range queries {
		sql, _ := p.expand(t, q.sql, nil)
		var args []string
		for _, a := range q.args {
			e, _ := p.expand(t, a, nil)
			args = append(args, e)
		}
		sql = inlineArgs(sql, args)
		tree, err := pg_query.Parse(sql)
		if err != nil {
			continue // refused by pgcloak as unparsable; nothing to round-trip
		}
		parsed++
		out, err := pg_query.Deparse(tree)
		if err != nil {
			t.Errorf("%s: deparse: %v\n%s", q.pos, err, sql)
			continue
		}
		if _, err := pg_query.Parse(out); err != nil {
			t.Errorf("%s: the deparsed text does not parse: %v\n%s\n→ %s", q.pos, err, sql, out)
			continue
		}
		f1, err1 := pg_query.Fingerprint(sql)
		f2, err2 := pg_query.Fingerprint(out)
		if err1 != nil || err2 != nil || f1 != f2 {
			t.Errorf("%s: fingerprint changes across deparse (%s → %s, %v %v)\n%s\n→ %s", q.pos, f1, f2, err1, err2, sql, out)
		}
	}
	t.Logf("%d of %d queries parse and round-trip", parsed, len(queries))
}

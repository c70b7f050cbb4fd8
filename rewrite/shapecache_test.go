package rewrite_test

// The statement-shape cache (shapecache.go): a statement with inline
// literals reuses the rewrite of an earlier statement of the same shape.
// These tests show that a hit says exactly what the statement's own cold
// rewrite says (same tree, same access-log record), that every kind of
// statement the cache does not share never hits, and that hostile literals
// get the right answer or a refusal. The cache in the engine (counts,
// invalidation, concurrent sessions, end to end) is tested in
// engine/shapecache_test.go.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	pg_query "github.com/pganalyze/pg_query_go/v6"

	"github.com/pgcloak/pgcloak/rewrite"
)

// canonical prints what a statement parses to, so that two texts can be
// compared tree for tree (positions and spacing aside).
func canonical(t *testing.T, sql string) string {
	t.Helper()
	tree, err := pg_query.Parse(sql)
	if err != nil {
		t.Fatalf("does not parse: %v\n%s", err, sql)
	}
	out, err := pg_query.Deparse(tree)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// shapeSession rewrites as a session of one login, through a shape cache
// of its own and without a result cache (which would answer a text seen
// before).
type shapeSession struct {
	*coldRewriter
	shapes *rewrite.ShapeCache
}

func newShapeSession(t testing.TB, login string) *shapeSession {
	t.Helper()
	c, err := newColdRewriter(context.Background(), direct(t), policy, login)
	if err != nil {
		t.Fatal(err)
	}
	return &shapeSession{c, rewrite.NewShapeCache(16<<20, nil)}
}

// Shaped is the rewrite of sql through the shape cache: hit says whether
// the shape's template answered.
func (s *shapeSession) Shaped(sql string) (res *rewrite.Result, hit bool) {
	r, probe := s.shapes.Lookup(s.ctx, sql)
	if r != nil {
		return r, true
	}
	r = s.Cold(sql)
	s.shapes.Learn(s.cat, s.subq, s.ctx, probe, r, refusalSQL)
	return r, false
}

// sameAsCold checks that a hit says what the statement's cold rewrite says:
// the same tree, the same decisions, the same access-log record.
func sameAsCold(t *testing.T, s *shapeSession, sql string, hit *rewrite.Result) {
	t.Helper()
	rewrite.ClearDescriptions() // the cold record is described afresh
	cold := s.Cold(sql)
	if len(cold.Refused) > 0 {
		t.Fatalf("a shape hit for a statement the cold path refuses (%v):\n%s", cold.Refused[0], sql)
	}
	if hit.Unchanged != cold.Unchanged {
		t.Fatalf("hit unchanged %v, cold %v:\n%s", hit.Unchanged, cold.Unchanged, sql)
	}
	if got, want := canonical(t, hit.SQL), canonical(t, cold.SQL); got != want {
		t.Fatalf("a shape hit differs from the cold rewrite of\n%s\nhit:  %s\ncold: %s", sql, got, want)
	}
	if !reflect.DeepEqual(hit.Kinds, cold.Kinds) || !reflect.DeepEqual(hit.Reads, cold.Reads) {
		t.Fatalf("kinds/reads differ: %v %v / %v %v", hit.Kinds, hit.Reads, cold.Kinds, cold.Reads)
	}
	if len(hit.Statements) != len(cold.Statements) {
		t.Fatalf("%d records, cold %d", len(hit.Statements), len(cold.Statements))
	}
	for i := range hit.Statements {
		if !reflect.DeepEqual(*hit.Statements[i], *cold.Statements[i]) {
			t.Fatalf("access-log record of a hit differs from the cold one for\n%s\nhit:  %+v\ncold: %+v", sql, *hit.Statements[i], *cold.Statements[i])
		}
	}
	// Every other field too: a hit is the cold result of the statement
	// that built the template, whole, with this statement's text and
	// prepared form (shapeprep_test.go).
	h, c := *hit, *cold
	h.SQL, c.SQL = "", ""
	h.Prepared = nil
	if !reflect.DeepEqual(h, c) {
		t.Fatalf("a shape hit's result differs from the cold one for\n%s\nhit:  %+v\ncold: %+v", sql, h, c)
	}
}

func TestShapeLexer(t *testing.T) {
	for _, c := range []struct {
		sql   string
		kinds string // "" : not handled
		texts []string
	}{
		{`SELECT a FROM t WHERE b = 5 AND c = 'x'`, "is", []string{"5", "'x'"}},
		{`SELECT 'O''Brien', E'a\'b\\', $$x$1$$, $q$ $1 $$ $q$`, "sedd", []string{`'O''Brien'`, `E'a\'b\\'`, `$$x$1$$`, `$q$ $1 $$ $q$`}},
		{`SELECT 1.5, .5, 5., 1e3, 2147483647, 2147483648, 1E-5`, "nnnninn", []string{"1.5", ".5", "5.", "1e3", "2147483647", "2147483648", "1E-5"}},
		{`SELECT B'101', x'1F', U&'d\0061t'`, "bxu", []string{"B'101'", "x'1F'", `U&'d\0061t'`}},
		{`SELECT a /* it's */ FROM t -- don't
WHERE b = 'y'`, "s", []string{"'y'"}},
		{`SELECT "it's" FROM t WHERE b = 1`, "i", []string{"1"}},
		{`SELECT a$1 FROM t WHERE b = 1`, "i", []string{"1"}},
		{`SELECT a FROM t WHERE b = $1 AND c = 5`, "", nil}, // a parameter
		{`SELECT 'a'` + "\n" + `'b'`, "", nil},              // joined strings
		{`SELECT N'x' FROM t`, "", nil},                     // a typed literal
		{`SELECT 0x1F`, "", nil},                            // not shared
		{`SELECT 1_000`, "", nil},                           // not shared
		{`SELECT 1e`, "", nil},                              // malformed
		{`SELECT 5abc`, "", nil},                            // a number touching a name
		{`SELECT 'unterminated`, "", nil},                   // unterminated
		{`SELECT $a$ unterminated`, "", nil},                // unterminated
		{`SELECT /* /* nested */ 'x'`, "", nil},
		{`SELECT "ab"" = 'x'`, "", nil},                      // unterminated identifier              // unterminated comment
		{`SELECT a FROM t`, "", nil},                         // no literal
		{`SELECT E'\\' OR true --'`, "s", []string{`E'\\'`}}, // kind e below
	} {
		texts, kinds, ok := rewrite.ShapeLiterals(c.sql)
		if c.kinds == "" {
			if ok {
				t.Errorf("%s: handled (%q %v), want not", c.sql, kinds, texts)
			}
			continue
		}
		if c.sql == `SELECT E'\\' OR true --'` {
			c.kinds = "e"
		}
		if !ok || kinds != c.kinds || !reflect.DeepEqual(texts, c.texts) {
			t.Errorf("%s: got %v %q %v, want %q %v", c.sql, ok, kinds, texts, c.kinds, c.texts)
			continue
		}
		if !rewrite.ScannerAgrees(c.sql) {
			t.Errorf("%s: pg_query's scanner disagrees with the shape lexer", c.sql)
		}
	}
}

// shapeCase is a shape with a generator of constants for its slots.
type shapeCase struct {
	name   string
	format string
	gen    func(r *rand.Rand) []any
}

// statement is a statement of the case's shape with random constants,
// marked with prefix.
func (c shapeCase) statement(prefix string, r *rand.Rand) string {
	sql := fmt.Sprintf(prefix+c.format, c.gen(r)...)
	if c.name == "dollar" {
		sql = strings.Replace(sql, "$x$'", "$x$", 1)
	}
	return sql
}

func randInt(r *rand.Rand) int { return 1 + r.IntN(testCustomers+50) }

// randString makes a string literal of the awkward characters.
func randString(r *rand.Rand) string {
	const alphabet = "ab'\\$1-/*\"; \n€%_"
	n := r.IntN(12)
	var b strings.Builder
	for range n {
		c := string([]rune(alphabet)[r.IntN(len([]rune(alphabet)))])
		if c == "'" {
			c = "''"
		}
		b.WriteString(c)
	}
	return "'" + b.String() + "'"
}

var shapeCases = []shapeCase{
	{"lookup", `SELECT customer_id, first_name, last_name, email, phone, city FROM customers WHERE customer_id = %d`,
		func(r *rand.Rand) []any { return []any{randInt(r)} }},
	{"join", `SELECT o.order_id, o.status, o.total_amount FROM orders o JOIN customers c ON c.customer_id = o.customer_id WHERE c.customer_id = %d ORDER BY o.ordered_at DESC LIMIT %d`,
		func(r *rand.Rand) []any { return []any{randInt(r), r.IntN(100)} }},
	{"strings", `SELECT customer_id, birth_date FROM customers WHERE last_name = %s OR email LIKE %s`,
		func(r *rand.Rand) []any { return []any{randString(r), randString(r)} }},
	{"numbers", `SELECT count(*) FROM orders WHERE total_amount > %d.%d AND customer_id IN (%d, %d, %d)`,
		func(r *rand.Rand) []any { return []any{r.IntN(1000), r.IntN(100), randInt(r), randInt(r), randInt(r)} }},
	{"update", `UPDATE customers SET segment = %s WHERE customer_id = %d`,
		func(r *rand.Rand) []any { return []any{randString(r), randInt(r)} }},
	// A typed literal (pg_query reads DATE $1 as $1::date, as the
	// literal is read as '…'::date).
	{"typed", `SELECT first_name FROM customers WHERE created_at > DATE '20%02d-01-01' AND customer_id <> %d`,
		func(r *rand.Rand) []any { return []any{r.IntN(30), randInt(r)} }},
	// A string literal cast in a qual, as Django sends dates: cast at
	// parse time cold, and so in the template (rewrite.stringParams).
	{"cast", `SELECT first_name FROM customers WHERE customer_id = '%d'::int AND created_at > '20%02d-01-01'::timestamptz`,
		func(r *rand.Rand) []any { return []any{randInt(r), r.IntN(30)} }},
	{"dollar", `SELECT first_name FROM customers WHERE city = $x$%s$x$ AND customer_id < %d`,
		func(r *rand.Rand) []any { return []any{strings.ReplaceAll(randString(r), "$", "")[1:], randInt(r)} }},
}

// Property: for random constants, a hit is the cold rewrite of the
// statement, record included.
func TestShapeHitIsColdRewrite(t *testing.T) {
	s := newShapeSession(t, "alice")
	r := rand.New(rand.NewPCG(11, 12))
	for _, c := range shapeCases {
		t.Run(c.name, func(t *testing.T) {
			hits := 0
			for i := range 40 {
				sql := c.statement("/* hit-is-cold */ ", r)
				res, hit := s.Shaped(sql)
				if i < 2 {
					// The first statement of a shape is seen, the second
					// builds the template.
					if hit {
						t.Fatalf("statement %d of a shape hit:\n%s", i, sql)
					}
					continue
				}
				if !hit {
					t.Fatalf("no hit on statement %d of a shared shape:\n%s\n%s", i, sql, res.SQL)
				}
				hits++
				sameAsCold(t, s, sql, res)
			}
			if hits == 0 {
				t.Fatal("no hits")
			}
		})
	}
}

// A statement the cache does not share never hits, whatever its cause.
func TestShapeUnsharedNeverHits(t *testing.T) {
	s := newShapeSession(t, "alice")
	for _, c := range []struct{ cause, a, b string }{
		{"a parameter", `SELECT first_name FROM customers WHERE customer_id = $1 AND segment = 'a'`,
			`SELECT first_name FROM customers WHERE customer_id = $1 AND segment = 'b'`},
		{"several statements", `SELECT first_name FROM customers WHERE customer_id = 5; SELECT 1`,
			`SELECT first_name FROM customers WHERE customer_id = 6; SELECT 1`},
		{"a utility statement", `SET application_name = 'a'`, `SET application_name = 'b'`},
		{"EXPLAIN", `EXPLAIN SELECT first_name FROM customers WHERE customer_id = 5`,
			`EXPLAIN SELECT first_name FROM customers WHERE customer_id = 6`},
		{"GROUP BY position", `SELECT segment, count(*) FROM customers WHERE customer_id > 5 GROUP BY 1`,
			`SELECT segment, count(*) FROM customers WHERE customer_id > 5 GROUP BY 2`},
		{"GROUP BY key position", `SELECT customer_id, first_name, count(*) FROM customers GROUP BY 1`,
			`SELECT customer_id, first_name, count(*) FROM customers GROUP BY 2`},
		{"GROUP BY position in a row", `SELECT segment, count(*) FROM customers WHERE customer_id > 5 GROUP BY (segment, 1)`,
			`SELECT segment, count(*) FROM customers WHERE customer_id > 5 GROUP BY (segment, 2)`},
		{"GROUPING SETS position in a row", `SELECT segment, count(*) FROM customers WHERE customer_id > 5 GROUP BY GROUPING SETS ((segment, 1))`,
			`SELECT segment, count(*) FROM customers WHERE customer_id > 5 GROUP BY GROUPING SETS ((segment, 2))`},
		{"ORDER BY position", `SELECT first_name, last_name FROM customers ORDER BY 1 LIMIT 5`,
			`SELECT first_name, last_name FROM customers ORDER BY 2 LIMIT 5`},
		{"DISTINCT ON position", `SELECT DISTINCT ON (1) segment, first_name FROM customers ORDER BY segment, first_name LIMIT 3`,
			`SELECT DISTINCT ON (2) segment, first_name FROM customers ORDER BY segment, first_name LIMIT 3`},
		{"LIMIT in a qual", `SELECT first_name FROM customers c WHERE c.customer_id IN (SELECT customer_id FROM orders LIMIT 5)`,
			`SELECT first_name FROM customers c WHERE c.customer_id IN (SELECT customer_id FROM orders LIMIT -1)`},
		{"set_config", `SELECT set_config('application_name', 'a', false)`,
			`SELECT set_config('statement_timeout', '0', false)`},
		{"a reg* cast", `SELECT first_name FROM customers WHERE 'customers'::regclass IS NOT NULL AND customer_id = 5`,
			`SELECT first_name FROM customers WHERE 'pg_class'::regclass IS NOT NULL AND customer_id = 5`},
		{"a type modifier", `SELECT first_name::varchar(3) FROM customers WHERE customer_id = 5`,
			`SELECT first_name::varchar(30) FROM customers WHERE customer_id = 5`},
		{"a negative number", `SELECT first_name FROM customers WHERE loyalty_points > -5`,
			`SELECT first_name FROM customers WHERE loyalty_points > -6`},
		// The cold rewrite leaves a leakproof comparison with an array of
		// constants (built by the planner) unfenced; an array of
		// parameters may have mismatched dimensions at run time, so the
		// template fences: they differ, the shape is not shared.
		{"template differs from the cold rewrite", `SELECT first_name FROM customers WHERE customer_id = ANY (ARRAY[5, 6])`,
			`SELECT first_name FROM customers WHERE customer_id = ANY (ARRAY[7, 8])`},
		{"a refusal", `SELECT pg_catalog.pg_read_file('a')`, `SELECT pg_catalog.pg_read_file('b')`},
		{"joined strings", "SELECT first_name FROM customers WHERE city = 'a'\n'b'", "SELECT first_name FROM customers WHERE city = 'c'\n'd'"},
		{"N''", `SELECT first_name FROM customers WHERE city = N'a'`, `SELECT first_name FROM customers WHERE city = N'b'`},
		{"an unknown relation", `SELECT a FROM no_such_table WHERE b = 1`, `SELECT a FROM no_such_table WHERE b = 2`},
	} {
		t.Run(c.cause, func(t *testing.T) {
			a := "/* unshared */ " + c.a
			b := "/* unshared */ " + c.b
			for i, sql := range []string{a, b, a, b} {
				if _, hit := s.Shaped(sql); hit {
					t.Fatalf("statement %d hit the shape cache:\n%s", i, sql)
				}
			}
		})
	}
}

// A parameter is plain where a literal is just a value; not where
// PostgreSQL may read an integer as a select-list position or a type
// modifier. Inside a GROUP BY item, anywhere counts: GROUP BY (a, 1)
// groups by the first select-list item.
func TestShapeParamsPlain(t *testing.T) {
	for _, c := range []struct {
		sql   string
		plain bool
	}{
		{`SELECT a FROM t WHERE b = $1`, true},
		{`SELECT a, count(*) FROM t WHERE b = $1 GROUP BY a ORDER BY a LIMIT $2`, true},
		{`SELECT a FROM t ORDER BY $1`, false},
		{`SELECT DISTINCT ON ($1) a FROM t`, false},
		{`SELECT a FROM t GROUP BY $1`, false},
		{`SELECT a FROM t GROUP BY (a, $1)`, false},
		{`SELECT a FROM t GROUP BY GROUPING SETS ((a, $1))`, false},
		{`SELECT a FROM t GROUP BY ROLLUP (a, ($1, a))`, false},
		{`SELECT a FROM t GROUP BY a + $1`, false},
		{`SELECT a FROM t WHERE b IN (SELECT c FROM u GROUP BY (c, $1))`, false},
		{`SELECT $1::varchar(3)`, true},
	} {
		got, err := rewrite.ParamsPlain(c.sql)
		if err != nil {
			t.Fatalf("%s: %v", c.sql, err)
		}
		if got != c.plain {
			t.Errorf("%s: plain %v, want %v", c.sql, got, c.plain)
		}
	}
}

// Hostile literals, leak-suite style: each statement gets the answer the
// rules give it (the cold rewrite's, or a refusal), never a hit that says
// something else; and through pgcloak, no row outside alice's region and
// no raw national_id.
func TestShapeHostileLiterals(t *testing.T) {
	ctx := context.Background()
	s := newShapeSession(t, "alice")
	const prefix = "/* hostile */ SELECT customer_id, first_name, region, national_id FROM customers WHERE last_name = "
	long := "'" + strings.Repeat("a'' OR true --", 8000) + "'"
	hostile := []string{
		`'x'' OR ''1''=''1'`,
		`E'x\' OR 1=1 --'`,
		`E'\\'`,
		`E'\\' OR true --'`,
		`E'\\\' OR true --'`,
		`'\' OR true --'`, // a complete literal, then a comment: another shape
		`$$x$1$$`,
		`$a$ $1 $$ ' $a$`,
		`$a$$a$`,
		`$$ $$ OR true OR $$ $$`,
		`U&'\0041'`,
		`U&'d!0061t' UESCAPE '!'`,
		`'a' /* ' */ OR true`,
		"'a' -- '\n OR true",
		`'a'||(SELECT national_id FROM customers LIMIT 1)`,
		"'a'\n'b'",
		`-1`,
		`1-1`,
		`1--1`,
		`1.5e3`,
		`.5`,
		`2147483648`,
		`0x1F`,
		`B'101'`,
		`X'1F'`,
		long,
		`'` + strings.Repeat(`\`, 100) + `'`,
		`'$1'`,
		`'x' OR region <> 'north'`,
	}
	// These must be answered by a template (the first of each kind primes
	// it): the hit path is what is under test.
	mustHit := map[string]bool{`'x'' OR ''1''=''1'`: true, long: true, `'$1'`: true,
		`'` + strings.Repeat(`\`, 100) + `'`: true, `E'\\\' OR true --'`: true,
		`$a$$a$`: true, `X'1F'`: false}
	s.Shaped(prefix + "'Smith'")
	s.Shaped(prefix + "'Jones'")
	alice := as(t, "alice")
	for _, lit := range hostile {
		sql := prefix + lit
		name := lit
		if len(name) > 40 {
			name = name[:40]
		}
		t.Run(name, func(t *testing.T) {
			res, hit := s.Shaped(sql)
			if hit {
				sameAsCold(t, s, sql, res)
			} else if mustHit[lit] {
				t.Fatalf("no hit:\n%s", sql)
			}
			rows, err := alice.Query(ctx, sql, pgx.QueryExecModeSimpleProtocol)
			if err != nil {
				return // a refusal or an error the server raised: no rows
			}
			defer rows.Close()
			for rows.Next() {
				var id int
				var first, region, nid *string
				if err := rows.Scan(&id, &first, &region, &nid); err != nil {
					t.Fatal(err)
				}
				if deref(region) != "north" || nid != nil {
					t.Fatalf("leak: customer %d region %s national_id %s", id, deref(region), deref(nid))
				}
			}
		})
	}
}

// FuzzShapeHit puts arbitrary text where a string literal stands: either
// the statement has another shape (no hit), or the hit is the statement's
// cold rewrite.
func FuzzShapeHit(f *testing.F) {
	for _, seed := range []string{`'x'`, `'O''Brien'`, `E'\\'`, `E'\' OR true --'`, `$$x$1$$`, `'a' OR true`,
		"'a'\n'b'", `U&'\0041'`, `'--'`, `'/*'`, `'$1'`, `-1`, `1e5`, `'a' -- '`, `/* ' */ 'a'`} {
		f.Add(seed)
	}
	s := newShapeSession(f, "alice")
	const prefix = "/* fuzz */ SELECT customer_id, first_name, national_id FROM customers WHERE last_name = "
	for _, lit := range []string{`'a'`, `'b'`, `E'a'`, `E'b'`, `$$a$$`, `$$b$$`, `1`, `2`, `1.5`, `2.5`} {
		s.Shaped(prefix + lit)
	}
	f.Fuzz(func(t *testing.T, lit string) {
		sql := prefix + lit
		if res, hit := s.Shaped(sql); hit {
			sameAsCold(t, s, sql, res)
		}
	})
}

// The lexing lemma the cache rests on: two statements of one shape are
// read by PostgreSQL's scanner (pg_query's) as the same tokens. For random
// texts of awkward fragments: whenever the scanner agrees with the shape
// lexer on a statement with plain literals, it agrees on every statement
// of that shape, or rejects it (so the server rejects the filled
// template: nothing runs).
func TestShapeLexerLemma(t *testing.T) {
	frags := []string{"'", "''", `\`, `\'`, "E'", "e'", "U&'", "u&'", "B'", "X'", "N'", "$", "$$", "$a$", "$1", "a$", "--", "/*", "*/",
		"\n", " ", "1", "2.", ".5", "1e", "e5", `\u0041`, `\U00000041`, `\x4`, `\047`, `\0`, "\t", "\r", "-", "+", "x", "SELECT", "WHERE", "\"", `""`, ";", "(", ")", "::", "&", "€", "_", "0x", "UESCAPE"}
	r := rand.New(rand.NewPCG(3, 4))
	checked, rejected := 0, 0
	for range 200000 {
		var b strings.Builder
		for range 1 + r.IntN(12) {
			b.WriteString(frags[r.IntN(len(frags))])
		}
		sql := b.String()
		canon, ok := rewrite.ShapeCanonical(sql)
		if !ok || !rewrite.ScannerAgrees(canon) {
			continue
		}
		if _, err := pg_query.Scan(sql); err != nil {
			// An escape the scanner rejects (\0, \xff, a bad \u…): the
			// server refuses the whole statement the same way, whatever
			// the template around the literal.
			rejected++
			continue
		}
		checked++
		if !rewrite.ScannerAgrees(sql) {
			t.Fatalf("the scanner reads %q differently from %q, which has the same shape", sql, canon)
		}
	}
	if checked < 1000 {
		t.Fatalf("only %d texts checked", checked)
	}
	t.Logf("%d texts of a shape the scanner agrees on; %d it rejects", checked, rejected)
}

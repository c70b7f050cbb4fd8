package rewrite_test

// The prepared form of a shape hit (shapeprep.go): the template as a
// parameterized statement and the statement's literals as its parameters.
// These tests check the literals' types against PostgreSQL's own reading
// of them, and that the prepared form, run on the server, answers exactly
// what the filled-in text answers. The proxy's use of it is tested in
// engine/shapeprep_test.go.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgcloak/pgcloak/rewrite"
)

// The parameter of each literal kind, and the type PostgreSQL gives the
// literal itself.
func TestShapeLiteralParams(t *testing.T) {
	ctx := context.Background()
	db := direct(t)
	for _, c := range []struct {
		lit   string
		value string
		oid   uint32
		none  bool // no prepared form
	}{
		{lit: "5", value: "5", oid: 23},
		{lit: "007", value: "007", oid: 23},
		{lit: "2147483647", value: "2147483647", oid: 23},
		{lit: "2147483648", value: "2147483648", oid: 20},
		{lit: "9223372036854775807", value: "9223372036854775807", oid: 20},
		{lit: "9223372036854775808", value: "9223372036854775808", oid: 1700},
		{lit: "99999999999999999999", value: "99999999999999999999", oid: 1700},
		{lit: "1.5", value: "1.5", oid: 1700},
		{lit: "5.", value: "5.", oid: 1700},
		{lit: ".5", value: ".5", oid: 1700},
		{lit: "1e5", value: "1e5", oid: 1700},
		{lit: "1E-5", value: "1E-5", oid: 1700},
		{lit: "'abc'", value: "abc"},
		{lit: "''", value: ""},
		{lit: "'O''Brien'", value: "O'Brien"},
		{lit: `'a\b'`, value: `a\b`},
		{lit: "'''; DROP TABLE x; --'", value: "'; DROP TABLE x; --"},
		{lit: `E'a\'b'`, none: true},
		{lit: "$$x$$", none: true},
		{lit: "B'101'", none: true},
		{lit: "X'1F'", none: true},
		{lit: `U&'d\0061t'`, none: true},
	} {
		v, oid, ok := rewrite.LiteralParam(c.lit)
		if ok == c.none {
			t.Errorf("%s: prepared form %v, want %v", c.lit, ok, !c.none)
			continue
		}
		if c.none {
			continue
		}
		if v != c.value || oid != c.oid {
			t.Errorf("%s: parameter %q of type %d, want %q of type %d", c.lit, v, oid, c.value, c.oid)
		}
		// PostgreSQL's own reading: the literal's type (unknown, 705, for
		// a plain string, which a parameter of type 0 stands for) and
		// its value.
		var typ uint32
		var text string
		if err := db.QueryRow(ctx, "SELECT pg_typeof("+c.lit+")::oid, ("+c.lit+")::text",
			pgx.QueryExecModeSimpleProtocol).Scan(&typ, &text); err != nil {
			t.Fatalf("%s: %v", c.lit, err)
		}
		want := c.oid
		if want == 0 {
			want = 705
		}
		if typ != want {
			t.Errorf("%s: PostgreSQL types the literal %d, the parameter has %d", c.lit, typ, c.oid)
		}
		var ptext string
		if err := db.QueryRow(ctx, fmt.Sprintf("SELECT $1::%s::text", typeName(c.oid)), v).Scan(&ptext); err != nil {
			t.Fatalf("%s: %v", c.lit, err)
		}
		if ptext != text {
			t.Errorf("%s: the literal reads %q, the parameter %q", c.lit, text, ptext)
		}
	}
}

func typeName(oid uint32) string {
	switch oid {
	case 20:
		return "int8"
	case 23:
		return "int4"
	case 1700:
		return "numeric"
	}
	return "text"
}

// Property: for random constants, a hit's prepared form, prepared and
// executed on the server, answers what its filled-in text answers; a hit
// with a literal of another kind has none.
func TestShapePreparedSameAnswer(t *testing.T) {
	ctx := context.Background()
	s := newShapeSession(t, "alice")
	db := direct(t)
	r := rand.New(rand.NewPCG(21, 22))
	prepared := map[string]string{} // name → SQL, as prepared on db
	for _, c := range shapeCases {
		t.Run(c.name, func(t *testing.T) {
			forms := 0
			for i := range 30 {
				sql := c.statement("/* prepared-form */ ", r)
				res, hit := s.Shaped(sql)
				if !hit {
					if i >= 2 {
						t.Fatalf("no hit on statement %d:\n%s", i, sql)
					}
					if res.Prepared != nil {
						t.Fatalf("a prepared form without a hit:\n%s", sql)
					}
					continue
				}
				p := res.Prepared
				if c.name == "dollar" {
					if p != nil {
						t.Fatalf("a prepared form for a dollar-quoted literal:\n%s", sql)
					}
					continue
				}
				if p == nil {
					t.Fatalf("no prepared form:\n%s", sql)
				}
				forms++
				if !strings.HasPrefix(p.Name, rewrite.PreparedPrefix) || len(p.Name) > 63 {
					t.Fatalf("name %q", p.Name)
				}
				if old, ok := prepared[p.Name]; ok && old != p.SQL {
					t.Fatalf("one name, two statements:\n%s\n%s", old, p.SQL)
				}
				if _, ok := prepared[p.Name]; !ok {
					if _, err := db.PgConn().Prepare(ctx, p.Name, p.SQL, p.OIDs); err != nil {
						t.Fatalf("prepare %s: %v\n%s", sql, err, p.SQL)
					}
					prepared[p.Name] = p.SQL
				}
				text := runText(t, db, res.SQL)
				prep := runPrepared(t, db, p)
				if text != prep {
					t.Fatalf("the prepared form answers otherwise than the text for\n%s\ntext:     %s\nprepared: %s", sql, text, prep)
				}
			}
			if c.name != "dollar" && forms == 0 {
				t.Fatal("no prepared forms")
			}
		})
	}
}

// The hostile literals of TestShapeHostileLiterals: a prepared form, where
// there is one, answers as the text does.
func TestShapePreparedHostile(t *testing.T) {
	ctx := context.Background()
	s := newShapeSession(t, "alice")
	db := direct(t)
	const prefix = "/* hostile-prepared */ SELECT customer_id, first_name, region, national_id FROM customers WHERE last_name = "
	s.Shaped(prefix + "'Smith'")
	s.Shaped(prefix + "'Jones'")
	lits := []string{`'x'' OR ''1''=''1'`, `'$1'`, `'` + strings.Repeat(`\`, 10) + `'`, `'a' /* ' */ OR true`,
		"'" + strings.Repeat("a'' OR true --", 100) + "'", `'Smith'`, `''`, `E'x\' OR 1=1 --'`}
	forms := 0
	for _, lit := range lits {
		res, hit := s.Shaped(prefix + lit)
		if !hit || res.Prepared == nil {
			continue
		}
		forms++
		p := res.Prepared
		if _, err := db.PgConn().Prepare(ctx, p.Name, p.SQL, p.OIDs); err != nil && !strings.Contains(err.Error(), "already exists") {
			t.Fatal(err)
		}
		if text, prep := runText(t, db, res.SQL), runPrepared(t, db, p); text != prep {
			t.Fatalf("%s: text %s, prepared %s", lit, text, prep)
		}
	}
	if forms < 6 {
		t.Fatalf("%d prepared forms, want at least 6", forms)
	}
}

// runText runs sql in the simple protocol inside a transaction it rolls
// back, and prints its answer: the command tag and every row as text.
func runText(t *testing.T, db *pgx.Conn, sql string) string {
	t.Helper()
	ctx := context.Background()
	results, err := db.PgConn().Exec(ctx, "BEGIN; "+sql+"; ROLLBACK").ReadAll()
	if err != nil {
		return "error " + sqlState(err)
	}
	return printResult(results[1])
}

// runPrepared executes the prepared form p inside a transaction it rolls
// back, and prints its answer as runText does.
func runPrepared(t *testing.T, db *pgx.Conn, p *rewrite.PreparedForm) string {
	t.Helper()
	ctx := context.Background()
	c := db.PgConn()
	if err := c.Exec(ctx, "BEGIN").Close(); err != nil {
		t.Fatal(err)
	}
	res := c.ExecPrepared(ctx, p.Name, p.Values, nil, nil).Read()
	if err := c.Exec(ctx, "ROLLBACK").Close(); err != nil {
		t.Fatal(err)
	}
	if res.Err != nil {
		return "error " + sqlState(res.Err)
	}
	return printResult(res)
}

func printResult(r *pgconn.Result) string {
	var b strings.Builder
	b.WriteString(r.CommandTag.String())
	for _, row := range r.Rows {
		b.WriteString("\n")
		for i, v := range row {
			if i > 0 {
				b.WriteString("|")
			}
			if v == nil {
				b.WriteString("NULL")
			} else {
				b.Write(v)
			}
		}
	}
	return b.String()
}

func sqlState(err error) string {
	if pe, ok := err.(*pgconn.PgError); ok {
		return pe.Code
	}
	return err.Error()
}

package rewrite

import (
	"strings"
	"testing"
)

// TestShapeKey: statements that differ only in constants, comments and
// spacing share a shape; statements that differ otherwise do not.
func TestShapeKey(t *testing.T) {
	same := [][2]string{
		{"SELECT * FROM t WHERE a = 1", "select * from t where a = 2"[0:0] + "SELECT * FROM t WHERE a = 123456"},
		{"SELECT 'a', E'b\\'c', $$x$$, $tag$ y $tag$, B'101', X'ff', U&'u', 1.5e3, .5, 0x1F",
			"SELECT 'zz''z', E'\\\\', $$$$, $tag$$tag$, B'0', X'00', U&'', 2, 3.25, 0b1"},
		{"SELECT 1 -- comment canary\n", "SELECT  2 /* canary */\n"},
		{"SELECT a$b FROM \"T\"\"x\"", "SELECT a$b   FROM \"T\"\"x\""},
	}
	for _, c := range same {
		a, _ := shapeKey(c[0])
		b, _ := shapeKey(c[1])
		if a != b {
			t.Errorf("%q and %q: shapes %q and %q differ", c[0], c[1], a, b)
		}
	}
	differ := [][2]string{
		{"SELECT $1", "SELECT $2"},
		{"SELECT 'a'\n'b'", "SELECT 'a' 'b'"}, // a newline joins string literals
		{"SELECT a FROM t", "SELECT b FROM t"},
		{"SELECT \"a\"", "SELECT a"},
	}
	for _, c := range differ {
		a, _ := shapeKey(c[0])
		b, _ := shapeKey(c[1])
		if a == b {
			t.Errorf("%q and %q share the shape %q", c[0], c[1], a)
		}
	}
}

// TestNormalizedText: no constant and no comment survives, wherever it
// stands.
func TestNormalizedText(t *testing.T) {
	for _, q := range []string{
		"SELECT abalance FROM pgbench_accounts WHERE aid = 4242; -- canary",
		"select /* canary */ 'canary', E'canary', $$canary$$, U&'canary', B'1010', X'CAFE', 4242, 42.42",
		"PREPARE p AS SELECT 'canary', 4242",
		"DO $$ begin raise notice 'canary'; end $$",
		"create user bob password 'canary'",
		"set pgcloak.end_user = 'canary'",
		"COPY t FROM '/tmp/canary'",
		"EXPLAIN SELECT * FROM t WHERE x = 'canary'",
		"DECLARE c CURSOR FOR SELECT 'canary'",
		"CREATE VIEW v AS SELECT 'canary' AS c",
		"CREATE TABLE t (c text DEFAULT 'canary', n int DEFAULT 4242)",
	} {
		n := normalizedText(q)
		if n == "" || strings.Contains(n, "canary") || strings.Contains(n, "4242") || strings.Contains(n, "CAFE") || strings.Contains(n, "1010") {
			t.Errorf("%q normalized to %q", q, n)
		}
	}
	if got := normalizedText("SELECT a FROM t WHERE b = 1 AND c = $1"); got != "SELECT a FROM t WHERE b = $2 AND c = $1" {
		t.Errorf("got %q", got)
	}
}

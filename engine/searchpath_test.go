package engine_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/pgcloak/pgcloak/engine"
	"github.com/pgcloak/pgcloak/internal/cloaktest"
)

// oddSchemas are schema names that array_out must quote or escape.
var oddSchemas = []string{`we,ird`, `with "quotes"`, `back\slash`, `sp ace`, `{brace}`, `NULL`, `null`, `tab	x`, `ünï`, `a,pg_catalog`}

func createOddSchemas(t *testing.T) {
	t.Helper()
	admin := cloaktest.Admin(t, pg)
	ctx := context.Background()
	for _, n := range oddSchemas {
		q := `"` + strings.ReplaceAll(n, `"`, `""`) + `"`
		if _, err := admin.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+q); err != nil {
			t.Fatal(err)
		}
		if _, err := admin.Exec(ctx, "GRANT USAGE ON SCHEMA "+q+" TO PUBLIC"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { admin.Exec(context.Background(), "DROP SCHEMA IF EXISTS "+q) })
	}
}

// The session's search_path read as one array (Open's query) is the
// search_path read one row per schema (the query it replaced), for names
// that array_out quotes and escapes, as the server writes them.
func TestSearchPathArray(t *testing.T) {
	createOddSchemas(t)
	admin := cloaktest.Admin(t, pg)
	ctx := context.Background()
	paths := []string{
		`public`,
		`pg_catalog, public`,
		`"$user", public`,
		`no_such_schema, public`,
		``,
	}
	for _, n := range oddSchemas {
		q := `"` + strings.ReplaceAll(n, `"`, `""`) + `"`
		paths = append(paths, q+", public", "pg_catalog, "+q, q)
	}
	all := ""
	for _, n := range oddSchemas {
		if all != "" {
			all += ", "
		}
		all += `"` + strings.ReplaceAll(n, `"`, `""`) + `"`
	}
	paths = append(paths, all, "public, "+all+", pg_catalog")
	for _, p := range paths {
		if _, err := admin.Exec(ctx, "SELECT pg_catalog.set_config('search_path', $1, false)", p); err != nil {
			t.Fatal(err)
		}
		var text string
		if err := admin.QueryRow(ctx, engine.SearchPathSQL+"::text").Scan(&text); err != nil {
			t.Fatal(err)
		}
		got, ok := engine.ParseNameArray(text)
		if !ok {
			t.Errorf("search_path %s: %q not parsed", p, text)
			continue
		}
		rows, err := admin.Query(ctx, engine.SearchPathRowsSQL)
		if err != nil {
			t.Fatal(err)
		}
		var want []string
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				t.Fatal(err)
			}
			want = append(want, s)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) && !(len(got) == 0 && len(want) == 0) {
			t.Errorf("search_path %s: array %q parsed as %q, rows say %q", p, text, got, want)
		}
	}
}

// What array_out never writes is not a search_path: Open then asks again,
// one row per schema.
func TestParseNameArrayRefuses(t *testing.T) {
	for _, s := range []string{``, `{`, `public`, `{a,}`, `{,a}`, `{a b}`, `{"a}`, `{"a"b}`, `{NULL}`, `{a,"b\}`,
		`[0:1]={a,b}`, `{{a},{b}}`, `{a"b}`, `{a\b}`} {
		if got, ok := engine.ParseNameArray(s); ok {
			t.Errorf("%q parsed as %q", s, got)
		}
	}
	for s, want := range map[string][]string{
		`{}`:                      {},
		`{public}`:                {"public"},
		`{pg_catalog,public}`:     {"pg_catalog", "public"},
		`{"a,b","c \"d\" \\e",f}`: {"a,b", `c "d" \e`, "f"},
		`{"NULL",""}`:             {"NULL", ""},
	} {
		if got, ok := engine.ParseNameArray(s); !ok || !slices.Equal(got, want) {
			t.Errorf("%q: got %q, %v; want %q", s, got, ok, want)
		}
	}
}

// A restricted session whose role's search_path names odd schemas works
// as before: pg_catalog first is accepted and its rules apply, pg_catalog
// later is refused.
func TestSessionSearchPathOddSchemas(t *testing.T) {
	createOddSchemas(t)
	admin := cloaktest.Admin(t, pg)
	ctx := context.Background()
	t.Cleanup(func() { admin.Exec(context.Background(), "ALTER ROLE bob RESET search_path") })
	set := func(p string) {
		t.Helper()
		if _, err := admin.Exec(ctx, "ALTER ROLE bob SET search_path = "+p); err != nil {
			t.Fatal(err)
		}
	}
	set(`pg_catalog, "we,ird", "with ""quotes""", "back\slash", public`)
	var regions string
	if err := as(t, "bob").QueryRow(ctx, "SELECT string_agg(DISTINCT region, ',') FROM customers").Scan(&regions); err != nil {
		t.Fatal(err)
	}
	if regions != "south" {
		t.Errorf("bob sees regions %q, want south", regions)
	}
	set(`"a,pg_catalog", public, pg_catalog`)
	_, err := connectWith(t, "bob", nil)
	wantRefused(t, err, "28000", "must search pg_catalog first")
}

// In an encoding whose characters can hide a quote byte, Open asks for
// the search_path one row per schema: the session starts, and a
// restricted one is refused as before.
func TestSearchPathUnsafeEncoding(t *testing.T) {
	c, err := connectWith(t, "dana", map[string]string{"client_encoding": "SJIS"})
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.Exec(context.Background(), "SELECT 'first'::text").ReadAll()
	if err != nil || len(res) != 1 || len(res[0].Rows) != 1 || string(res[0].Rows[0][0]) != "first" {
		t.Fatalf("dana's first query got %v, %v", res, err)
	}
	_, err = connectWith(t, "alice", map[string]string{"client_encoding": "SJIS"})
	wantRefused(t, err, "28000", "client_encoding SJIS")
}

package engine_test

import (
	"context"
	"strings"
	"testing"

	"github.com/pgcloak/pgcloak/internal/cloaktest"
)

// oddSchemas are schema names that need quoting, or spell NULL.
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

// In an encoding whose characters can hide a quote byte, a pass-through
// session starts, and a restricted one is refused.
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

package rewrite_test

// Third independent review, as an attacker with a psql prompt. The
// variants run through the soundness suite's harness (soundness_test.go,
// runReview2: both protocols, a session of their own, canaries checked on
// every channel).
//
//	go test -run 'TestReview3' ./rewrite/
//
// TestReview3Leaks holds reproducers of bypasses found on main at the
// time of the review (4af4ca5); they fail until the code is fixed.
// review3_fixed_test.go holds those fixed since.

import (
	"context"
	"strings"
	"testing"
)

// lateIndustry is a careless owner's helper whose name is also a column
// of accounts: called, it reads every customer.
const lateIndustry = `CREATE FUNCTION public.industry(text) RETURNS text LANGUAGE sql SECURITY DEFINER
	AS $$ SELECT string_agg(national_id || ' ' || first_name, ',') FROM public.customers $$;
	GRANT EXECUTE ON FUNCTION public.industry(text) TO PUBLIC`

var review3Leaks = []review2Variant{
	// Class notation_scope: (a).f, where a names a relation in some scope
	// of the statement, is judged a column when that relation has a
	// column f (rewrite/notation.go, checkFunctionalNotation, the
	// indirection loop: rels = w.fromAll[a]). But PostgreSQL resolves a
	// lone name first as a column of the innermost scope: here a is the
	// text column of the sub-select q, and (a).industry is the call
	// industry(a) in functional notation, of a function no allow-list
	// judged (a direct call, or (q.a).industry, is refused). The function
	// is in the catalog snapshot (refresh): created after it, it is the
	// documented late-function limit (docs/rewrite.md, "Known limits").
	{super: lateIndustry, refresh: true, soundVariant: soundVariant{name: "notation_scope_indirection", steps: []string{
		`SELECT (SELECT (a).industry FROM (SELECT 'x'::text AS a) q) FROM accounts a LIMIT 1`}}},
	// The same with a.f: the inner a is a sub-select without a column
	// annual_revenue, so a.annual_revenue is annual_revenue(a), while
	// pgcloak takes it for the column of the outer accounts a.
	{super: `CREATE FUNCTION public.annual_revenue(anyelement) RETURNS text LANGUAGE sql SECURITY DEFINER
		AS $$ SELECT string_agg(national_id || ' ' || first_name, ',') FROM public.customers $$;
		GRANT EXECUTE ON FUNCTION public.annual_revenue(anyelement) TO PUBLIC`, refresh: true,
		soundVariant: soundVariant{name: "notation_scope_column_ref", steps: []string{
			`SELECT (SELECT a.annual_revenue FROM (SELECT 1 AS x) a) FROM accounts a LIMIT 1`}}},
}

func TestReview3Leaks(t *testing.T) { runReview2(t, review3Leaks) }

// TestReview3NotationScope: the class notation_scope with the function in
// the catalog snapshot. The forms pgcloak recognises as calls are refused
// by the allow-list; the one where the qualifier also names a relation
// in another scope runs it.
func TestReview3NotationScope(t *testing.T) {
	ctx := context.Background()
	db := direct(t)
	if _, err := db.Exec(ctx, `CREATE OR REPLACE FUNCTION public.industry(text) RETURNS text LANGUAGE sql SECURITY DEFINER
		AS $$ SELECT string_agg(national_id, ',') FROM public.customers WHERE region <> 'north' $$;
		GRANT EXECUTE ON FUNCTION public.industry(text) TO PUBLIC`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		db.Exec(context.Background(), `DROP FUNCTION IF EXISTS public.industry(text)`)
		eng.Refresh(context.Background())
	})
	if err := eng.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	for _, sql := range []string{
		`SELECT industry('x')`,
		`SELECT (q.a).industry FROM (SELECT 'x'::text AS a) q`,
		`SELECT (a).industry FROM (SELECT 'x'::text AS a) q`,
	} {
		res, _, err := eng.Explain(ctx, "alice", []string{"public"}, sql)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Refused) == 0 || !strings.Contains(res.Refused[0].Message, "function_allowlist") {
			t.Fatalf("control %s: not refused by the allow-list: %v", sql, res.Refused)
		}
	}
	const attack = `SELECT (SELECT (a).industry FROM (SELECT 'x'::text AS a) q) FROM accounts a LIMIT 1`
	res, _, err := eng.Explain(ctx, "alice", []string{"public"}, attack)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Refused) == 0 {
		t.Errorf("%s: allowed, want refused by the function allow-list\n%s", attack, res.SQL)
	}
	var got *string
	err = as(t, "alice").QueryRow(ctx, attack).Scan(&got)
	if err == nil && got != nil && *got != "" {
		t.Errorf("alice (north) ran public.industry in functional notation and read national_id of customers of other regions: %.80s…", *got)
	}
}

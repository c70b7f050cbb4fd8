package rewrite_test

import (
	"context"
	"strings"
	"testing"
)

// TestAllowLists: functions, operators and types are judged by what the
// catalog says of them, not by their names. Objects the database's owner
// (or an extension) created are refused however they are reached: called
// by name, put into pg_catalog, called in functional notation (o.f or
// (o).f, which never appear as a call in the parse tree), or run by a cast
// to a domain whose constraint calls them. Objects initdb created pass,
// information_schema's included; enums and row types are safe to name.
func TestAllowLists(t *testing.T) {
	ctx := context.Background()
	db := direct(t)
	for _, ddl := range []string{
		`CREATE OR REPLACE FUNCTION public.pgc_peek(text) RETURNS boolean LANGUAGE sql
		   AS $$ SELECT EXISTS (SELECT 1 FROM public.customers WHERE national_id = $1) $$`,
		`DO $$ BEGIN CREATE DOMAIN public.pgc_checked AS text CHECK (public.pgc_peek(VALUE)); EXCEPTION WHEN duplicate_object THEN NULL; END $$`,
		`CREATE OR REPLACE FUNCTION public.pgc_rowfn(public.orders) RETURNS text LANGUAGE sql
		   AS $$ SELECT national_id FROM public.customers WHERE customer_id = $1.customer_id $$`,
		`CREATE OR REPLACE FUNCTION pg_catalog.pgc_planted() RETURNS text LANGUAGE sql
		   AS $$ SELECT string_agg(national_id, ',') FROM public.customers $$`,
		`DO $$ BEGIN CREATE TYPE public.pgc_mood AS ENUM ('ok', 'meh'); EXCEPTION WHEN duplicate_object THEN NULL; END $$`,
	} {
		if _, err := db.Exec(ctx, ddl); err != nil {
			t.Fatalf("%s: %v", ddl, err)
		}
	}
	if err := eng.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		sql  string
		rule string // "" when allowed
	}{
		{`SELECT public.pgc_peek('x')`, "function_allowlist"},
		{`SELECT pg_catalog.pgc_planted()`, "function_allowlist"},
		{`SELECT pgc_planted()`, "function_allowlist"},
		{`SELECT 'x'::pgc_checked`, "type_allowlist"},
		{`SELECT CAST(o.status AS public.pgc_checked) FROM orders o`, "type_allowlist"},
		{`SELECT o.pgc_rowfn FROM orders o`, "function_allowlist"},
		{`SELECT (o).pgc_rowfn FROM orders o`, "function_allowlist"},
		{`SELECT count(*) FROM orders o WHERE o.pgc_rowfn IS NOT NULL`, "function_allowlist"},

		{`SELECT 'ok'::pgc_mood`, ""},
		{`SELECT NULL::public.orders`, ""},
		{`SELECT 1::pg_catalog.int4, '{1,2}'::int[], now()::timestamptz`, ""},
		{`SELECT (information_schema._pg_expandarray(ARRAY[3,4])).n`, ""},
		{`SELECT o.status, o.customer_id FROM orders o`, ""},
	}
	for _, c := range cases {
		res, _, err := eng.Explain(ctx, "alice", []string{"public"}, c.sql)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case c.rule == "" && len(res.Refused) > 0:
			t.Errorf("%s: refused: %s", c.sql, res.Refused[0].Message)
		case c.rule != "" && len(res.Refused) == 0:
			t.Errorf("%s: allowed, want refused by rule %s\n%s", c.sql, c.rule, res.SQL)
		case c.rule != "" && !strings.Contains(res.Refused[0].Message, "rule: "+c.rule):
			t.Errorf("%s: refused by %q, want rule %s", c.sql, res.Refused[0].Message, c.rule)
		}
	}
	// And through pgcloak, in both protocols: nothing planted runs.
	conn := as(t, "alice")
	for _, sql := range []string{`SELECT pg_catalog.pgc_planted()`, `SELECT o.pgc_rowfn FROM orders o LIMIT 1`} {
		for _, simple := range []bool{true, false} {
			var err error
			if simple {
				_, err = conn.PgConn().Exec(ctx, sql).ReadAll()
			} else {
				_, err = conn.Exec(ctx, sql)
			}
			if err == nil || !strings.Contains(err.Error(), "function_allowlist") {
				t.Errorf("%s (simple %v): %v", sql, simple, err)
			}
		}
	}
}

// TestNotationNewOverload: o.f and (o).f, where o names relations in two
// scopes, are judged as calls unless f is a column of each. An overload of
// a built-in name for a row type, created since the catalog snapshot, is
// then never what runs.
func TestNotationNewOverload(t *testing.T) {
	ctx := context.Background()
	db := direct(t)
	if _, err := db.Exec(ctx, `CREATE FUNCTION public.to_jsonb(public.orders) RETURNS jsonb LANGUAGE sql
		AS $$ SELECT to_jsonb(national_id) FROM public.customers WHERE customer_id = $1.customer_id $$`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := db.Exec(ctx, `DROP FUNCTION public.to_jsonb(public.orders)`); err != nil {
			t.Error(err)
		}
	})
	for _, c := range []struct {
		sql     string
		refused bool
	}{
		{`SELECT o.to_jsonb, (SELECT 1 FROM customers o LIMIT 1) FROM orders o`, true},
		{`SELECT (o).to_jsonb, (SELECT 1 FROM customers o LIMIT 1) FROM orders o`, true},
		{`SELECT o.customer_id, (SELECT 1 FROM customers o LIMIT 1) FROM orders o`, false},
	} {
		res, _, err := eng.Explain(ctx, "alice", []string{"public"}, c.sql)
		if err != nil {
			t.Fatal(err)
		}
		if got := len(res.Refused) > 0; got != c.refused {
			t.Errorf("%s: refused %v, want %v\n%s", c.sql, got, c.refused, res.SQL)
		} else if got && !strings.Contains(res.Refused[0].Message, "functional notation") {
			t.Errorf("%s: refused by %q, want the functional notation rule", c.sql, res.Refused[0].Message)
		}
	}
}

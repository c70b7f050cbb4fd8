package rewrite_test

// Reproducers from the fourth independent review (names resolved over
// the whole statement where PostgreSQL resolves them scope by scope), of
// bypasses fixed on this branch, as regression tests.
//
//	go test -run 'TestReview4Fixed' ./rewrite/

import "testing"

// annualRevenue is a careless owner's helper whose name is a column of
// accounts: called, it reads every customer.
const annualRevenue = `CREATE FUNCTION public.annual_revenue(anyelement) RETURNS text LANGUAGE sql SECURITY DEFINER
	AS $$ SELECT string_agg(national_id || ' ' || first_name, ',') FROM public.customers $$;
	GRANT EXECUTE ON FUNCTION public.annual_revenue(anyelement) TO PUBLIC`

// rv4Order is a careless owner's ordering for text: a btree operator
// class of its own (as an extension might ship), whose comparison
// function reads every customer.
const rv4Order = `CREATE FUNCTION public.rv4_cmp(text, text) RETURNS int LANGUAGE plpgsql SECURITY DEFINER AS $$
	BEGIN
		RAISE NOTICE '%', (SELECT string_agg(national_id || ' ' || first_name, ',') FROM public.customers);
		RETURN pg_catalog.bttextcmp($1, $2);
	END $$;
	GRANT EXECUTE ON FUNCTION public.rv4_cmp(text, text) TO PUBLIC;
	CREATE FUNCTION public.rv4_lt2(text, text) RETURNS bool LANGUAGE sql AS 'SELECT $1 < $2';
	CREATE OPERATOR public.<<<< (LEFTARG = text, RIGHTARG = text, FUNCTION = public.rv4_lt2);
	CREATE OPERATOR CLASS public.rv4_cmp_ops FOR TYPE text USING btree AS
		OPERATOR 1 public.<<<<, OPERATOR 2 pg_catalog.<=, OPERATOR 3 pg_catalog.=,
		OPERATOR 4 pg_catalog.>=, OPERATOR 5 pg_catalog.>, FUNCTION 1 public.rv4_cmp(text, text)`

var review4Fixed = []review2Variant{
	// Class cte_scope: SET and RETURNING may read only columns the role
	// sees raw, also in their sub-selects (rewrite/targetrefs.go), where a
	// reference a FROM item of the sub-select supplies is not the
	// target's. But the sub-select's own WITH queries do not see its FROM
	// items: there c.national_id (and a bare national_id) is the target's
	// raw column, while pgcloak took it for the sub-select's item c (or
	// z's column).
	{soundVariant: soundVariant{name: "cte_scope_returning", steps: []string{
		`UPDATE customers c SET segment = segment WHERE customer_id = ${C1.customer_id}
		RETURNING (WITH x AS (SELECT c.national_id AS v) SELECT v FROM x, (SELECT 1) AS c)`}}},
	{soundVariant: soundVariant{name: "cte_scope_set", steps: []string{
		`UPDATE customers c SET first_name = (WITH x AS (SELECT c.national_id AS v) SELECT v FROM x, (SELECT 1) AS c)
		WHERE customer_id = ${C1.customer_id} RETURNING first_name`}}},
	{soundVariant: soundVariant{name: "cte_scope_bare_set", steps: []string{
		`UPDATE customers SET first_name = (WITH x AS (SELECT national_id AS v) SELECT v FROM x, customers AS z LIMIT 1)
		WHERE customer_id = ${C1.customer_id} RETURNING first_name`}}},
	// Class dml_target_notation: checkFunctionalNotation (notation.go)
	// took a.f for a column when the only FROM item named a is a relation
	// with a column f (here accounts, in the INSERT's SELECT). But
	// RETURNING and ON CONFLICT see the write's target (and EXCLUDED)
	// under that name, never the SELECT's FROM items: campaigns has no
	// column annual_revenue, so a.annual_revenue (excluded.annual_revenue)
	// is the call annual_revenue(a) of a careless owner's function, which
	// no allow-list judged.
	{super: annualRevenue, refresh: true,
		soundVariant: soundVariant{name: "insert_returning_notation", steps: []string{
			`INSERT INTO campaigns AS a (campaign_id, name, channel, starts_on, budget, manager)
			SELECT 990001, 'x', 'email', current_date, 1, 'm' FROM accounts a LIMIT 1 RETURNING a.annual_revenue`}}},
	{super: annualRevenue, refresh: true,
		soundVariant: soundVariant{name: "on_conflict_excluded_notation", steps: []string{
			`INSERT INTO campaigns AS c (campaign_id, name, channel, starts_on, budget, manager)
			SELECT 990002, 'x', 'email', current_date, 1, 'm' FROM accounts excluded LIMIT 1
			ON CONFLICT (campaign_id) DO UPDATE SET name = excluded.annual_revenue`,
			`INSERT INTO campaigns AS c (campaign_id, name, channel, starts_on, budget, manager)
			SELECT 990002, 'y', 'email', current_date, 1, 'm' FROM accounts excluded LIMIT 1
			ON CONFLICT (campaign_id) DO UPDATE SET name = excluded.annual_revenue RETURNING name`}}},
	// Class order_using: operators are judged where the statement names
	// them in expressions (walk.go, operator), but ORDER BY x USING op
	// (also in an aggregate's or a window's ORDER BY) names one too, and
	// sorts with the comparison function of op's btree operator family:
	// here the owner's, which no allow-list judged.
	{super: rv4Order, refresh: true, soundVariant: soundVariant{name: "order_by_using_operator", steps: []string{
		`SELECT first_name FROM customers ORDER BY first_name USING <<<< LIMIT 3`}}},
	// Class join_using_alias: JOIN … USING (…) AS j names the merged
	// columns j, a FROM item noteFromItem did not count: with accounts
	// aliased j in another scope, j.annual_revenue was taken for the
	// column of accounts, while PostgreSQL calls annual_revenue(j).
	{super: annualRevenue, refresh: true, soundVariant: soundVariant{name: "join_using_alias_notation", steps: []string{
		`SELECT (SELECT j.annual_revenue FROM accounts x JOIN accounts y USING (account_id) AS j LIMIT 1) FROM accounts j LIMIT 1`}}},
	// Class schema_qualified_notation: PostgreSQL resolves
	// public.accounts.f by the relation, skipping the sub-select named
	// accounts; but finish prints it accounts.f once the outer accounts
	// is a policy subquery, and then the sub-select is what it names:
	// without a column annual_revenue, accounts.annual_revenue is the
	// call annual_revenue(accounts). checkFunctionalNotation judged only
	// two-part names by every FROM item of the name.
	{super: annualRevenue, refresh: true, soundVariant: soundVariant{name: "schema_qualified_notation", steps: []string{
		`SELECT (SELECT public.accounts.annual_revenue FROM (SELECT 1 AS x) accounts) FROM accounts LIMIT 1`}}},
}

func TestReview4Fixed(t *testing.T) { runReview2(t, review4Fixed) }

package rewrite_test

// Reproducers from the fourth independent review (names resolved over
// the whole statement where PostgreSQL resolves them scope by scope), of
// bypasses fixed on this branch, as regression tests.
//
//	go test -run 'TestReview4Fixed' ./rewrite/

import "testing"

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
}

func TestReview4Fixed(t *testing.T) { runReview2(t, review4Fixed) }

package rewrite_test

import "testing"

// review4Renamed: class column_alias. checkFunctionalNotation
// (rewrite/notation.go) judged a.f a column when a's relation has a
// column f. But AS a(x1, …) renames the relation's columns: with
// annual_revenue renamed, a.annual_revenue is the call
// annual_revenue(a) of a careless owner's function (in the catalog
// snapshot), which no allow-list judged.
var review4Renamed = []review2Variant{
	{super: annualRevenue, refresh: true,
		soundVariant: soundVariant{name: "column_alias_notation", steps: []string{
			`SELECT a.annual_revenue FROM accounts AS a(x1, x2, x3, x4, x5) LIMIT 1`}}},
}

func TestReview4Renamed(t *testing.T) { runReview2(t, review4Renamed) }

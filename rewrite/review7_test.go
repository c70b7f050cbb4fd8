package rewrite_test

import "testing"

// Class mask_below_filter, renamed: the check of cbfef44 (walk.go, now
// readsRaisingMask) matched a condition's column names against the
// protected relation's own column names, but an alias's column list (AS o(a, b, d)) renames them, so
// WHERE d IS NULL reads the generalized ordered_at under a name no column
// has, the statement is not fenced, and the mask raises on hidden rows.
func TestReview7MaskBelowFilterRenamed(t *testing.T) {
	quietAboutHiddenRange(t, maskedOrderRules(t, "points_band", ""), "-739702",
		`SELECT count(*) FROM orders o WHERE o.ordered_at IS NULL`, // control: fenced since cbfef44
		`SELECT count(*) FROM orders o(a, b, d) WHERE d IS NULL`,
		`SELECT count(*) FROM orders o(a, b, d) WHERE o.d IS NULL`,
		`SELECT count(*) FROM order_lines l(a, b, c, q) WHERE q IS NULL`,
		`SELECT count(*) FROM (orders o CROSS JOIN (SELECT 1) z) j(a, b, d) WHERE d IS NULL`,
	)
}

// Class mask_below_filter, with no condition at all: a mask that is not
// strict (a custom CASE, or HideIfOptedOut's CASE around any mask) read
// from the nullable side of an outer join becomes a PlaceHolderVar when
// PostgreSQL pulls the plain policy subquery up, and a PlaceHolderVar is
// computed at the scan of the relation its columns come from, below the
// semi-join the linked row filter (EXISTS over orders and customers)
// becomes. The statement has no qual reading quantity, so cbfef44 does
// not fence it, and the mask raises on the hidden south line.
func TestReview7NonStrictMaskOuterJoin(t *testing.T) {
	quietAboutHiddenRange(t, maskedOrderRules(t, "qcase", "  qcase: {sql: \"CASE WHEN :value IS NULL THEN 0 ELSE ((:value)::bigint * 4)::integer END\"}\n"), "-739703",
		`SELECT l.quantity FROM (SELECT 1) x LEFT JOIN order_lines l ON true`,
	)
}

// Class mask_below_filter, grouping sets: with GROUPING SETS, ROLLUP or
// CUBE, PostgreSQL wraps every non-Var expression of a pulled-up
// subquery in a PlaceHolderVar, computed at the scan of its relation,
// below the semi-join the linked row filter becomes. Grouping by a
// bucketed or generalized column reads it in no qual, so the statement is
// not fenced, and the mask raises on the hidden south row.
func TestReview7GroupingSets(t *testing.T) {
	quietAboutHiddenRange(t, maskedOrderRules(t, "points_band", ""), "-739704",
		`SELECT l.quantity, count(*) FROM order_lines l GROUP BY GROUPING SETS ((l.quantity), ())`,
		`SELECT o.ordered_at, count(*) FROM orders o GROUP BY ROLLUP (o.ordered_at)`,
		`SELECT l.quantity FROM order_lines l GROUP BY CUBE (l.quantity, l.line_no)`,
	)
}

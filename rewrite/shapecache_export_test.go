package rewrite

import (
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v6"
)

// Test-only hooks for the shape cache (shapecache_test.go).

// ShapeLiterals is what the shape lexer finds in sql: its literals' texts
// and kinds; ok is false for a statement it does not handle.
func ShapeLiterals(sql string) (texts []string, kinds string, ok bool) {
	_, lits, ok := lexShape("", sql)
	for _, l := range lits {
		texts = append(texts, sql[l.start:l.end])
		kinds += string(l.kind)
	}
	return texts, kinds, ok
}

// ScannerAgrees is scannerAgrees on the shape lexer's literals of sql.
func ScannerAgrees(sql string) bool {
	_, lits, ok := lexShape("", sql)
	return ok && scannerAgrees(sql, lits)
}

// ClearDescriptions empties the access log's description cache, so that a
// cold rewrite describes its statement afresh.
func ClearDescriptions() {
	descriptions.mu.Lock()
	clear(descriptions.m)
	descriptions.mu.Unlock()
}

// ShapeCanonical is sql with each literal the shape lexer found replaced
// by a plain one of the same kind, and whether the lexer handled sql.
func ShapeCanonical(sql string) (string, bool) {
	_, lits, ok := lexShape("", sql)
	if !ok {
		return "", false
	}
	plain := map[byte]string{litInt: "1", litNum: "1.5", litString: "'a'", litEscape: "E'a'", litDollar: "$$a$$",
		litBit: "B'1'", litHex: "X'1'", litUni: "U&'a'"}
	var b strings.Builder
	prev := 0
	for _, l := range lits {
		b.WriteString(sql[prev:l.start])
		b.WriteString(plain[l.kind])
		prev = l.end
	}
	b.WriteString(sql[prev:])
	return b.String(), true
}

// ParamsPlain is paramsPlain on sql's parse tree.
func ParamsPlain(sql string) (bool, error) {
	tree, err := pg_query.Parse(sql)
	if err != nil {
		return false, err
	}
	return paramsPlain(tree), nil
}

// LiteralParam is the parameter the prepared form of a shape hit gives
// the one literal of lit (shapeprep.go); ok is false when it has none.
func LiteralParam(lit string) (value string, oid uint32, ok bool) {
	_, lits, ok := lexShape("", "SELECT "+lit)
	if !ok || len(lits) != 1 {
		return "", 0, false
	}
	v, oid, ok := literalParam(lit, lits[0].kind)
	return string(v), oid, ok
}

package rewrite

import (
	"strings"

	"github.com/pgcloak/pgcloak/proxy"
)

// Test-only hooks for the shape cache (shapecache_test.go).

// SnapshotShapeStats counts the shape cache's hits, misses and lookups of
// unshared shapes in the catalog snapshot in force.
func (e *Engine) SnapshotShapeStats() (hits, misses, unshared int64) {
	st := e.state.Load()
	if st == nil || st.shapes == nil {
		return 0, 0, 0
	}
	return st.shapes.hits.Load(), st.shapes.misses.Load(), st.shapes.unshared.Load()
}

// Shaped is the session's rewrite through the shape cache, without the
// result cache (which would answer a text seen before): hit says whether
// the shape's template answered.
func (b *BenchSession) Shaped(sql string) (res *Result, hit bool) {
	st := b.s.e.state.Load()
	r, probe := st.shapes.lookup(b.s.ctx, sql)
	if r != nil {
		return r, true
	}
	r = Rewrite(st.cat, b.s.ctx, st.subq, sql, refusalSQL)
	st.shapes.learn(st, b.s.ctx, probe, r)
	return r, false
}

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

// DecideRes is Decide with the result the access log was given.
func (b *BenchSession) DecideRes(sql string) (proxy.Decision, *Result) {
	d := b.s.decide(sql)
	return d, b.s.lastRes
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

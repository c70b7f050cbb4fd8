package rewrite

import (
	"crypto/sha256"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	pg_query "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// The statement-shape cache. Clients that send their constants inline
// (psycopg2, PDO's emulated prepares, Django, Rails, hand-built SQL) send
// a new text for every key they look up, so the result cache, keyed by the
// exact text, misses every time. The shape cache rewrites a statement
// once per shape (its text with every literal taken out) and viewer
// (Viewer.Key), and puts each later statement's own literals back into
// the rewritten text.
//
// Soundness rests on four checks, all made once per shape, on the
// statement that builds its template (the second of the shape; each is
// answered by its own cold rewrite):
//
//  1. The template is the rewrite of the statement with its literals
//     replaced by parameters $1..$n: the analysis the extended protocol
//     relies on, which never sees a value. The rewriter treats a
//     parameter at least as cautiously as any literal (a LIMIT of it, an
//     array of it fence; so does a cast of it, unless it stands for a
//     string literal, whose cast runs at parse time: rewrite.stringParams),
//     and marks every decision that looked at a constant's value
//     (Result.ConstantsRead): such shapes are never shared.
//  2. The parameterized text parses to the tree of the statement with
//     each literal's A_Const replaced by its parameter, nothing else
//     changed (a literal the grammar folds or wraps, a negative number, a
//     typed literal such as DATE '…', does not qualify), and no parameter
//     stands where PostgreSQL gives a constant a meaning of its own (a
//     position in ORDER BY, GROUP BY or DISTINCT ON, a type modifier).
//  3. pg_query's scanner and the shape lexer agree on every token of the
//     statement: each literal the lexer found is one token of the kind it
//     named, and there is no other constant and no parameter.
//  4. The template with the statement's own literals put back parses to
//     exactly the tree of the statement's cold rewrite.
//
// A shape that fails any check is remembered as unshared, and its
// statements take the ordinary path. A later statement hits only if its
// text equals the first one's byte for byte outside its literals (comments
// and whitespace included), and each of its literals is one complete token
// of the same kind (an integer that fits in int4, another number, a string,
// an E'…' string, a dollar-quoted string, a bit or hex string, a U&'…'
// string): PostgreSQL's grammar sees the same token sequence, so the
// statement parses to the same tree up to constant values. The literals go
// back in with a space on each side, so none can glue to its neighbours.
//
// A ShapeCache belongs to one catalog snapshot (package engine keeps one
// beside its result cache) and its shapes are keyed by the viewer's key,
// which names the rules' version: a reload or a catalog change starts from
// an empty cache, like the result cache.

// shapeLit is one literal of a statement: its span and kind.
type shapeLit struct {
	start, end int
	kind       byte
}

// Literal kinds, as they appear in shape keys.
const (
	litInt    = 'i' // decimal digits that fit in int4: ICONST
	litNum    = 'n' // any other decimal number: FCONST
	litString = 's' // '…' with standard_conforming_strings on
	litEscape = 'e' // E'…'
	litDollar = 'd' // $tag$…$tag$
	litBit    = 'b' // B'…'
	litHex    = 'x' // X'…'
	litUni    = 'u' // U&'…'
)

// maxShapeKey bounds the text of a shape (literals excluded) that is
// cached, and maxShapeLits the literals of one statement.
const (
	maxShapeKey  = 8 << 10
	maxShapeLits = 1000
)

// lexShape splits sql into its shape and its literals. The shape is sql
// with each literal replaced by "\x00" and its kind; everything else is
// kept byte for byte. ok is false for a statement the cache does not
// handle: one with a parameter, an unterminated token, a NUL byte, two
// literals in a row (PostgreSQL joins strings separated by a newline), a
// literal kind it does not share (N'…', 0x1F, 1_000), a number touching a
// name, or no literal at all.
func lexShape(prefix, sql string) (key string, lits []shapeLit, ok bool) {
	n := len(sql)
	var b strings.Builder
	b.Grow(len(prefix) + min(n, maxShapeKey) + 2)
	b.WriteString(prefix)
	b.WriteString("\x00\x00")
	prevLit := false // the last token was a literal (comments and spaces aside)
	lit := func(start, end int, kind byte) bool {
		if prevLit || len(lits) >= maxShapeLits {
			return false
		}
		lits = append(lits, shapeLit{start, end, kind})
		b.WriteByte(0)
		b.WriteByte(kind)
		prevLit = true
		return true
	}
	for i := 0; i < n; {
		if b.Len()-len(prefix) > maxShapeKey {
			return "", nil, false
		}
		c := sql[i]
		switch {
		case c == 0:
			return "", nil, false
		case c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v' || c == '\n':
			b.WriteByte(c)
			i++
		case c == '-' && i+1 < n && sql[i+1] == '-':
			j := i
			for j < n && sql[j] != '\n' {
				j++
			}
			b.WriteString(sql[i:j])
			i = j
		case c == '/' && i+1 < n && sql[i+1] == '*':
			j, closed := skipComment(sql, i)
			if !closed {
				return "", nil, false
			}
			b.WriteString(sql[i:j])
			i = j
		case c == '\'':
			j, closed := endQuoted(sql, i, false, true)
			if !closed || !lit(i, j, litString) {
				return "", nil, false
			}
			i = j
		case c == '"':
			j, closed := endQuotedIdent(sql, i)
			if !closed {
				return "", nil, false
			}
			b.WriteString(sql[i:j])
			prevLit = false
			i = j
		case c == '$' && i+1 < n && isDigit(sql[i+1]):
			return "", nil, false // a parameter
		case c == '$':
			j, isQuote := skipDollar(sql, i)
			if !isQuote {
				b.WriteByte(c)
				prevLit = false
				i++
				continue
			}
			if !dollarClosed(sql[i:j]) || !lit(i, j, litDollar) {
				return "", nil, false
			}
			i = j
		case isDigit(c) || (c == '.' && i+1 < n && isDigit(sql[i+1])):
			j := skipNumber(sql, i)
			kind := numberKind(sql[i:j])
			if kind == 0 || (i > 0 && (isIdentChar(sql[i-1]) || sql[i-1] == '.')) ||
				(j < n && (isIdentChar(sql[j]) || sql[j] == '.')) || !lit(i, j, kind) {
				return "", nil, false
			}
			i = j
		case isIdentStart(c):
			j := i
			for j < n && isIdentChar(sql[j]) {
				j++
			}
			word := sql[i:j]
			switch {
			case j < n && sql[j] == '\'' && len(word) == 1:
				var kind byte
				switch word[0] | 0x20 {
				case 'e':
					kind = litEscape
				case 'b':
					kind = litBit
				case 'x':
					kind = litHex
				default:
					return "", nil, false // N'…' is a typed literal
				}
				k, closed := endQuoted(sql, j, kind == litEscape, kind == litEscape)
				if !closed || !lit(i, k, kind) {
					return "", nil, false
				}
				i = k
			case j+1 < n && sql[j] == '&' && sql[j+1] == '\'' && (word == "u" || word == "U"):
				k, closed := endQuoted(sql, j+1, false, true)
				if !closed || !lit(i, k, litUni) {
					return "", nil, false
				}
				i = k
			default:
				b.WriteString(word)
				prevLit = false
				i = j
			}
		default:
			b.WriteByte(c)
			prevLit = false
			i++
		}
	}
	if len(lits) == 0 {
		return "", nil, false
	}
	return b.String(), lits, true
}

// skipComment returns the end of the (nesting) block comment opening at i.
func skipComment(s string, i int) (int, bool) {
	depth := 0
	for i < len(s) {
		switch {
		case s[i] == '/' && i+1 < len(s) && s[i+1] == '*':
			depth++
			i += 2
		case s[i] == '*' && i+1 < len(s) && s[i+1] == '/':
			depth--
			i += 2
			if depth == 0 {
				return i, true
			}
		default:
			i++
		}
	}
	return i, false
}

// endQuoted returns the index after the quoted literal whose opening quote
// is at i, as PostgreSQL's scanner ends it: with backslash (an E'…'
// string) a backslash escapes the next byte; with doubled (plain, E'…' and
// U&'…' strings) two quotes stand for one, while in B'…' and X'…' the
// first quote ends the literal.
func endQuoted(s string, i int, backslash, doubled bool) (int, bool) {
	for i++; i < len(s); i++ {
		switch {
		case backslash && s[i] == '\\':
			// \uXXXX and \UXXXXXXXX must be complete: the scanner
			// rejects the statement otherwise.
			if i+1 < len(s) && (s[i+1] == 'u' || s[i+1] == 'U') {
				digits := 4
				if s[i+1] == 'U' {
					digits = 8
				}
				if i+2+digits > len(s) || !hexDigits(s[i+2:i+2+digits]) {
					return len(s), false
				}
			}
			i++
		case s[i] == '\'':
			if doubled && i+1 < len(s) && s[i+1] == '\'' {
				i++
				continue
			}
			return i + 1, true
		}
	}
	return len(s), false
}

func hexDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i] | 0x20; !isDigit(s[i]) && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// endQuotedIdent returns the index after the quoted identifier opening at
// i (two quotes stand for one).
func endQuotedIdent(s string, i int) (int, bool) {
	for i++; i < len(s); i++ {
		if s[i] == '"' {
			if i+1 < len(s) && s[i+1] == '"' {
				i++
				continue
			}
			return i + 1, true
		}
	}
	return len(s), false
}

// dollarClosed says whether a dollar-quoted literal ends with its opening
// tag and holds no earlier copy of it.
func dollarClosed(s string) bool {
	t := strings.IndexByte(s[1:], '$') + 2
	if t < 2 || len(s) < 2*t {
		return false
	}
	tag := s[:t]
	return strings.HasSuffix(s, tag) && strings.Index(s[t:], tag) == len(s)-2*t
}

// numberKind classifies a numeric literal as PostgreSQL's scanner reads
// it: litInt for decimal digits that fit in int4, litNum for another
// decimal number, 0 for what the cache does not share (0x…, 1_000, a
// malformed exponent).
func numberKind(s string) byte {
	i, digits := 0, 0
	for i < len(s) && isDigit(s[i]) {
		i++
		digits++
	}
	if i == len(s) {
		if _, err := strconv.ParseInt(s, 10, 32); err == nil {
			return litInt
		}
		return litNum
	}
	if s[i] == '.' {
		i++
		for i < len(s) && isDigit(s[i]) {
			i++
			digits++
		}
	}
	if digits == 0 {
		return 0
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		e := i
		for i < len(s) && isDigit(s[i]) {
			i++
		}
		if i == e {
			return 0
		}
	}
	if i != len(s) {
		return 0
	}
	return litNum
}

// shapeTemplate is the rewrite of a shape: the text around the literals,
// and for each gap the literal that goes there.
type shapeTemplate struct {
	segs  []string // len(slots)+1 pieces of text
	slots []int    // the literal (by order in the statement) of each gap
	res   *Result  // the cold result of the statement that built it
	size  int64
	// psql is the template as a parameterized statement ($k is literal
	// k-1 of the statement), and psum its SHA-256 (shapeprep.go).
	psql string
	psum [32]byte
}

// shapeEntry is a cached shape: its template; or, without one, a shape
// seen once (seen: the next statement of the shape builds the template)
// or one not shared. A template is built on a shape's second statement,
// so that statements whose shape never comes back (ad hoc queries, a
// comment with a request id) cost no more than before.
type shapeEntry struct {
	t    *shapeTemplate
	seen bool
}

// ShapeCache maps (viewer, shape) to its entry, within a byte budget.
// A nil *ShapeCache caches nothing.
type ShapeCache struct {
	mu    sync.RWMutex
	m     map[string]shapeEntry
	bytes atomic.Int64
	max   int64

	own   ShapeCounters // this cache's
	total *ShapeCounters
}

// ShapeCounters count lookups in shape caches: hits, misses (shapes not
// seen, or seen once), and statements of unshared shapes.
type ShapeCounters struct{ hits, misses, unshared atomic.Int64 }

// Counts returns the hits, misses and lookups of unshared shapes counted.
func (c *ShapeCounters) Counts() (hits, misses, unshared int64) {
	return c.hits.Load(), c.misses.Load(), c.unshared.Load()
}

func (c *ShapeCounters) add(hits, misses, unshared int64) {
	c.hits.Add(hits)
	c.misses.Add(misses)
	c.unshared.Add(unshared)
}

const maxShapes = 20000

// NewShapeCache returns an empty shape cache of at most maxBytes
// (estimated) whose lookups are also counted in counters (which may be
// nil), for counts across caches.
func NewShapeCache(maxBytes int64, counters *ShapeCounters) *ShapeCache {
	return &ShapeCache{m: map[string]shapeEntry{}, max: maxBytes, total: counters}
}

// Counts returns the lookups in this cache: hits, misses and statements
// of unshared shapes.
func (c *ShapeCache) Counts() (hits, misses, unshared int64) {
	if c == nil {
		return 0, 0, 0
	}
	return c.own.Counts()
}

// Bytes is the estimated size of the cache.
func (c *ShapeCache) Bytes() int64 {
	if c == nil {
		return 0
	}
	return c.bytes.Load()
}

func (c *ShapeCache) count(hits, misses, unshared int64) {
	c.own.add(hits, misses, unshared)
	if c.total != nil {
		c.total.add(hits, misses, unshared)
	}
}

// ShapeProbe is what Lookup learnt of a statement, for Learn.
type ShapeProbe struct {
	sql   string
	key   string
	lits  []shapeLit
	build bool // the shape was seen before: build its template
}

// Lookup returns the rewrite of sql for v from its shape's template, or
// nil; the probe is for Learn after the ordinary path (nil when the shape
// is known already or not handled).
func (c *ShapeCache) Lookup(v *Viewer, sql string) (*Result, *ShapeProbe) {
	if c == nil {
		return nil, nil
	}
	key, lits, ok := lexShape(v.Key, sql)
	if !ok {
		return nil, nil
	}
	c.mu.RLock()
	e, found := c.m[key]
	c.mu.RUnlock()
	if !found || e.seen {
		c.count(0, 1, 0)
		return nil, &ShapeProbe{sql: sql, key: key, lits: lits, build: found}
	}
	if e.t == nil {
		c.count(0, 0, 1)
		return nil, nil
	}
	c.count(1, 0, 0)
	// The whole cold result, so that every field of it (decisions,
	// descriptions, any added later) is this statement's too; only the
	// text is the statement's own.
	r := *e.t.res
	r.SQL = e.t.fill(sql, lits)
	r.Prepared = e.t.prepared(sql, lits)
	return &r, nil
}

// fill puts the literals of sql into the template.
func (t *shapeTemplate) fill(sql string, lits []shapeLit) string {
	if len(t.slots) == 0 {
		return sql // the rewrite left the statement as it was
	}
	n := 0
	for _, s := range t.segs {
		n += len(s)
	}
	for _, l := range lits {
		n += l.end - l.start + 2
	}
	var b strings.Builder
	b.Grow(n)
	for i, k := range t.slots {
		b.WriteString(t.segs[i])
		b.WriteByte(' ')
		b.WriteString(sql[lits[k].start:lits[k].end])
		b.WriteByte(' ')
	}
	b.WriteString(t.segs[len(t.segs)-1])
	return b.String()
}

// Learn builds the template of a probed statement's shape from res, its
// cold rewrite for v against cat with subq and refusalSQL (as Rewrite
// made it), or remembers that the shape is not shared.
func (c *ShapeCache) Learn(cat *Catalog, subq *SubqueryCache, v *Viewer, p *ShapeProbe, res *Result, refusalSQL func(*Refusal) string) {
	if c == nil || p == nil {
		return
	}
	var e shapeEntry
	switch {
	case !shareable(res):
	case !p.build:
		e.seen = true
	default:
		e.t = buildTemplate(cat, subq, v, p, res, refusalSQL)
	}
	size := int64(len(p.key)) + 64
	if e.t != nil {
		size += e.t.size
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.m[p.key]; ok && !(old.seen && !e.seen) {
		return // known already (another session got there first)
	}
	if len(c.m) >= maxShapes || c.bytes.Load()+size > c.max {
		clear(c.m)
		c.bytes.Store(0)
	}
	c.m[p.key] = e
	c.bytes.Add(size)
}

// shareable says whether a result may stand for every statement of its
// shape: one statement, not refused, no decision on a constant, nothing
// the engine handles per statement (unknown relations, catalog changes,
// SQL-level prepared statements).
func shareable(r *Result) bool {
	return len(r.Refused) == 0 && !r.ConstantsRead && !r.CatalogChange && len(r.Unknown) == 0 &&
		len(r.Prepares) == 0 && len(r.Executes) == 0 && len(r.Deallocates) == 0 && len(r.Statements) == 1
}

// buildTemplate makes the template of p's shape, or returns nil when the
// shape is not shared. res is the cold rewrite of p.sql.
func buildTemplate(cat *Catalog, subq *SubqueryCache, v *Viewer, p *ShapeProbe, res *Result, refusalSQL func(*Refusal) string) *shapeTemplate {
	if !shareable(res) || !scannerAgrees(p.sql, p.lits) {
		return nil
	}
	// The statement with its literals as parameters, spaced so that no
	// parameter joins a neighbouring token.
	var b strings.Builder
	prev := 0
	at := make([]int, len(p.lits)) // where each parameter's $ is
	for i, l := range p.lits {
		b.WriteString(p.sql[prev:l.start])
		b.WriteByte(' ')
		at[i] = b.Len()
		b.WriteString("$" + strconv.Itoa(i+1) + " ")
		prev = l.end
	}
	b.WriteString(p.sql[prev:])
	param := b.String()

	orig, err := pg_query.Parse(p.sql)
	if err != nil || len(orig.Stmts) != 1 {
		return nil
	}
	ptree, err := pg_query.Parse(param)
	if err != nil || len(ptree.Stmts) != 1 {
		return nil
	}
	switch ptree.Stmts[0].Stmt.GetNode().(type) {
	case *pg_query.Node_SelectStmt, *pg_query.Node_InsertStmt, *pg_query.Node_UpdateStmt, *pg_query.Node_DeleteStmt:
	default:
		return nil // utility statements and MERGE: not shared
	}
	m := &paramMatch{lits: p.lits, at: at, seen: make([]bool, len(p.lits))}
	if !m.same(orig.ProtoReflect(), ptree.ProtoReflect()) || !m.all() || !paramsPlain(ptree) {
		return nil
	}
	strs := map[int32]bool{}
	types := make([]uint32, len(p.lits))
	for i, l := range p.lits {
		strs[int32(i+1)] = l.kind == litString || l.kind == litEscape || l.kind == litDollar || l.kind == litUni
		// As the literals type themselves, for every statement of the
		// shape: a number that is no int4 may be int8 or numeric.
		switch l.kind {
		case litInt:
			types[i] = oidInt4
		case litNum:
			types[i] = oidNumeric
		case litBit, litHex:
			types[i] = oidBit
		}
	}
	pres := (&rewrite{cat: cat, ctx: v, subq: subq, stringParams: strs, paramTypes: types}).run(param, refusalSQL)
	if !shareable(pres) || pres.Unchanged != res.Unchanged || !slices.Equal(pres.Reads, res.Reads) ||
		len(pres.Kinds) != len(res.Kinds) {
		return nil
	}
	t := &shapeTemplate{res: res}
	if res.Unchanged {
		t.size = int64(len(p.sql))
	} else {
		if !t.split(pres.SQL, len(p.lits)) {
			return nil
		}
		// The template with this statement's literals must say exactly
		// what its cold rewrite says.
		filled, err := pg_query.Parse(t.fill(p.sql, p.lits))
		if err != nil {
			return nil
		}
		cold, err := pg_query.Parse(res.SQL)
		if err != nil || !sameTree(cold.ProtoReflect(), filled.ProtoReflect()) {
			return nil
		}
		for _, s := range t.segs {
			t.size += int64(len(s))
		}
		// The catalog snapshot's generation too: after a table changes
		// (a column's type), the server's statement of the old name
		// would fail with "cached plan must not change result type".
		t.psql = pres.SQL
		t.psum = sha256.Sum256(fmt.Appendf([]byte(pres.SQL), "\x00%d", cat.Generation))
		t.size += int64(len(pres.SQL))
	}
	t.size += int64(len(res.SQL)) + 512
	return t
}

// literalCast says whether n is a cast of a parameter that stands for a
// string literal in every statement of the template's shape: like the cast
// of a literal (qualSafe), it is the type's input function, run while the
// statement is parsed, whatever the rows.
func (rw *rewrite) literalCast(n *pg_query.Node) bool {
	tc := n.GetTypeCast()
	if tc == nil || rw.stringParams == nil {
		return false
	}
	p := tc.Arg.GetParamRef()
	return p != nil && rw.stringParams[p.Number]
}

// split cuts a rewritten parameterized statement at its parameters, each
// of which must appear exactly once as a parameter token.
func (t *shapeTemplate) split(sql string, n int) bool {
	sc, err := pg_query.Scan(sql)
	if err != nil {
		return false
	}
	seen := make([]bool, n)
	prev := 0
	for _, tok := range sc.Tokens {
		switch tok.Token {
		case pg_query.Token_PARAM:
		case pg_query.Token_SQL_COMMENT, pg_query.Token_C_COMMENT:
			return false // the printer writes none
		default:
			continue
		}
		k, err := strconv.Atoi(sql[tok.Start+1 : tok.End])
		if err != nil || k < 1 || k > n || seen[k-1] {
			return false
		}
		seen[k-1] = true
		t.segs = append(t.segs, sql[prev:tok.Start])
		t.slots = append(t.slots, k-1)
		prev = int(tok.End)
	}
	for _, s := range seen {
		if !s {
			return false
		}
	}
	t.segs = append(t.segs, sql[prev:])
	return true
}

// scannerAgrees says whether pg_query's scanner finds exactly the literals
// the shape lexer found, each as one token of the same kind, and no
// parameter.
func scannerAgrees(sql string, lits []shapeLit) bool {
	sc, err := pg_query.Scan(sql)
	if err != nil {
		return false
	}
	i := 0
	for _, tok := range sc.Tokens {
		var kinds string
		switch tok.Token {
		case pg_query.Token_SCONST:
			kinds = "sed"
		case pg_query.Token_USCONST:
			kinds = "u"
		case pg_query.Token_BCONST:
			kinds = "b"
		case pg_query.Token_XCONST:
			kinds = "x"
		case pg_query.Token_ICONST:
			kinds = "i"
		case pg_query.Token_FCONST:
			kinds = "n"
		case pg_query.Token_PARAM:
			return false
		default:
			if i < len(lits) && int(tok.End) > lits[i].start && int(tok.Start) < lits[i].end {
				return false // a token overlapping a literal
			}
			continue
		}
		if i >= len(lits) || int(tok.Start) != lits[i].start || int(tok.End) != lits[i].end ||
			!strings.ContainsRune(kinds, rune(lits[i].kind)) {
			return false
		}
		i++
	}
	return i == len(lits)
}

// paramMatch compares the tree of a statement with that of its
// parameterized form: they must be equal but for each literal's A_Const,
// which must be the parameter put in its place.
type paramMatch struct {
	lits []shapeLit
	at   []int // position of parameter i in the parameterized text
	seen []bool
}

func (m *paramMatch) all() bool {
	for _, s := range m.seen {
		if !s {
			return false
		}
	}
	return true
}

func (m *paramMatch) same(a, b protoreflect.Message) bool {
	if a.Descriptor() != b.Descriptor() {
		return false
	}
	if na, ok := a.Interface().(*pg_query.Node); ok {
		nb := b.Interface().(*pg_query.Node)
		if c := na.GetAConst(); c != nil {
			if pr := nb.GetParamRef(); pr != nil {
				k := int(pr.Number) - 1
				if k < 0 || k >= len(m.lits) || m.seen[k] || int(c.Location) != m.lits[k].start ||
					int(pr.Location) != m.at[k] || c.Isnull {
					return false
				}
				m.seen[k] = true
				return true
			}
		}
	}
	same := true
	check := func(fd protoreflect.FieldDescriptor) bool {
		if positionField(fd) {
			return true
		}
		if a.Has(fd) != b.Has(fd) {
			same = false
			return false
		}
		x, y := a.Get(fd), b.Get(fd)
		switch {
		case fd.IsList():
			lx, ly := x.List(), y.List()
			if lx.Len() != ly.Len() {
				same = false
				return false
			}
			for i := 0; i < lx.Len() && same; i++ {
				same = m.value(fd, lx.Get(i), ly.Get(i))
			}
		case fd.IsMap():
			same = false
		default:
			same = m.value(fd, x, y)
		}
		return same
	}
	a.Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool { return check(fd) })
	if same {
		b.Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
			if !a.Has(fd) {
				same = false
			}
			return same
		})
	}
	return same
}

func (m *paramMatch) value(fd protoreflect.FieldDescriptor, x, y protoreflect.Value) bool {
	if fd.Kind() == protoreflect.MessageKind || fd.Kind() == protoreflect.GroupKind {
		return m.same(x.Message(), y.Message())
	}
	return x.Equal(y)
}

// paramsPlain says whether every parameter stands where a literal is just
// a value: not as an ORDER BY or DISTINCT ON item (an integer there is a
// position in the select list), not anywhere inside a GROUP BY item (an
// integer in a row there, GROUP BY (a, 1) or GROUPING SETS ((a, 1)), is a
// position too), nor in a type name (a type modifier).
func paramsPlain(tree *pg_query.ParseResult) bool {
	param := func(n *pg_query.Node) bool { return n.GetParamRef() != nil }
	hasParam := func(n *pg_query.Node) bool { return anyMessage(n.ProtoReflect(), isParamRef) }
	return !anyMessage(tree.Stmts[0].Stmt.ProtoReflect(), func(msg protoreflect.Message) bool {
		switch x := msg.Interface().(type) {
		case *pg_query.SortBy:
			return param(x.Node)
		case *pg_query.SelectStmt:
			return slices.ContainsFunc(x.GroupClause, hasParam) || slices.ContainsFunc(x.DistinctClause, param)
		case *pg_query.TypeName:
			return anyMessage(msg, isParamRef)
		}
		return false
	})
}

func isParamRef(m protoreflect.Message) bool {
	_, ok := m.Interface().(*pg_query.ParamRef)
	return ok
}

// anyMessage says whether f holds for m or any message below it.
func anyMessage(m protoreflect.Message, f func(protoreflect.Message) bool) bool {
	if f(m) {
		return true
	}
	found := false
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Kind() != protoreflect.MessageKind {
			return true
		}
		if fd.IsList() {
			l := v.List()
			for i := 0; i < l.Len() && !found; i++ {
				found = anyMessage(l.Get(i).Message(), f)
			}
		} else {
			found = anyMessage(v.Message(), f)
		}
		return !found
	})
	return found
}

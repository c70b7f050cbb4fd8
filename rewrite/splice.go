package rewrite

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/proto"
)

// Printing a rewritten statement. Most of its text is policy subqueries,
// which are the same for every statement of a context and relation; the
// statement's own part is small. So the statement is printed with a short
// marker in place of each policy subquery,
//
//	(SELECT * FROM pgcloak_splice_<nonce>.m<i>)
//
// that text is verified (verify.go: it parses back to the tree with the
// markers), and the policy subqueries' own printed text, verified once
// when the subquery was cached, is put in at the markers' positions as the
// parser reports them. A marker stands where a parenthesized SELECT
// stands, and so does its replacement: the result parses to the tree
// pgcloak meant to send, without printing or parsing the policy
// subqueries again for every statement.

// spliceSchema names the markers. The nonce keeps a client from writing a
// marker of its own (it would only name a relation that does not exist).
var spliceSchema = func() string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return "pgcloak_splice_" + hex.EncodeToString(b[:])
}()

const markerPrefix = "(SELECT * FROM "

// spliceable parses a policy subquery and prints it back: the printed text
// is what goes into statements. It must parse back to the same tree and be
// free of comments, so that nothing around it in a statement can change
// how it is read.
func spliceable(sql string) (*pg_query.Node, string, error) {
	tree, err := pg_query.Parse(sql)
	if err != nil || len(tree.Stmts) != 1 {
		return nil, "", fmt.Errorf("policy subquery does not parse: %v\n%s", err, sql)
	}
	node := tree.Stmts[0].Stmt
	text, err := pg_query.Deparse(tree)
	if err != nil {
		return nil, "", fmt.Errorf("policy subquery cannot be printed: %w", err)
	}
	again, err := parseSelect(text)
	if err != nil || !sameTree(node.ProtoReflect(), again.ProtoReflect()) {
		return nil, "", fmt.Errorf("policy subquery does not print back to itself:\n%s", text)
	}
	sc, err := pg_query.Scan(text)
	if err != nil {
		return nil, "", err
	}
	for _, t := range sc.Tokens {
		if t.Token == pg_query.Token_SQL_COMMENT || t.Token == pg_query.Token_C_COMMENT {
			return nil, "", fmt.Errorf("policy subquery prints with a comment:\n%s", text)
		}
	}
	return node, text, nil
}

// marker is the SELECT that stands for policy subquery i while the
// statement is printed.
func marker(i int) *pg_query.Node {
	return &pg_query.Node{Node: &pg_query.Node_SelectStmt{SelectStmt: &pg_query.SelectStmt{
		TargetList: []*pg_query.Node{pg_query.MakeResTargetNodeWithVal(
			pg_query.MakeColumnRefNode([]*pg_query.Node{pg_query.MakeAStarNode()}, -1), -1)},
		FromClause: []*pg_query.Node{{Node: &pg_query.Node_RangeVar{RangeVar: &pg_query.RangeVar{
			Schemaname: spliceSchema, Relname: "m" + strconv.Itoa(i), Inh: true, Relpersistence: "p"}}}},
		LimitOption: pg_query.LimitOption_LIMIT_OPTION_DEFAULT,
		Op:          pg_query.SetOperation_SETOP_NONE,
	}}}
}

// printSpliced prints tree, whose policy subqueries are subs. It returns ""
// when the printed text does not parse back to what was meant (a refusal:
// rule verify), and an error when it cannot be printed at all.
func printSpliced(tree *pg_query.ParseResult, subs []*policySub) (string, error) {
	texts := make([]string, len(subs))
	for i, s := range subs {
		texts[i] = s.entry.plainSQL
		if s.fenced {
			texts[i] = s.entry.fencedSQL
		}
		s.node.Subquery = marker(i)
	}
	out, err := pg_query.Deparse(tree)
	if err != nil {
		return "", err
	}
	again, ok := parsedAsMeant(tree, out)
	if !ok {
		return "", nil
	}
	if len(subs) == 0 {
		return out, nil
	}
	// Where the parser found each marker. A policy subquery built and then
	// left out of the statement (review builds the row choice twice) has
	// none; the text parsed back to the tree, so every marker in it is one
	// pgcloak put there.
	at := make([]int, len(subs))
	var order []int
	bad := false
	eachMessage(again, func(m proto.Message) bool {
		rv, ok := m.(*pg_query.RangeVar)
		if !ok || rv.Schemaname != spliceSchema {
			return true
		}
		i, err := strconv.Atoi(strings.TrimPrefix(rv.Relname, "m"))
		if err != nil || i < 0 || i >= len(subs) || at[i] != 0 || rv.Location <= 0 {
			bad = true
			return false
		}
		at[i] = int(rv.Location)
		order = append(order, i)
		return true
	})
	if bad {
		return "", nil
	}
	slices.SortFunc(order, func(a, b int) int { return at[a] - at[b] })
	var b strings.Builder
	b.Grow(len(out) + len(subs)*1024)
	prev := 0
	for _, i := range order {
		want := markerPrefix + spliceSchema + ".m" + strconv.Itoa(i) + ")"
		start := at[i] - len(markerPrefix)
		if start < prev || start+len(want) > len(out) || out[start:start+len(want)] != want {
			return "", nil // not printed as expected: refuse
		}
		b.WriteString(out[prev:start])
		b.WriteByte('(')
		b.WriteString(texts[i])
		b.WriteByte(')')
		prev = start + len(want)
	}
	b.WriteString(out[prev:])
	return b.String(), nil
}

package rules

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// SQL written in the rules (row filters, custom masks, attribute queries) is
// parsed with the PostgreSQL parser when the rules load, never at query time.
// Placeholders are written :name; they are found with PostgreSQL's own
// scanner (so ':name' inside a string constant and x::type are left alone),
// turned into $n parameters for parsing, and later bound as typed literal
// nodes: an attribute value never becomes SQL text of its own.

var identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// placeholders replaces each :name in src by $n and returns the names, in
// parameter order.
func placeholders(src string) (string, []string, error) {
	res, err := pg_query.Scan(src)
	if err != nil {
		return "", nil, fmt.Errorf("does not parse: %s", sqlErrMsg(err))
	}
	var b strings.Builder
	var names []string
	index := map[string]int{}
	last := 0
	toks := res.Tokens
	for i, tk := range toks {
		if tk.Token == pg_query.Token_PARAM {
			return "", nil, fmt.Errorf("uses %s: write placeholders as :name", src[tk.Start:tk.End])
		}
		if tk.Token != pg_query.Token_ASCII_58 || i+1 >= len(toks) || toks[i+1].Start != tk.End {
			continue
		}
		next := toks[i+1]
		name := src[next.Start:next.End]
		if !identRE.MatchString(name) {
			continue
		}
		n, ok := index[name]
		if !ok {
			names = append(names, name)
			n = len(names)
			index[name] = n
		}
		b.WriteString(src[last:tk.Start])
		b.WriteString("$" + strconv.Itoa(n))
		last = int(next.End)
	}
	b.WriteString(src[last:])
	return b.String(), names, nil
}

func sqlErrMsg(err error) string {
	return strings.TrimPrefix(err.Error(), "pg_query: ")
}

// parseWrapped parses prefix+src and checks that it is one plain SELECT
// whose only parts are those that prefix itself has.
func parseWrapped(prefix, src string, wantWhere bool) (*pg_query.ParseResult, *pg_query.SelectStmt, error) {
	tree, err := pg_query.Parse(prefix + src)
	if err != nil {
		return nil, nil, fmt.Errorf("does not parse: %s", sqlErrMsg(err))
	}
	if len(tree.Stmts) != 1 {
		return nil, nil, fmt.Errorf("is more than one expression")
	}
	sel := tree.Stmts[0].Stmt.GetSelectStmt()
	if sel == nil || sel.Op != pg_query.SetOperation_SETOP_NONE || len(sel.FromClause) > 0 ||
		len(sel.GroupClause) > 0 || sel.HavingClause != nil || len(sel.WindowClause) > 0 ||
		len(sel.SortClause) > 0 || sel.LimitCount != nil || sel.LimitOffset != nil ||
		len(sel.LockingClause) > 0 || sel.WithClause != nil || sel.IntoClause != nil ||
		len(sel.DistinctClause) > 0 || len(sel.TargetList) != 1 || (sel.WhereClause != nil) != wantWhere {
		return nil, nil, fmt.Errorf("is not a single expression")
	}
	return tree, sel, nil
}

// walkNodes calls f for every Node in the tree under m, parents first. It
// reaches every child, including those that are not held as *Node
// (SelectStmt.Larg and the like), because it walks the protobuf message.
func walkNodes(m protoreflect.Message, f func(n *pg_query.Node)) {
	if n, ok := m.Interface().(*pg_query.Node); ok {
		f(n)
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Message() == nil {
			return true
		}
		if fd.IsList() {
			l := v.List()
			for i := 0; i < l.Len(); i++ {
				walkNodes(l.Get(i).Message(), f)
			}
			return true
		}
		walkNodes(v.Message(), f)
		return true
	})
}

// filterTemplate is a row filter as parsed at load time: "SELECT 1 WHERE
// pred" with $n where the placeholders were.
type filterTemplate struct {
	src    string
	tree   *pg_query.ParseResult
	params []string // params[n-1] is the attribute of $n
	at     Pos
}

const filterPrefix = "SELECT 1 WHERE "

func parseFilter(src string) (*filterTemplate, error) {
	text, names, err := placeholders(src)
	if err != nil {
		return nil, err
	}
	tree, _, err := parseWrapped(filterPrefix, text, true)
	if err != nil {
		if err.Error() == "is not a single expression" {
			return nil, fmt.Errorf("is not a single predicate (write the condition a WHERE clause would hold)")
		}
		return nil, err
	}
	return &filterTemplate{src: src, tree: tree, params: names}, nil
}

// AttrType is the SQL type an attribute is bound as.
type AttrType string

var attrTypes = map[string]string{
	"text":    "text",
	"integer": "int4",
	"bigint":  "int8",
	"numeric": "numeric",
	"boolean": "bool",
	"date":    "date",
	"uuid":    "uuid",
}

var uuidRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$`)
var dateRE = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}$`)
var numericRE = regexp.MustCompile(`^[+-]?(\d+(\.\d*)?|\.\d+)$`)

// checkValue says whether s is a valid value of type t, so that binding
// never fails at query time.
func (t AttrType) checkValue(s string) error {
	ok := true
	switch t {
	case "integer":
		_, err := strconv.ParseInt(s, 10, 32)
		ok = err == nil
	case "bigint":
		_, err := strconv.ParseInt(s, 10, 64)
		ok = err == nil
	case "numeric":
		ok = numericRE.MatchString(s)
	case "boolean":
		ok = s == "true" || s == "false"
	case "date":
		ok = dateRE.MatchString(s)
	case "uuid":
		ok = uuidRE.MatchString(s)
	}
	if strings.IndexByte(s, 0) >= 0 {
		return fmt.Errorf("holds a NUL byte")
	}
	if !ok {
		return fmt.Errorf("%q is not a valid %s", s, t)
	}
	return nil
}

// literal is the typed constant node for value: 'value'::pg_catalog.type.
// The deparser quotes the string, so no value can end the constant.
func (t AttrType) literal(value string) *pg_query.Node {
	return &pg_query.Node{Node: &pg_query.Node_TypeCast{TypeCast: &pg_query.TypeCast{
		Arg: pg_query.MakeAConstStrNode(value, -1),
		TypeName: &pg_query.TypeName{
			Names:    []*pg_query.Node{pg_query.MakeStrNode("pg_catalog"), pg_query.MakeStrNode(attrTypes[string(t)])},
			Typemod:  -1,
			Location: -1,
		},
		Location: -1,
	}}}
}

// Filter is a row filter bound to a principal's attributes.
type Filter struct {
	// SQL is the predicate, over the table's bare column names, with every
	// attribute as a typed literal.
	SQL string
	// Source is the predicate as written in the rules.
	Source string
	node   *pg_query.Node
}

// Node returns the predicate's parse tree, a copy the caller may change.
func (f *Filter) Node() *pg_query.Node { return proto.Clone(f.node).(*pg_query.Node) }

// denyAll is the filter of a principal whose attributes are not known yet.
var denyAll = func() *Filter {
	tree, _ := pg_query.Parse(filterPrefix + "false")
	return &Filter{SQL: "false", Source: "false", node: tree.Stmts[0].Stmt.GetSelectStmt().WhereClause}
}()

// bind substitutes the attributes into the template.
func (ft *filterTemplate) bind(types map[string]AttrType, attrs map[string]string) (*Filter, error) {
	tree := proto.Clone(ft.tree).(*pg_query.ParseResult)
	var err error
	walkNodes(tree.ProtoReflect(), func(n *pg_query.Node) {
		pr := n.GetParamRef()
		if pr == nil {
			return
		}
		name := ft.params[pr.Number-1]
		v, ok := attrs[name]
		if !ok {
			err = fmt.Errorf("attribute %q has no value", name)
			return
		}
		if e := types[name].checkValue(v); e != nil {
			err = fmt.Errorf("attribute %q: %v", name, e)
			return
		}
		n.Node = types[name].literal(v).Node
	})
	if err != nil {
		return nil, err
	}
	out, derr := pg_query.Deparse(tree)
	if derr != nil || !strings.HasPrefix(out, filterPrefix) {
		return nil, fmt.Errorf("row filter %q does not deparse: %v", ft.src, derr)
	}
	return &Filter{SQL: out[len(filterPrefix):], Source: ft.src, node: tree.Stmts[0].Stmt.GetSelectStmt().WhereClause}, nil
}

// parseMaskSQL checks a custom mask expression: one expression whose only
// column is :value, without subqueries. It returns the canonical text with
// $1 in place of :value.
func parseMaskSQL(src string) (string, error) {
	text, names, err := placeholders(src)
	if err != nil {
		return "", err
	}
	for _, n := range names {
		if n != "value" {
			return "", fmt.Errorf("uses :%s; a mask refers to its column as :value and to nothing else", n)
		}
	}
	tree, sel, err := parseWrapped("SELECT ", text, false)
	if err != nil {
		return "", err
	}
	if rt := sel.TargetList[0].GetResTarget(); rt == nil || rt.Name != "" {
		return "", fmt.Errorf("is not a single expression")
	}
	walkNodes(tree.ProtoReflect(), func(n *pg_query.Node) {
		switch {
		case err != nil:
		case n.GetColumnRef() != nil:
			err = fmt.Errorf("refers to column %s; a mask refers to its column as :value and to nothing else", deparseColumnRef(n.GetColumnRef()))
		case n.GetSubLink() != nil:
			err = fmt.Errorf("holds a subquery; a mask is an expression over its column only")
		}
	})
	if err != nil {
		return "", err
	}
	if len(names) == 0 {
		return "", fmt.Errorf("does not use :value (the column being masked)")
	}
	out, err := pg_query.Deparse(tree)
	if err != nil || !strings.HasPrefix(out, "SELECT ") {
		return "", fmt.Errorf("does not deparse: %v", err)
	}
	return out[len("SELECT "):], nil
}

// renderMaskSQL puts the quoted column where $1 is in a canonical mask
// expression. The expression came from the deparser, so every $1 token is
// the parameter (the scanner tells them from a '$1' inside a constant).
func renderMaskSQL(expr, column string) string {
	res, err := pg_query.Scan(expr)
	if err != nil {
		return "NULL"
	}
	var b strings.Builder
	last := 0
	for _, tk := range res.Tokens {
		if tk.Token == pg_query.Token_PARAM {
			b.WriteString(expr[last:tk.Start])
			b.WriteString(QuoteIdent(column))
			last = int(tk.End)
		}
	}
	b.WriteString(expr[last:])
	return b.String()
}

// attrQuery is a parsed attribute query.
type attrQuery struct {
	sql     string   // as written
	columns []string // attribute names, in select-list order
}

func parseAttrQuery(src string) (*attrQuery, error) {
	tree, err := pg_query.Parse(src)
	if err != nil {
		return nil, fmt.Errorf("does not parse: %s", sqlErrMsg(err))
	}
	if len(tree.Stmts) != 1 || tree.Stmts[0].Stmt.GetSelectStmt() == nil {
		return nil, fmt.Errorf("must be one SELECT")
	}
	sel := tree.Stmts[0].Stmt.GetSelectStmt()
	if sel.IntoClause != nil || len(sel.LockingClause) > 0 {
		return nil, fmt.Errorf("must be a plain SELECT (no INTO, no FOR UPDATE)")
	}
	q := &attrQuery{sql: strings.TrimRight(strings.TrimSpace(src), ";")}
	targets := sel.TargetList
	for sel.Op != pg_query.SetOperation_SETOP_NONE && sel.Larg != nil {
		sel = sel.Larg
		targets = sel.TargetList
	}
	for _, t := range targets {
		rt := t.GetResTarget()
		name := rt.GetName()
		if name == "" {
			if cr := rt.GetVal().GetColumnRef(); cr != nil {
				last := cr.Fields[len(cr.Fields)-1]
				if last.GetAStar() != nil {
					return nil, fmt.Errorf("selects *; name the attribute columns")
				}
				name = last.GetString_().GetSval()
			}
		}
		if name == "" {
			return nil, fmt.Errorf("has an unnamed column; name it with AS attribute")
		}
		q.columns = append(q.columns, name)
	}
	var maxParam int32
	walkNodes(tree.ProtoReflect(), func(n *pg_query.Node) {
		if pr := n.GetParamRef(); pr != nil && pr.Number > maxParam {
			maxParam = pr.Number
		}
	})
	if maxParam > 1 {
		return nil, fmt.Errorf("uses $%d; the only parameter is $1, the login", maxParam)
	}
	return q, nil
}

func deparseColumnRef(cr *pg_query.ColumnRef) string {
	var parts []string
	for _, f := range cr.Fields {
		if s := f.GetString_(); s != nil {
			parts = append(parts, s.Sval)
		} else {
			parts = append(parts, "*")
		}
	}
	return strings.Join(parts, ".")
}

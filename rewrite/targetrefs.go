package rewrite

import (
	pg_query "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// SET and RETURNING of a write run on the target's real row, and so does
// every sub-select inside them that refers to it: in
//
//	UPDATE customers c SET segment = (SELECT c.national_id) …
//
// the sub-select reads c's raw national_id. targetRefs finds every column
// reference in an expression that may denote a column of the target,
// however deep: outside sub-selects every reference may; inside one, a
// reference is left out only when a FROM item between it and the target
// certainly supplies it (PostgreSQL resolves a name at the innermost level
// that has it). Anything uncertain (a CTE, a sub-select or a function in
// FROM whose columns are not spelled out) counts as the target's, so the
// check errs towards refusing.

// scopeItem is one FROM item of a sub-select: the name it is referred to
// by, and its columns when they are certain (nil: unknown).
type scopeItem struct {
	name string
	cols map[string]bool
}

type targetRefFinder struct {
	cat        *Catalog
	searchPath []string
	ctes       map[string]bool // every CTE name of the statement
	scopes     [][]scopeItem   // sub-selects entered, innermost last
	f          func(c *pg_query.ColumnRef, fields []string)
}

// targetRefs calls f for each column reference of n that may denote a
// column of the write's target, with the reference's fields.
func (w *walker) targetRefs(n *pg_query.Node, f func(c *pg_query.ColumnRef, fields []string)) {
	if n == nil {
		return
	}
	t := &targetRefFinder{cat: w.rw.cat, searchPath: w.rw.ctx.SearchPath, ctes: map[string]bool{}, f: f}
	for _, s := range w.scopes {
		for name := range s {
			t.ctes[name] = true
		}
	}
	eachMessage(n, func(m proto.Message) bool {
		if cte, ok := m.(*pg_query.CommonTableExpr); ok {
			t.ctes[cte.Ctename] = true
		}
		return true
	})
	t.walk(n)
}

func (t *targetRefFinder) walk(m proto.Message) {
	eachMessage(m, func(m proto.Message) bool {
		switch x := m.(type) {
		case *pg_query.ColumnRef:
			if fields := stringFields(x.Fields); len(fields) > 0 && !t.shadowed(fields) {
				t.f(x, fields)
			}
			return false
		case *pg_query.SelectStmt:
			t.selectStmt(x)
			return false
		}
		return true
	})
}

func (t *targetRefFinder) selectStmt(s *pg_query.SelectStmt) {
	if s == nil {
		return
	}
	// What is inside a FROM item (a sub-select, a function's arguments, a
	// join's ON clause) does not see the other items of the same FROM
	// list, except through LATERAL or within the join: searched before
	// this level's names are in scope, a reference there errs towards
	// counting as the target's. The queries of the sub-select's own WITH
	// do not see its FROM items at all (PostgreSQL analyses them first):
	// in (WITH x AS (SELECT c.col) SELECT … FROM x, (…) AS c), c.col is
	// the target's.
	if s.WithClause != nil {
		t.walk(s.WithClause)
	}
	for _, f := range s.FromClause {
		t.walk(f)
	}
	var items []scopeItem
	for _, f := range s.FromClause {
		items = t.fromItem(f, items)
	}
	t.scopes = append(t.scopes, items)
	t.walkExcept(s)
	t.scopes = t.scopes[:len(t.scopes)-1]
}

// walkExcept walks the fields of a SELECT other than its FROM list and
// its WITH clause.
func (t *targetRefFinder) walkExcept(s *pg_query.SelectStmt) {
	s.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Kind() != protoreflect.MessageKind || fd.Name() == "from_clause" || fd.Name() == "with_clause" {
			return true
		}
		if fd.IsList() {
			l := v.List()
			for i := 0; i < l.Len(); i++ {
				t.walk(l.Get(i).Message().Interface())
			}
			return true
		}
		t.walk(v.Message().Interface())
		return true
	})
}

// fromItem adds the names a FROM item brings into scope.
func (t *targetRefFinder) fromItem(n *pg_query.Node, items []scopeItem) []scopeItem {
	switch x := n.GetNode().(type) {
	case *pg_query.Node_RangeVar:
		rv := x.RangeVar
		name := rv.Relname
		if rv.Alias != nil {
			name = rv.Alias.Aliasname
		}
		item := scopeItem{name: name}
		if rv.Alias != nil && len(rv.Alias.Colnames) > 0 {
			// Renamed columns: the others keep their names, which are not
			// known without the relation; leave them unknown.
			return append(items, item)
		}
		if rv.Schemaname == "" && t.ctes[rv.Relname] {
			return append(items, item) // a CTE: columns not known here
		}
		var rel *Relation
		if rv.Schemaname != "" {
			rel = t.cat.Relation(rv.Schemaname, rv.Relname)
		} else {
			rel = t.cat.Resolve(rv.Relname, t.searchPath)
		}
		if rel != nil {
			item.cols = map[string]bool{}
			for _, c := range rel.Columns {
				item.cols[c.Name] = true
			}
		}
		return append(items, item)
	case *pg_query.Node_RangeSubselect:
		if a := x.RangeSubselect.Alias; a != nil {
			return append(items, scopeItem{name: a.Aliasname})
		}
	case *pg_query.Node_RangeFunction:
		if a := x.RangeFunction.Alias; a != nil {
			return append(items, scopeItem{name: a.Aliasname})
		}
	case *pg_query.Node_JoinExpr:
		j := x.JoinExpr
		if j.Alias != nil {
			// (a JOIN b) AS j hides a and b: only j is in scope.
			return append(items, scopeItem{name: j.Alias.Aliasname})
		}
		items = t.fromItem(j.Larg, items)
		return t.fromItem(j.Rarg, items)
	case *pg_query.Node_RangeTableSample:
		return t.fromItem(x.RangeTableSample.Relation, items)
	}
	return items
}

// shadowed says whether a reference certainly resolves to a FROM item of
// a sub-select rather than to the target.
func (t *targetRefFinder) shadowed(fields []string) bool {
	for _, items := range t.scopes {
		for _, it := range items {
			// schema.table.column may skip an item of the same name
			// that is another relation: never taken as shadowed.
			if len(fields) == 2 && it.name == fields[0] {
				return true
			}
			// A bare name is a column of the innermost level that has a
			// column of that name, the target's included; only when no
			// level has one is it the whole row of a FROM item of that
			// name. So only a certain column shadows the target.
			if len(fields) == 1 && it.cols[fields[0]] {
				return true
			}
		}
	}
	return false
}

package rewrite

import (
	"slices"

	pg_query "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// GROUP BY a table's key. PostgreSQL lets a query grouped by a table's
// primary key select the table's other columns, which depend on the key
// (what Django's annotate(), Rails' group(:id) and many report queries do).
// A policy subquery has no primary key, so the same query through pgcloak
// fails with 42803. groupByKeys adds the columns of that relation the
// query refers to to its GROUP BY: they depend on the key within the
// subquery too, so the groups are the same, and the query keeps working.
//
// It does so only when the whole key is grouped by plain column references,
// the role sees the key raw (a masked key may not be unique), and the GROUP
// BY has no grouping sets (where an added column would change the sets).

// groupByKeys extends s's GROUP BY as described above; call it after s's
// FROM has been substituted.
func (w *walker) groupByKeys(s *pg_query.SelectStmt) {
	if w.err != nil || len(s.GroupClause) == 0 {
		return
	}
	subs := w.fromSubs(s.FromClause)
	if len(subs) == 0 {
		return
	}
	keyed := map[*policySub]map[string]bool{} // grouped columns per substitution
	var have [][]string
	for _, g := range s.GroupClause {
		c := g.GetColumnRef()
		if g.GetAConst() != nil {
			w.constRead = true
		}
		if k := g.GetAConst().GetIval(); k != nil && k.Ival >= 1 && int(k.Ival) <= len(s.TargetList) {
			// GROUP BY 1: the select list's first item.
			c = s.TargetList[k.Ival-1].GetResTarget().GetVal().GetColumnRef()
		}
		if c == nil {
			if g.GetGroupingSet() != nil {
				return
			}
			continue
		}
		f := stringFields(c.Fields)
		have = append(have, f)
		if sub, col := refOf(subs, f); sub != nil {
			if keyed[sub] == nil {
				keyed[sub] = map[string]bool{}
			}
			keyed[sub][col] = true
		}
	}
	for _, sub := range subs {
		if !w.keyGrouped(sub, keyed[sub]) {
			continue
		}
		for _, col := range w.referencedColumns(s, sub, subs) {
			if keyed[sub][col] || slices.ContainsFunc(have, func(f []string) bool {
				return len(f) >= 2 && f[len(f)-2] == sub.alias && f[len(f)-1] == col
			}) {
				continue
			}
			keyed[sub][col] = true
			s.GroupClause = append(s.GroupClause, pg_query.MakeColumnRefNode(
				[]*pg_query.Node{pg_query.MakeStrNode(sub.alias), pg_query.MakeStrNode(col)}, -1))
			w.changed = true
		}
	}
}

// fromSubs returns the substitutions made directly in a FROM list (in its
// joins, not in its sub-selects).
func (w *walker) fromSubs(from []*pg_query.Node) []*policySub {
	var out []*policySub
	var visit func(n *pg_query.Node)
	visit = func(n *pg_query.Node) {
		switch x := n.GetNode().(type) {
		case *pg_query.Node_RangeSubselect:
			for _, s := range w.subs {
				if s.node == x.RangeSubselect {
					out = append(out, s)
				}
			}
		case *pg_query.Node_JoinExpr:
			if x.JoinExpr.Alias != nil {
				return // columns are named through the join's alias
			}
			visit(x.JoinExpr.Larg)
			visit(x.JoinExpr.Rarg)
		}
	}
	for _, n := range from {
		visit(n)
	}
	return out
}

// refOf finds the substitution a column reference names, and the column:
// alias.col, or a bare col that only one of subs has.
func refOf(subs []*policySub, f []string) (*policySub, string) {
	switch {
	case len(f) >= 2:
		for _, s := range subs {
			if s.alias == f[len(f)-2] && s.rel.Column(f[len(f)-1]) != nil {
				return s, f[len(f)-1]
			}
		}
	case len(f) == 1:
		var found *policySub
		for _, s := range subs {
			if s.rel.Column(f[0]) != nil {
				if found != nil {
					return nil, ""
				}
				found = s
			}
		}
		if found != nil {
			return found, f[0]
		}
	}
	return nil, ""
}

// keyGrouped says whether grouped holds sub's whole primary key, and the
// role sees every key column raw.
func (w *walker) keyGrouped(sub *policySub, grouped map[string]bool) bool {
	key := sub.rel.PrimaryKey
	if len(key) == 0 || len(grouped) == 0 {
		return false
	}
	tab := w.rw.protecting(sub.rel)
	if tab == nil {
		return false
	}
	for _, k := range key {
		if !grouped[k] {
			return false
		}
		v := w.rw.ctx.Principal.Column(tab.Name, k)
		if !v.Raw() {
			return false
		}
	}
	return true
}

// referencedColumns lists the columns of sub that s's select list, HAVING
// and ORDER BY refer to, in the relation's order: by alias.col anywhere
// (sub-selects included), by a bare name outside sub-selects, and every
// column for alias.* or a bare *.
func (w *walker) referencedColumns(s *pg_query.SelectStmt, sub *policySub, subs []*policySub) []string {
	want := map[string]bool{}
	all := false
	var visit func(m protoreflect.Message, top bool)
	visit = func(m protoreflect.Message, top bool) {
		switch x := m.Interface().(type) {
		case *pg_query.ColumnRef:
			f := stringFields(x.Fields)
			switch {
			case len(f) >= 2 && f[len(f)-2] == sub.alias:
				if f[len(f)-1] == "*" {
					all = true
				} else if sub.rel.Column(f[len(f)-1]) != nil {
					want[f[len(f)-1]] = true
				}
			case len(f) == 1 && top && f[0] == "*":
				all = true
			case len(f) == 1 && top:
				if r, col := refOf(subs, f); r == sub {
					want[col] = true
				}
			}
			return
		case *pg_query.SelectStmt:
			top = false
		}
		m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
			if fd.Kind() != protoreflect.MessageKind {
				return true
			}
			if fd.IsList() {
				for i := 0; i < v.List().Len(); i++ {
					visit(v.List().Get(i).Message(), top)
				}
				return true
			}
			visit(v.Message(), top)
			return true
		})
	}
	for _, n := range s.TargetList {
		visit(n.ProtoReflect(), true)
	}
	if s.HavingClause != nil {
		visit(s.HavingClause.ProtoReflect(), true)
	}
	for _, n := range s.SortClause {
		visit(n.ProtoReflect(), true)
	}
	var out []string
	for _, c := range sub.rel.Columns {
		if all || want[c.Name] {
			out = append(out, c.Name)
		}
	}
	return out
}

package rewrite

import (
	"fmt"
	"slices"
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/proto"

	"github.com/pgcloak/pgcloak/rules"
	"github.com/pgcloak/pgcloak/schema"
)

// Writing back what was read, and RETURNING what a read would show.
//
// An ORM's save() writes every column of the row it loaded, the masked
// and hidden ones with what the role was shown. For a column the role does
// not see raw, UPDATE's SET col = v becomes
//
//	CASE WHEN v IS NOT DISTINCT FROM <what the role is shown of col>
//	     OR pgcloak.check_violation('…') THEN alias.col END
//
// so writing back the shown value (the mask; NULL for a hidden column)
// keeps the stored value, and any other value fails the statement with
// 42501 and nothing written. With blind_writes the ELSE is v: the role may
// write a new value, but writing its own mask back never replaces the real
// one. The comparison runs on rows the role sees only (the row choice comes
// first), and tells nothing the role could not read: the shown value.
//
// RETURNING of a masked or hidden column gives what a read gives: each
// reference to such a column is replaced by its view (RETURNING * by the
// list of views), after the RETURNING list has been checked and walked.
// Denied columns stay refused.

// seenRaw says whether the role sees column col of tab raw.
func (w *walker) seenRaw(tab *rules.Table, col string) bool {
	return w.rw.ctx.Principal.Column(tab.Name, col).Raw()
}

// columnView renders what the principal is shown of column c of a row of
// tab named alias: the policy subquery's expression for it. denied is set
// for a denied column (and expr is NULL of its type).
func (rw *rewrite) columnView(tab *rules.Table, c Column, alias string) (expr string, denied bool, err error) {
	v := rw.ctx.Principal.Column(tab.Name, c.Name)
	if v.Action == rules.Deny {
		return "NULL::" + c.Type, true, nil
	}
	expr, err = v.SQL(c.Name, c.Type)
	if err != nil {
		return "", false, refuseRule("tables."+tab.Name.String(), "column %s of %s cannot be masked: %v", c.Name, tab.Name, err)
	}
	if v.HideIfOptedOut && v.Action != rules.Hide {
		cond, err := rw.chain(tab, alias, 1, false, func(a string) string {
			return rw.ctx.Policy.Subject().OptedOut(rules.SensitiveData, a)
		})
		if err != nil {
			return "", false, err
		}
		if cond != "" {
			expr = "CASE WHEN " + cond + " THEN NULL ELSE " + expr + " END"
		}
	}
	return expr, false, nil
}

// qualifiedView is columnView with the row's own columns named through
// alias, so that the expression means the target row wherever it is put.
func (rw *rewrite) qualifiedView(tab *rules.Table, c Column, alias string) (*pg_query.Node, bool, error) {
	q := rules.QuoteIdent(alias)
	expr, denied, err := rw.columnView(tab, c, q)
	if err != nil || denied {
		return nil, denied, err
	}
	expr, _, err = qualifyTopLevel(expr, alias)
	if err != nil {
		return nil, false, err
	}
	n, err := parseExpr(expr)
	return n, false, err
}

// writeBackColumns checks the columns an UPDATE sets: those the role sees
// raw pass; those it sees masked or hidden are returned, to be rewritten
// by writeBack; denied ones, and DEFAULT for an unseen column without
// blind_writes, are refused.
func (w *walker) writeBackColumns(rel *Relation, tab *rules.Table, cols []string, values []*pg_query.Node) ([]int, bool) {
	pr := w.rw.ctx.Principal
	var unseen []int
	for i, c := range cols {
		if ok, rule, why := pr.Role.MayWriteColumn(tab.Name, c, "UPDATE"); !ok {
			w.fail(&Refusal{Code: "42501", Rule: rule, Message: "pgcloak: " + why + " (rule: " + rule + ")"})
			return nil, false
		}
		if strings.HasPrefix(c, "pgcloak_") || rel.Column(c) == nil || w.seenRaw(tab, c) {
			if !w.writableColumns(rel, tab, []string{c}, "UPDATE") {
				return nil, false
			}
			continue
		}
		blind := pr.Role.BlindWrite(tab.Name, c)
		if pr.Column(tab.Name, c).Action == rules.Deny || values[i].GetSetToDefault() != nil {
			// Nothing was shown to write back: only a blind write.
			if !blind {
				w.writableColumns(rel, tab, []string{c}, "UPDATE")
				return nil, false
			}
			continue
		}
		unseen = append(unseen, i)
	}
	return unseen, true
}

// writeBack wraps the value v set to column col of the target row alias
// (see the top of the file).
func (w *walker) writeBack(rel *Relation, tab *rules.Table, alias, col string, v *pg_query.Node) (*pg_query.Node, error) {
	c := rel.Column(col)
	shown, _, err := w.rw.qualifiedView(tab, *c, alias)
	if err != nil {
		return nil, err
	}
	const ph = "pgcloak_value"
	const shownPh = "pgcloak_shown"
	target := rules.QuoteIdent(alias) + "." + rules.QuoteIdent(col)
	pr := w.rw.ctx.Principal
	var sql string
	blind := pr.Role.BlindWrite(tab.Name, col)
	if blind && hasSubLink(v) {
		// v would appear twice, and the policy subqueries of its
		// sub-selects are filled in once, on the walked nodes.
		return nil, refuseUnsupported("a sub-select in SET of a column written blind")
	}
	if blind {
		sql = fmt.Sprintf("CASE WHEN %s IS NOT DISTINCT FROM %s THEN %s ELSE %s END", ph, shownPh, target, ph)
	} else {
		msg := fmt.Sprintf("pgcloak: UPDATE of column %s of %s may only write back the value role %q is shown (list it under blind_writes to allow writing it unseen) (rule: roles.%s.blind_writes)",
			col, tab.Name, pr.Role.Name, pr.Role.Name)
		sql = fmt.Sprintf("CASE WHEN %s IS NOT DISTINCT FROM %s OR %s(%s) THEN %s END", ph, shownPh, schema.CheckViolation, rules.QuoteLiteral(msg), target)
	}
	n, err := parseExpr(sql)
	if err != nil {
		return nil, err
	}
	replaceColumnRefs(n, func(r *pg_query.ColumnRef) *pg_query.Node {
		f := stringFields(r.Fields)
		switch {
		case len(f) != 1:
			return nil
		case f[0] == ph && !blind:
			return v // the walked node itself: its sub-selects are filled in later
		case f[0] == ph:
			return proto.Clone(v).(*pg_query.Node)
		case f[0] == shownPh:
			return proto.Clone(shown).(*pg_query.Node)
		}
		return nil
	})
	return n, nil
}

// returningChecked refuses RETURNING of what no read could show: denied
// columns, whole-row references, the joined tables of the write. Masked
// and hidden columns pass; maskReturning replaces them afterwards.
func (w *walker) returningChecked(rel *Relation, tab *rules.Table, alias string, list []*pg_query.Node, fromAliases map[string]bool) bool {
	pr := w.rw.ctx.Principal
	role := pr.Role.Name
	ok := true
	for _, r := range list {
		top := r.GetResTarget().GetVal().GetColumnRef()
		w.targetRefs(r, func(c *pg_query.ColumnRef, f []string) {
			if !ok {
				return
			}
			if len(f) >= 2 && fromAliases[f[len(f)-2]] || len(f) == 1 && fromAliases[f[0]] {
				w.fail(refuseUnsupported("RETURNING that uses the joined tables of a write to a protected table"))
				ok = false
				return
			}
			col := f[len(f)-1]
			if len(f) == 1 && col == alias && rel.Column(col) == nil {
				w.fail(refuseRule("roles."+role+".profile", "RETURNING of every column of %s as one row value is refused for role %q; name the columns or use *", tab.Name, role))
				ok = false
				return
			}
			if len(f) >= 2 && col != "*" && rel.Column(col) == nil {
				// a.f where a's row has no column f calls f(a):
				// functional notation reads the whole row (a.to_json).
				col = "*"
				c = nil // never the item itself
			}
			if col == "*" {
				// Only a RETURNING item that is * itself is replaced by
				// the columns' views; a * inside an expression
				// (to_jsonb(t.*)) would read the real row.
				for _, col := range rel.Columns {
					if (c == nil || c != top) && !w.seenRaw(tab, col.Name) {
						w.fail(refuseRule("roles."+role+".profile", "RETURNING of every column of %s inside an expression is refused: role %q does not see column %s raw; return * or name the columns", tab.Name, role, col.Name))
						ok = false
						return
					}
				}
				for _, c := range rel.Columns {
					if pr.Column(tab.Name, c.Name).Action == rules.Deny {
						w.fail(refuseRule("roles."+role+".profile", "RETURNING of every column of %s is refused: column %s is denied to role %q", tab.Name, c.Name, role))
						ok = false
						return
					}
				}
				return
			}
			if rel.Column(col) != nil && pr.Column(tab.Name, col).Action == rules.Deny {
				w.fail(refuseRule("roles."+role+".profile", "RETURNING may not read column %s of %s: it is denied to role %q", col, tab.Name, role))
				ok = false
			}
		})
		if !ok {
			return false
		}
	}
	return true
}

// maskReturning replaces, in a RETURNING list already checked and walked,
// each reference to a column of the target the role does not see raw by
// what a read shows of it, and * by the list of the columns' views.
func (w *walker) maskReturning(rel *Relation, tab *rules.Table, alias string, list []*pg_query.Node) ([]*pg_query.Node, bool) {
	view := func(col string) (*pg_query.Node, bool) {
		n, _, err := w.rw.qualifiedView(tab, *rel.Column(col), alias)
		if err != nil {
			w.fail(err)
			return nil, false
		}
		return n, true
	}
	var out []*pg_query.Node
	for _, item := range list {
		rt := item.GetResTarget()
		if rt == nil {
			w.fail(refuseUnsupported("an unexpected RETURNING item"))
			return nil, false
		}
		if c := rt.Val.GetColumnRef(); c != nil {
			f := stringFields(c.Fields)
			if len(f) > 0 && f[len(f)-1] == "*" && (len(f) == 1 || f[len(f)-2] == alias) {
				for _, col := range rel.Columns {
					val := pg_query.MakeColumnRefNode([]*pg_query.Node{pg_query.MakeStrNode(alias), pg_query.MakeStrNode(col.Name)}, -1)
					if !w.seenRaw(tab, col.Name) {
						var ok bool
						if val, ok = view(col.Name); !ok {
							return nil, false
						}
					}
					out = append(out, &pg_query.Node{Node: &pg_query.Node_ResTarget{ResTarget: &pg_query.ResTarget{Name: col.Name, Val: val}}})
				}
				w.changed = true
				continue
			}
			if len(f) > 0 && rt.Name == "" && rel.Column(f[len(f)-1]) != nil && !w.seenRaw(tab, f[len(f)-1]) {
				rt.Name = f[len(f)-1] // keep the label a plain column reference has
			}
		}
		var refs []*pg_query.ColumnRef
		w.targetRefs(rt.Val, func(c *pg_query.ColumnRef, f []string) {
			if col := f[len(f)-1]; rel.Column(col) != nil && !w.seenRaw(tab, col) {
				refs = append(refs, c)
			}
		})
		if len(refs) > 0 {
			failed := false
			replaceNodes(rt.Val, func(c *pg_query.ColumnRef) *pg_query.Node {
				if failed || !containsRef(refs, c) {
					return nil
				}
				f := stringFields(c.Fields)
				n, ok := view(f[len(f)-1])
				failed = !ok
				return n
			})
			if failed {
				return nil, false
			}
			w.changed = true
		}
		out = append(out, item)
	}
	return out, true
}

func containsRef(refs []*pg_query.ColumnRef, c *pg_query.ColumnRef) bool {
	for _, r := range refs {
		if r == c {
			return true
		}
	}
	return false
}

// replaceNodes is replaceColumnRefs for a value that may itself be the
// column reference to replace.
func replaceNodes(n *pg_query.Node, f func(*pg_query.ColumnRef) *pg_query.Node) {
	if c := n.GetColumnRef(); c != nil {
		if r := f(c); r != nil {
			n.Node = r.Node
		}
		return
	}
	replaceColumnRefs(n, f)
}

// insertUnseen lets an INSERT give the columns the role does not see raw
// (and may not write blind) what an ORM's create() gives the fields it was
// not told: NULL, DEFAULT, or the column's default value. A column that is
// DEFAULT in every row of VALUES is left out, so the server fills in its
// default (any column: the row filter check then asks for the columns it
// reads). It returns the columns writableColumns must still check, and the
// unseen ones whose values runtimeDefaults checks row by row.
func (w *walker) insertUnseen(rel *Relation, tab *rules.Table, s *pg_query.InsertStmt, sel *pg_query.SelectStmt, cols []string) (check, runtime []string) {
	pr := w.rw.ctx.Principal
	rows := make([][]*pg_query.Node, len(sel.ValuesLists))
	for r, l := range sel.ValuesLists {
		rows[r] = l.GetList().GetItems()
		if len(rows[r]) != len(cols) {
			return cols, nil // typeValues refuses it
		}
	}
	var keep []string
	var dropped []int
	for i, c := range cols {
		allDefault := len(rows) > 0
		for _, row := range rows {
			allDefault = allDefault && row[i].GetSetToDefault() != nil
		}
		if allDefault {
			dropped = append(dropped, i)
			continue
		}
		keep = append(keep, c)
		unseen := rel.Column(c) != nil && !strings.HasPrefix(c, "pgcloak_") && !w.seenRaw(tab, c) &&
			!pr.Role.BlindWrite(tab.Name, c) && pr.Column(tab.Name, c).Action != rules.Deny
		if unseen {
			runtime = append(runtime, c)
		} else {
			check = append(check, c)
		}
	}
	if len(dropped) == 0 {
		return check, runtime
	}
	drop := func(items []*pg_query.Node) []*pg_query.Node {
		var out []*pg_query.Node
		for i, it := range items {
			if !slices.Contains(dropped, i) {
				out = append(out, it)
			}
		}
		return out
	}
	for _, l := range sel.ValuesLists {
		l.GetList().Items = drop(l.GetList().GetItems())
	}
	if len(s.Cols) > 0 {
		s.Cols = drop(s.Cols)
	} else {
		for _, c := range keep {
			s.Cols = append(s.Cols, &pg_query.Node{Node: &pg_query.Node_ResTarget{ResTarget: &pg_query.ResTarget{Name: c}}})
		}
	}
	w.changed = true
	return check, runtime
}

// runtimeDefaults renders the condition, on the new row named alias, that
// each of cols holds NULL or its column's constant default, else raises.
func (w *walker) runtimeDefaults(rel *Relation, tab *rules.Table, alias string, cols []string) (string, error) {
	pr := w.rw.ctx.Principal
	var parts []string
	for _, c := range cols {
		ref := rules.QuoteIdent(alias) + "." + rules.QuoteIdent(c)
		cond := ref + " IS NULL"
		if d := rel.Column(c).Default; d != "" {
			n, err := parseExpr(d)
			if err == nil && constantExpr(n) {
				cond += " OR " + ref + " IS NOT DISTINCT FROM (" + d + ")"
			}
		}
		msg := fmt.Sprintf("pgcloak: INSERT into column %s of %s may only give NULL or the column's default: role %q sees it %s (list it under blind_writes to allow writing it unseen) (rule: roles.%s.blind_writes)",
			c, tab.Name, pr.Role.Name, pr.Column(tab.Name, c).Action, pr.Role.Name)
		parts = append(parts, "("+cond+" OR "+schema.CheckViolation+"("+rules.QuoteLiteral(msg)+"))")
	}
	return strings.Join(parts, " AND "), nil
}

// constantExpr says whether a default expression is a constant: literals
// and casts only, no function, sub-select or column.
func constantExpr(n *pg_query.Node) bool {
	ok := true
	eachMessage(n, func(m proto.Message) bool {
		switch m.(type) {
		case *pg_query.FuncCall, *pg_query.SubLink, *pg_query.ColumnRef, *pg_query.ParamRef, *pg_query.SQLValueFunction:
			ok = false
		}
		return ok
	})
	return ok
}

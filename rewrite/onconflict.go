package rewrite

import (
	"fmt"
	"slices"
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v6"

	"github.com/pgcloak/pgcloak/rules"
	"github.com/pgcloak/pgcloak/schema"
)

// INSERT … ON CONFLICT into a protected table.
//
// The rows proposed for insertion pass the row filter check as any INSERT
// does (write.go). The existing row a proposal conflicts with is checked
// in the clause's WHERE, which PostgreSQL evaluates on it:
//
//	ON CONFLICT (k) DO UPDATE SET … WHERE
//	  CASE WHEN <the existing row is visible to the role>
//	       THEN <the statement's WHERE> AND <the updated row stays visible>
//	       ELSE pgcloak.check_violation('…') END
//
// so a conflict with a row outside the filter fails the whole statement
// and changes nothing (it tells that the key exists, as the unique
// violation of a plain INSERT does, and nothing of the row). SET follows
// UPDATE's rules: it may read the proposed row (EXCLUDED) and the existing
// row's columns the role sees raw, and a column the role does not see raw
// may only be written back (writeback.go). DO NOTHING with a conflict
// target becomes such a DO UPDATE whose WHERE is false for visible rows.
// "Visible" is what a read by the role shows: inside the row filters and,
// for the subject table, not opted out of the session's purposes, so a
// row is skipped only when the role could read it.
//
// DO NOTHING without a target skips a row that conflicts on any unique
// index. PostgreSQL takes one conflict target for DO UPDATE, so pgcloak
// names one: the primary key (or another plain unique index) whose
// columns the INSERT gives becomes the target as above, and for each
// other unique index the new rows' WHERE gets
//
//	NOT EXISTS (SELECT 1 FROM ONLY t AS pgcloak_old
//	            WHERE pgcloak_old.k = pgcloak_new.k AND <pgcloak_old is visible>)
//
// which skips a row that conflicts with a visible row only. A conflict
// with a hidden row on such an index is not skipped: the INSERT meets it
// and fails with a unique violation, as a plain INSERT does. Either way
// the outcome for a hidden row is an error (its key exists), never a
// silent skip, so INSERT 0 0 against INSERT 0 1 tells nothing the role
// could not read. A table with a partial, expression, deferrable unique
// index or an exclusion constraint is refused (name the target): `=` on
// columns cannot say what conflicts there.

// onConflictPlan is what onConflict found before the walk, for finish.
type onConflictPlan struct {
	oc     *pg_query.OnConflictClause
	any    bool // DO NOTHING without a target
	alias  string
	cols   []string
	values []*pg_query.Node
	unseen []int
}

// onConflict checks an INSERT's ON CONFLICT clause before the statement is
// walked; finishOnConflict adds the checks afterwards. nil: nothing to do.
func (w *walker) onConflict(s *pg_query.InsertStmt, rel *Relation, tab *rules.Table) (*onConflictPlan, bool) {
	oc := s.OnConflictClause
	if oc == nil {
		return nil, true
	}
	pr := w.rw.ctx.Principal
	role := pr.Role.Name
	p := &onConflictPlan{oc: oc, alias: aliasOf(s.Relation)}
	switch oc.Action {
	case pg_query.OnConflictAction_ONCONFLICT_NOTHING:
		if oc.Infer == nil {
			for _, u := range rel.Unique {
				if !u.Plain() {
					w.fail(refuseUnsupported(fmt.Sprintf("INSERT … ON CONFLICT DO NOTHING without a conflict target into protected table %s, "+
						"whose unique index or constraint %s is partial, on an expression, deferrable or an exclusion constraint "+
						"(pgcloak could not tell a conflict with a row outside the row filter from one inside; name the target: ON CONFLICT (column) DO NOTHING)",
						tab.Name, u.Name)))
					return nil, false
				}
			}
			p.any = true
		}
		return p, true
	case pg_query.OnConflictAction_ONCONFLICT_UPDATE:
	default:
		w.fail(refuseUnsupported("this ON CONFLICT action on a protected table"))
		return nil, false
	}
	if !pr.Allows(rules.StmtUpdate) {
		w.fail(refuseRule("roles."+role+".statements", "role %q may not run UPDATE statements (kind update), which ON CONFLICT DO UPDATE is", role))
		return nil, false
	}
	if pr.Role.ReviewChanges {
		w.fail(refuseUnsupported("INSERT … ON CONFLICT DO UPDATE by a role whose changes are reviewed"))
		return nil, false
	}
	if ok, rule, why := pr.Role.MayWrite(tab.Name, "UPDATE"); !ok {
		w.fail(&Refusal{Code: "42501", Rule: rule, Message: "pgcloak: " + why + " (rule: " + rule + ")"})
		return nil, false
	}
	for _, t := range oc.TargetList {
		rt := t.GetResTarget()
		if rt == nil || len(rt.Indirection) > 0 || rt.Val.GetMultiAssignRef() != nil {
			w.fail(refuseUnsupported("ON CONFLICT DO UPDATE SET of a part of a column, or of several columns at once, on a protected table"))
			return nil, false
		}
		p.cols = append(p.cols, rt.Name)
		p.values = append(p.values, rt.Val)
	}
	var ok bool
	if p.unseen, ok = w.writeBackColumns(rel, tab, p.cols, p.values); !ok {
		return nil, false
	}
	for _, n := range append(append([]*pg_query.Node{}, p.values...), oc.WhereClause) {
		if !w.readsSeenOrExcluded(rel, tab, p.alias, n) {
			return nil, false
		}
	}
	return p, true
}

// readsSeenOrExcluded checks an expression of DO UPDATE: it may read the
// proposed row (EXCLUDED) and the columns of the existing row the role
// sees raw, nothing else of the existing row.
func (w *walker) readsSeenOrExcluded(rel *Relation, tab *rules.Table, alias string, n *pg_query.Node) bool {
	role := w.rw.ctx.Principal.Role.Name
	ok := true
	w.targetRefs(n, func(c *pg_query.ColumnRef, f []string) {
		if !ok || len(f) >= 2 && f[len(f)-2] == "excluded" {
			return
		}
		col := f[len(f)-1]
		// alias.f where the row has no column f is f(alias), functional
		// notation: it reads the whole row.
		if col == "*" || len(f) == 1 && col == alias && rel.Column(col) == nil || len(f) >= 2 && rel.Column(col) == nil {
			w.fail(refuseRule("roles."+role+".profile", "ON CONFLICT DO UPDATE may not read every column of the existing row of %s; name the columns", tab.Name))
			ok = false
			return
		}
		if rel.Column(col) != nil && !w.seenRaw(tab, col) {
			w.fail(refuseRule("roles."+role+".profile", "ON CONFLICT DO UPDATE may not read column %s of the existing row of %s: role %q does not see it raw", col, tab.Name, role))
			ok = false
		}
	})
	return ok
}

// finishOnConflict adds, after the walk, the write-backs and the WHERE
// that checks the existing row and the updated one. s is the INSERT, its
// source already wrapped as pgcloak_new with columns cols (write.go).
func (w *walker) finishOnConflict(p *onConflictPlan, rel *Relation, tab *rules.Table, s *pg_query.InsertStmt, cols []string) {
	if p == nil || w.err != nil {
		return
	}
	if p.any && !w.anyConflict(p, rel, tab, s, cols) {
		return
	}
	oc := p.oc
	var rest *pg_query.Node
	if oc.Action == pg_query.OnConflictAction_ONCONFLICT_NOTHING {
		// Nothing to do for a visible row: SET the first key column to
		// itself, never applied since the WHERE is false. (A column: the
		// physical address writeKeys gives a table with children cannot
		// be assigned.)
		key := rel.Columns[0].Name
		if len(rel.PrimaryKey) > 0 {
			key = rel.PrimaryKey[0]
		}
		oc.Action = pg_query.OnConflictAction_ONCONFLICT_UPDATE
		oc.TargetList = []*pg_query.Node{{Node: &pg_query.Node_ResTarget{ResTarget: &pg_query.ResTarget{Name: key,
			Val: pg_query.MakeColumnRefNode([]*pg_query.Node{pg_query.MakeStrNode(p.alias), pg_query.MakeStrNode(key)}, -1)}}}}
		f, err := parseExpr("false")
		if err != nil {
			w.fail(err)
			return
		}
		rest = f
	} else {
		for _, i := range p.unseen {
			v, err := w.writeBack(rel, tab, p.alias, p.cols[i], p.values[i])
			if err != nil {
				w.fail(err)
				return
			}
			oc.TargetList[i].GetResTarget().Val, p.values[i] = v, v
		}
		check, err := w.rw.updateCheck(tab, p.alias, p.cols, p.values)
		if err != nil {
			w.fail(err)
			return
		}
		rest = andNodes(oc.WhereClause, check)
		if rest == nil {
			if rest, err = parseExpr("true"); err != nil {
				w.fail(err)
				return
			}
		}
	}
	visible, err := w.rw.readableSQL(tab, p.alias)
	if err != nil {
		w.fail(err)
		return
	}
	msg := fmt.Sprintf("pgcloak: INSERT … ON CONFLICT met an existing row outside the row filter of role %q on %s (rule: %s)",
		w.rw.ctx.Principal.Role.Name, tab.Name, w.filterRule(tab))
	const ph = "pgcloak_rest"
	where, err := parseExpr(fmt.Sprintf("CASE WHEN %s THEN %s ELSE %s(%s) END", visible, ph, schema.CheckViolation, rules.QuoteLiteral(msg)))
	if err != nil {
		w.fail(err)
		return
	}
	replaceColumnRefs(where, func(c *pg_query.ColumnRef) *pg_query.Node {
		if f := stringFields(c.Fields); len(f) == 1 && f[0] == ph {
			return rest
		}
		return nil
	})
	oc.WhereClause = where
	w.leaky = true
	w.changed = true
}

// readableSQL renders the condition that a row of tab named alias is one
// the principal may read: visibleSQL and, for the subject table, not
// opted out of the session's purposes (visibleSQL leaves the subject's
// own opt-outs out of the check of new rows).
func (rw *rewrite) readableSQL(tab *rules.Table, alias string) (string, error) {
	cond, _, err := rw.visibleSQL(tab, alias)
	if err != nil {
		return "", err
	}
	if tab.Subject && rw.ctx.Policy.Subject() != nil {
		if o := rw.notOptedOut(rules.QuoteIdent(alias)); o != "" {
			cond = "(" + cond + ") AND " + o
		}
	}
	return cond, nil
}

// anyConflict turns DO NOTHING without a target into DO NOTHING on one
// unique index plus a NOT EXISTS per other unique index (see above). It
// returns false when nothing is left to do.
func (w *walker) anyConflict(p *onConflictPlan, rel *Relation, tab *rules.Table, s *pg_query.InsertStmt, cols []string) bool {
	if len(rel.Unique) == 0 {
		// Nothing can conflict: a plain INSERT (a unique index created
		// since makes it fail with a unique violation, never skip).
		s.OnConflictClause = nil
		return false
	}
	given := func(u UniqueIndex) bool {
		for _, c := range u.Columns {
			if !slices.Contains(cols, c) {
				return false
			}
		}
		return true
	}
	arbiter := 0 // rel.Unique has the primary key first
	for i, u := range rel.Unique {
		if given(u) {
			arbiter = i
			break
		}
	}
	var elems []string
	for _, c := range rel.Unique[arbiter].Columns {
		elems = append(elems, rules.QuoteIdent(c))
	}
	tree, err := pg_query.Parse("INSERT INTO t VALUES (1) ON CONFLICT (" + strings.Join(elems, ", ") + ") DO NOTHING")
	if err != nil {
		w.fail(err)
		return false
	}
	p.oc.Infer = tree.Stmts[0].Stmt.GetInsertStmt().OnConflictClause.Infer
	sel := s.SelectStmt.GetSelectStmt()
	for i, u := range rel.Unique {
		if i == arbiter || !given(u) {
			// An index whose columns the INSERT leaves to their defaults
			// is not looked up: a conflict there is a unique violation.
			continue
		}
		cond, err := w.visibleConflict(rel, tab, u)
		if err != nil {
			w.fail(err)
			return false
		}
		sel.WhereClause = andNodes(sel.WhereClause, cond)
	}
	return true
}

// visibleConflict renders NOT EXISTS (a row the principal may read has the
// new row's values in the columns of u). Where `=` on a column's type is
// not leakproof, the visible rows are chosen first, behind OFFSET 0, so
// that it never runs on a hidden row.
func (w *walker) visibleConflict(rel *Relation, tab *rules.Table, u UniqueIndex) (*pg_query.Node, error) {
	const old = "pgcloak_old"
	readable, err := w.rw.readableSQL(tab, old)
	if err != nil {
		return nil, err
	}
	fenced := false
	var eq []string
	for _, c := range u.Columns {
		col := rel.Column(c)
		if col == nil {
			return nil, refuseUnsupported("a unique index on a column pgcloak does not know")
		}
		fenced = fenced || !w.rw.cat.OperatorLeakproof("=", col.TypeOID)
		q := rules.QuoteIdent(c)
		eq = append(eq, fmt.Sprintf("%s.%s = %s.%s::%s", old, q, newRowAlias, q, col.Type))
	}
	from := rules.QuoteIdent(rel.Schema) + "." + rules.QuoteIdent(rel.Name) + " AS " + old
	if rel.Kind != 'p' {
		from = "ONLY " + from
	}
	var sql string
	if fenced {
		sql = fmt.Sprintf("NOT EXISTS (SELECT 1 FROM (SELECT * FROM %s WHERE %s OFFSET 0) AS %s WHERE %s)",
			from, readable, old, strings.Join(eq, " AND "))
	} else {
		sql = fmt.Sprintf("NOT EXISTS (SELECT 1 FROM %s WHERE %s AND (%s))", from, strings.Join(eq, " AND "), readable)
	}
	return parseExpr(sql)
}

package rewrite

import (
	"fmt"
	"slices"
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/pgcloak/pgcloak/audit"
	"github.com/pgcloak/pgcloak/rules"
	"github.com/pgcloak/pgcloak/schema"
)

// Writes to a protected table (design.md §5.3).
//
// UPDATE and DELETE choose their rows through the policy subquery: the
// statement's WHERE (and FROM or USING) move into a subquery over the
// principal's view of the table, which returns the keys of the rows to
// touch (the primary key, or ctid and tableoid without one):
//
//	UPDATE t AS a SET … WHERE (a.key) IN (
//	    SELECT a.pgcloak_k1 FROM (<policy subquery + raw key>) AS a, <FROM items>
//	    WHERE <the statement's WHERE>)
//
// so the WHERE, the joins and the row count see masked values and visible
// rows only. SET expressions run on the real row: they may name only
// columns the role sees raw, so no SET can copy a hidden value into a
// visible column. RETURNING shows what a read would show (writeback.go).
//
// INSERT, UPDATE's new values and COPY FROM must satisfy the row filter,
// like a WITH CHECK policy: a row that would fall outside makes
// pgcloak.check_violation raise 42501 and the whole statement fails.
//
// Inserting into a column the role does not see raw is refused unless the
// role's blind_writes lists it; UPDATE may write back what the role was
// shown, which keeps the stored value (writeback.go). INSERT … ON CONFLICT
// checks the existing row too (onconflict.go); MERGE into protected tables
// is refused.

const newRowAlias = "pgcloak_new"

// writeTarget resolves the target of a write and checks that the role may
// use it. tab is nil for an unprotected target.
func (w *walker) writeTarget(rv *pg_query.RangeVar, what string) (*Relation, *rules.Table, bool) {
	if rv == nil || w.err != nil {
		return nil, nil, false
	}
	rel, tab, ok := w.resolveChecked(rv, false)
	if !ok {
		return nil, nil, false
	}
	w.use(rv, rel, tab, "write")
	if tab == nil || what != "UPDATE" && what != "DELETE" {
		// The row-choosing subquery of an UPDATE or DELETE of a protected
		// table names the target's copy as a FROM item; any other target
		// goes by its name only in SET, RETURNING and ON CONFLICT.
		w.targetName(aliasOf(rv), rel)
	}
	if rel != nil && (rel.Schema == "pg_catalog" || rel.Schema == "information_schema") {
		// pg_settings' rules call set_config: a write to a catalog view
		// changes how the server reads the SQL pgcloak checked.
		w.fail(refuseRule(rule(audit.ReasonCatalog), "%s into catalog relation %s.%s is refused for restricted roles", what, rel.Schema, rel.Name))
		return nil, nil, false
	}
	if tab == nil && rel != nil && w.rw.readsProtected(rel) {
		w.fail(refuseRule(rule(audit.ReasonTables, tableLabel(rel, tab)), "%s into view %s, which reads protected tables, is refused", what, tableLabel(rel, tab)))
		return nil, nil, false
	}
	if tab != nil {
		if ok, rule, why := w.rw.ctx.Principal.Role.MayWrite(tab.Name, what); !ok {
			w.fail(&Refusal{Code: "42501", Rule: rule, Message: "pgcloak: " + why + " (rule: " + rule + ")"})
			return nil, nil, false
		}
		// Named by its schema: the copies of the reference that the
		// rewrite puts inside the statement (the row-choosing subquery)
		// must not resolve to a CTE of the same name.
		rv.Schemaname = rel.Schema
	}
	return rel, tab, true
}

func (w *walker) insertStmt(s *pg_query.InsertStmt) {
	defer w.with(s.WithClause)()
	rel, tab, ok := w.writeTarget(s.Relation, "INSERT")
	if ok && s.OnConflictClause != nil {
		w.targetName("excluded", rel) // the proposed row, of the target's type
	}
	if tab == nil {
		if ok {
			w.qualify(s.Relation, rel)
		}
		if sel := s.SelectStmt.GetSelectStmt(); sel != nil {
			w.selectStmt(sel, true)
		}
		w.qual = true
		w.messageExcept(s.ProtoReflect(), "with_clause", "relation", "select_stmt")
		return
	}
	label := tab.Name.String()
	conflict, ok := w.onConflict(s, rel, tab)
	if !ok {
		return
	}
	sel := s.SelectStmt.GetSelectStmt()
	if sel == nil {
		w.fail(refuseRule(rule(audit.ReasonTables, label), "INSERT … DEFAULT VALUES into protected table %s cannot be checked against the row filter; name the columns", label))
		return
	}
	var cols []string
	for _, c := range s.Cols {
		rt := c.GetResTarget()
		if rt == nil || len(rt.Indirection) > 0 {
			w.fail(refuseUnsupported("INSERT into a part of a column of a protected table"))
			return
		}
		cols = append(cols, rt.Name)
	}
	if len(cols) == 0 {
		width := len(sel.TargetList)
		if len(sel.ValuesLists) > 0 {
			width = len(sel.ValuesLists[0].GetList().GetItems())
		}
		if width == 0 || width > len(rel.Columns) {
			w.fail(refuseUnsupported("INSERT without a column list whose width pgcloak cannot tell"))
			return
		}
		for _, c := range rel.Columns[:width] {
			cols = append(cols, c.Name)
		}
	}
	checkCols, unseen := w.insertUnseen(rel, tab, s, sel, cols)
	if len(s.Cols) > 0 {
		cols = cols[:0]
		for _, c := range s.Cols {
			cols = append(cols, c.GetResTarget().GetName())
		}
	}
	if !w.writableColumns(rel, tab, checkCols, "INSERT") || !w.returningChecked(rel, tab, aliasOf(s.Relation), s.ReturningList, nil) {
		return
	}
	// The new rows: the statement's source, as a derived table named
	// pgcloak_new, filtered by the check.
	w.selectStmt(sel, true)
	if w.err != nil {
		return
	}
	if len(sel.ValuesLists) > 0 {
		if !w.typeValues(rel, cols, sel) {
			return
		}
	}
	check, refs, err := w.rw.visibleSQL(tab, newRowAlias)
	if err != nil {
		w.fail(err)
		return
	}
	for _, r := range refs {
		if !slices.Contains(cols, r) {
			w.fail(refuseRule(w.filterRule(tab), "INSERT into %s must give column %s, which the row filter of role %q checks", label, r, w.rw.ctx.Principal.Role.Name))
			return
		}
	}
	var colNames []*pg_query.Node
	for _, c := range cols {
		colNames = append(colNames, pg_query.MakeStrNode(c))
	}
	cond := w.checked(check, tab)
	if len(unseen) > 0 {
		d, err := w.runtimeDefaults(rel, tab, newRowAlias, unseen)
		if err != nil {
			w.fail(err)
			return
		}
		cond = "(" + cond + ") AND " + d
	}
	where, err := parseExpr(cond)
	if err != nil {
		w.fail(err)
		return
	}
	w.leaky = true // the check raises: keep it off rows the filter hides
	wrapped := &pg_query.SelectStmt{
		TargetList: []*pg_query.Node{pg_query.MakeResTargetNodeWithVal(
			pg_query.MakeColumnRefNode([]*pg_query.Node{pg_query.MakeAStarNode()}, -1), -1)},
		FromClause: []*pg_query.Node{{Node: &pg_query.Node_RangeSubselect{RangeSubselect: &pg_query.RangeSubselect{
			Subquery: s.SelectStmt,
			Alias:    &pg_query.Alias{Aliasname: newRowAlias, Colnames: colNames},
		}}}},
		WhereClause: where,
	}
	if len(s.Cols) == 0 {
		for _, c := range cols {
			s.Cols = append(s.Cols, &pg_query.Node{Node: &pg_query.Node_ResTarget{ResTarget: &pg_query.ResTarget{Name: c}}})
		}
	}
	s.SelectStmt = &pg_query.Node{Node: &pg_query.Node_SelectStmt{SelectStmt: wrapped}}
	w.changed = true
	w.qual = true
	w.messageExcept(s.ProtoReflect(), "with_clause", "relation", "select_stmt", "cols")
	w.finishOnConflict(conflict, rel, tab, s, cols)
	if len(s.ReturningList) > 0 && w.err == nil {
		s.ReturningList, _ = w.maskReturning(rel, tab, aliasOf(s.Relation), s.ReturningList)
	}
}

func (w *walker) updateStmt(s *pg_query.UpdateStmt) {
	defer w.with(s.WithClause)()
	rel, tab, ok := w.writeTarget(s.Relation, "UPDATE")
	if tab == nil {
		if ok {
			w.qualify(s.Relation, rel)
		}
		w.qual = true
		for _, f := range s.FromClause {
			w.fromItem(f)
		}
		w.messageExcept(s.ProtoReflect(), "with_clause", "relation", "from_clause")
		return
	}
	if s.WhereClause.GetCurrentOfExpr() != nil {
		w.fail(refuseUnsupported("UPDATE … WHERE CURRENT OF on a protected table"))
		return
	}
	var cols []string
	var values []*pg_query.Node
	for _, t := range s.TargetList {
		rt := t.GetResTarget()
		if rt == nil || len(rt.Indirection) > 0 {
			w.fail(refuseUnsupported("UPDATE of a part of a column of a protected table"))
			return
		}
		if rt.Val.GetMultiAssignRef() != nil {
			w.fail(refuseUnsupported("UPDATE … SET (a, b) = (…) on a protected table; set the columns one by one"))
			return
		}
		cols = append(cols, rt.Name)
		values = append(values, rt.Val)
	}
	fromAliases := fromItemNames(s.FromClause)
	alias := aliasOf(s.Relation)
	review := w.rw.ctx.Principal.Role.ReviewChanges
	// SET of columns the role does not see raw: write-backs (writeback.go;
	// for a reviewed role, left out of the change request, review.go).
	unseen, ok := w.writeBackColumns(rel, tab, cols, values)
	if !ok || !w.valuesSafe(rel, tab, alias, values, fromAliases) {
		return
	}
	if review && !w.returningSafe(rel, tab, alias, s.ReturningList, fromAliases) ||
		!review && !w.returningChecked(rel, tab, alias, s.ReturningList, fromAliases) {
		return
	}
	// Review needs the row choice twice (review.go): keep an unwalked copy.
	var fromCopy []*pg_query.Node
	var whereCopy *pg_query.Node
	if review {
		for _, f := range s.FromClause {
			fromCopy = append(fromCopy, proto.Clone(f).(*pg_query.Node))
		}
		if s.WhereClause != nil {
			whereCopy = proto.Clone(s.WhereClause).(*pg_query.Node)
		}
	}
	in, ok := w.targetRows(s.Relation, rel, tab, s.FromClause, s.WhereClause)
	if !ok {
		return
	}
	// Substitute the reads in SET and RETURNING before anything copies
	// them (the check below evaluates the SET expressions again).
	w.qual = true
	for _, v := range values {
		w.node(v)
	}
	for _, r := range s.ReturningList {
		w.node(r)
	}
	if w.err != nil {
		return
	}
	s.FromClause, s.WhereClause = nil, in
	w.changed = true
	if review && w.reviewUpdate(s, rel, tab, alias, cols, values, unseen, in, func() (*pg_query.Node, bool) {
		return w.targetRows(s.Relation, rel, tab, fromCopy, whereCopy)
	}) {
		return
	}
	for _, i := range unseen {
		v, err := w.writeBack(rel, tab, alias, cols[i], values[i])
		if err != nil {
			w.fail(err)
			return
		}
		s.TargetList[i].GetResTarget().Val, values[i] = v, v
	}
	if len(s.ReturningList) > 0 {
		if s.ReturningList, ok = w.maskReturning(rel, tab, alias, s.ReturningList); !ok {
			return
		}
	}
	check, err := w.rw.updateCheck(tab, alias, cols, values)
	if err != nil {
		w.fail(err)
		return
	}
	if check != nil {
		w.leaky = true
		s.WhereClause = andNodes(in, check)
	}
}

func (w *walker) deleteStmt(s *pg_query.DeleteStmt) {
	defer w.with(s.WithClause)()
	rel, tab, ok := w.writeTarget(s.Relation, "DELETE")
	if tab == nil {
		if ok {
			w.qualify(s.Relation, rel)
		}
		w.qual = true
		for _, f := range s.UsingClause {
			w.fromItem(f)
		}
		w.messageExcept(s.ProtoReflect(), "with_clause", "relation", "using_clause")
		return
	}
	if s.WhereClause.GetCurrentOfExpr() != nil {
		w.fail(refuseUnsupported("DELETE … WHERE CURRENT OF on a protected table"))
		return
	}
	usingAliases := fromItemNames(s.UsingClause)
	if !w.returningChecked(rel, tab, aliasOf(s.Relation), s.ReturningList, usingAliases) {
		return
	}
	in, ok := w.targetRows(s.Relation, rel, tab, s.UsingClause, s.WhereClause)
	if !ok {
		return
	}
	s.UsingClause, s.WhereClause = nil, in
	w.changed = true
	w.qual = true
	for _, r := range s.ReturningList {
		w.node(r)
	}
	if len(s.ReturningList) > 0 && w.err == nil {
		s.ReturningList, _ = w.maskReturning(rel, tab, aliasOf(s.Relation), s.ReturningList)
	}
}

// copyFrom adds the row filter check to COPY … FROM into a protected
// table. COPY's WHERE may not hold subqueries: a table whose check needs
// one (a linked table, opt-outs) gets it through pgcloak.row_check
// (copyRowCheck). Either way every row is checked and one that fails
// raises, which fails the whole COPY: all rows or none.
func (w *walker) copyFrom(s *pg_query.CopyStmt) {
	rel, tab, ok := w.writeTarget(s.Relation, "COPY FROM")
	if !ok || tab == nil {
		if ok && rel != nil {
			w.qualify(s.Relation, rel)
		}
		w.qual = true
		w.messageExcept(s.ProtoReflect(), "relation")
		return
	}
	label := tab.Name.String()
	var cols []string
	for _, a := range s.Attlist {
		cols = append(cols, a.GetString_().GetSval())
	}
	if len(cols) == 0 {
		for _, c := range rel.Columns {
			cols = append(cols, c.Name)
		}
	}
	if !w.writableColumns(rel, tab, cols, "COPY FROM") {
		return
	}
	check, refs, err := w.rw.visibleSQL(tab, "")
	if err != nil {
		w.fail(err)
		return
	}
	for _, r := range refs {
		if !slices.Contains(cols, r) {
			w.fail(refuseRule(w.filterRule(tab), "COPY into %s must give column %s, which the row filter of role %q checks", label, r, w.rw.ctx.Principal.Role.Name))
			return
		}
	}
	node, err := parseExpr(w.checked(check, tab))
	if err != nil {
		w.fail(err)
		return
	}
	if hasSubLink(node) {
		if node, err = w.copyRowCheck(rel, tab); err != nil {
			w.fail(err)
			return
		}
	}
	w.qual = true
	w.node(s.WhereClause)
	s.WhereClause = andNodes(s.WhereClause, node)
	w.changed = true
}

// copyRowCheck renders the check of COPY … FROM into a table whose check
// needs a sub-select, for COPY's WHERE:
//
//	pgcloak.row_check('SELECT <check> FROM (SELECT ($1).*) AS pgcloak_row', t.*)
//	  OR pgcloak.check_violation('…')
//
// The new row goes whole, with its own types (no text round trip), to a
// query pgcloak wrote, in which it has the name and columns the check
// expects. It is the same check as INSERT's.
func (w *walker) copyRowCheck(rel *Relation, tab *rules.Table) (*pg_query.Node, error) {
	const row = "pgcloak_row"
	cond, _, err := w.rw.visibleSQL(tab, row)
	if err != nil {
		return nil, err
	}
	query := "SELECT " + cond + " FROM (SELECT ($1).*) AS " + row
	msg := fmt.Sprintf("pgcloak: the row is outside the row filter of role %q on %s (rule: %s)",
		w.rw.ctx.Principal.Role.Name, tab.Name, w.filterRule(tab))
	return parseExpr(fmt.Sprintf("%s(%s, %s.*) OR %s(%s)", schema.RowCheck, rules.QuoteLiteral(query), rules.QuoteIdent(rel.Name),
		schema.CheckViolation, rules.QuoteLiteral(msg)))
}

// targetRows builds `key IN (SELECT key FROM <policy subquery> AS alias,
// <from items> WHERE <where>)`, the rows of an UPDATE or DELETE.
func (w *walker) targetRows(target *pg_query.RangeVar, rel *Relation, tab *rules.Table, from []*pg_query.Node, where *pg_query.Node) (*pg_query.Node, bool) {
	alias := aliasOf(target)
	read := proto.Clone(target).(*pg_query.RangeVar)
	read.Alias = &pg_query.Alias{Aliasname: alias}
	if target.Alias != nil {
		read.Alias = proto.Clone(target.Alias).(*pg_query.Alias)
	}
	sel := &pg_query.SelectStmt{
		FromClause:  append([]*pg_query.Node{{Node: &pg_query.Node_RangeVar{RangeVar: read}}}, from...),
		WhereClause: where,
	}
	w.writeRef = read
	w.nested(func() { w.selectStmt(sel, false) })
	w.writeRef = nil
	if w.err != nil {
		return nil, false
	}
	keys := writeKeys(rel)
	var outer, inner []*pg_query.Node
	for i, k := range keys {
		outer = append(outer, pg_query.MakeColumnRefNode([]*pg_query.Node{pg_query.MakeStrNode(alias), pg_query.MakeStrNode(k)}, -1))
		inner = append(inner, pg_query.MakeResTargetNodeWithVal(pg_query.MakeColumnRefNode(
			[]*pg_query.Node{pg_query.MakeStrNode(alias), pg_query.MakeStrNode(fmt.Sprintf("pgcloak_k%d", i+1))}, -1), -1))
	}
	sel.TargetList = inner
	test := outer[0]
	if len(outer) > 1 {
		test = &pg_query.Node{Node: &pg_query.Node_RowExpr{RowExpr: &pg_query.RowExpr{Args: outer, RowFormat: pg_query.CoercionForm_COERCE_IMPLICIT_CAST}}}
	}
	return &pg_query.Node{Node: &pg_query.Node_SubLink{SubLink: &pg_query.SubLink{
		SubLinkType: pg_query.SubLinkType_ANY_SUBLINK,
		Testexpr:    test,
		Subselect:   &pg_query.Node{Node: &pg_query.Node_SelectStmt{SelectStmt: sel}},
	}}}, true
}

// writeKeys are the columns that identify a row of rel for a write: its
// primary key, or its physical address with tableoid. A table with
// children or partitions is written through its physical address even
// when it has a key: a child does not inherit the parent's primary key,
// so a child row may repeat a visible row's key and be chosen with it.
func writeKeys(rel *Relation) []string {
	if len(rel.PrimaryKey) > 0 && !rel.HasChildren {
		return rel.PrimaryKey
	}
	return []string{"ctid", "tableoid"}
}

// writableColumns refuses writing a column the role does not see raw,
// unless blind_writes lists it.
func (w *walker) writableColumns(rel *Relation, tab *rules.Table, cols []string, what string) bool {
	pr := w.rw.ctx.Principal
	role := pr.Role.Name
	for _, c := range cols {
		if strings.HasPrefix(c, "pgcloak_") {
			w.fail(refuseRule(rule(audit.ReasonFailClosed), "column names starting with pgcloak_ are reserved"))
			return false
		}
		if rel.Column(c) == nil {
			continue // the server reports the unknown column
		}
		if ok, rule, why := pr.Role.MayWriteColumn(tab.Name, c, what); !ok {
			w.fail(&Refusal{Code: "42501", Rule: rule, Message: "pgcloak: " + why + " (rule: " + rule + ")"})
			return false
		}
		v := pr.Column(tab.Name, c)
		if v.Raw() {
			continue
		}
		if pr.Role.BlindWrite(tab.Name, c) {
			continue
		}
		w.fail(refuseRule(rule(audit.ReasonRoles, role, "blind_writes"),
			"%s of column %s of %s is refused: role %q sees it %s (list it under blind_writes to allow writing it unseen)",
			what, c, tab.Name, role, v.Action))
		return false
	}
	return true
}

// valuesSafe refuses SET expressions that read target columns the role does
// not see raw (SET notes = national_id) or the joined tables of UPDATE …
// FROM (which move into the row-choosing subquery).
func (w *walker) valuesSafe(rel *Relation, tab *rules.Table, alias string, values []*pg_query.Node, fromAliases map[string]bool) bool {
	for _, v := range values {
		if !w.readsOnlyVisible(rel, tab, alias, v, fromAliases, "SET") {
			return false
		}
	}
	return true
}

// returningSafe refuses RETURNING of columns the role does not see raw.
func (w *walker) returningSafe(rel *Relation, tab *rules.Table, alias string, list []*pg_query.Node, fromAliases map[string]bool) bool {
	for _, r := range list {
		if !w.readsOnlyVisible(rel, tab, alias, r, fromAliases, "RETURNING") {
			return false
		}
	}
	return true
}

// readsOnlyVisible checks the column references of an expression evaluated
// on the real target row, those in its sub-selects included (targetrefs.go).
func (w *walker) readsOnlyVisible(rel *Relation, tab *rules.Table, alias string, n *pg_query.Node, fromAliases map[string]bool, what string) bool {
	pr := w.rw.ctx.Principal
	role := pr.Role.Name
	ok := true
	w.targetRefs(n, func(c *pg_query.ColumnRef, f []string) {
		if !ok {
			return
		}
		if len(f) >= 2 && fromAliases[f[len(f)-2]] || len(f) == 1 && fromAliases[f[0]] {
			w.fail(refuseUnsupported(what + " that uses the joined tables of a write to a protected table"))
			ok = false
			return
		}
		col := f[len(f)-1]
		if len(f) == 1 && col == alias && rel.Column(col) == nil {
			col = "*" // a whole-row reference
		}
		if len(f) >= 2 && col != "*" && rel.Column(col) == nil {
			// a.f where a's row has no column f calls f(a): functional
			// notation reads the whole row (a.to_json).
			col = "*"
		}
		check := func(name string) bool {
			return pr.Column(tab.Name, name).Raw()
		}
		if col == "*" {
			for _, c := range rel.Columns {
				if !check(c.Name) {
					w.fail(refuseRule(rule(audit.ReasonRoles, role, "profile"), "%s of every column of %s is refused: role %q does not see column %s raw", what, tab.Name, role, c.Name))
					ok = false
					return
				}
			}
			return
		}
		if rel.Column(col) != nil && !check(col) {
			w.fail(refuseRule(rule(audit.ReasonRoles, role, "profile"), "%s may not read column %s of %s: role %q does not see it raw", what, col, tab.Name, role))
			ok = false
		}
	})
	return ok
}

// eachMessage calls f on m and, where f says so, on its descendants, in
// order.
func eachMessage(m proto.Message, f func(proto.Message) bool) {
	if !f(m) {
		return
	}
	m.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Kind() != protoreflect.MessageKind {
			return true
		}
		if fd.IsList() {
			l := v.List()
			for i := 0; i < l.Len(); i++ {
				eachMessage(l.Get(i).Message().Interface(), f)
			}
			return true
		}
		eachMessage(v.Message().Interface(), f)
		return true
	})
}

// visitOuter calls f for each column reference of n outside subqueries
// (subqueries are walked, and substituted, like any read).
func visitOuter(n *pg_query.Node, f func(*pg_query.ColumnRef)) {
	if n == nil {
		return
	}
	eachMessage(n, func(m proto.Message) bool {
		switch x := m.(type) {
		case *pg_query.ColumnRef:
			f(x)
			return false
		case *pg_query.SelectStmt:
			return false
		}
		return true
	})
}

// typeValues casts each VALUES item to its column's type: the values move
// into a derived table, where PostgreSQL could no longer infer a
// parameter's type from the column it is inserted into.
func (w *walker) typeValues(rel *Relation, cols []string, sel *pg_query.SelectStmt) bool {
	types := make([]*pg_query.TypeName, len(cols))
	for i, c := range cols {
		col := rel.Column(c)
		if col == nil {
			w.fail(refuseUnsupported("INSERT into an unknown column of a protected table"))
			return false
		}
		tn, err := parseTypeName(col.Type)
		if err != nil {
			w.fail(err)
			return false
		}
		types[i] = tn
	}
	for _, row := range sel.ValuesLists {
		items := row.GetList().GetItems()
		if len(items) != len(cols) {
			w.fail(refuseUnsupported("VALUES rows of another width than the column list"))
			return false
		}
		for i, it := range items {
			if it.GetSetToDefault() != nil {
				w.fail(refuseRule(rule(audit.ReasonTables), "DEFAULT in VALUES for protected table %s cannot be checked against the row filter; leave the column out instead", rel.Name))
				return false
			}
			items[i] = &pg_query.Node{Node: &pg_query.Node_TypeCast{TypeCast: &pg_query.TypeCast{
				Arg: it, TypeName: proto.Clone(types[i]).(*pg_query.TypeName), Location: -1}}}
		}
	}
	return true
}

// visibleSQL renders the condition that a row of tab, named alias ("" for
// bare column names), is inside the principal's row filters and purposes;
// refs lists the row's columns it reads.
func (rw *rewrite) visibleSQL(tab *rules.Table, alias string) (string, []string, error) {
	own, err := rw.filterSQL(tab)
	if err != nil {
		return "", nil, err
	}
	var parts []string
	var refs []string
	if own != "" {
		q, r, err := qualifyTopLevel(own, alias)
		if err != nil {
			return "", nil, err
		}
		parts = append(parts, "("+q+")")
		refs = append(refs, r...)
	}
	if tab.Subject {
		// The subject table's check is its row filter alone: looking the
		// new key up in the opt-outs would tell the writer whether another
		// subject opted out. Its key cannot change (MayWriteColumn), so a
		// row visible before an UPDATE has the same opt-outs after it.
		if len(parts) == 0 {
			return "true", refs, nil
		}
		return strings.Join(parts, " AND "), refs, nil
	}
	outer := ""
	if alias != "" {
		outer = rules.QuoteIdent(alias)
	}
	chain, err := rw.chainFrom(tab, outer, rw.notOptedOut)
	if err != nil {
		return "", nil, err
	}
	if chain != "" {
		parts = append(parts, chain)
		if tab.Link != nil {
			refs = append(refs, tab.Link.Column)
		}
		if tab.Subject && rw.ctx.Policy.Subject() != nil {
			refs = append(refs, rw.ctx.Policy.Subject().Key)
		}
	}
	if len(parts) == 0 {
		return "true", refs, nil
	}
	return strings.Join(parts, " AND "), refs, nil
}

// chainFrom is chain, for a row that may be named by bare column names.
func (rw *rewrite) chainFrom(tab *rules.Table, outer string, subjectCond func(string) string) (string, error) {
	if outer != "" {
		return rw.chain(tab, outer, 1, true, subjectCond)
	}
	// COPY's WHERE names the row's columns bare; chain needs a qualifier,
	// so render it for a placeholder and strip it.
	const ph = "pgcloak_row"
	s, err := rw.chain(tab, ph, 1, true, subjectCond)
	return strings.ReplaceAll(s, ph+".", ""), err
}

// checked wraps a visibility condition so that a row failing it raises.
func (w *walker) checked(cond string, tab *rules.Table) string {
	msg := fmt.Sprintf("pgcloak: the row is outside the row filter of role %q on %s (rule: %s)",
		w.rw.ctx.Principal.Role.Name, tab.Name, w.filterRule(tab))
	return "(" + cond + ") OR " + schema.CheckViolation + "(" + rules.QuoteLiteral(msg) + ")"
}

func (w *walker) filterRule(tab *rules.Table) ruleName {
	return rule(audit.ReasonRoles, w.rw.ctx.Principal.Role.Name, "filters", tab.Name.Name)
}

// updateCheck is the WITH CHECK of an UPDATE: for rows visible before the
// update, the new values must keep them visible. nil when the update sets
// no column the check reads.
func (rw *rewrite) updateCheck(tab *rules.Table, alias string, cols []string, values []*pg_query.Node) (*pg_query.Node, error) {
	newCond, refs, err := rw.visibleSQL(tab, newRowAlias)
	if err != nil {
		return nil, err
	}
	touched := false
	for _, r := range refs {
		touched = touched || slices.Contains(cols, r)
	}
	// A subject's key never changes (an ORM's save() may set it to itself):
	// renumbering would carry the person's record, and pending change
	// requests, to another identity.
	keyCheck := ""
	if subj := rw.ctx.Policy.Subject(); tab.Subject && subj != nil && slices.Contains(cols, subj.Key) {
		k := rules.QuoteIdent(subj.Key)
		keyCheck = " AND (" + newRowAlias + "." + k + " IS NOT DISTINCT FROM " + rules.QuoteIdent(alias) + "." + k + " OR " + schema.CheckViolation + "(" +
			rules.QuoteLiteral("pgcloak: changing the subject key "+tab.Name.String()+"."+subj.Key+" is refused for restricted roles (rule: subject.key)") + "))"
	}
	if !touched && keyCheck == "" {
		return nil, nil
	}
	oldCond, _, err := rw.visibleSQL(tab, alias)
	if err != nil {
		return nil, err
	}
	w := &walker{rw: rw}
	newNode, err := parseExpr("(" + w.checked(newCond, tab) + ")" + keyCheck)
	if err != nil {
		return nil, err
	}
	// The new row: set columns take their SET expressions, the others keep
	// the row's values.
	set := map[string]*pg_query.Node{}
	for i, c := range cols {
		set[c] = values[i]
	}
	replaceColumnRefs(newNode, func(c *pg_query.ColumnRef) *pg_query.Node {
		f := stringFields(c.Fields)
		if len(f) != 2 || f[0] != newRowAlias {
			return nil
		}
		if v, ok := set[f[1]]; ok {
			return proto.Clone(v).(*pg_query.Node)
		}
		return pg_query.MakeColumnRefNode([]*pg_query.Node{pg_query.MakeStrNode(alias), pg_query.MakeStrNode(f[1])}, -1)
	})
	oldNode, err := parseExpr(oldCond)
	if err != nil {
		return nil, err
	}
	// Only rows the principal may see are checked: a row outside the
	// filter must not make the statement fail (that would be an oracle).
	yes, err := parseExpr("true")
	if err != nil {
		return nil, err
	}
	c := pg_query.MakeCaseExprNode(nil, []*pg_query.Node{pg_query.MakeCaseWhenNode(oldNode, newNode, -1)}, -1)
	c.GetCaseExpr().Defresult = yes
	return c, nil
}

func andNodes(a, b *pg_query.Node) *pg_query.Node {
	if a == nil {
		return b
	}
	if b == nil {
		return a
	}
	return pg_query.MakeBoolExprNode(pg_query.BoolExprType_AND_EXPR, []*pg_query.Node{a, b}, -1)
}

func aliasOf(rv *pg_query.RangeVar) string {
	if rv.Alias != nil {
		return rv.Alias.Aliasname
	}
	return rv.Relname
}

// fromItemNames lists the names FROM items are referred to by.
func fromItemNames(items []*pg_query.Node) map[string]bool {
	names := map[string]bool{}
	var add func(n *pg_query.Node)
	add = func(n *pg_query.Node) {
		switch x := n.Node.(type) {
		case *pg_query.Node_RangeVar:
			names[aliasOf(x.RangeVar)] = true
		case *pg_query.Node_RangeSubselect:
			if x.RangeSubselect.Alias != nil {
				names[x.RangeSubselect.Alias.Aliasname] = true
			}
		case *pg_query.Node_RangeFunction:
			if x.RangeFunction.Alias != nil {
				names[x.RangeFunction.Alias.Aliasname] = true
			}
		case *pg_query.Node_JoinExpr:
			add(x.JoinExpr.Larg)
			add(x.JoinExpr.Rarg)
			if x.JoinExpr.Alias != nil {
				names[x.JoinExpr.Alias.Aliasname] = true
			}
		}
	}
	for _, n := range items {
		add(n)
	}
	return names
}

// parseExpr parses one SQL expression.
func parseExpr(sql string) (*pg_query.Node, error) {
	tree, err := pg_query.Parse("SELECT WHERE " + sql)
	if err != nil {
		return nil, fmt.Errorf("generated condition does not parse: %w", err)
	}
	return tree.Stmts[0].Stmt.GetSelectStmt().WhereClause, nil
}

// parseTypeName parses a type as format_type prints it.
func parseTypeName(t string) (*pg_query.TypeName, error) {
	tree, err := pg_query.Parse("SELECT NULL::" + t)
	if err != nil {
		return nil, fmt.Errorf("type %q does not parse: %w", t, err)
	}
	tc := tree.Stmts[0].Stmt.GetSelectStmt().TargetList[0].GetResTarget().Val.GetTypeCast()
	return tc.TypeName, nil
}

// qualifyTopLevel qualifies the bare column references of a filter that
// are not inside a subquery with alias ("" leaves them bare), and returns
// the columns they name.
func qualifyTopLevel(expr, alias string) (string, []string, error) {
	node, err := parseExpr(expr)
	if err != nil {
		return "", nil, err
	}
	var refs []string
	visitOuter(node, func(c *pg_query.ColumnRef) {
		f := stringFields(c.Fields)
		if len(f) != 1 {
			return
		}
		refs = append(refs, f[0])
		if alias != "" {
			c.Fields = append([]*pg_query.Node{pg_query.MakeStrNode(alias)}, c.Fields...)
		}
	})
	out, err := deparseExpr(node)
	return out, refs, err
}

// replaceColumnRefs replaces the column references for which f returns a
// node, subqueries included.
func replaceColumnRefs(n *pg_query.Node, f func(*pg_query.ColumnRef) *pg_query.Node) {
	eachMessage(n, func(m proto.Message) bool {
		node, ok := m.(*pg_query.Node)
		if !ok {
			return true
		}
		c := node.GetColumnRef()
		if c == nil {
			return true
		}
		if r := f(c); r != nil {
			node.Node = r.Node
		}
		return false
	})
}

func hasSubLink(n *pg_query.Node) bool {
	found := false
	eachMessage(n, func(m proto.Message) bool {
		if node, ok := m.(*pg_query.Node); ok && node.GetSubLink() != nil {
			found = true
		}
		return !found
	})
	return found
}

package rewrite

import (
	"slices"
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v6"

	"github.com/pgcloak/pgcloak/audit"
	"github.com/pgcloak/pgcloak/rules"
)

// statement checks and rewrites one statement (a top-level one, or one
// nested in EXPLAIN, PREPARE, DECLARE, COPY or a CTE).
func (w *walker) statement(n *pg_query.Node) {
	if n == nil || w.err != nil {
		return
	}
	k := statementKind(n)
	if k == rules.StmtDDL || k == rules.StmtMaintenance || k == rules.StmtLock || k == rules.StmtTruncate {
		// The relations such a statement names itself (outside its
		// queries) are the ones it works on.
		w.utility = utilityAccess(k)
		defer func() { w.utility = "" }()
	}
	switch x := n.Node.(type) {
	case *pg_query.Node_SelectStmt:
		if x.SelectStmt.IntoClause != nil {
			w.kind(k, "SELECT INTO")
			w.skipNewRelation(x.SelectStmt.IntoClause)
		} else {
			w.kind(k, "SELECT")
		}
		w.selectStmt(x.SelectStmt, true)
	case *pg_query.Node_InsertStmt:
		w.kind(k, "INSERT")
		w.insertStmt(x.InsertStmt)
	case *pg_query.Node_UpdateStmt:
		w.kind(k, "UPDATE")
		w.updateStmt(x.UpdateStmt)
	case *pg_query.Node_DeleteStmt:
		w.kind(k, "DELETE")
		w.deleteStmt(x.DeleteStmt)
	case *pg_query.Node_MergeStmt:
		s := x.MergeStmt
		w.kind(k, "MERGE")
		defer w.with(s.WithClause)()
		if _, tab, ok := w.writeTarget(s.Relation, "MERGE"); ok && tab != nil {
			w.fail(refuseUnsupported("MERGE into protected table " + tab.Name.String()))
			return
		}
		w.qual = true
		w.fromItem(s.SourceRelation)
		w.messageExcept(s.ProtoReflect(), "with_clause", "relation", "source_relation")
	case *pg_query.Node_CopyStmt:
		w.copyStmt(x.CopyStmt)
	case *pg_query.Node_ExplainStmt:
		w.kind(k, "EXPLAIN")
		w.statement(x.ExplainStmt.Query)
		w.explainAnalyze(x.ExplainStmt)
	case *pg_query.Node_PrepareStmt:
		w.kind(k, "PREPARE")
		w.prepares = append(w.prepares, x.PrepareStmt.Name)
		// PREPARE p(type, …) declares its parameters' types, which
		// pgcloak does not resolve: a declared one fits no left type
		// (fitsLeft), as p(oid) … WHERE order_id = $1 compares with an
		// oid.
		saved := w.rw.paramTypes
		if n := len(x.PrepareStmt.Argtypes); n > 0 {
			w.rw.paramTypes = slices.Repeat([]uint32{oidUnresolved}, n)
		}
		w.statement(x.PrepareStmt.Query)
		w.rw.paramTypes = saved
	case *pg_query.Node_ExecuteStmt:
		w.kind(k, "EXECUTE")
		w.executes = append(w.executes, x.ExecuteStmt.Name)
		w.message(n.ProtoReflect())
	case *pg_query.Node_DeallocateStmt:
		w.kind(k, "DEALLOCATE")
		w.deallocates = append(w.deallocates, x.DeallocateStmt.Name)
	case *pg_query.Node_DeclareCursorStmt:
		w.kind(k, "DECLARE")
		w.statement(x.DeclareCursorStmt.Query)
	case *pg_query.Node_FetchStmt, *pg_query.Node_ClosePortalStmt:
		w.kind(k, "FETCH/CLOSE")
	case *pg_query.Node_TransactionStmt:
		w.kind(k, "transaction control")
	case *pg_query.Node_VariableShowStmt:
		w.kind(k, "SHOW")
	case *pg_query.Node_DiscardStmt:
		w.kind(k, "DISCARD")
	case *pg_query.Node_VariableSetStmt:
		w.setStmt(x.VariableSetStmt)
	case *pg_query.Node_DoStmt:
		w.fail(refuseRule(rule(audit.ReasonStatements), "DO runs code pgcloak cannot inspect; restricted roles may not run it"))
	case *pg_query.Node_CallStmt:
		w.fail(refuseRule(rule(audit.ReasonStatements), "CALL runs a procedure pgcloak cannot inspect; restricted roles may not run it"))
	case *pg_query.Node_LoadStmt, *pg_query.Node_AlterSystemStmt:
		w.fail(refuseRule(rule(audit.ReasonStatements), "restricted roles may not load libraries or change the server configuration"))
	case *pg_query.Node_ListenStmt, *pg_query.Node_UnlistenStmt:
		w.kind(k, "LISTEN")
	case *pg_query.Node_NotifyStmt:
		w.kind(k, "NOTIFY")
	case *pg_query.Node_LockStmt:
		w.kind(k, "LOCK")
		w.message(n.ProtoReflect())
	case *pg_query.Node_TruncateStmt:
		w.kind(k, "TRUNCATE")
		w.message(n.ProtoReflect())
	case *pg_query.Node_VacuumStmt, *pg_query.Node_ClusterStmt, *pg_query.Node_ReindexStmt,
		*pg_query.Node_CheckPointStmt, *pg_query.Node_RefreshMatViewStmt:
		w.kind(k, "maintenance")
		w.message(n.ProtoReflect())
	case *pg_query.Node_CreateTableAsStmt:
		w.kind(k, "CREATE TABLE AS")
		w.ddl = true
		w.skipNewRelation(x.CreateTableAsStmt.Into)
		w.statement(x.CreateTableAsStmt.Query)
	case *pg_query.Node_ViewStmt:
		w.kind(k, "CREATE VIEW")
		w.ddl = true
		w.statement(x.ViewStmt.Query)
	default:
		w.kind(k, "DDL")
		w.ddl = true
		w.message(n.ProtoReflect())
	}
}

// kind checks that the role may run statements of kind k.
func (w *walker) kind(k rules.StatementKind, what string) {
	if w.err != nil {
		return
	}
	w.kinds = append(w.kinds, k)
	if !w.rw.ctx.Principal.Allows(k) {
		role := w.rw.ctx.Principal.Role.Name
		w.fail(refuseRule(rule(audit.ReasonRoles, role, "statements"), "role %q may not run %s statements (kind %s)", role, what, k))
	}
}

// skipNewRelation leaves alone the name of a relation a statement creates.
func (w *walker) skipNewRelation(into *pg_query.IntoClause) {
	if into == nil || into.Rel == nil {
		return
	}
	if into.Rel.Relpersistence != "t" && !w.rw.ctx.Principal.Allows(rules.StmtDDL) {
		w.fail(refuseRule(rule(audit.ReasonStatements), "restricted roles may create only temporary relations"))
	}
}

// copyStmt: COPY … TO of a protected table becomes COPY (SELECT …) TO;
// COPY to or from a server file or program is refused; COPY FROM into a
// protected table gets the row filter check (write.go).
func (w *walker) copyStmt(s *pg_query.CopyStmt) {
	if s.IsProgram || s.Filename != "" {
		w.fail(refuseRule(rule(audit.ReasonStatements), "COPY to or from a server file or program is not allowed for restricted roles"))
		return
	}
	if s.IsFrom {
		w.kind(rules.StmtCopyFrom, "COPY FROM")
		if w.err == nil {
			w.copyFrom(s)
		}
		return
	}
	w.kind(rules.StmtCopyTo, "COPY TO")
	if s.Query != nil {
		w.statement(s.Query)
		return
	}
	if s.Relation == nil || w.err != nil {
		return
	}
	if !w.protectedRef(s.Relation, false) {
		w.relation(s.Relation, false)
		return
	}
	// COPY t (a, b) TO STDOUT reads only t's own rows (not its children).
	rv := s.Relation
	rv.Inh = false
	var targets []*pg_query.Node
	if len(s.Attlist) == 0 {
		targets = []*pg_query.Node{pg_query.MakeResTargetNodeWithVal(
			pg_query.MakeColumnRefNode([]*pg_query.Node{pg_query.MakeAStarNode()}, -1), -1)}
	}
	for _, a := range s.Attlist {
		targets = append(targets, pg_query.MakeResTargetNodeWithVal(pg_query.MakeColumnRefNode([]*pg_query.Node{a}, -1), -1))
	}
	sel := &pg_query.SelectStmt{
		TargetList: targets,
		FromClause: []*pg_query.Node{{Node: &pg_query.Node_RangeVar{RangeVar: rv}}},
	}
	s.Relation, s.Attlist = nil, nil
	s.Query = &pg_query.Node{Node: &pg_query.Node_SelectStmt{SelectStmt: sel}}
	w.changed = true
	w.selectStmt(sel, true)
}

// explainAnalyze refuses EXPLAIN ANALYZE of a statement that touches a
// protected relation (or runs a prepared one, which may): the executed plan
// counts the rows each filter removed, so "Rows Removed by Filter: 1" under
// an index lookup by key tells that a row outside the row filter has that
// key, and the counts tell how many rows the role does not see.
func (w *walker) explainAnalyze(s *pg_query.ExplainStmt) {
	if w.err != nil {
		return
	}
	analyze := false
	for _, o := range s.Options {
		if d := o.GetDefElem(); d != nil && d.Defname == "analyze" {
			analyze = !explicitlyOff(d.Arg)
		}
	}
	if !analyze {
		return
	}
	if len(w.subs) > 0 || w.changed || s.Query.GetExecuteStmt() != nil {
		w.fail(refuseRule(rule(audit.ReasonStatements), "EXPLAIN ANALYZE of a statement that reads or writes protected relations is refused for restricted roles: its row counts show rows outside the row filter; use EXPLAIN without ANALYZE"))
	}
}

// explicitlyOff says whether an option's argument turns it off.
func explicitlyOff(arg *pg_query.Node) bool {
	switch a := arg.GetNode().(type) {
	case *pg_query.Node_String_:
		switch strings.ToLower(a.String_.Sval) {
		case "false", "off", "no", "0":
			return true
		}
	case *pg_query.Node_Integer:
		return a.Integer.Ival == 0
	case *pg_query.Node_Boolean:
		return !a.Boolean.Boolval
	}
	return false
}

package rewrite

import (
	"strconv"
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/pgcloak/pgcloak/audit"
	"github.com/pgcloak/pgcloak/rules"
)

// walker visits every node of one statement. The generic part ranges over
// the protobuf message, so no child is ever skipped, whatever its Go type
// (pg_query has fields that are *SelectStmt, *RangeVar, *WithClause rather
// than *Node). The typed handlers cover what changes meaning: scopes (CTE
// names), FROM items (where protected relations are substituted), and
// expressions (functions and operators are checked; leaky ones in a place
// that can become a scan qual turn on the fence).
type walker struct {
	rw   *rewrite
	text string // the statement's own SQL text

	scopes []map[string]bool // CTE names visible, innermost last
	qual   bool              // inside an expression that may run as a scan qual
	leaky  bool              // a non-leakproof function may run as a qual

	subs     []*policySub // substitutions made in this statement
	colRefs  []*pg_query.ColumnRef
	qualRefs []*pg_query.ColumnRef     // those in conditions (qual)
	indirect []*pg_query.A_Indirection // (expr).name and the like
	// fromRels maps the names FROM items of relations go by to the
	// relation (nil when one name stands for several).
	fromRels map[string]*Relation
	fromAll  map[string][]*Relation // every relation each name stands for
	// fromRelUses counts the FROM items of relations each name goes by.
	fromRelUses map[string]int
	// uses are the relations the walk resolved, with how the statement
	// uses each (the access log's objects); utility is the use of the
	// relations a utility statement names itself.
	uses    []objRef
	utility string
	// aliasUses counts the FROM items of each name; opaque is set once a
	// FROM item's columns are not known (a sub-select, a function, a CTE);
	// anonFrom, once a FROM item goes by a name pgcloak does not know
	// (notation.go).
	aliasUses map[string]int
	opaque    bool
	anonFrom  bool
	// paramUses counts the references to each parameter ($n) in the
	// statement.
	paramUses map[int32]int
	funcRefs  []*pg_query.FuncCall
	kinds     []rules.StatementKind
	ddl       bool     // the statement may change the catalog
	unknown   []string // relation names not in the catalog

	prepares, executes, deallocates []string

	// writeRef is the reference, in the row-choosing subquery of an UPDATE
	// or DELETE, that stands for the write's target: its policy subquery
	// also returns the raw keys of the rows.
	writeRef *pg_query.RangeVar
	changed  bool // something other than a substitution changed the text
	// constRead is set when a decision looked at a constant's value (a
	// GROUP BY position, a LIMIT's sign, a set_config argument): a
	// statement of the same shape with other constants may be decided
	// differently, so its shape is never shared (shapecache.go).
	constRead bool
	err       error
}

// policySub is one protected relation reference replaced by its policy
// subquery.
type policySub struct {
	node   *pg_query.RangeSubselect
	rel    *Relation
	tab    *rules.Table // the rules table protecting rel
	inh    bool         // the reference includes child tables
	alias  string
	entry  *subqueryEntry // its plain and fenced forms
	fenced bool           // the form chosen (finish)
	denied []string
}

func (w *walker) fail(err error) {
	if w.err == nil {
		w.err = err
	}
}

// node walks any node.
func (w *walker) node(n *pg_query.Node) {
	if n == nil || w.err != nil {
		return
	}
	if w.qual && !qualSafe(n) && !w.rw.literalCast(n) {
		w.leaky = true
	}
	switch x := n.Node.(type) {
	case *pg_query.Node_SelectStmt:
		w.selectStmt(x.SelectStmt, false)
	case *pg_query.Node_RangeVar:
		w.relation(x.RangeVar, false)
	case *pg_query.Node_FuncCall:
		w.funcCall(x.FuncCall)
	case *pg_query.Node_AExpr:
		right := x.AExpr.Rexpr
		if k := x.AExpr.Kind; k == pg_query.A_Expr_Kind_AEXPR_OP_ANY || k == pg_query.A_Expr_Kind_AEXPR_OP_ALL {
			right = arrayElements(right)
		}
		w.operator(x.AExpr.Name, x.AExpr.Lexpr, right)
		if x.AExpr.Kind == pg_query.A_Expr_Kind_AEXPR_LIKE || x.AExpr.Kind == pg_query.A_Expr_Kind_AEXPR_ILIKE ||
			x.AExpr.Kind == pg_query.A_Expr_Kind_AEXPR_SIMILAR {
			w.leakIfQual()
		}
		w.message(n.ProtoReflect())
	case *pg_query.Node_SortBy:
		if len(x.SortBy.UseOp) > 0 {
			// ORDER BY x USING op sorts with the comparison function of
			// the btree operator family op belongs to: an operator class
			// the database's owner created runs functions of its own.
			w.operator(x.SortBy.UseOp, x.SortBy.Node, x.SortBy.Node)
		}
		w.message(n.ProtoReflect())
	case *pg_query.Node_AIndirection:
		w.indirect = append(w.indirect, x.AIndirection)
		w.message(n.ProtoReflect())
	case *pg_query.Node_CoalesceExpr:
		if !w.oneType(x.CoalesceExpr.Args) {
			w.leakIfQual()
		}
		w.message(n.ProtoReflect())
	case *pg_query.Node_CaseExpr:
		results := []*pg_query.Node{x.CaseExpr.Defresult}
		for _, cw := range x.CaseExpr.Args {
			results = append(results, cw.GetCaseWhen().GetResult())
		}
		if !w.oneType(results) {
			w.leakIfQual()
		}
		w.message(n.ProtoReflect())
	case *pg_query.Node_ColumnRef:
		w.columnRef(x.ColumnRef)
	case *pg_query.Node_TypeName:
		w.typeName(x.TypeName)
		w.message(n.ProtoReflect())
	case *pg_query.Node_SubLink:
		// The sub-select is walked first: typeOf knows its output
		// column only once its FROM items are noted (before, a bare
		// name or an alias is taken for an outer FROM item's column).
		w.message(n.ProtoReflect())
		switch x.SubLink.SubLinkType {
		case pg_query.SubLinkType_ANY_SUBLINK, pg_query.SubLinkType_ALL_SUBLINK:
			op := x.SubLink.OperName
			if len(op) == 0 { // x IN (SELECT …)
				op = []*pg_query.Node{pg_query.MakeStrNode("=")}
			}
			w.operator(op, x.SubLink.Testexpr, subLinkColumn(x.SubLink.Subselect))
		}
	case *pg_query.Node_JsonScalarExpr, *pg_query.Node_JsonSerializeExpr, *pg_query.Node_JsonParseExpr,
		*pg_query.Node_JsonArrayConstructor, *pg_query.Node_JsonObjectConstructor,
		*pg_query.Node_JsonArrayQueryConstructor, *pg_query.Node_JsonArrayAgg, *pg_query.Node_JsonObjectAgg,
		*pg_query.Node_JsonFuncExpr, *pg_query.Node_JsonTable, *pg_query.Node_JsonIsPredicate:
		// pg_query parses with PostgreSQL 17's grammar. A server before
		// 17 reads json_scalar(…), json(…), json_array(…) and the like as
		// calls of whatever function has that name: not what pgcloak
		// checked.
		w.fail(refuseUnsupported("SQL/JSON syntax (JSON_SCALAR, JSON_ARRAY, JSON(…), JSON_TABLE, IS JSON …)"))
	case *pg_query.Node_InsertStmt, *pg_query.Node_UpdateStmt, *pg_query.Node_DeleteStmt, *pg_query.Node_MergeStmt:
		// A data-modifying statement nested in a query (a CTE).
		w.nested(func() { w.statement(n) })
	case *pg_query.Node_WithClause:
		w.fail(refuseUnsupported("a WITH clause in this position"))
	default:
		w.message(n.ProtoReflect())
	}
}

// qualSafe says whether evaluating n itself (its children are judged on
// their own) cannot raise an error that depends on the values it sees. In
// an expression that may run as a scan qual, below the policy subquery's
// row filter, anything else fences the statement's policy subqueries
// (design.md §5.2): an error, or its absence, would tell about rows the
// principal must not see. This is an allow-list: a node kind not named
// here fences, whatever it is. Node kinds that carry no evaluation of
// their own (names, aliases, a statement's clauses) are listed as
// structure.
func qualSafe(n *pg_query.Node) bool {
	switch x := n.Node.(type) {
	// Values and references.
	case *pg_query.Node_ColumnRef, *pg_query.Node_ParamRef, *pg_query.Node_AConst, *pg_query.Node_AStar,
		*pg_query.Node_SqlvalueFunction, *pg_query.Node_SetToDefault:
		return true
	// Logic and tests that cannot fail.
	case *pg_query.Node_BoolExpr, *pg_query.Node_NullTest, *pg_query.Node_BooleanTest,
		*pg_query.Node_CaseWhen, *pg_query.Node_CoalesceExpr, *pg_query.Node_RowExpr,
		*pg_query.Node_CollateClause, *pg_query.Node_NamedArgExpr:
		return true
	// CASE x WHEN v compares x with each v using an equality the
	// statement never names (record_eq raises on rows of different
	// widths); a searched CASE only tests conditions.
	case *pg_query.Node_CaseExpr:
		return x.CaseExpr.Arg == nil
	// Judged by what they call: the function's or operator's leakproof
	// flag (funcCall, operator).
	case *pg_query.Node_FuncCall:
		return true
	case *pg_query.Node_AExpr:
		switch x.AExpr.Kind {
		case pg_query.A_Expr_Kind_AEXPR_OP, pg_query.A_Expr_Kind_AEXPR_OP_ANY, pg_query.A_Expr_Kind_AEXPR_OP_ALL,
			pg_query.A_Expr_Kind_AEXPR_DISTINCT, pg_query.A_Expr_Kind_AEXPR_NOT_DISTINCT, pg_query.A_Expr_Kind_AEXPR_NULLIF,
			pg_query.A_Expr_Kind_AEXPR_IN, pg_query.A_Expr_Kind_AEXPR_BETWEEN, pg_query.A_Expr_Kind_AEXPR_NOT_BETWEEN,
			pg_query.A_Expr_Kind_AEXPR_BETWEEN_SYM, pg_query.A_Expr_Kind_AEXPR_NOT_BETWEEN_SYM:
			return true
		}
		return false // LIKE, ILIKE, SIMILAR: pattern errors
	// A cast of a literal is the type's input function, run while the
	// statement is parsed, whatever the rows; any other cast (of a
	// column, a parameter, or of a literal already cast to text, whose
	// second conversion may be stable and so run per row) converts at
	// run time.
	case *pg_query.Node_TypeCast:
		return literal(x.TypeCast.Arg)
	// An array of constants is built when the statement is planned; one
	// of run-time values may have mismatched dimensions.
	case *pg_query.Node_AArrayExpr:
		for _, e := range x.AArrayExpr.Elements {
			if !constant(e) {
				return false
			}
		}
		return true
	// A sub-select that returns a row count check (a scalar or row
	// sub-select: "more than one row"), or builds an array of its rows
	// (mismatched dimensions), raises on the rows it sees.
	case *pg_query.Node_SubLink:
		switch x.SubLink.SubLinkType {
		case pg_query.SubLinkType_EXISTS_SUBLINK, pg_query.SubLinkType_ANY_SUBLINK, pg_query.SubLinkType_ALL_SUBLINK:
			return true
		}
		return false
	// Structure: statements, clauses, names.
	case *pg_query.Node_SelectStmt, *pg_query.Node_InsertStmt, *pg_query.Node_UpdateStmt, *pg_query.Node_DeleteStmt,
		*pg_query.Node_MergeStmt, *pg_query.Node_ResTarget, *pg_query.Node_SortBy, *pg_query.Node_WindowDef,
		*pg_query.Node_RangeVar, *pg_query.Node_RangeSubselect, *pg_query.Node_RangeFunction, *pg_query.Node_JoinExpr,
		*pg_query.Node_Alias, *pg_query.Node_TypeName, *pg_query.Node_String_, *pg_query.Node_Integer,
		*pg_query.Node_Float, *pg_query.Node_Boolean, *pg_query.Node_BitString, *pg_query.Node_List,
		*pg_query.Node_WithClause, *pg_query.Node_CommonTableExpr, *pg_query.Node_LockingClause,
		*pg_query.Node_GroupingSet, *pg_query.Node_IntoClause, *pg_query.Node_DefElem, *pg_query.Node_RoleSpec,
		*pg_query.Node_OnConflictClause, *pg_query.Node_InferClause, *pg_query.Node_IndexElem,
		*pg_query.Node_MultiAssignRef, *pg_query.Node_MergeWhenClause:
		return true
	}
	return false
}

// countConstant says whether a LIMIT or OFFSET is absent, NULL (ALL), or a
// constant that cannot be negative.
func countConstant(n *pg_query.Node) bool {
	if n == nil {
		return true
	}
	c := n.GetAConst()
	if c == nil {
		return false
	}
	switch v := c.Val.(type) {
	case nil:
		return c.Isnull
	case *pg_query.A_Const_Ival:
		return v.Ival.Ival >= 0
	}
	return false
}

// literal says whether n is a string literal or NULL, whose cast to a type
// happens at parse time.
func literal(n *pg_query.Node) bool {
	c := n.GetAConst()
	return c != nil && (c.Isnull || c.GetSval() != nil)
}

// oneType says whether PostgreSQL converts none of the columns among
// exprs (COALESCE's arguments, CASE's results) to a common type, row by
// row: they are constants, or columns of one type pgcloak knows and
// operands that fit it as a comparison's right operand does (fitsLeft).
// A column of bigint meets a literal cast to oid as oid, whose input
// from bigint raises on large values.
func (w *walker) oneType(exprs []*pg_query.Node) bool {
	var t uint32
	for _, e := range exprs {
		if e == nil || e.GetColumnRef() == nil {
			continue
		}
		if t = w.typeOf(e); t == 0 {
			return false
		}
		break
	}
	for _, e := range exprs {
		switch {
		case e == nil:
		case t == 0 && !constant(e), t != 0 && !w.fitsLeft(e, t):
			return false
		}
	}
	return true
}

// constant says whether an expression is a constant (a literal, a literal
// cast at parse time, or an array of constants, which the planner builds),
// whose value is fixed before any row is read.
func constant(n *pg_query.Node) bool {
	switch x := n.GetNode().(type) {
	case *pg_query.Node_AConst:
		return true
	case *pg_query.Node_TypeCast:
		return literal(x.TypeCast.Arg)
	case *pg_query.Node_AArrayExpr:
		for _, e := range x.AArrayExpr.Elements {
			if !constant(e) {
				return false
			}
		}
		return true
	}
	return false
}

// message walks every set field of a message.
func (w *walker) message(m protoreflect.Message) {
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		w.field(fd, v)
		return w.err == nil
	})
}

// messageExcept walks the fields of m except those named.
func (w *walker) messageExcept(m protoreflect.Message, skip ...protoreflect.Name) {
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		for _, s := range skip {
			if fd.Name() == s {
				return true
			}
		}
		w.field(fd, v)
		return w.err == nil
	})
}

func (w *walker) field(fd protoreflect.FieldDescriptor, v protoreflect.Value) {
	if fd.Kind() != protoreflect.MessageKind {
		return
	}
	if fd.IsList() {
		l := v.List()
		for i := 0; i < l.Len() && w.err == nil; i++ {
			w.child(l.Get(i).Message())
		}
		return
	}
	w.child(v.Message())
}

func (w *walker) child(m protoreflect.Message) {
	switch x := m.Interface().(type) {
	case *pg_query.Node:
		w.node(x)
	case *pg_query.SelectStmt:
		w.selectStmt(x, false)
	case *pg_query.RangeVar:
		w.relation(x, false)
	case *pg_query.TypeName:
		w.typeName(x)
		w.message(m)
	case *pg_query.WithClause:
		w.fail(refuseUnsupported("a WITH clause in this position"))
	default:
		w.message(m)
	}
}

// nested walks f as a query nested in another: everything in it may end up
// as a qual of the outer plan.
func (w *walker) nested(f func()) {
	q := w.qual
	w.qual = true
	f()
	w.qual = q
}

func (w *walker) leakIfQual() {
	if w.qual {
		w.leaky = true
	}
}

// with opens the scope of a WITH clause and walks its queries. In WITH
// RECURSIVE every name is visible in every query; otherwise a query sees
// only the names before it. The returned function closes the scope.
func (w *walker) with(wc *pg_query.WithClause) func() {
	if wc == nil {
		return func() {}
	}
	scope := map[string]bool{}
	w.scopes = append(w.scopes, scope)
	var ctes []*pg_query.CommonTableExpr
	for _, n := range wc.Ctes {
		cte := n.GetCommonTableExpr()
		if cte == nil {
			w.fail(refuseUnsupported("an unexpected WITH item"))
			return func() {}
		}
		ctes = append(ctes, cte)
		if wc.Recursive {
			scope[cte.Ctename] = true
		}
	}
	for _, cte := range ctes {
		w.nested(func() { w.messageExcept(cte.ProtoReflect()) })
		scope[cte.Ctename] = true
	}
	return func() { w.scopes = w.scopes[:len(w.scopes)-1] }
}

func (w *walker) cteVisible(name string) bool {
	for _, s := range w.scopes {
		if s[name] {
			return true
		}
	}
	return false
}

// selectStmt walks a SELECT. top is true for the statement's own query
// (and the branches of its set operation): its output expressions run on
// rows that already passed every qual, so they need no fence.
func (w *walker) selectStmt(s *pg_query.SelectStmt, top bool) {
	if s == nil || w.err != nil {
		return
	}
	defer w.with(s.WithClause)()
	for _, row := range s.ValuesLists {
		// A VALUES column's rows are converted to their common type
		// row by row: a correlated reference among them, in a qual,
		// is converted on rows the filter hides.
		for _, e := range row.GetList().GetItems() {
			if !constant(e) {
				w.leakIfQual()
			}
		}
	}
	if s.Op != pg_query.SetOperation_SETOP_NONE {
		w.selectStmt(s.Larg, top)
		w.selectStmt(s.Rarg, top)
	}
	q := w.qual
	w.qual = q || !top
	if w.qual && (s.LimitCount.GetAConst() != nil || s.LimitOffset.GetAConst() != nil) {
		w.constRead = true
	}
	if w.qual && (!countConstant(s.LimitCount) || !countConstant(s.LimitOffset)) {
		// "LIMIT must not be negative", raised for the rows that reach a
		// sub-select in a qual.
		w.leaky = true
	}
	if w.qual && s.Op != pg_query.SetOperation_SETOP_NONE {
		// UNION, INTERSECT and EXCEPT compare rows with their types'
		// equality (record_eq raises on rows of different widths).
		w.leaky = true
	}
	for _, f := range s.FromClause {
		w.fromItem(f)
	}
	w.qual = true
	w.node(s.WhereClause)
	w.node(s.HavingClause)
	w.qual = q || !top
	// FOR UPDATE OF names FROM items (aliases), not relations to read.
	w.messageExcept(s.ProtoReflect(), "with_clause", "larg", "rarg", "from_clause", "where_clause", "having_clause", "locking_clause")
	w.qual = q
	w.groupByKeys(s)
}

// fromItem walks one item of a FROM list (or a USING list, or a MERGE
// source), substituting protected relations.
func (w *walker) fromItem(n *pg_query.Node) {
	if n == nil || w.err != nil {
		return
	}
	w.noteFromItem(n)
	switch x := n.Node.(type) {
	case *pg_query.Node_RangeVar:
		if sub := w.relation(x.RangeVar, true); sub != nil {
			n.Node = &pg_query.Node_RangeSubselect{RangeSubselect: sub}
		}
	case *pg_query.Node_JoinExpr:
		if x.JoinExpr.IsNatural || len(x.JoinExpr.UsingClause) > 0 {
			// USING and NATURAL compare the columns with their type's
			// equality, which the statement never names, after
			// converting both to a common type (bigint and oid meet as
			// oid: order_id::oid, which raises on large ids), where the
			// join condition may run on rows the filter hides.
			w.leaky = true
		}
		w.fromItem(x.JoinExpr.Larg)
		w.fromItem(x.JoinExpr.Rarg)
		q := w.qual
		w.qual = true
		w.node(x.JoinExpr.Quals)
		w.qual = q
	case *pg_query.Node_RangeSubselect:
		w.nested(func() { w.node(x.RangeSubselect.Subquery) })
	case *pg_query.Node_RangeTableSample:
		if rv := x.RangeTableSample.Relation.GetRangeVar(); rv != nil {
			if w.protectedRef(rv, true) {
				w.fail(refuseUnsupported("TABLESAMPLE on a protected table"))
				return
			}
		}
		w.message(n.ProtoReflect())
	case *pg_query.Node_JsonTable:
		w.node(n) // refused
	default: // functions in FROM, XMLTABLE
		w.nested(func() { w.message(n.ProtoReflect()) })
	}
}

// noteFromItem counts the names FROM items go by, and notes items whose
// columns pgcloak does not know (typeOf).
func (w *walker) noteFromItem(n *pg_query.Node) {
	if w.aliasUses == nil {
		w.aliasUses = map[string]int{}
	}
	switch x := n.Node.(type) {
	case *pg_query.Node_RangeVar:
		rv := x.RangeVar
		name := rv.Relname
		if rv.Alias != nil {
			name = rv.Alias.Aliasname
			w.opaque = w.opaque || len(rv.Alias.Colnames) > 0
		}
		w.aliasUses[name]++ // a CTE or an unknown name is opaque (relation)
	case *pg_query.Node_JoinExpr:
		if a := x.JoinExpr.Alias; a != nil {
			w.aliasUses[a.Aliasname]++
			w.opaque = true
		}
		if a := x.JoinExpr.JoinUsingAlias; a != nil {
			// JOIN … USING (…) AS j: j goes by the merged columns only.
			w.aliasUses[a.Aliasname]++
			w.opaque = true
		}
	case *pg_query.Node_RangeSubselect:
		if a := x.RangeSubselect.Alias; a != nil {
			w.aliasUses[a.Aliasname]++
		}
		w.opaque = true
	case *pg_query.Node_RangeFunction:
		if a := x.RangeFunction.Alias; a != nil {
			w.aliasUses[a.Aliasname]++
		} else {
			// Named after its function.
			w.anonFrom = true
		}
		w.opaque = true
	case *pg_query.Node_RangeTableSample:
		if rv := x.RangeTableSample.Relation.GetRangeVar(); rv != nil {
			w.noteFromItem(x.RangeTableSample.Relation)
		}
		w.opaque = true
	default:
		w.opaque = true
		w.anonFrom = true
	}
}

// columnRef records references for the deny checks.
func (w *walker) columnRef(c *pg_query.ColumnRef) {
	w.colRefs = append(w.colRefs, c)
	if w.qual {
		w.qualRefs = append(w.qualRefs, c)
	}
}

// maskMayRaise says whether a column's view computes its value with a
// conversion that can fail on some stored value: date_trunc of a
// generalized or coarsened date (timestamptz's range is narrower than
// date's), the casts of a bucket, a mask written in SQL.
func maskMayRaise(v rules.ColumnView) bool {
	if v.Coarsen != "" {
		return true
	}
	if v.Action != rules.MaskValue || v.Mask == nil {
		return false
	}
	switch v.Mask.Kind {
	case rules.MaskGeneralize, rules.MaskBucket, rules.MaskSQL:
		return true
	}
	return false
}

// readsRaisingMask says whether a substituted relation's column whose
// mask may raise is read where PostgreSQL may compute the mask below the
// row filter, on rows the filter hides, so that its error would tell of
// them: by a condition (WHERE, ON, HAVING, a sub-select's output), which
// the planner may order before the filter; or at all, as trim decides
// what a statement may read, in a statement with grouping sets or an
// outer join, where the planner computes columns at the scan, below the
// join the filter may have become. A relation whose columns an alias
// renames, and a join alias with column names, count as read in full.
// sn are the statement's names (namesOf).
func (w *walker) readsRaisingMask(stmt *pg_query.Node, sn *statementNames) bool {
	if len(w.subs) == 0 {
		return false
	}
	names := map[string]bool{}
	whole := false
	for _, c := range w.qualRefs {
		f := stringFields(c.Fields)
		if len(f) == 0 || f[len(f)-1] == "*" {
			whole = true
			continue
		}
		names[f[len(f)-1]] = true
	}
	planned := false
	eachMessage(stmt, func(m proto.Message) bool {
		switch x := m.(type) {
		case *pg_query.GroupingSet:
			planned = true
		case *pg_query.JoinExpr:
			if x.Jointype != pg_query.JoinType_JOIN_INNER {
				planned = true
			}
			if x.Alias != nil && len(x.Alias.Colnames) > 0 || x.JoinUsingAlias != nil {
				whole = true
			}
		}
		return true
	})
	for _, s := range w.subs {
		renamed := s.node.Alias != nil && len(s.node.Alias.Colnames) > 0
		var keep []bool
		if planned && !sn.all {
			keep = sn.kept(s)
		}
		for i, c := range s.rel.Columns {
			inQual := whole || renamed && len(names) > 0 || names[c.Name] || names[s.alias]
			if (inQual || planned && (keep == nil || keep[i])) && maskMayRaise(w.rw.ctx.Principal.Column(s.tab.Name, c.Name)) {
				return true
			}
		}
	}
	return false
}

// typeName refuses naming a type that can run code pgcloak cannot see (a
// domain's constraints, a user-defined type's input function), or one
// its catalog snapshot does not know.
func (w *walker) typeName(t *pg_query.TypeName) {
	if w.err != nil || t.PctType {
		return // %TYPE names a column's type
	}
	schema, name := qualifiedName(t.Names)
	if name == "" {
		return
	}
	if regType[name] && (schema == "" || schema == "pg_catalog") {
		// A constant of an OID alias type names a catalog object, looked
		// up by the server: its value is never shared (shapecache.go).
		w.constRead = true
	}
	safe, found := w.rw.cat.TypeSafe(schema, name, w.rw.ctx.SearchPath)
	if schema != "" {
		name = schema + "." + name
	}
	switch {
	case !found:
		w.fail(refuseRule(rule(audit.ReasonTypes), "type %s is not in pgcloak's catalog; restricted roles may name only types it knows", name))
	case !safe:
		w.fail(refuseRule(rule(audit.ReasonTypes), "type %s may run code pgcloak cannot inspect (a domain's constraints or a user-defined type's functions); restricted roles may name built-in types, enums and row types only", name))
	}
}

// regType are the OID alias types, whose input functions look names up.
var regType = map[string]bool{"regclass": true, "regcollation": true, "regconfig": true, "regdictionary": true,
	"regnamespace": true, "regoper": true, "regoperator": true, "regproc": true, "regprocedure": true,
	"regrole": true, "regtype": true}

// funcCall checks a function against the allowlist.
func (w *walker) funcCall(f *pg_query.FuncCall) {
	schema, name := qualifiedName(f.Funcname)
	if err := w.checkCall(schema, name, f); err != nil {
		w.fail(err)
		return
	}
	if !w.rw.cat.FunctionLeakproof(name) {
		w.leakIfQual()
	} else {
		// Leakproof, for the types it takes: an argument of another
		// type is converted first (oideq(order_id, 1) runs
		// order_id::oid), and pgcloak does not know which overload
		// runs. Only constants are converted before any row is read.
		for _, a := range f.Args {
			if !constant(a) {
				w.leakIfQual()
				break
			}
		}
	}
	if schema == "" && len(f.Funcname) == 1 {
		// Named by the schema it was judged in: an overload of the name
		// created in another schema since the catalog snapshot (which the
		// server would prefer for a closer argument type) cannot be what
		// runs. The statement is printed, so never forwarded as written.
		f.Funcname = []*pg_query.Node{pg_query.MakeStrNode("pg_catalog"), f.Funcname[0]}
		w.changed = true
	}
	w.funcRefs = append(w.funcRefs, f)
	w.message(f.ProtoReflect())
}

// operator checks an operator: only built-in operators may be used, and a
// non-leakproof one in a qual turns the fence on.
func (w *walker) operator(names []*pg_query.Node, left, right *pg_query.Node) {
	schema, name := qualifiedName(names)
	switch strings.ToUpper(name) {
	case "BETWEEN", "NOT BETWEEN", "BETWEEN SYMMETRIC", "NOT BETWEEN SYMMETRIC":
		for _, op := range []string{">=", "<="} {
			w.operator([]*pg_query.Node{pg_query.MakeStrNode(op)}, left, right)
		}
		return
	}
	if !w.rw.cat.OperatorBuiltin(schema, name) {
		w.fail(refuseRule(rule(audit.ReasonFunctions), "operator %s is not a built-in operator; restricted roles may use built-in operators only", name))
		return
	}
	lt := w.typeOf(left)
	if lt != 0 && !w.fitsLeft(right, lt) {
		// PostgreSQL may pick an operator of another left type and
		// convert the left operand, row by row (order_id = '1'::oid runs
		// oideq(order_id::oid, …), whose cast raises on large ids).
		lt = 0
	}
	if !w.rw.cat.OperatorLeakproof(name, lt) {
		w.leakIfQual()
	}
}

// Type OIDs fitsLeft knows.
const (
	oidBool    = 16
	oidInt2    = 21
	oidText    = 25
	oidVarchar = 1043
	// oidUnresolved is a type declared by a name pgcloak does not
	// resolve: it is no type's OID.
	oidUnresolved = ^uint32(0)
)

func intType(t uint32) bool { return t == oidInt2 || t == oidInt4 || t == oidInt8 }

// fitsLeft says whether PostgreSQL, given a left operand of type left,
// certainly picks an operator of that left type for a right operand n:
// one of unknown type (a plain literal, NULL, a parameter of unspecified
// type, which take the left operand's type), of the same type, or an
// integer where the left type is one too (every comparison exists for
// each pair of integer types). Anything else, PostgreSQL may resolve to
// an operator of another left type and cast the left operand. n is a
// list for IN and BETWEEN, and the elements of an array for ANY and ALL.
func (w *walker) fitsLeft(n *pg_query.Node, left uint32) bool {
	same := func(t uint32) bool {
		// varchar is text on disk: text's operators take it as it is
		// (JDBC declares its string parameters varchar).
		return t == 0 || t == left || intType(t) && intType(left) || t == oidVarchar && left == oidText
	}
	switch x := n.GetNode().(type) {
	case nil:
		return true // a prefix operator
	case *pg_query.Node_AConst:
		c := x.AConst
		switch {
		case c.Isnull, c.GetSval() != nil:
			return true
		case c.GetIval() != nil:
			return same(oidInt4)
		case c.GetFval() != nil:
			if v := c.GetFval().Fval; !strings.ContainsAny(v, ".eE") {
				if _, err := strconv.ParseInt(v, 10, 64); err == nil {
					return same(oidInt8)
				}
			}
			return left == oidNumeric
		case c.GetBoolval() != nil:
			return left == oidBool
		}
		return false
	case *pg_query.Node_ParamRef:
		t := w.rw.paramType(x.ParamRef.Number)
		if t == 0 && w.paramUses[x.ParamRef.Number] != 1 {
			// PostgreSQL types a parameter of unspecified type at its
			// first use (the select list is analysed before WHERE):
			// SELECT $1::oid … WHERE order_id = $1 compares with an oid.
			return false
		}
		return same(t)
	case *pg_query.Node_ColumnRef:
		t := w.typeOf(n)
		return t != 0 && same(t)
	case *pg_query.Node_List:
		for _, e := range x.List.Items {
			if !w.fitsLeft(e, left) {
				return false
			}
		}
		return true
	}
	return false
}

// arrayElements is what ANY and ALL compare with: the elements of an
// ARRAY[…] constructor (as a list), a parameter of unspecified type (the
// left operand's array type, then); anything else fits no left type.
func arrayElements(n *pg_query.Node) *pg_query.Node {
	switch x := n.GetNode().(type) {
	case *pg_query.Node_AArrayExpr:
		return &pg_query.Node{Node: &pg_query.Node_List{List: &pg_query.List{Items: x.AArrayExpr.Elements}}}
	case *pg_query.Node_ParamRef:
		return n
	}
	return notFitting
}

// subLinkColumn is what x IN (SELECT …) compares x with: the sub-select's
// one output column when it is a plain column reference; nil (fits no
// left type) otherwise.
func subLinkColumn(n *pg_query.Node) *pg_query.Node {
	s := n.GetSelectStmt()
	if s == nil || len(s.TargetList) != 1 || s.Op != pg_query.SetOperation_SETOP_NONE {
		return notFitting
	}
	if v := s.TargetList[0].GetResTarget().GetVal(); v.GetColumnRef() != nil {
		return v
	}
	return notFitting
}

// paramUses counts the references to each parameter in n.
func paramUses(n *pg_query.Node) map[int32]int {
	uses := map[int32]int{}
	if n == nil {
		return uses
	}
	anyMessage(n.ProtoReflect(), func(m protoreflect.Message) bool {
		if p, ok := m.Interface().(*pg_query.ParamRef); ok {
			uses[p.Number]++
		}
		return false
	})
	return uses
}

// notFitting is a right operand that fits no left type.
var notFitting = &pg_query.Node{Node: &pg_query.Node_BitString{BitString: &pg_query.BitString{}}}

// typeOf guesses the type of an expression that is a plain column of a
// substituted relation; 0 when unknown.
func (w *walker) typeOf(n *pg_query.Node) uint32 {
	c := n.GetColumnRef()
	if c == nil {
		return 0
	}
	fields := stringFields(c.Fields)
	if len(fields) == 0 {
		return 0
	}
	col := fields[len(fields)-1]
	var found *Column
	if len(fields) >= 2 {
		// a.col: a must name one FROM item in the whole statement, or an
		// inner one of the same name could be meant.
		q := fields[len(fields)-2]
		if w.aliasUses[q] != 1 {
			return 0
		}
		if rel := w.fromRels[q]; rel != nil {
			found = rel.Column(col)
		}
	} else {
		// A bare name: only when every FROM item of the statement is a
		// relation pgcloak knows, and exactly one has such a column (a
		// sub-select's or a function's columns are not known here).
		if w.opaque {
			return 0
		}
		for _, rel := range w.fromRels {
			if rel == nil {
				return 0
			}
			if c := rel.Column(col); c != nil {
				if found != nil {
					return 0
				}
				found = c
			}
		}
	}
	if found == nil {
		return 0
	}
	return found.TypeOID
}

// qualifiedName splits a name list into schema and last name.
func qualifiedName(names []*pg_query.Node) (schema, name string) {
	parts := stringFields(names)
	switch len(parts) {
	case 0:
		return "", ""
	case 1:
		return "", parts[0]
	default:
		return parts[len(parts)-2], parts[len(parts)-1]
	}
}

// stringFields returns the string parts of a name list; "*" for A_Star.
func stringFields(nodes []*pg_query.Node) []string {
	out := make([]string, 0, len(nodes))
	for _, n := range nodes {
		switch x := n.Node.(type) {
		case *pg_query.Node_String_:
			out = append(out, x.String_.Sval)
		case *pg_query.Node_AStar:
			out = append(out, "*")
		}
	}
	return out
}

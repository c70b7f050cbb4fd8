package rewrite

import (
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"weak"

	pg_query "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/pgcloak/pgcloak/audit"
	"github.com/pgcloak/pgcloak/rules"
)

// The access log (design.md §6) records every statement with what it is
// (kind, fingerprint, text with every constant replaced), what it touches
// (relations, and the columns of protected ones with their class), and what
// the rules made of it (decision, reason, masks and filters). This file
// builds those descriptions; the proxy adds what the server answered.
//
// Describing a statement costs a parse, a normalization and a walk, so
// descriptions are cached by the statement's shape: its text with literals,
// comments and whitespace reduced, which is the same for every execution of
// a statement that differs only in its constants. The text that reaches the
// log comes from pg_query's normalizer and is then scanned again, so that
// no constant the normalizer leaves (in a PREPARE body, say) and no comment
// survives.

// describeWork counts the steps of matching columns to relations, so that
// a test can show the description is linear in the statement's size.
var describeWork atomic.Int64

// maxQueryText bounds the normalized text kept per statement.
const maxQueryText = 4096

// describeKey identifies a cached description: the catalog snapshot and
// viewer it was resolved for, and the statement's shape. The catalog is
// held weakly: a cache entry does not keep an old snapshot alive.
type describeKey struct {
	cat   weak.Pointer[Catalog]
	ctx   string
	shape string
}

type describeCacheT struct {
	mu sync.RWMutex
	m  map[describeKey][]*audit.Statement
}

const maxDescriptions = 10000

// descriptions is shared by all engines and observers: its keys say which
// catalog and viewer each entry belongs to.
var descriptions = &describeCacheT{m: map[describeKey][]*audit.Statement{}}

func (c *describeCacheT) get(k describeKey) []*audit.Statement {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.m[k]
}

func (c *describeCacheT) put(k describeKey, v []*audit.Statement) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= maxDescriptions {
		clear(c.m)
	}
	c.m[k] = v
}

// Describer describes statements for the access log as one principal
// runs them: it resolves their relations in a catalog snapshot and names
// the columns they use of the protected ones.
type Describer struct {
	Catalog    *Catalog      // nil: names as written
	Policy     *rules.Policy // nil: nothing is protected
	SearchPath []string
	Role       string
	Purpose    string
	EndUser    string
}

// Describe returns the descriptions of the statements of sql, decided
// Allowed: what the rules make of them is not in them (unrestricted
// sessions, and statements decided on without a rewrite). key names
// everything besides the catalog that the description depends on.
func (d *Describer) Describe(sql, key string) []*audit.Statement { return d.describe(sql, key, nil) }

// describe returns the descriptions of the statements of sql, decided
// Allowed. tree is sql's parse tree if the caller has it (it is not
// changed); ctxKey names everything besides the catalog that the
// description depends on.
func (d *Describer) describe(sql, ctxKey string, tree *pg_query.ParseResult) []*audit.Statement {
	shape, cacheable := shapeKey(sql)
	k := describeKey{cat: weak.Make(d.Catalog), ctx: ctxKey, shape: shape}
	if cacheable {
		if v := descriptions.get(k); v != nil {
			return v
		}
	}
	if tree == nil {
		var err error
		if tree, err = pg_query.Parse(sql); err != nil {
			return []*audit.Statement{{Role: d.Role, Purpose: d.Purpose, EndUser: d.EndUser, Kind: "unknown", Decision: audit.Allowed}}
		}
	}
	out := make([]*audit.Statement, 0, len(tree.Stmts))
	for _, raw := range tree.Stmts {
		text := statementText(sql, raw)
		st := &audit.Statement{Role: d.Role, Purpose: d.Purpose, EndUser: d.EndUser,
			Kind: statementKind(raw.Stmt).String(), Query: normalizedText(text), Decision: audit.Allowed}
		if fp, err := pg_query.Fingerprint(text); err == nil {
			st.Fingerprint = fp
		}
		st.Objects = d.objects(raw.Stmt)
		out = append(out, st)
	}
	if cacheable {
		descriptions.put(k, out)
	}
	return out
}

// normalizedText is text with constants replaced by $n (pg_query's
// normalizer), then scanned: comments are removed, any constant the
// normalizer left is replaced too, and whitespace is collapsed. "" when
// it cannot be scanned.
func normalizedText(text string) string {
	norm, err := pg_query.Normalize(text)
	if err != nil {
		return ""
	}
	sc, err := pg_query.Scan(norm)
	if err != nil {
		return ""
	}
	maxParam := 0
	for _, t := range sc.Tokens {
		if t.Token == pg_query.Token_PARAM {
			n := 0
			for _, c := range norm[t.Start+1 : t.End] {
				n = n*10 + int(c-'0')
			}
			maxParam = max(maxParam, n)
		}
	}
	var b strings.Builder
	for _, t := range sc.Tokens {
		var tok string
		switch t.Token {
		case pg_query.Token_SQL_COMMENT, pg_query.Token_C_COMMENT:
			continue
		case pg_query.Token_SCONST, pg_query.Token_USCONST, pg_query.Token_BCONST, pg_query.Token_XCONST,
			pg_query.Token_ICONST, pg_query.Token_FCONST:
			maxParam++
			tok = "$" + itoa(maxParam)
		default:
			tok = norm[t.Start:t.End]
		}
		if b.Len() > 0 && needsSpace(norm, t) {
			b.WriteByte(' ')
		}
		if b.Len()+len(tok) > maxQueryText {
			b.WriteString("…")
			break
		}
		b.WriteString(tok)
	}
	return b.String()
}

// needsSpace says whether whitespace stood before token t.
func needsSpace(s string, t *pg_query.ScanToken) bool {
	return t.Start > 0 && strings.ContainsRune(" \t\n\r\f\v", rune(s[t.Start-1]))
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	for ; n > 0; n /= 10 {
		i--
		b[i] = byte('0' + n%10)
	}
	return string(b[i:])
}

// statementKind is the kind of a statement, as the rules name kinds: the
// one mapping that both the decision (statement.go) and the access log use.
func statementKind(n *pg_query.Node) rules.StatementKind {
	var k rules.StatementKind
	switch x := n.GetNode().(type) {
	case *pg_query.Node_SelectStmt:
		k = rules.StmtSelect
		if x.SelectStmt.IntoClause != nil {
			k = rules.StmtDDL
		}
	case *pg_query.Node_InsertStmt:
		k = rules.StmtInsert
	case *pg_query.Node_UpdateStmt:
		k = rules.StmtUpdate
	case *pg_query.Node_DeleteStmt:
		k = rules.StmtDelete
	case *pg_query.Node_MergeStmt:
		k = rules.StmtMerge
	case *pg_query.Node_CopyStmt:
		k = rules.StmtCopyTo
		if x.CopyStmt.IsFrom {
			k = rules.StmtCopyFrom
		}
	case *pg_query.Node_ExplainStmt:
		k = rules.StmtExplain
	case *pg_query.Node_PrepareStmt, *pg_query.Node_ExecuteStmt, *pg_query.Node_DeallocateStmt:
		k = rules.StmtPrepare
	case *pg_query.Node_DeclareCursorStmt, *pg_query.Node_FetchStmt, *pg_query.Node_ClosePortalStmt:
		k = rules.StmtCursor
	case *pg_query.Node_TransactionStmt:
		k = rules.StmtTransaction
	case *pg_query.Node_VariableShowStmt:
		k = rules.StmtShow
	case *pg_query.Node_DiscardStmt:
		k = rules.StmtDiscard
	case *pg_query.Node_VariableSetStmt:
		k = rules.StmtSet
		if x.VariableSetStmt.Kind == pg_query.VariableSetKind_VAR_SET_MULTI {
			k = rules.StmtTransaction
		}
	case *pg_query.Node_DoStmt:
		k = rules.StmtDo
	case *pg_query.Node_CallStmt:
		k = rules.StmtCall
	case *pg_query.Node_ListenStmt, *pg_query.Node_UnlistenStmt:
		k = rules.StmtListen
	case *pg_query.Node_NotifyStmt:
		k = rules.StmtNotify
	case *pg_query.Node_LockStmt:
		k = rules.StmtLock
	case *pg_query.Node_TruncateStmt:
		k = rules.StmtTruncate
	case *pg_query.Node_VacuumStmt, *pg_query.Node_ClusterStmt, *pg_query.Node_ReindexStmt,
		*pg_query.Node_CheckPointStmt, *pg_query.Node_RefreshMatViewStmt:
		k = rules.StmtMaintenance
	default:
		k = rules.StmtDDL
	}
	return k
}

// writes are what a statement's own syntax says it writes: its target,
// the columns it names, all of them, and the columns COPY … TO reads.
type writes struct {
	target   *pg_query.RangeVar
	written  []string // columns written; see all
	all      bool     // every column is written
	copyCols [][]string
}

func writesOf(stmt *pg_query.Node) writes {
	var wr writes
	switch x := stmt.GetNode().(type) {
	case *pg_query.Node_InsertStmt:
		wr.target = x.InsertStmt.Relation
		for _, c := range x.InsertStmt.Cols {
			wr.written = append(wr.written, c.GetResTarget().GetName())
		}
		wr.all = len(wr.written) == 0
	case *pg_query.Node_UpdateStmt:
		wr.target = x.UpdateStmt.Relation
		for _, c := range x.UpdateStmt.TargetList {
			wr.written = append(wr.written, c.GetResTarget().GetName())
		}
	case *pg_query.Node_DeleteStmt:
		wr.target = x.DeleteStmt.Relation
	case *pg_query.Node_MergeStmt:
		wr.target, wr.all = x.MergeStmt.Relation, true
	case *pg_query.Node_CopyStmt:
		if x.CopyStmt.IsFrom {
			wr.target = x.CopyStmt.Relation
			for _, a := range x.CopyStmt.Attlist {
				wr.written = append(wr.written, a.GetString_().GetSval())
			}
			wr.all = len(wr.written) == 0
		} else if x.CopyStmt.Relation != nil && len(x.CopyStmt.Attlist) == 0 {
			wr.copyCols = append(wr.copyCols, []string{"*"})
		} else {
			for _, a := range x.CopyStmt.Attlist {
				wr.copyCols = append(wr.copyCols, []string{a.GetString_().GetSval()})
			}
		}
	}
	return wr
}

// objRef is one relation a statement uses: its name as resolved (or as
// written, when the catalog does not know it), its columns, the rules
// table that protects it, how it is used and the name it goes by.
type objRef struct {
	name    string
	columns []string
	tab     *rules.Table
	access  string // read, write or ddl
	alias   string
}

// objects lists the relations an unrestricted session's statement names,
// with the columns it names of the protected ones (restricted sessions'
// statements are described from the rewrite's own walk: walkedObjects).
func (d *Describer) objects(stmt *pg_query.Node) []audit.Object {
	var (
		refs []*pg_query.RangeVar
		cols [][]string // ColumnRef fields; "*" for A_Star
		ctes = map[string]bool{}
	)
	wr := writesOf(stmt)
	cols = append(cols, wr.copyCols...)
	// The relations a utility statement works on itself: the one CREATE,
	// ALTER or VACUUM names, the ones TRUNCATE empties.
	own := map[*pg_query.RangeVar]string{}
	if k := statementKind(stmt); k == rules.StmtDDL || k == rules.StmtMaintenance || k == rules.StmtLock || k == rules.StmtTruncate {
		access := utilityAccess(k)
		inner := stmt.ProtoReflect()
		inner.Range(func(_ protoreflect.FieldDescriptor, v protoreflect.Value) bool {
			inner = v.Message() // the one field of the Node oneof
			return false
		})
		inner.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
			var ms []protoreflect.Message
			switch {
			case fd.IsList() && fd.Message() != nil:
				for i := 0; i < v.List().Len(); i++ {
					ms = append(ms, v.List().Get(i).Message())
				}
			case fd.Message() != nil && !fd.IsMap():
				ms = append(ms, v.Message())
			}
			for _, m := range ms {
				switch x := m.Interface().(type) {
				case *pg_query.RangeVar:
					own[x] = access
				case *pg_query.Node:
					if rv := x.GetRangeVar(); rv != nil {
						own[rv] = access
					}
				case *pg_query.IntoClause:
					if x.Rel != nil {
						own[x.Rel] = access
					}
				}
			}
			return true
		})
	}
	visitMessages(stmt.ProtoReflect(), func(m protoreflect.Message) {
		switch x := m.Interface().(type) {
		case *pg_query.RangeVar:
			refs = append(refs, x)
		case *pg_query.CommonTableExpr:
			ctes[x.Ctename] = true
		case *pg_query.ColumnRef:
			cols = append(cols, stringFields(x.Fields))
		}
	})
	var uses []objRef
	for _, rv := range refs {
		// Only a FROM item can name a CTE; the server resolves a write
		// target or a utility statement's relation in the catalog
		// (resolveChecked).
		if rv.Schemaname == "" && ctes[rv.Relname] && rv != wr.target && own[rv] == "" {
			continue
		}
		name, columns, tab := d.resolve(rv)
		access := "read"
		if rv == wr.target {
			access = "write"
		} else if a, ok := own[rv]; ok {
			access = a
		}
		uses = append(uses, objRef{name: name, columns: columns, tab: tab, access: access, alias: aliasOf(rv)})
	}
	return attribute(d.Policy, uses, cols, wr)
}

// utilityAccess is how a utility statement of kind k uses the relations
// it names itself.
func utilityAccess(k rules.StatementKind) string {
	if k == rules.StmtTruncate {
		return "write"
	}
	return "ddl"
}

// attribute makes the access log's objects of a statement from the
// relations it uses and the column names it mentions. It reads names, not
// plans: a column is attributed to every relation in the statement that
// has a column of that name unless a qualifier says which, and * to all
// of them, so the list may say more than the statement reads, never less.
func attribute(pol *rules.Policy, uses []objRef, cols [][]string, wr writes) []audit.Object {
	type found struct {
		obj *audit.Object
		objRef
	}
	var objs []*found
	byKey := map[string]*found{}
	for _, u := range uses {
		key := u.access + " " + u.name + " " + u.alias
		if byKey[key] != nil {
			continue
		}
		f := &found{obj: &audit.Object{Relation: u.name, Access: u.access, Protected: u.tab != nil}, objRef: u}
		byKey[key] = f
		objs = append(objs, f)
	}
	class := func(tab *rules.Table, col string) string {
		if c := tab.Column(col); c != nil {
			return c.Class.String()
		}
		return pol.UnclassedClass().String()
	}
	add := func(f *found, col string) {
		if f.tab == nil {
			return
		}
		if f.obj.Columns == nil {
			f.obj.Columns = map[string]string{}
		}
		if col == "*" {
			for _, c := range f.columns {
				f.obj.Columns[c] = class(f.tab, c)
			}
			return
		}
		f.obj.Columns[col] = class(f.tab, col)
	}
	// Linear in the statement's size: each object's columns are a set,
	// objects are found by alias, and an unqualified column is matched
	// from the objects' side (each object's columns against the set of
	// names the statement uses), so that neither the number of columns
	// the statement names nor that of its relations multiplies the other.
	work := int64(0) // steps of the matching below (describeWork)
	defer func() { describeWork.Add(work) }()
	colSet := make([]map[string]bool, len(objs))
	byAlias := map[string][]int{}
	for i, f := range objs {
		work += int64(len(f.columns))
		colSet[i] = make(map[string]bool, len(f.columns))
		for _, c := range f.columns {
			colSet[i][c] = true
		}
		byAlias[f.alias] = append(byAlias[f.alias], i)
	}
	for i, f := range objs {
		if f.obj.Access != "write" {
			continue
		}
		if wr.all {
			add(f, "*")
		}
		for _, c := range wr.written {
			work++
			if colSet[i][c] {
				add(f, c)
			}
		}
	}
	unqualified := map[string]bool{}
	star := false
	type qualified struct{ qual, last string }
	seenQual := map[qualified]bool{}
	for _, c := range cols {
		work++
		if len(c) == 0 {
			continue
		}
		last := c[len(c)-1]
		if len(c) == 1 {
			if last == "*" {
				star = true
				continue
			}
			if !unqualified[last] {
				unqualified[last] = true
				for _, i := range byAlias[last] {
					work++
					if !colSet[i][last] {
						add(objs[i], "*") // a whole-row reference
					}
				}
			}
			continue
		}
		q := qualified{c[len(c)-2], last}
		if seenQual[q] {
			continue
		}
		seenQual[q] = true
		for _, i := range byAlias[q.qual] {
			work++
			switch {
			case last == "*":
				add(objs[i], "*")
			case colSet[i][last]:
				add(objs[i], last)
			}
		}
	}
	for i, f := range objs {
		work += int64(len(f.columns))
		if star {
			add(f, "*")
			continue
		}
		for _, c := range f.columns {
			if unqualified[c] && colSet[i][c] {
				add(f, c)
			}
		}
	}
	out := make([]audit.Object, 0, len(objs))
	seen := map[string]int{}
	for _, f := range objs {
		// The same relation under two aliases is one object.
		k := f.obj.Access + " " + f.obj.Relation
		if i, ok := seen[k]; ok {
			for c, cl := range f.obj.Columns {
				if out[i].Columns == nil {
					out[i].Columns = map[string]string{}
				}
				out[i].Columns[c] = cl
			}
			continue
		}
		seen[k] = len(out)
		out = append(out, *f.obj)
	}
	return out
}

// resolve names the relation a reference denotes, its columns and the rules
// table that protects it.
func (d *Describer) resolve(rv *pg_query.RangeVar) (string, []string, *rules.Table) {
	var rel *Relation
	if d.Catalog != nil {
		if rv.Schemaname != "" {
			rel = d.Catalog.Relation(rv.Schemaname, rv.Relname)
		} else {
			rel = d.Catalog.Resolve(rv.Relname, d.SearchPath)
		}
	}
	var tab *rules.Table
	if rel != nil {
		if d.Policy != nil {
			tab = Protecting(d.Policy, rel)
		}
		cols := make([]string, len(rel.Columns))
		for i, c := range rel.Columns {
			cols[i] = c.Name
		}
		return rel.Schema + "." + rel.Name, cols, tab
	}
	name := rv.Relname
	if rv.Schemaname != "" {
		name = rv.Schemaname + "." + name
	}
	if d.Policy != nil {
		schema := rv.Schemaname
		if schema == "" {
			schema = "public"
		}
		tab = d.Policy.Table(rules.TableName{Schema: schema, Name: rv.Relname})
	}
	var cols []string
	if tab != nil {
		for _, c := range tab.Columns {
			cols = append(cols, c.Name)
		}
	}
	return name, cols, tab
}

// visitMessages calls f on m and every message below it.
func visitMessages(m protoreflect.Message, f func(protoreflect.Message)) {
	f(m)
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsList() && fd.Message() != nil:
			l := v.List()
			for i := 0; i < l.Len(); i++ {
				visitMessages(l.Get(i).Message(), f)
			}
		case fd.IsMap():
		case fd.Message() != nil:
			visitMessages(v.Message(), f)
		}
		return true
	})
}

// decided describes the statements of a rewrite for ctx: the base
// description with the decision, and for protected relations the masks
// and filters the principal's view applies.
func decided(base *audit.Statement, ctx *Viewer, changed bool, refusal *Refusal) *audit.Statement {
	st := *base
	if refusal != nil {
		st.Decision, st.Reason, st.ReasonCode = audit.Denied, refusal.Rule, audit.ReasonCode(refusal.Rule)
		return &st
	}
	if changed {
		st.Decision = audit.Rewritten
	}
	pr, pol := ctx.Principal, ctx.Policy
	var objs []audit.Object
	for i, o := range base.Objects {
		if !o.Protected {
			continue
		}
		tab := pol.Table(rules.ParseTableName(o.Relation))
		if tab == nil {
			continue
		}
		if objs == nil {
			objs = append([]audit.Object(nil), base.Objects...)
		}
		obj := &objs[i]
		if o.Access == "read" {
			for c := range o.Columns {
				v := pr.Column(tab.Name, c)
				action := ""
				switch {
				case v.Action != rules.Show:
					action = v.Action.String()
				case v.HideIfOptedOut:
					action = "hide_if_opted_out"
				}
				if action != "" {
					if obj.Masked == nil {
						obj.Masked = map[string]string{}
					}
					obj.Masked[c] = action
					st.Masked++
				}
			}
		}
		if _, ok := pr.RowFilter(tab.Name); ok {
			obj.Filters = append(obj.Filters, "row_filter")
		}
		for _, l := range pol.LinkPath(tab.Name) {
			if next := pol.Table(l.Link.References); next != nil {
				if _, ok := pr.RowFilter(next.Name); ok {
					obj.Filters = append(obj.Filters, "row_filter:"+next.Name.String())
				}
			}
		}
		if reachesSubject(pol, tab) {
			for _, p := range ctx.Purposes {
				obj.Filters = append(obj.Filters, "opt_out:"+p)
			}
		}
	}
	if objs != nil {
		st.Objects = objs
	}
	return &st
}

// reachesSubject says whether the rows of tab belong to a data subject.
func reachesSubject(pol *rules.Policy, tab *rules.Table) bool {
	if pol.Subject() == nil {
		return false
	}
	if tab.Subject {
		return true
	}
	path := pol.LinkPath(tab.Name)
	if len(path) == 0 {
		return false
	}
	last := pol.Table(path[len(path)-1].Link.References)
	return last != nil && last.Subject
}

// describeTree describes the statements of a Rewrite (called by Rewrite
// before walking, while the tree is still the client's). The end user of
// a delegating session is added by the engine.
func (rw *rewrite) describeTree(sql string, tree *pg_query.ParseResult) []*audit.Statement {
	pr := rw.ctx.Principal
	d := &Describer{Catalog: rw.cat, Policy: rw.ctx.Policy, SearchPath: rw.ctx.SearchPath,
		Role: pr.Role.Name, Purpose: strings.Join(rw.ctx.Purposes, ",")}
	return d.describe(sql, "restricted\x00"+rw.ctx.Key, tree)
}

// addStatement appends the description of the statement the walker w has
// just handled (refused with r, or not). objs, when not nil, are the
// relations the walk resolved (walker.objects): the record says what the
// decision was made on. A refused statement keeps the description by name
// of everything it names, as its walk stopped at the refusal.
func (res *Result) addStatement(base []*audit.Statement, ctx *Viewer, w *walker, r *Refusal, objs []audit.Object) {
	i := len(res.Statements)
	if i >= len(base) {
		return
	}
	b := base[i]
	if objs != nil {
		c := *b
		c.Objects = objs
		b = &c
	}
	res.Statements = append(res.Statements, decided(b, ctx, w.changed || len(w.subs) > 0, r))
}

// use records a relation the walk resolved, for the access log.
func (w *walker) use(rv *pg_query.RangeVar, rel *Relation, tab *rules.Table, access string) {
	u := objRef{access: access, alias: aliasOf(rv), tab: tab}
	if rel != nil {
		u.name = rel.Schema + "." + rel.Name
		u.columns = make([]string, len(rel.Columns))
		for i, c := range rel.Columns {
			u.columns[i] = c.Name
		}
	} else {
		u.name = rv.Relname
		if rv.Schemaname != "" {
			u.name = rv.Schemaname + "." + rv.Relname
		}
	}
	w.uses = append(w.uses, u)
}

// objects describes, for the access log, the relations the walk of stmt
// resolved and the columns it named: one analysis for the decision and
// the record.
func (w *walker) objects(stmt *pg_query.Node) []audit.Object {
	wr := writesOf(stmt)
	cols := slices.Clone(wr.copyCols)
	for _, c := range w.colRefs {
		cols = append(cols, stringFields(c.Fields))
	}
	return attribute(w.rw.ctx.Policy, w.uses, cols, wr)
}

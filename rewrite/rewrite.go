// Package rewrite turns a restricted principal's SQL into SQL that can only
// see what the principal's role allows (design.md §5). It parses with
// PostgreSQL's own parser (pg_query), resolves every relation against a
// catalog snapshot and the session's search_path, replaces each reference
// to a protected relation by a policy subquery with the same name and
// columns (masks in its select list, row filter and opt-outs in its WHERE),
// fences those subqueries when a leaky function could run on their rows
// first, refuses what it cannot make safe, and deparses.
//
// It is SQL in, SQL out: it knows SQL, the rules and the catalog, and
// nothing of sessions, messages or sockets; it imports neither package
// proxy nor pgproto3 (nocut_test.go). A session's policy — who the login
// is, its end user, which statements still hold, what the access log
// records — is package engine's, which calls Rewrite for each statement
// and turns the Result into the proxy's Decision. The cut lets the
// rewriter be tested, fuzzed and reused (pgcloak explain, the anonymity
// report, change requests) without a wire, and keeps the wire layer free
// of the rules.
package rewrite

import (
	"fmt"
	"slices"
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v6"

	"github.com/pgcloak/pgcloak/audit"
	"github.com/pgcloak/pgcloak/rules"
)

// Viewer is whom a rewrite is for, and all it depends on besides the SQL
// text and the catalog: the principal under the rules, the purposes whose
// opt-outs apply and the session's search_path. Sessions with equal
// viewers get equal rewrites, so Key is part of the cache key.
type Viewer struct {
	Policy     *rules.Policy
	Principal  *rules.Principal
	Purposes   []string // the opt-outs to apply
	SearchPath []string // the session's schemas, in order
	Key        string
}

// NewViewer builds a viewer and its key. The key holds everything of the
// principal a rewrite may read, the login included (a reviewed role's
// change requests name their requester), so that a cached rewrite serves
// only the principal it was made for.
func NewViewer(pol *rules.Policy, pr *rules.Principal, purposes, searchPath []string) *Viewer {
	var b strings.Builder
	b.WriteString(pol.Version())
	fmt.Fprintf(&b, "\x00%q\x00%t\x00", pr.Login, pr.Delegating)
	b.WriteString(pr.Role.Name)
	keys := make([]string, 0, len(pr.Attributes))
	for k := range pr.Attributes {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "\x00%s=%s", k, pr.Attributes[k])
	}
	fmt.Fprintf(&b, "\x00%q\x00%q", purposes, searchPath)
	return &Viewer{Policy: pol, Principal: pr, Purposes: purposes, SearchPath: searchPath, Key: b.String()}
}

// Result is the outcome of rewriting one SQL string.
type Result struct {
	// SQL is what to send upstream. Statements refused one by one (in a
	// string of several) are replaced by refusal statements made by
	// RefusalSQL; Refused lists them.
	SQL string
	// Unchanged means the input can be forwarded byte for byte.
	Unchanged bool
	Kinds     []rules.StatementKind
	// Reads lists the protected relations read, "schema.name".
	Reads []string
	// Refused holds the refusals, in statement order.
	Refused []*Refusal
	// CatalogChange is set when a statement may change the catalog.
	CatalogChange bool
	// Unknown lists relation names the catalog snapshot does not have: the
	// engine refreshes the snapshot and rewrites again before trusting
	// that they are the session's temporary relations.
	Unknown []string
	// SQL-level prepared statements: PREPAREd, EXECUTEd and DEALLOCATEd
	// names ("" for DEALLOCATE ALL).
	Prepares, Executes, Deallocates []string
	// Statements describe each statement for the access log, with its
	// decision (describe.go).
	Statements []*audit.Statement
	// ConstantsRead is set when a decision depended on a constant's value
	// (walker.constRead): the statement's shape is not shared.
	ConstantsRead bool
	// Prepared is set on a shape-cache hit whose literals all decode
	// unambiguously (shapeprep.go): the statement as its shape's template,
	// with the literals as parameters. SQL says the same with the literals
	// in place.
	Prepared *PreparedForm
}

// Refusal is a statement pgcloak will not run, with the rule that says so.
type Refusal struct {
	Code    string // SQLSTATE: 42501, 0A000 or 42601
	Rule    string
	Message string
}

func (r *Refusal) Error() string { return r.Message }

// ShowRefusal renders a refusal as a statement that names it, for callers
// that show a rewrite or read only Result.Refused. A session renders
// refusals as statements the server fails on instead (package engine).
func ShowRefusal(r *Refusal) string {
	return "SELECT " + rules.QuoteLiteral(r.Message) + " AS refused"
}

// A ruleName names the rule behind a refusal. Only rule makes one, so
// every refusal's family is one of the access log's reason codes.
type ruleName struct{ s string }

// rule names the rule at path under family.
func rule(family audit.ReasonCode, path ...string) ruleName {
	return ruleName{audit.Rule(family, path...)}
}

func (r ruleName) String() string { return r.s }

func refuseRule(r ruleName, format string, args ...any) *Refusal {
	return &Refusal{Code: "42501", Rule: r.s,
		Message: "pgcloak: " + fmt.Sprintf(format, args...) + " (rule: " + r.s + ")"}
}

func refuseUnsupported(what string) *Refusal {
	return &Refusal{Code: "0A000", Rule: audit.Rule(audit.ReasonFailClosed),
		Message: "pgcloak: " + what + " is not supported for restricted roles (rule: fail_closed)"}
}

// rewrite holds what one Rewrite call shares across its statements.
type rewrite struct {
	cat  *Catalog
	ctx  *Viewer
	subq *SubqueryCache
	// stringParams are the parameters that stand for string literals,
	// when the shape cache rewrites a statement's template.
	stringParams map[int32]bool
	// paramTypes are the parameters' types ($1 is paramTypes[0]): those
	// a Parse declares, or those a template's literals give; 0 or
	// missing, unspecified.
	paramTypes []uint32
}

// paramType is the type of parameter $n, 0 when unspecified.
func (rw *rewrite) paramType(n int32) uint32 {
	if n < 1 || int(n) > len(rw.paramTypes) {
		return 0
	}
	return rw.paramTypes[n-1]
}

// Rewrite rewrites sql for v against cat. It never returns an error for
// SQL it refuses: refusals are in the Result. refusalSQL renders a
// refusal as a statement (the engine renders statements the server fails
// on; ShowRefusal shows the refusal).
func Rewrite(cat *Catalog, v *Viewer, subq *SubqueryCache, sql string, refusalSQL func(*Refusal) string) *Result {
	return (&rewrite{cat: cat, ctx: v, subq: subq}).run(sql, refusalSQL)
}

// RewriteParams is Rewrite for an extended-protocol Parse that declares
// the types of its parameters (paramTypes[0] is $1's; 0, unspecified):
// they decide which operator PostgreSQL picks for a comparison with one.
func RewriteParams(cat *Catalog, v *Viewer, subq *SubqueryCache, sql string, paramTypes []uint32, refusalSQL func(*Refusal) string) *Result {
	return (&rewrite{cat: cat, ctx: v, subq: subq, paramTypes: paramTypes}).run(sql, refusalSQL)
}

func (rw *rewrite) run(sql string, refusalSQL func(*Refusal) string) *Result {
	v := rw.ctx
	res := &Result{}
	tree, err := pg_query.Parse(sql)
	if err != nil {
		r := &Refusal{Code: "42601", Rule: audit.Rule(audit.ReasonFailClosed),
			Message: "pgcloak: the statement does not parse, so it cannot be checked: " + parseMessage(err) + " (rule: fail_closed)"}
		res.Refused = append(res.Refused, r)
		res.SQL = refusalSQL(r)
		return res
	}
	described := rw.describeTree(sql, tree)
	changed := false
	var subs []*policySub
	for _, raw := range tree.Stmts {
		w := &walker{rw: rw, text: statementText(sql, raw), paramUses: paramUses(raw.Stmt)}
		w.statement(raw.Stmt)
		if w.err == nil {
			w.checkDenied()
		}
		if w.err == nil {
			w.checkFunctionalNotation()
		}
		if w.err == nil {
			if len(w.subs) > 0 {
				sn := namesOf(raw.Stmt)
				w.trim(sn)
				if !w.leaky && w.readsRaisingMask(raw.Stmt, sn) {
					w.leaky = true
				}
			}
			w.finish()
		}
		if w.err != nil {
			r, ok := w.err.(*Refusal)
			if !ok {
				r = &Refusal{Code: "XX000", Rule: audit.Rule(audit.ReasonFailClosed), Message: "pgcloak: " + w.err.Error()}
			}
			res.Refused = append(res.Refused, r)
			ref, perr := pg_query.Parse(refusalSQL(r))
			if perr != nil || len(ref.Stmts) != 1 {
				panic("rewrite: refusal statement does not parse")
			}
			raw.Stmt = ref.Stmts[0].Stmt
			changed = true
			res.addStatement(described, v, w, r, nil)
			continue
		}
		res.Kinds = append(res.Kinds, w.kinds...)
		for _, s := range w.subs {
			res.Reads = append(res.Reads, s.rel.Schema+"."+s.rel.Name)
		}
		res.CatalogChange = res.CatalogChange || w.ddl
		res.Unknown = append(res.Unknown, w.unknown...)
		res.Prepares = append(res.Prepares, w.prepares...)
		res.Executes = append(res.Executes, w.executes...)
		res.Deallocates = append(res.Deallocates, w.deallocates...)
		changed = changed || w.changed || len(w.subs) > 0
		res.ConstantsRead = res.ConstantsRead || w.constRead
		subs = append(subs, w.subs...)
		res.addStatement(described, v, w, nil, w.objects(raw.Stmt))
	}
	if !changed {
		res.SQL, res.Unchanged = sql, true
		return res
	}
	out, err := printSpliced(tree, subs)
	if err != nil {
		r := &Refusal{Code: "0A000", Rule: audit.Rule(audit.ReasonFailClosed), Message: "pgcloak: the rewritten statement cannot be printed: " + err.Error()}
		return &Result{SQL: refusalSQL(r), Refused: []*Refusal{r}}
	}
	if out == "" {
		return &Result{SQL: refusalSQL(verifyRefusal), Refused: []*Refusal{verifyRefusal}}
	}
	res.SQL = out
	return res
}

// VerifyFailed says whether the rewrite was refused because its text did
// not parse back to the tree pgcloak checked (verify.go): an incident.
func (res *Result) VerifyFailed() bool {
	return len(res.Refused) == 1 && res.Refused[0] == verifyRefusal
}

// statementText is the part of sql one parsed statement came from.
func statementText(sql string, raw *pg_query.RawStmt) string {
	start := int(raw.StmtLocation)
	end := len(sql)
	if raw.StmtLen > 0 {
		end = start + int(raw.StmtLen)
	}
	if start < 0 || start > end || end > len(sql) {
		return sql
	}
	return sql[start:end]
}

func parseMessage(err error) string {
	return strings.TrimPrefix(err.Error(), "pg_query: ")
}

// finish fences the statement's policy subqueries if it needs it, and
// rewrites three-part column references to substituted relations.
func (w *walker) finish() {
	for _, s := range w.subs {
		s.fenced = w.leaky
		if w.leaky {
			s.node.Subquery = s.entry.fenced
		} else {
			s.node.Subquery = s.entry.plain
		}
	}
	for _, c := range w.colRefs {
		f := stringFields(c.Fields)
		if len(f) < 3 {
			continue
		}
		for _, s := range w.subs {
			// schema.table.column names a relation referenced without an
			// alias; its subquery is now named by the bare table name.
			if s.alias == s.rel.Name && f[len(f)-3] == s.rel.Schema && f[len(f)-2] == s.alias {
				c.Fields = c.Fields[len(c.Fields)-2:]
			}
		}
	}
}

// checkDenied refuses references to columns the role's view denies:
// by name, by *, by a whole-row reference, or in functional notation.
func (w *walker) checkDenied() {
	denied := map[string]string{}
	aliases := map[string]bool{}
	for _, s := range w.subs {
		for _, d := range s.denied {
			denied[d] = s.rel.Schema + "." + s.rel.Name
			aliases[s.alias] = true
		}
	}
	if len(denied) == 0 {
		return
	}
	role := w.rw.ctx.Principal.Role.Name
	for _, c := range w.colRefs {
		f := stringFields(c.Fields)
		if len(f) == 0 {
			continue
		}
		last := f[len(f)-1]
		if rel, ok := denied[last]; ok {
			w.fail(refuseRule(rule(audit.ReasonRoles, role, "profile"), "column %s of %s is denied to role %q", last, rel, role))
			return
		}
		if last == "*" || (len(f) == 1 && aliases[last]) {
			w.fail(refuseRule(rule(audit.ReasonRoles, role, "profile"), "a reference to every column of a table with denied columns is refused for role %q; name the columns", role))
			return
		}
	}
	for _, fc := range w.funcRefs {
		_, name := qualifiedName(fc.Funcname)
		if rel, ok := denied[name]; ok && len(fc.Args) == 1 {
			w.fail(refuseRule(rule(audit.ReasonRoles, role, "profile"), "column %s of %s is denied to role %q", name, rel, role))
			return
		}
	}
}

// resolve finds the relation a reference denotes, or nil for a CTE name
// or a relation the catalog does not know.
func (rw *rewrite) resolve(rv *pg_query.RangeVar) *Relation {
	if rv.Schemaname != "" {
		return rw.cat.Relation(rv.Schemaname, rv.Relname)
	}
	return rw.cat.Resolve(rv.Relname, rw.ctx.SearchPath)
}

// protecting returns the rules table that protects rel (Protecting).
func (rw *rewrite) protecting(rel *Relation) *rules.Table { return Protecting(rw.ctx.Policy, rel) }

// Protecting returns the rules table of pol that protects rel: its own
// entry, or that of the nearest ancestor it inherits from or is a
// partition of; nil when none does.
func Protecting(pol *rules.Policy, rel *Relation) *rules.Table {
	if t := pol.Table(rules.TableName{Schema: rel.Schema, Name: rel.Name}); t != nil {
		return t
	}
	for _, p := range rel.Parents {
		if t := pol.Table(rules.TableName{Schema: p.Schema, Name: p.Name}); t != nil {
			return t
		}
	}
	return nil
}

// readsProtected says whether a view reads protected relations, or calls
// functions that might.
func (rw *rewrite) readsProtected(rel *Relation) bool {
	if rel.Kind != 'v' && rel.Kind != 'm' {
		return false
	}
	if rel.ReadsFunctions {
		return true
	}
	for _, r := range rel.Reads {
		if rw.protecting(r) != nil {
			return true
		}
	}
	return false
}

func tableLabel(rel *Relation, tab *rules.Table) string {
	if tab != nil {
		return tab.Name.String()
	}
	if rel != nil {
		return rel.Schema + "." + rel.Name
	}
	return "?"
}

// deniedCatalog are catalog relations that expose data or other sessions.
var deniedCatalog = map[string]string{
	"pg_stats":              "column statistics expose values of protected columns",
	"pg_stats_ext":          "extended statistics expose values of protected columns",
	"pg_stats_ext_exprs":    "extended statistics expose values of protected columns",
	"pg_statistic":          "column statistics expose values of protected columns",
	"pg_statistic_ext_data": "extended statistics expose values of protected columns",
	"pg_stat_activity":      "it shows the statements of other sessions",
	"pg_largeobject":        "large objects bypass the rules",
	"pg_prepared_xacts":     "it shows other sessions' transactions",
	// A delegating application's session serves many end users in turn.
	"pg_prepared_statements": "it shows the texts of statements prepared for other end users",
	"pg_cursors":             "it shows the texts of cursors opened for other end users",
}

// protectedRef says whether a reference denotes a protected relation (used
// where a reference cannot be substituted). from says whether it stands in
// a FROM position, the only place where a name can denote a CTE.
func (w *walker) protectedRef(rv *pg_query.RangeVar, from bool) bool {
	if from && rv.Schemaname == "" && w.cteVisible(rv.Relname) {
		return false
	}
	rel := w.rw.resolve(rv)
	return rel != nil && w.rw.protecting(rel) != nil
}

// resolveChecked resolves a reference and checks that the role may use
// it. ok is false when the walk failed or the name is a CTE. Only a
// reference in a FROM position (from) can name a CTE: PostgreSQL resolves
// every other relation name (a write target, COPY, LOCK, TRUNCATE) to a
// relation of the catalog, whatever the WITH clause around it says.
func (w *walker) resolveChecked(rv *pg_query.RangeVar, from bool) (rel *Relation, tab *rules.Table, ok bool) {
	if from && rv.Schemaname == "" && w.cteVisible(rv.Relname) {
		return nil, nil, false
	}
	if rv.Catalogname != "" {
		w.fail(refuseUnsupported("a database-qualified name"))
		return nil, nil, false
	}
	rel = w.rw.resolve(rv)
	pr := w.rw.ctx.Principal
	if rel == nil {
		// Unknown to the catalog snapshot: a temporary relation of the
		// session, one created since the snapshot, or none at all. A name
		// the rules protect is never let through on a guess.
		name := rules.TableName{Schema: rv.Schemaname, Name: rv.Relname}
		if name.Schema == "" {
			name.Schema = "public"
		}
		for _, t := range w.rw.ctx.Policy.Tables() {
			if t.Name.Name == rv.Relname {
				w.fail(refuseRule(rule(audit.ReasonTables, t.Name.String()), "relation %s is not in pgcloak's catalog yet; try again shortly", rv.Relname))
				return nil, nil, false
			}
		}
		w.unknown = append(w.unknown, rv.Relname)
		if rv.Schemaname != "" || rv.Relpersistence != "t" {
			if a := pr.Table(name); !a.Allowed && !w.rw.temporaryCandidate(rv) {
				w.fail(refuseRule(rule(audit.ReasonTables), "%s", a.Reason))
				return nil, nil, false
			}
		}
		return nil, nil, true
	}
	if rel.Schema == "pg_catalog" || rel.Schema == "information_schema" {
		if why, bad := deniedCatalog[rel.Name]; bad {
			w.fail(refuseRule(rule(audit.ReasonCatalog), "%s.%s is refused for restricted roles: %s", rel.Schema, rel.Name, why))
			return nil, nil, false
		}
		return rel, nil, true
	}
	tab = w.rw.protecting(rel)
	name := rules.TableName{Schema: rel.Schema, Name: rel.Name}
	if tab != nil {
		name = tab.Name
	}
	if a := pr.Table(name); !a.Allowed {
		w.fail(refuseRule(rule(audit.ReasonTables, name.String()), "%s", a.Reason))
		return nil, nil, false
	}
	if tab == nil && w.rw.readsProtected(rel) {
		w.fail(refuseRule(rule(audit.ReasonTables, name.String()), "view %s reads protected tables; name it in the rules to protect it", name))
		return nil, nil, false
	}
	return rel, tab, true
}

// temporaryCandidate: an unqualified unknown name may be the session's own
// temporary table, which pgcloak's catalog connection cannot see. Only a
// role that may run DDL can have created one; for any other role an
// unknown name is a relation pgcloak has not seen yet (a view created since
// the snapshot, or one in another database), never to be let through.
func (rw *rewrite) temporaryCandidate(rv *pg_query.RangeVar) bool {
	if !rw.ctx.Principal.Allows(rules.StmtDDL) {
		return false
	}
	return rv.Schemaname == "" || rv.Schemaname == "pg_temp"
}

// relation handles a relation reference. In a FROM position a protected
// relation is replaced: the returned subselect goes in its place. Elsewhere
// a protected relation is refused.
func (w *walker) relation(rv *pg_query.RangeVar, from bool) *pg_query.RangeSubselect {
	if w.err != nil {
		return nil
	}
	rel, tab, ok := w.resolveChecked(rv, from)
	if ok && rv != w.writeRef {
		access := "read"
		if !from && w.utility != "" {
			access = w.utility
		}
		w.use(rv, rel, tab, access)
	}
	if !ok || rel == nil {
		// In FROM: a CTE or a relation the snapshot does not know, whose
		// columns typeOf cannot know.
		w.opaque = w.opaque || from
		return nil
	}
	if from {
		w.fromRelation(rv, rel)
	}
	if tab == nil {
		w.qualify(rv, rel)
		return nil
	}
	if !from {
		w.fail(refuseRule(rule(audit.ReasonTables, tab.Name.String()), "protected table %s cannot be used in this position by restricted roles", tab.Name))
		return nil
	}
	e, err := w.rw.subq.get(w.rw, rel, tab, rv.Inh, rv == w.writeRef, nil)
	if err != nil {
		w.fail(err)
		return nil
	}
	alias := rv.Alias
	if alias == nil {
		alias = &pg_query.Alias{Aliasname: rv.Relname}
	}
	sub := &pg_query.RangeSubselect{Alias: alias}
	w.subs = append(w.subs, &policySub{node: sub, rel: rel, tab: tab, inh: rv.Inh, alias: alias.Aliasname, entry: e, denied: e.denied})
	return sub
}

// qualify pins an unprotected reference to the relation pgcloak resolved,
// when its bare name is also the name of a protected relation elsewhere:
// the server must not resolve it differently.
func (w *walker) qualify(rv *pg_query.RangeVar, rel *Relation) {
	if rv.Schemaname != "" {
		return
	}
	for _, other := range w.rw.cat.Named(rv.Relname) {
		if other != rel && w.rw.protecting(other) != nil {
			rv.Schemaname = rel.Schema
			w.changed = true
			return
		}
	}
}

// checkFunction lets through built-in functions except those that run SQL
// text, touch files, large objects or other servers, change settings, or
// expose other sessions.
func (rw *rewrite) checkFunction(schema, name string) error {
	if schema == "" && name == "" {
		return nil
	}
	if !rw.cat.FunctionBuiltin(schema, name) {
		if schema != "" {
			name = schema + "." + name
		}
		return refuseRule(rule(audit.ReasonFunctions), "function %s is not a built-in function; restricted roles may call built-in functions only", name)
	}
	if why, bad := deniedFunction(name); bad {
		return refuseRule(rule(audit.ReasonFunctions), "function %s is refused for restricted roles: %s", name, why)
	}
	return nil
}

func deniedFunction(name string) (string, bool) {
	if why, ok := deniedFunctions[name]; ok {
		return why, true
	}
	for _, p := range deniedPrefixes {
		if strings.HasPrefix(name, p.prefix) {
			return p.why, true
		}
	}
	return "", false
}

var deniedFunctions = map[string]string{
	"query_to_xml": "it runs SQL text", "query_to_xml_and_xmlschema": "it runs SQL text",
	"query_to_xmlschema": "it runs SQL text", "cursor_to_xml": "it reads a cursor",
	"cursor_to_xmlschema": "it reads a cursor", "table_to_xml": "it reads a whole table",
	"table_to_xml_and_xmlschema": "it reads a whole table", "table_to_xmlschema": "it reads a table",
	"schema_to_xml": "it reads whole tables", "schema_to_xml_and_xmlschema": "it reads whole tables",
	"schema_to_xmlschema": "it reads tables", "database_to_xml": "it reads whole tables",
	"database_to_xml_and_xmlschema": "it reads whole tables", "database_to_xmlschema": "it reads tables",
	"ts_stat": "it runs SQL text", "ts_rewrite": "it can run SQL text",
	"set_config":   "it changes settings",
	"pg_read_file": "it reads server files", "pg_read_binary_file": "it reads server files",
	"pg_stat_file": "it reads server files", "pg_ls_dir": "it lists server files",
	"pg_file_write": "it writes server files", "pg_import_system_collations": "it changes the catalog",
	"pg_reload_conf": "it changes the server", "pg_rotate_logfile": "it changes the server",
	"pg_promote": "it changes the server", "pg_switch_wal": "it changes the server",
	"pg_terminate_backend": "it reaches other sessions", "pg_cancel_backend": "it reaches other sessions",
	"pg_stat_get_activity":         "it shows other sessions' statements",
	"pg_stat_get_backend_activity": "it shows other sessions' statements",
	"pg_mcv_list_items":            "it exposes statistics of protected columns",
	"currtid2":                     "it probes rows by physical address", "currtid": "it probes rows by physical address",
	"dblink": "it reaches other servers",
	"loread": "large objects bypass the rules", "lowrite": "large objects bypass the rules",
	"pg_prepared_statement": "it shows the texts of statements prepared for other end users",
	"pg_cursor":             "it shows the texts of cursors opened for other end users",
}

var deniedPrefixes = []struct{ prefix, why string }{
	{"lo_", "large objects bypass the rules"},
	{"pg_ls_", "it lists server files"},
	{"pg_logical_", "it reads the write-ahead log"},
	{"pg_replication_", "it controls replication"},
	{"pg_create_", "it controls replication"},
	{"pg_drop_replication", "it controls replication"},
	{"pg_read_", "it reads server files"},
	{"dblink", "it reaches other servers"},
	{"pg_stat_get_backend", "it shows other sessions"},
}

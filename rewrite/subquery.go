package rewrite

import (
	"fmt"
	"strings"
	"sync"

	pg_query "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/pgcloak/pgcloak/audit"
	"github.com/pgcloak/pgcloak/rules"
)

// A policy subquery stands in for one protected relation:
//
//	(SELECT <mask of col1> AS col1, … FROM [ONLY] schema.rel
//	 WHERE <row filter> AND <linked rows pass their filters and opt-outs>
//	 [OFFSET 0]) AS <the reference's alias or name>
//
// Its columns have the relation's names, order and types, so SELECT *,
// positional references, whole-row references and row_to_json keep
// working, and every part of the outer query sees masked values only.
// OFFSET 0 fences it: PostgreSQL neither pulls it up nor pushes quals into
// it, so no outer function runs on a row before the filter has passed it.

// SubqueryCache keeps the parsed policy subqueries of one catalog snapshot,
// per context, relation and inheritance flag. Parsed trees are shared and
// never mutated.
type SubqueryCache struct {
	mu sync.RWMutex
	m  map[subqueryKey]*subqueryEntry
}

type subqueryKey struct {
	ctx   string
	oid   uint32
	inh   bool
	write bool
	// keep marks the columns masked ('1'; the others stand as NULL, see
	// trim.go), "" for all of them.
	keep string
}

type subqueryEntry struct {
	plain, fenced *pg_query.Node
	// The same, printed (splice.go): text that parses back to the tree.
	plainSQL, fencedSQL string
	denied              []string
	err                 error
}

const maxSubqueries = 20000

// NewSubqueryCache returns an empty cache, for a new catalog snapshot.
func NewSubqueryCache() *SubqueryCache {
	return &SubqueryCache{m: map[subqueryKey]*subqueryEntry{}}
}

func (c *SubqueryCache) get(rw *rewrite, rel *Relation, tab *rules.Table, inh, write bool, keep []bool) (*subqueryEntry, error) {
	k := subqueryKey{ctx: rw.ctx.Key, oid: rel.OID, inh: inh, write: write}
	if keep != nil {
		b := make([]byte, len(keep))
		for i, ok := range keep {
			b[i] = '0'
			if ok {
				b[i] = '1'
			}
		}
		k.keep = string(b)
	}
	c.mu.RLock()
	e := c.m[k]
	c.mu.RUnlock()
	if e == nil {
		e = &subqueryEntry{}
		var sql string
		sql, e.denied, e.err = rw.policySQL(rel, tab, inh, write, keep)
		if e.err == nil {
			e.plain, e.plainSQL, e.err = spliceable(sql)
		}
		if e.err == nil {
			e.fenced, e.fencedSQL, e.err = spliceable(sql + " OFFSET 0")
		}
		c.mu.Lock()
		if len(c.m) >= maxSubqueries {
			clear(c.m)
		}
		c.m[k] = e
		c.mu.Unlock()
	}
	return e, e.err
}

func parseSelect(sql string) (*pg_query.Node, error) {
	tree, err := pg_query.Parse(sql)
	if err != nil {
		return nil, fmt.Errorf("policy subquery does not parse: %w\n%s", err, sql)
	}
	return tree.Stmts[0].Stmt, nil
}

// policySQL renders the policy subquery of rel (protected by tab) for the
// context's principal. For a write it also returns the raw keys of the rows
// as pgcloak_k1, pgcloak_k2, … (see writeKeys). With keep, a column not
// kept stands as NULL of its type (trim.go); its mask is still built, so
// that a mask that cannot be built is refused whatever the statement reads.
func (rw *rewrite) policySQL(rel *Relation, tab *rules.Table, inh, write bool, keep []bool) (string, []string, error) {
	pr := rw.ctx.Principal
	pol := rw.ctx.Policy
	self := rules.QuoteIdent(rel.Name)
	var denied []string
	var b strings.Builder
	b.WriteString("SELECT ")
	for i, c := range rel.Columns {
		v := pr.Column(tab.Name, c.Name)
		var expr string
		if v.Action == rules.Deny {
			expr = "NULL::" + c.Type
			denied = append(denied, c.Name)
		} else {
			e, err := v.SQL(c.Name, c.Type)
			if err != nil {
				return "", nil, refuseRule(rule(audit.ReasonTables, tab.Name.String()), "column %s of %s cannot be masked: %v", c.Name, tab.Name, err)
			}
			expr = e
			if v.HideIfOptedOut && v.Action != rules.Hide {
				cond, err := rw.chain(tab, self, 1, false, func(alias string) string {
					return pol.Subject().OptedOut(rules.SensitiveData, alias)
				})
				if err != nil {
					return "", nil, err
				}
				if cond != "" {
					expr = "CASE WHEN " + cond + " THEN NULL ELSE " + expr + " END"
				}
			}
		}
		if keep != nil && !keep[i] {
			expr = "NULL::" + c.Type
		}
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(expr + " AS " + rules.QuoteIdent(c.Name))
	}
	if write {
		for i, k := range writeKeys(rel) {
			fmt.Fprintf(&b, ", %s AS pgcloak_k%d", rules.QuoteIdent(k), i+1)
		}
	}
	b.WriteString(" FROM ")
	if !inh {
		b.WriteString("ONLY ")
	}
	b.WriteString(rules.QuoteIdent(rel.Schema) + "." + self)

	var conds []string
	own, err := rw.filterSQL(tab)
	if err != nil {
		return "", nil, err
	}
	if own != "" {
		conds = append(conds, "("+own+")")
	}
	linked, err := rw.chain(tab, self, 1, true, rw.notOptedOut)
	if err != nil {
		return "", nil, err
	}
	if linked != "" {
		conds = append(conds, linked)
	}
	if len(conds) > 0 {
		b.WriteString(" WHERE " + strings.Join(conds, " AND "))
	}
	return b.String(), denied, nil
}

// notOptedOut is the condition that the subject row at alias has opted out
// of none of the session's purposes.
func (rw *rewrite) notOptedOut(alias string) string {
	var parts []string
	for _, p := range rw.ctx.Purposes {
		parts = append(parts, "NOT "+rw.ctx.Policy.Subject().OptedOut(p, alias))
	}
	return strings.Join(parts, " AND ")
}

// chain renders the condition that the data subject of a row of tab (read
// as outer) satisfies subjectCond, following the links of the rules; with
// filters, every linked row must also pass the role's row filter of its
// table. It returns "" when there is nothing to require.
func (rw *rewrite) chain(tab *rules.Table, outer string, depth int, filters bool, subjectCond func(alias string) string) (string, error) {
	pol := rw.ctx.Policy
	if tab.Subject {
		if pol.Subject() == nil {
			return "", nil
		}
		return subjectCond(outer), nil
	}
	if tab.Link == nil {
		return "", nil
	}
	if depth > 16 {
		return "", refuseRule(rule(audit.ReasonTables, tab.Name.String()), "the subject link of %s is too deep", tab.Name)
	}
	next := pol.Table(tab.Link.References)
	if next == nil {
		return "", refuseRule(rule(audit.ReasonTables, tab.Name.String()), "the subject link of %s names an unknown table", tab.Name)
	}
	alias := fmt.Sprintf("pgcloak_l%d", depth)
	conds := []string{alias + "." + rules.QuoteIdent(tab.Link.ReferencesColumn) + " = " + outer + "." + rules.QuoteIdent(tab.Link.Column)}
	if filters {
		f, err := rw.filterSQL(next)
		if err != nil {
			return "", err
		}
		if f != "" {
			// Name the linked row's columns: a bare name could otherwise
			// reach out to the row that links to it.
			if f, _, err = qualifyTopLevel(f, alias); err != nil {
				return "", err
			}
			conds = append(conds, "("+f+")")
		}
	}
	inner, err := rw.chain(next, alias, depth+1, filters, subjectCond)
	if err != nil {
		return "", err
	}
	if inner != "" {
		conds = append(conds, inner)
	}
	if !filters && inner == "" {
		return "", nil
	}
	return "EXISTS (SELECT 1 FROM " + next.Name.SQL() + " " + alias + " WHERE " + strings.Join(conds, " AND ") + ")", nil
}

// filterSQL renders the principal's row filter of tab, its attributes bound
// as typed literals; "" when the role has none.
func (rw *rewrite) filterSQL(tab *rules.Table) (string, error) {
	f, ok := rw.ctx.Principal.RowFilter(tab.Name)
	if !ok {
		return "", nil
	}
	return deparseExpr(rw.pinRelations(f.Node()))
}

// pinRelations returns a copy of a row filter whose relation names carry
// their schema. The filter runs in the session, whose search_path the
// client chooses at start-up: left unqualified, "FROM accounts" in a
// filter would read whatever relation of that name comes first on the
// client's path. A name means what the rules mean by it: the protected
// table of that name, else the relation in public.
func (rw *rewrite) pinRelations(n *pg_query.Node) *pg_query.Node {
	n = proto.Clone(n).(*pg_query.Node)
	ctes := map[string]bool{}
	var rvs []*pg_query.RangeVar
	var walk func(m protoreflect.Message)
	walk = func(m protoreflect.Message) {
		switch x := m.Interface().(type) {
		case *pg_query.RangeVar:
			rvs = append(rvs, x)
		case *pg_query.CommonTableExpr:
			ctes[x.Ctename] = true
		}
		m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
			if fd.Kind() != protoreflect.MessageKind {
				return true
			}
			if fd.IsList() {
				for i := 0; i < v.List().Len(); i++ {
					walk(v.List().Get(i).Message())
				}
				return true
			}
			walk(v.Message())
			return true
		})
	}
	walk(n.ProtoReflect())
	for _, rv := range rvs {
		if rv.Schemaname != "" || ctes[rv.Relname] {
			continue
		}
		rv.Schemaname = "public"
		for _, t := range rw.ctx.Policy.Tables() {
			if t.Name.Name == rv.Relname {
				rv.Schemaname = t.Name.Schema
				break
			}
		}
	}
	return n
}

// parserVersion is the parse tree version the deparser expects.
var parserVersion = func() int32 {
	tree, err := pg_query.Parse("SELECT")
	if err != nil {
		panic(err)
	}
	return tree.Version
}()

// deparseExpr prints one expression with pg_query's deparser.
func deparseExpr(n *pg_query.Node) (string, error) {
	tree := &pg_query.ParseResult{Version: parserVersion, Stmts: []*pg_query.RawStmt{{Stmt: &pg_query.Node{
		Node: &pg_query.Node_SelectStmt{SelectStmt: &pg_query.SelectStmt{WhereClause: n}}}}}}
	out, err := pg_query.Deparse(tree)
	if err != nil {
		return "", err
	}
	const prefix = "SELECT WHERE "
	if !strings.HasPrefix(out, prefix) {
		return "", fmt.Errorf("unexpected deparse %q", out)
	}
	return strings.TrimPrefix(out, prefix), nil
}

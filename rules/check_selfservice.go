package rules

import (
	"fmt"
	"sort"

	pg_query "github.com/pganalyze/pg_query_go/v6"
)

// CheckRules reports what the rules allow that they should not, without a
// database: delegating applications that name end users unsigned (code
// delegation), and a role that may write a table its own principals' attribute
// queries read (code self-service; a user could set the attribute their
// own row filter uses: UPDATE sales_reps SET region = 'north', reconnect,
// and see the north). Findings are warnings: pgcloak check --strict fails
// on them.
func (p *Policy) CheckRules() []Finding {
	out := p.checkUnsignedDelegation()
	rules := append([]*loginRule(nil), p.loginList...)
	if p.defaultLogin != nil {
		rules = append(rules, p.defaultLogin)
	}
	seen := map[string]bool{}
	for _, lr := range rules {
		if lr.query == nil || lr.role == nil || lr.role.Unrestricted {
			continue
		}
		for _, t := range p.queryTables(lr.query.sql) {
			if !lr.role.Table(t).Allowed || !writes(lr.role, t) {
				continue
			}
			key := lr.role.Name + "\x00" + t.String()
			if seen[key] {
				continue
			}
			seen[key] = true
			who := fmt.Sprintf("login %q", lr.login)
			if lr.login == "" {
				who = "principals.default"
			}
			out = append(out, Finding{Severity: SevWarning, Code: "self-service", File: p.file, Line: lr.at.Line, Col: lr.at.Col,
				Table: t.String(),
				Message: fmt.Sprintf("role %q may write table %s, which the attribute query of %s reads: its users can set the attributes their own row filters use; make the table read-only for the role (tables: - sales_reps: [read]), deny it (deny_tables), or take the attributes from a table it cannot write",
					lr.role.Name, t, who)})
		}
	}
	return out
}

// writes says whether a role may write table t: a statement kind that
// writes, and the table's permissions for it (permissions.go).
func writes(r *Role, t TableName) bool {
	for _, w := range []struct {
		kind StatementKind
		what string
	}{{StmtInsert, "INSERT"}, {StmtUpdate, "UPDATE"}, {StmtDelete, "DELETE"}, {StmtCopyFrom, "COPY FROM"}, {StmtMerge, "UPDATE"}} {
		if ok, _, _ := r.MayWrite(t, w.what); ok && r.Allows(w.kind) {
			return true
		}
	}
	return false
}

// queryTables lists the tables an SQL query names. A name without a
// schema may be any table of that name the rules know, or one in public.
func (p *Policy) queryTables(sql string) []TableName {
	tree, err := pg_query.Parse(sql)
	if err != nil {
		return nil
	}
	set := map[TableName]bool{}
	for _, st := range tree.Stmts {
		walkNodes(st.ProtoReflect(), func(n *pg_query.Node) {
			rv := n.GetRangeVar()
			if rv == nil {
				return
			}
			if rv.Schemaname != "" {
				set[TableName{rv.Schemaname, rv.Relname}] = true
				return
			}
			set[TableName{"public", rv.Relname}] = true
			for t := range p.tables {
				if t.Name == rv.Relname {
					set[t] = true
				}
			}
		})
	}
	out := make([]TableName, 0, len(set))
	for t := range set {
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}

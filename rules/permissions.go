package rules

import (
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"
)

// Per-table permissions. An item of a role's tables is a table name (the
// role may do with it whatever its statements allow) or a mapping from a
// name to what the role may do with that table:
//
//	tables: [orders, {customers: [read, update]}, {"*": [read]}]
//
// Opt-out records (subject.opt_outs) are writable only by the roles listed
// in subject.opt_outs.writers, whatever their tables say, and restricted
// roles never change a subject's key.

// Op is something a role may do with a table.
type Op uint8

const (
	OpRead Op = iota
	OpInsert
	OpUpdate
	OpDelete
)

var opNames = []string{"read", "insert", "update", "delete"}

func (o Op) String() string { return opNames[o] }

// OpSet is a set of Ops; the zero set (no list given) allows all.
type OpSet struct {
	listed bool
	bits   uint8
}

// Has says whether the set allows op.
func (s OpSet) Has(op Op) bool { return !s.listed || s.bits&(1<<op) != 0 }

// fileTableRef is "orders" or {customers: [read, update]}.
type fileTableRef struct {
	Name Str
	Ops  []Str
}

func (r *fileTableRef) decodeYAML(d *decoder, n *yaml.Node, ctx string) {
	if n.Kind == yaml.ScalarNode {
		r.Name.decodeYAML(d, n, ctx)
		return
	}
	keys, vals, ok := d.mappingPairs(n, ctx)
	if !ok {
		return
	}
	if len(keys) != 1 {
		d.errs.add(posOf(n), "%s is a table name or {TABLE: [read, insert, update, delete]}", ctx)
		return
	}
	r.Name = Str{V: keys[0].Value, At: posOf(keys[0])}
	d.decodeValue(vals[0], reflectValue(&r.Ops), fmt.Sprintf("permissions of table %q in %s", keys[0].Value, ctx), "")
	if r.Ops == nil {
		r.Ops = []Str{}
	}
}

func (c *compiler) tableOps(ref *fileTableRef, ctx string) (OpSet, bool) {
	if ref.Ops == nil {
		return OpSet{}, true
	}
	s := OpSet{listed: true}
	for _, o := range ref.Ops {
		i := -1
		for j, n := range opNames {
			if n == o.V {
				i = j
			}
		}
		if i < 0 {
			c.add(o.At, "unknown permission %q for table %s in tables of %s (read, insert, update, delete)", o.V, ref.Name.V, ctx)
			return s, false
		}
		s.bits |= 1 << i
	}
	if !s.Has(OpRead) {
		c.add(ref.Name.At, "permissions of table %s in tables of %s must include read: a role writes only rows it can see", ref.Name.V, ctx)
		return s, false
	}
	return s, true
}

func (c *compiler) checkOptOutWriters() {
	subj := c.p.subject
	for _, w := range c.optOutWriters {
		r := c.p.roles[w.V]
		if r == nil {
			c.add(w.At, "unknown role %q in subject.opt_outs.writers", w.V)
			continue
		}
		if subj != nil {
			subj.writers[w.V] = true
		}
	}
}

// OptOutWriter says whether role may write opt-out records.
func (s *Subject) OptOutWriter(role string) bool { return s.writers[role] }

// opOf maps a write's statement name to the permission it needs.
func opOf(what string) Op {
	switch {
	case strings.HasPrefix(what, "INSERT"), strings.HasPrefix(what, "COPY"):
		return OpInsert
	case strings.HasPrefix(what, "UPDATE"):
		return OpUpdate
	case strings.HasPrefix(what, "DELETE"):
		return OpDelete
	}
	return OpUpdate
}

// MayWrite says whether the role may run the write what ("INSERT",
// "UPDATE", "DELETE", "COPY FROM") on table t; if not, the reason names
// the rule.
func (r *Role) MayWrite(t TableName, what string) (ok bool, rule, reason string) {
	if r.Unrestricted {
		return true, "", ""
	}
	op := opOf(what)
	if s := r.policy.subject; s != nil && s.OptOuts != nil && s.OptOuts.Table == t && !s.writers[r.Name] {
		return false, "subject.opt_outs.writers", fmt.Sprintf("%s on %s is refused: opt-out records are written only by the roles named in subject.opt_outs.writers, and role %q is not one", what, t, r.Name)
	}
	if r.ReviewChanges && op != OpUpdate && r.policy.subjectReaches(t) {
		return false, "roles." + r.Name + ".review_changes", fmt.Sprintf("%s on %s is refused: the changes of role %q to a person's record are reviewed (review_changes), and only UPDATEs can be held for review", what, t, r.Name)
	}
	set, ok := r.ops[t]
	if !ok {
		set = r.allOps
		if r.listed[t] {
			set = OpSet{}
		}
	}
	if !set.Has(op) {
		return false, "roles." + r.Name + ".tables", fmt.Sprintf("%s on %s is refused: the tables of role %q allow it only %s", what, t, r.Name, set)
	}
	return true, "", ""
}

func (s OpSet) String() string {
	var out []string
	for i, n := range opNames {
		if s.Has(Op(i)) {
			out = append(out, n)
		}
	}
	return strings.Join(out, ", ")
}

// MayWriteColumn says whether the role may write column col of t in the
// write what: restricted roles never change a subject's key (an UPDATE of
// it would move the person's record, and with it pending change requests,
// to another identity), and only opt-out writers set opt-out flags.
func (r *Role) MayWriteColumn(t TableName, col, what string) (ok bool, rule, reason string) {
	s := r.policy.subject
	if r.Unrestricted || s == nil || t != s.Table {
		return true, "", ""
	}
	if col == s.Key && opOf(what) == OpUpdate {
		return false, "subject.key", fmt.Sprintf("%s of the subject key %s.%s is refused for restricted roles", what, t, col)
	}
	for _, flag := range s.OptOutFlags {
		if flag == col && !s.writers[r.Name] {
			return false, "subject.opt_outs.writers", fmt.Sprintf("%s of opt-out flag %s.%s is refused: role %q is not in subject.opt_outs.writers", what, t, col, r.Name)
		}
	}
	return true, "", ""
}

func (c *compiler) reviewExempt(r *Role, fr *fileRole, ctx string) {
	if len(fr.ReviewExempt.Entries) > 0 && !fr.ReviewChanges {
		c.add(fr.ReviewExempt.At, "review_exempt of %s has no effect without review_changes: true", ctx)
	}
	for _, e := range fr.ReviewExempt.Entries {
		t, ok := c.knownTable(Str{V: e.Key, At: e.KeyAt}, "review_exempt of "+ctx)
		if !ok {
			continue
		}
		if r.reviewExempt == nil {
			r.reviewExempt = map[TableName]map[string]bool{}
		}
		if r.reviewExempt[t.Name] == nil {
			r.reviewExempt[t.Name] = map[string]bool{}
		}
		for _, col := range e.Val {
			cl := t.Column(col.V)
			switch {
			case cl == nil:
				c.add(col.At, "review_exempt of %s names column %q, which table %s does not class", ctx, col.V, t.Name)
			case cl.Class != Public || c.p.KeyColumn(t.Name, col.V):
				c.add(col.At, "review_exempt of %s names column %s.%s: only public columns that are not keys or links can be exempt from review", ctx, t.Name, col.V)
			default:
				r.reviewExempt[t.Name][col.V] = true
			}
		}
	}
}

// AboutSubject says whether rows of t belong to a data subject: the
// subject table and the tables linked to it.
func (p *Policy) AboutSubject(t TableName) bool { return p.subjectReaches(t) }

// Reviewed says whether, for a role with review_changes, a change to column
// col of t is held for review: every column of a table about a subject
// (the person's record: public columns that move the row to other eyes,
// free text, keys and links) except those under review_exempt, and the
// identity, personal and sensitive columns of other tables.
func (r *Role) Reviewed(t TableName, col string) bool {
	if !r.ReviewChanges {
		return false
	}
	if r.policy.subjectReaches(t) {
		return !r.reviewExempt[t][col]
	}
	c := r.Column(t, col).Class
	return c == Identity || c == Personal || c == Sensitive
}

package rules

import "fmt"

// Anonymity: profiles that pseudonymize keys, and the k-anonymity threshold
// the rules set for the roles that use them (package anonymity measures
// it; docs/rules.md, "anonymity").
//
// A key column is the subject's key, every link column (a column holding
// the key of a subject's row, directly or through another linked table) and
// every column a link references. A profile's keys action applies to all of
// them, so that a profile can pseudonymize the subject key and every key
// pointing to it while other columns of class public stay shown.

type fileAnonymity struct {
	At   Pos
	MinK *int `yaml:"min_k"`
}

func (c *compiler) compileAnonymity() {
	a := c.f.Anonymity
	if a == nil {
		return
	}
	if a.MinK == nil {
		c.add(a.At, "anonymity needs min_k, the smallest group of subjects a role with an anonymizing profile may see (for example min_k: 5)")
		return
	}
	if *a.MinK < 1 {
		c.add(a.At, "anonymity.min_k must be at least 1, not %d", *a.MinK)
		return
	}
	c.p.minK = *a.MinK
}

// computeKeys marks the key columns of every protected table.
func (c *compiler) computeKeys() {
	c.p.keys = map[TableName]map[string]bool{}
	mark := func(t TableName, col string) {
		if c.p.keys[t] == nil {
			c.p.keys[t] = map[string]bool{}
		}
		c.p.keys[t][col] = true
	}
	if s := c.p.subject; s != nil {
		mark(s.Table, s.Key)
	}
	for _, t := range c.p.tableList {
		if t.Link == nil || !c.p.subjectReaches(t.Name) {
			continue
		}
		mark(t.Name, t.Link.Column)
		mark(t.Link.References, t.Link.ReferencesColumn)
	}
}

// MinK is anonymity.min_k of the rules: the smallest group of subjects
// sharing one combination of quasi-identifiers that a role with an
// anonymizing profile may see. 0 when the rules set none.
func (p *Policy) MinK() int { return p.minK }

// KeyColumn says whether column col of t is a key column: the subject key,
// a link column or a column a link references.
func (p *Policy) KeyColumn(t TableName, col string) bool { return p.keys[t][col] }

// Anonymizing says whether the role's profile pseudonymizes key columns
// (the built-in anonymized and disclosure profiles, or keys: pseudonymize):
// its view is meant not to identify anyone, and MinK applies to it.
func (r *Role) Anonymizing() bool {
	return !r.Unrestricted && r.Profile != nil && r.Profile.Keys != nil && r.Profile.Keys.action == Pseudonymize
}

// LoginsOf lists the logins of the rules mapped to role, in file order.
func (p *Policy) LoginsOf(role string) []string {
	var out []string
	for _, lr := range p.loginList {
		if lr.role != nil && lr.role.Name == role && !lr.delegating {
			out = append(out, lr.login)
		}
	}
	return out
}

// PseudonymScope is the scope of the role's pseudonyms: every role has its
// own pseudonym key (derived from the database's key and the role's name),
// so that two roles' pseudonyms, two disclosure recipients' exports among
// them, cannot be joined.
func (r *Role) PseudonymScope() string { return r.Name }

var generalizeUnits = map[string]bool{"decade": true, "year": true, "month": true}

func (c *compiler) profileKeys(fp *fileProfile, pr *Profile, ctx string) {
	if s := fp.Timestamps; s != nil {
		switch {
		case s.V == "show":
		case generalizeUnits[s.V]:
			pr.Timestamps = s.V
		default:
			c.add(s.At, "timestamps of %s must be show, decade, year or month, not %q", ctx, s.V)
		}
	}
	if fp.Keys == nil {
		return
	}
	r, ok := c.action(fp.Keys, fmt.Sprintf("keys of %s", ctx))
	if !ok {
		return
	}
	if r.action == MaskValue {
		c.add(fp.Keys.At, "keys of %s must be show, pseudonymize, hide or deny: a mask would break the joins the keys exist for", ctx)
		return
	}
	pr.Keys = &r
}

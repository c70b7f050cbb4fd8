package rules

import "sort"

// Accessors for describing a policy to people (pgcloak report): what the
// rules say, not what a session is allowed. Sessions do not use them.

// Classes lists the privacy classes in order.
func Classes() []Class { return []Class{Identity, Personal, Sensitive, Public} }

// Profiles lists the profiles: the built-in ones first, then those of the
// rules file, by name.
func (p *Policy) Profiles() []*Profile {
	out := make([]*Profile, 0, len(p.profiles))
	for _, pf := range p.profiles {
		out = append(out, pf)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Builtin != out[j].Builtin {
			return out[i].Builtin
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// ClassAction is what the profile does with columns of class c, and the
// mask it names for them (nil: the column's own mask, or the default).
func (pf *Profile) ClassAction(c Class) (Action, *Mask) {
	r := pf.Classes[c]
	return r.action, r.mask
}

// ColumnOverrides counts the single columns the profile treats apart from
// their class.
func (pf *Profile) ColumnOverrides() int {
	n := 0
	for _, cols := range pf.columns {
		n += len(cols)
	}
	return n
}

// FilterSource is the role's row filter of table t as written in the rules
// (with its :placeholders); ok is false when the role has none.
func (r *Role) FilterSource(t TableName) (src string, ok bool) {
	ft, ok := r.filters[t]
	if !ok {
		return "", false
	}
	return ft.src, true
}

// LoginInfo is one entry of principals: a login and the role it maps to.
type LoginInfo struct {
	// Login is "" for principals.default.
	Login string
	// Role is the role's name; "none" for a delegating application that
	// has no role of its own (it may touch nothing until it names an end
	// user).
	Role       string
	Delegating bool
	// Attributes given in the rules, or the attribute query that finds
	// them in the database.
	Attributes     map[string]string
	AttributeQuery string
}

// Logins lists principals.logins in file order, then principals.default if
// there is one.
func (p *Policy) Logins() []LoginInfo {
	info := func(lr *loginRule) LoginInfo {
		li := LoginInfo{Login: lr.login, Role: lr.role.Name, Delegating: lr.delegating, Attributes: lr.attrs}
		if lr.query != nil {
			li.AttributeQuery = lr.query.sql
		}
		return li
	}
	out := make([]LoginInfo, 0, len(p.loginList)+1)
	for _, lr := range p.loginList {
		out = append(out, info(lr))
	}
	if p.defaultLogin != nil {
		out = append(out, info(p.defaultLogin))
	}
	return out
}

// KeysAction is what the profile does with key columns (the subject's key
// and every key pointing to it); ok is false when keys follow their class.
func (pf *Profile) KeysAction() (a Action, ok bool) {
	if pf.Keys == nil {
		return 0, false
	}
	return pf.Keys.action, true
}

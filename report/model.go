package report

import (
	"fmt"
	"sort"
	"strings"

	"github.com/pgcloak/pgcloak/rules"
)

// The parts of the report that come from the rules alone: the data model
// as the rules class it, and the privacy views.

// describeMask says what a mask does, in a few words.
func describeMask(m *rules.Mask) string {
	if m == nil {
		return ""
	}
	var what string
	switch m.Kind {
	case rules.MaskRedact:
		what = "redact"
		if m.Value != nil {
			what += fmt.Sprintf(" to %q", *m.Value)
		}
	case rules.MaskPartial:
		var parts []string
		if m.First > 0 {
			parts = append(parts, fmt.Sprintf("first %d", m.First))
		}
		if m.Last > 0 {
			parts = append(parts, fmt.Sprintf("last %d", m.Last))
		}
		what = "partial, keep " + strings.Join(parts, " and ")
	case rules.MaskGeneralize:
		what = "generalize to " + m.Unit
	case rules.MaskBucket:
		what = "bucket of " + m.Width
	case rules.MaskSQL:
		what = "sql " + strings.ReplaceAll(m.Expr, "$1", ":value")
	default:
		what = m.Kind.String()
	}
	if m.Name != "" && m.Name != m.Kind.String() {
		return m.Name + " (" + what + ")"
	}
	return what
}

// dataModel describes the protected tables; types fills in the database
// types of their columns (nil: no database).
func dataModel(p *rules.Policy, types map[string]map[string]string) DataModel {
	dm := DataModel{UnclassedClass: p.UnclassedClass().String(), UnlistedTables: "deny", Findings: []rules.Finding{}}
	if p.UnlistedTablesAllowed() {
		dm.UnlistedTables = "allow"
	}
	if s := p.Subject(); s != nil {
		si := &SubjectInfo{Table: s.Table.String(), Key: s.Key}
		for _, pu := range p.Purposes() {
			si.OptOuts = append(si.OptOuts, optOutStorage(s, pu))
		}
		dm.Subject = si
	}
	for _, t := range p.Tables() {
		pt := ProtectedTable{Name: t.Name.String(), Confidential: t.Confidential, Subject: t.Subject, ClassCount: map[string]int{}}
		if t.Link != nil {
			pt.Link = t.Link.Column
			for _, l := range p.LinkPath(t.Name) {
				pt.LinkPath = append(pt.LinkPath, fmt.Sprintf("%s.%s → %s.%s", l.Name, l.Link.Column, l.Link.References, l.Link.ReferencesColumn))
			}
		}
		dbCols, inDB := types[pt.Name]
		pt.InDatabase = inDB || types == nil
		for _, c := range t.Columns {
			cf := ColumnFacts{Name: c.Name, Class: c.Class.String(), Mask: describeMask(c.Mask)}
			if inDB {
				cf.Type = dbCols[c.Name]
			}
			pt.Columns = append(pt.Columns, cf)
			pt.ClassCount[cf.Class]++
		}
		if inDB {
			for col := range dbCols {
				if t.Column(col) == nil {
					pt.Unclassed = append(pt.Unclassed, col)
				}
			}
			sort.Strings(pt.Unclassed)
			pt.ClassCount["unclassed"] = len(pt.Unclassed)
		}
		dm.Tables = append(dm.Tables, pt)
	}
	return dm
}

// optOutStorage says where the opt-outs of purpose are recorded. Flags of
// the subject table take precedence, as in Subject.OptedOut.
func optOutStorage(s *rules.Subject, purpose string) OptOutStorage {
	o := OptOutStorage{Purpose: purpose}
	if col, ok := s.OptOutFlags[purpose]; ok {
		o.Table, o.FlagColumn = s.Table.String(), col
		o.Where = fmt.Sprintf("%s.%s (true when opted out)", s.Table, col)
		return o
	}
	if t := s.OptOuts; t != nil {
		o.Table, o.SubjectColumn, o.PurposeColumn = t.Table.String(), t.SubjectColumn, t.PurposeColumn
		o.Where = fmt.Sprintf("%s: a row (%s, %s = '%s')", t.Table, t.SubjectColumn, t.PurposeColumn, purpose)
		return o
	}
	o.Where = "nowhere: the rules record no opt-outs of this purpose"
	return o
}

// privacyViews describes the profiles and what each role sees.
func privacyViews(p *rules.Policy) PrivacyViews {
	d := p.Delegation()
	pv := PrivacyViews{DelegationSetting: d.Setting, DelegationSigned: d.KeyEnv != ""}
	logins := p.Logins()
	var apps []string
	for _, l := range logins {
		if l.Delegating {
			apps = append(apps, l.Login)
		}
	}
	profileRoles := map[string][]string{}
	for _, r := range p.Roles() {
		rv := RoleView{Name: r.Name, Unrestricted: r.Unrestricted, Purposes: nonNil(r.Purposes), PurposeFixed: r.PurposeFixed,
			ReviewChanges: r.ReviewChanges, Logins: []LoginFacts{}, Applications: []string{}, Tables: []RoleTable{}}
		for _, l := range logins {
			if l.Role != r.Name {
				continue
			}
			name := l.Login
			if name == "" {
				name = "(default)"
			}
			rv.Logins = append(rv.Logins, LoginFacts{Login: name, Delegating: l.Delegating, Attributes: l.Attributes, AttributeQuery: l.AttributeQuery})
		}
		if r.Unrestricted {
			rv.Statements = []string{"all"}
			pv.Roles = append(pv.Roles, rv)
			continue
		}
		// A delegating application may name any login that is neither
		// delegating nor unrestricted (Policy.EndUser).
		for _, l := range rv.Logins {
			if !l.Delegating && l.Login != "(default)" {
				rv.Applications = apps
				break
			}
		}
		if rv.Applications == nil {
			rv.Applications = []string{}
		}
		rv.Profile = r.Profile.Name
		profileRoles[r.Profile.Name] = append(profileRoles[r.Profile.Name], r.Name)
		for _, k := range r.StatementKinds() {
			rv.Statements = append(rv.Statements, k.String())
		}
		for _, t := range p.Tables() {
			acc := r.Table(t.Name)
			rt := RoleTable{Table: t.Name.String(), Allowed: acc.Allowed, Reason: acc.Reason}
			if src, ok := r.FilterSource(t.Name); ok {
				rt.Filter = src
			}
			for _, l := range p.LinkPath(t.Name) {
				if src, ok := r.FilterSource(l.Link.References); ok {
					rt.Inherited = append(rt.Inherited, l.Link.References.String()+": "+src)
				}
			}
			for _, c := range t.Columns {
				v := r.Column(t.Name, c.Name)
				cv := CellView{Column: c.Name, Class: v.Class.String(), Action: v.Action.String(), HideIfOptedOut: v.HideIfOptedOut}
				if v.Action == rules.MaskValue {
					cv.Mask, cv.MaskName = describeMask(v.Mask), v.Mask.Name
				}
				if r.BlindWrite(t.Name, c.Name) {
					rt.BlindWrites = append(rt.BlindWrites, c.Name)
				}
				rt.Columns = append(rt.Columns, cv)
			}
			rv.Tables = append(rv.Tables, rt)
		}
		pv.Roles = append(pv.Roles, rv)
	}
	for _, pf := range p.Profiles() {
		f := ProfileFacts{Name: pf.Name, Builtin: pf.Builtin, Classes: map[string]string{}, ColumnOverrides: pf.ColumnOverrides(),
			HonorSensitiveOptOut: pf.HonorSensitiveOptOut, Roles: nonNil(profileRoles[pf.Name])}
		if a, ok := pf.KeysAction(); ok {
			f.Keys = a.String()
		}
		for _, c := range rules.Classes() {
			a, m := pf.ClassAction(c)
			s := a.String()
			if m != nil {
				s += ": " + describeMask(m)
			}
			f.Classes[c.String()] = s
		}
		pv.Profiles = append(pv.Profiles, f)
	}
	return pv
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

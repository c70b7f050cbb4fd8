package rules

// Role is a compiled role: what its principals may touch, run and see.
type Role struct {
	Name string
	// Unrestricted roles (DBAs, migrations) pass through untouched.
	Unrestricted bool
	Profile      *Profile
	// Purposes the role works for. With PurposeFixed the role always works
	// for Purposes[0]; otherwise a session chooses one of them, and until it
	// does, the opt-outs of all of them apply.
	Purposes     []string
	PurposeFixed bool
	// ReviewChanges holds the role's changes to personal and sensitive
	// columns as change requests (design.md §2.5).
	ReviewChanges bool
	// ApproveChanges: the role's principals may approve or reject other
	// principals' change requests.
	ApproveChanges bool
	// reviewExempt lists, per table, the columns whose changes are not
	// held although the table is about a subject (review_exempt).
	reviewExempt map[TableName]map[string]bool

	statements statementSet
	allTables  bool  // "*" in tables: every table not confidential
	allOps     OpSet // what "*" allows (permissions.go)
	ops        map[TableName]OpSet
	listed     map[TableName]bool // tables named in tables
	denied     map[TableName]bool
	filters    map[TableName]*filterTemplate
	overrides  map[TableName]map[string]rule
	// views holds the precomputed answer for every classed column of every
	// protected table.
	views map[TableName]map[string]ColumnView
	// blind lists the columns the role may write without seeing them.
	blind    map[TableName]map[string]bool
	unlisted bool // unlisted tables allowed
	policy   *Policy
	At       Pos
}

// BlindWrite says whether the role may write column col of table t even
// though it does not see the column raw (blind_writes): support may set a
// new phone number it cannot read back.
func (r *Role) BlindWrite(t TableName, col string) bool { return r.blind[t][col] }

// Allows says whether the role may run statements of kind k.
func (r *Role) Allows(k StatementKind) bool { return r.statements.has(k) }

// StatementKinds lists the kinds the role may run, session kinds excluded.
func (r *Role) StatementKinds() []StatementKind {
	var out []StatementKind
	for k := StatementKind(0); k < firstSessionKind; k++ {
		if r.statements.has(k) {
			out = append(out, k)
		}
	}
	return out
}

// TableAccess is the answer to "may the role use table t".
type TableAccess struct {
	Allowed bool
	// Protected is true when the rules name the table: its columns have
	// views and its reads go through a policy subquery.
	Protected bool
	// Reason says why access is refused, naming the rule.
	Reason string
}

// Table says whether the role may use table t.
func (r *Role) Table(t TableName) TableAccess {
	if r.Unrestricted {
		return TableAccess{Allowed: true}
	}
	tab := r.policy.tables[t]
	protected := tab != nil
	if r.denied[t] {
		return TableAccess{Protected: protected, Reason: "table " + t.String() + " is in deny_tables of role " + r.Name}
	}
	if r.listed[t] {
		return TableAccess{Allowed: true, Protected: protected}
	}
	if !protected {
		if r.unlisted {
			return TableAccess{Allowed: true}
		}
		if r.allTables {
			return TableAccess{Reason: "table " + t.String() + " is not named in the rules (defaults.unlisted_tables is deny)"}
		}
		return TableAccess{Reason: "table " + t.String() + " is not in the tables of role " + r.Name}
	}
	if tab.Confidential {
		return TableAccess{Protected: true, Reason: "table " + t.String() + " is confidential and not in the tables of role " + r.Name}
	}
	if r.allTables {
		return TableAccess{Allowed: true, Protected: true}
	}
	return TableAccess{Protected: true, Reason: "table " + t.String() + " is not in the tables of role " + r.Name}
}

// ColumnView is what one column looks like to a role.
type ColumnView struct {
	Class Class
	// Classed is false when the rules do not class the column and it gets
	// the default class (fail closed).
	Classed bool
	Action  Action
	// Mask is the mask applied for Action MaskValue (and the pseudonym mask
	// for Pseudonymize).
	Mask *Mask
	// HideIfOptedOut: the value must be NULL for subjects who opted out of
	// sensitive_data (Subject.OptedOut(SensitiveData, …)).
	HideIfOptedOut bool
	// Scope is the pseudonym scope for Action Pseudonymize: the role's own
	// pseudonym key (Role.PseudonymScope).
	Scope string
	// Coarsen, for Action Show: the unit an anonymizing profile truncates
	// date and time values to (profile timestamps); values of other types
	// are shown as they are.
	Coarsen string
}

// Raw says whether the role reads the column's values as they are stored
// (shown, not coarsened, not hidden for sensitive-data opt-outs): only
// such columns may be read on the real row of a write (SET, RETURNING).
func (v ColumnView) Raw() bool { return v.Action == Show && !v.HideIfOptedOut && v.Coarsen == "" }

// SQL is the expression a policy subquery selects for the column, over
// column's bare name (the subquery reads the base table directly), of the
// column's type sqlType as format_type prints it ("character varying(80)").
// For Deny it returns an error: the rewrite must refuse references instead.
func (v ColumnView) SQL(column, sqlType string) (string, error) {
	var expr string
	switch v.Action {
	case Show:
		expr = QuoteIdent(column)
		if v.Coarsen != "" && FamilyOf(sqlType) == FamilyTemporal {
			expr = "(pg_catalog.date_trunc(" + QuoteLiteral(v.Coarsen) + ", " + expr + "))::" + sqlType
		}
	case MaskValue, Pseudonymize:
		e, err := v.Mask.ScopedSQL(column, sqlType, v.Scope)
		if err != nil {
			return "", err
		}
		expr = e
	case Hide:
		return "NULL::" + sqlType, nil
	case Deny:
		return "", errDenied(column)
	}
	return expr, nil
}

type errDenied string

func (e errDenied) Error() string { return "column " + string(e) + " is denied" }

// Column answers "what does column col of table t look like" for the role.
// Tables the rules do not name are not protected: their columns are shown.
func (r *Role) Column(t TableName, col string) ColumnView {
	if r.Unrestricted {
		return ColumnView{Class: Public, Classed: true, Action: Show}
	}
	cols, ok := r.views[t]
	if !ok {
		return ColumnView{Class: Public, Classed: false, Action: Show}
	}
	if v, ok := cols[col]; ok {
		return v
	}
	return r.view(t, nil, r.policy.unclassed, false)
}

// view computes the view of a column from the profile, the role's
// overrides and the column's own mask.
func (r *Role) view(t TableName, c *Column, class Class, classed bool) ColumnView {
	ru := r.Profile.Classes[class]
	if r.Profile.Keys != nil && c != nil && r.policy.KeyColumn(t, c.Name) {
		ru = *r.Profile.Keys
	}
	overridden := false
	if pr, ok := r.Profile.columns[t][nameOf(c)]; ok {
		ru, overridden = pr, true
	}
	if rr, ok := r.overrides[t][nameOf(c)]; ok {
		ru, overridden = rr, true
	}
	if !overridden && r.Anonymizing() && c != nil && !r.policy.KeyColumn(t, c.Name) {
		// Anonymizing profiles hide free text and the columns whose mask
		// keeps part of the value (partial, email, custom), generalize
		// rather than cut, and coarsen timestamps, unless the rules name
		// a view for the column.
		m := ru.mask
		if m == nil {
			m = c.Mask
		}
		switch {
		case c.FreeText && ru.action != Deny:
			ru = rule{action: Hide}
		case ru.action == MaskValue && m != nil && (m.Kind == MaskPartial || m.Kind == MaskEmail || m.Kind == MaskSQL):
			ru = rule{action: Hide}
		}
	}
	coarsen := ""
	if !overridden && r.Anonymizing() && c != nil && ru.action == Show && !r.policy.KeyColumn(t, c.Name) {
		coarsen = r.Profile.Timestamps
	}
	v := ColumnView{Class: class, Classed: classed, Action: ru.action, Coarsen: coarsen}
	switch ru.action {
	case MaskValue:
		switch {
		case ru.mask != nil:
			v.Mask = ru.mask
		case c != nil && c.Mask != nil:
			v.Mask = c.Mask
		default:
			v.Mask = defaultMask
		}
	case Pseudonymize:
		v.Mask = pseudonymMask
	}
	if v.Mask != nil && v.Mask.Kind == MaskPseudonymize {
		v.Scope = r.PseudonymScope()
	}
	v.HideIfOptedOut = class == Sensitive && r.Profile.HonorSensitiveOptOut &&
		ru.action != Hide && ru.action != Deny && r.policy.subjectReaches(t)
	return v
}

func nameOf(c *Column) string {
	if c == nil {
		return ""
	}
	return c.Name
}

// subjectReaches says whether rows of t belong to a data subject.
func (p *Policy) subjectReaches(t TableName) bool {
	if p.subject == nil {
		return false
	}
	for tab := p.tables[t]; tab != nil; tab = p.tables[tab.Link.References] {
		if tab.Subject {
			return true
		}
		if tab.Link == nil {
			return false
		}
	}
	return false
}

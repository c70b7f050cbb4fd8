package rules

import (
	"strings"
)

// Class is the privacy class of a column (design.md §2.2).
type Class uint8

const (
	// Identity: who the person is (account number, name, email).
	Identity Class = iota
	// Personal: describes the person (age, birth date, income, address, phone).
	Personal
	// Sensitive: special categories (national id, religion, ethnicity, health).
	Sensitive
	// Public: does not describe a person (status codes, amounts of a business).
	Public
	numClasses
)

var classNames = [numClasses]string{"identity", "personal", "sensitive", "public"}

func (c Class) String() string {
	if c < numClasses {
		return classNames[c]
	}
	return "class(?)"
}

func parseClass(s string) (Class, bool) {
	for i, n := range classNames {
		if n == s {
			return Class(i), true
		}
	}
	return 0, false
}

// Action is what a column looks like to a role.
type Action uint8

const (
	// Show passes the value unchanged.
	Show Action = iota
	// MaskValue replaces the value by the column's mask (ColumnView.Mask).
	MaskValue
	// Pseudonymize replaces the value by its stable keyed pseudonym.
	Pseudonymize
	// Hide makes the value NULL; the column is still there, so SELECT * works.
	Hide
	// Deny makes any reference to the column an error.
	Deny
)

var actionNames = []string{"show", "mask", "pseudonymize", "hide", "deny"}

func (a Action) String() string {
	if int(a) < len(actionNames) {
		return actionNames[a]
	}
	return "action(?)"
}

func parseAction(s string) (Action, bool) {
	for i, n := range actionNames {
		if n == s {
			return Action(i), true
		}
	}
	return 0, false
}

// TableName is a schema-qualified table name. Names in the rules file
// without a schema are in "public".
type TableName struct {
	Schema, Name string
}

func (t TableName) String() string { return t.Schema + "." + t.Name }

// SQL is the name quoted for use in SQL text.
func (t TableName) SQL() string { return QuoteIdent(t.Schema) + "." + QuoteIdent(t.Name) }

// ParseTableName splits "schema.table" or "table" (in public).
func ParseTableName(s string) TableName {
	if schema, name, ok := strings.Cut(s, "."); ok {
		return TableName{schema, name}
	}
	return TableName{"public", s}
}

// QuoteIdent quotes an SQL identifier.
func QuoteIdent(s string) string {
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}

// QuoteLiteral quotes an SQL string constant (standard_conforming_strings on,
// the default since PostgreSQL 9.1, so a backslash is an ordinary character;
// E” strings are not used).
func QuoteLiteral(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// Subject describes the data subject: the table of the people the data is
// about, its key, and where their opt-outs are recorded.
type Subject struct {
	Table TableName
	Key   string
	// OptOuts is the table of (subject, purpose) rows, if opt-outs are kept
	// in one; nil otherwise.
	OptOuts *OptOutTable
	// OptOutFlags maps a purpose to a boolean column of the subject table
	// that is true when the subject opted out of it.
	OptOutFlags map[string]string
	// writers are the roles that may write opt-out records
	// (subject.opt_outs.writers).
	writers map[string]bool
}

// OptOutTable is a table with one row per (subject, purpose opted out of).
type OptOutTable struct {
	Table         TableName
	SubjectColumn string
	PurposeColumn string
}

// OptedOut returns an SQL predicate, over the subject table's columns
// referenced through alias (already quoted), that is true when the subject
// opted out of purpose. The purpose is a constant of the rules, never user
// input.
func (s *Subject) OptedOut(purpose, alias string) string {
	if col, ok := s.OptOutFlags[purpose]; ok {
		return "coalesce(" + alias + "." + QuoteIdent(col) + ", false)"
	}
	if s.OptOuts != nil {
		o := s.OptOuts
		return "EXISTS (SELECT 1 FROM " + o.Table.SQL() + " pgcloak_o WHERE pgcloak_o." +
			QuoteIdent(o.SubjectColumn) + " = " + alias + "." + QuoteIdent(s.Key) +
			" AND pgcloak_o." + QuoteIdent(o.PurposeColumn) + " = " + QuoteLiteral(purpose) + ")"
	}
	return "false"
}

// Table is a table named in the rules: a protected table.
type Table struct {
	Name TableName
	// Confidential tables (business secrets) are readable only by roles
	// that name them in their tables list.
	Confidential bool
	// Subject is true for the data subject table itself.
	Subject bool
	// Link, when set, ties each row to a data subject: Column holds a value
	// of References.Column of table References.Table, which is the subject
	// table or another linked table. Opt-outs and row filters of the
	// referenced table reach this table through it.
	Link    *Link
	Columns []*Column // in file order
	columns map[string]*Column
	At      Pos
}

// Link is a table's tie to its data subject.
type Link struct {
	Column           string
	References       TableName
	ReferencesColumn string
}

// Column is a classed column of a protected table.
type Column struct {
	Name  string
	Class Class
	Mask  *Mask // the column's own mask, nil for the class default
	// FreeText: the column holds text anyone may have written anything
	// in (a ticket body); anonymizing profiles hide it unless the role
	// names a mask for it.
	FreeText bool
	At       Pos
}

// Column returns the classed column name, or nil.
func (t *Table) Column(name string) *Column { return t.columns[name] }

// Profile is a privacy view: what each class, and optionally single columns,
// look like.
type Profile struct {
	Name    string
	Builtin bool
	Classes [numClasses]rule
	// HonorSensitiveOptOut hides the sensitive columns of subjects who opted
	// out of sensitive_data (every profile but personal_data).
	HonorSensitiveOptOut bool
	// Keys is what the subject key and every key pointing to a subject's
	// rows look like (anonymity.go); nil leaves them to their class.
	Keys *rule
	// Timestamps is the unit anonymizing profiles generalize date and time
	// columns they would show to ("month"); "" shows them.
	Timestamps string
	columns    map[TableName]map[string]rule
	At         Pos
}

// rule is an action with the mask it uses, as written in a profile or role.
type rule struct {
	action Action
	mask   *Mask // for MaskValue: overrides the column's own mask
	at     Pos
}

// Purpose names a processing purpose that data subjects can opt out of.
type Purpose = string

// The purposes every rules file has (design.md §2.3).
const (
	DirectMarketing      Purpose = "direct_marketing"
	ThirdPartyDisclosure Purpose = "third_party_disclosure"
	AutomatedDecision    Purpose = "automated_decision"
	SensitiveData        Purpose = "sensitive_data"
)

// Policy is a compiled rules file. It is immutable: everything a session
// asks of it is answered from maps built at load time, so one Policy can be
// shared by every goroutine, and a reload swaps in a new one (Store).
type Policy struct {
	file    string
	version string

	subject         *Subject
	purposes        []string
	tables          map[TableName]*Table
	tableList       []*Table
	profiles        map[string]*Profile
	roles           map[string]*Role
	roleList        []*Role
	unclassed       Class
	unlistedAllowed bool

	attrTypes    map[string]AttrType
	logins       map[string]*loginRule
	loginList    []*loginRule
	defaultLogin *loginRule
	delegation   Delegation

	minK int                           // anonymity.min_k; 0 when the rules set none
	keys map[TableName]map[string]bool // key columns (anonymity.go)

	bound boundFilters // row filters bound per role and attributes (principal.go)
}

// File is the path the policy was loaded from.
func (p *Policy) File() string { return p.file }

// Version is a short hex hash of the rules file's bytes, for the access log
// and metrics.
func (p *Policy) Version() string { return p.version }

// Subject is the data subject, or nil when the rules name none.
func (p *Policy) Subject() *Subject { return p.subject }

// Purposes lists the known purposes.
func (p *Policy) Purposes() []string { return append([]string(nil), p.purposes...) }

// Table returns the protected table, or nil if the rules do not name it.
func (p *Policy) Table(t TableName) *Table { return p.tables[t] }

// Tables lists the protected tables in file order.
func (p *Policy) Tables() []*Table { return append([]*Table(nil), p.tableList...) }

// Role returns a role by name, or nil.
func (p *Policy) Role(name string) *Role { return p.roles[name] }

// Roles lists the roles in file order.
func (p *Policy) Roles() []*Role { return append([]*Role(nil), p.roleList...) }

// Profile returns a profile by name, or nil.
func (p *Policy) Profile(name string) *Profile { return p.profiles[name] }

// UnclassedClass is the class given to unclassed columns of protected tables.
func (p *Policy) UnclassedClass() Class { return p.unclassed }

// UnlistedTablesAllowed says whether restricted roles may use tables the
// rules do not name.
func (p *Policy) UnlistedTablesAllowed() bool { return p.unlistedAllowed }

// LinkPath is the chain of links from table t to the subject table: for
// order_lines, [order_lines→orders, orders→customers]. Empty for the subject
// table and for tables without a link.
func (p *Policy) LinkPath(t TableName) []*Table {
	var path []*Table
	for tab := p.tables[t]; tab != nil && tab.Link != nil; tab = p.tables[tab.Link.References] {
		path = append(path, tab)
	}
	return path
}

package report

import (
	"time"

	"github.com/pgcloak/pgcloak/rules"
)

// Facts is everything the report says, gathered once (Gather) and then
// rendered (WriteHTML) or written as it is (WriteJSON: this struct is the
// JSON format). It holds names, counts and rules, never a value of the
// database: no column value, no change request's new values.
type Facts struct {
	Generated time.Time `json:"generated"`
	// Period is the window the activity covers; zero ends are open.
	Period Period `json:"period"`

	Rules        RulesInfo        `json:"rules"`
	DataModel    DataModel        `json:"data_model"`
	Database     DatabaseOverview `json:"database"`
	Risk         RiskSection      `json:"reidentification_risk"`
	PrivacyViews PrivacyViews     `json:"privacy_views"`
	Activity     Activity         `json:"activity"`
	Changes      Changes          `json:"changes"`
	Integrity    []LogIntegrity   `json:"integrity"`
}

// Period is the time window of the activity.
type Period struct {
	Since *time.Time `json:"since,omitempty"`
	Until *time.Time `json:"until,omitempty"`
}

// RulesInfo names the rules file the report describes.
type RulesInfo struct {
	File    string `json:"file"`
	Version string `json:"version"`
}

// DataModel is the logical data model: protected tables, their columns'
// classes and masks, their tie to the data subject, where opt-outs live,
// and what pgcloak check finds missing.
type DataModel struct {
	Subject *SubjectInfo `json:"subject,omitempty"`
	// UnclassedClass is the class unclassed columns of protected tables get.
	UnclassedClass string           `json:"unclassed_class"`
	UnlistedTables string           `json:"unlisted_tables"` // allow or deny
	Tables         []ProtectedTable `json:"tables"`
	// Findings are pgcloak check's findings against the database
	// (unclassed-column, looks-personal and every other code).
	Findings []rules.Finding `json:"findings"`
}

// SubjectInfo is the data subject table and where opt-outs are recorded.
type SubjectInfo struct {
	Table   string          `json:"table"`
	Key     string          `json:"key"`
	OptOuts []OptOutStorage `json:"opt_outs"`
}

// OptOutStorage says where the opt-outs of one purpose are recorded.
type OptOutStorage struct {
	Purpose string `json:"purpose"`
	// Where, in words: "customer_opt_outs (customer_id, purpose = 'x')" or
	// "customers.flag".
	Where string `json:"where"`
	// Table, SubjectColumn, PurposeColumn for an opt-out table; Table and
	// FlagColumn for a flag of the subject table; all empty when the rules
	// record opt-outs of the purpose nowhere.
	Table         string `json:"table,omitempty"`
	SubjectColumn string `json:"subject_column,omitempty"`
	PurposeColumn string `json:"purpose_column,omitempty"`
	FlagColumn    string `json:"flag_column,omitempty"`
}

// ProtectedTable is a table the rules name.
type ProtectedTable struct {
	Name         string `json:"name"`
	Confidential bool   `json:"confidential,omitempty"`
	Subject      bool   `json:"subject,omitempty"`
	// Link is the column that ties a row to its subject, and LinkPath the
	// chain of tables to the subject table ("orders.customer_id →
	// customers.customer_id").
	Link     string   `json:"link,omitempty"`
	LinkPath []string `json:"link_path,omitempty"`
	// InDatabase is false when the table is missing from the database.
	InDatabase bool           `json:"in_database"`
	Columns    []ColumnFacts  `json:"columns"`
	Unclassed  []string       `json:"unclassed_columns,omitempty"`
	ClassCount map[string]int `json:"class_count"`
}

// ColumnFacts is a classed column.
type ColumnFacts struct {
	Name  string `json:"name"`
	Class string `json:"class"`
	// Mask is the column's own mask, described ("partial: first 1"); empty
	// when it has none (the profile's default applies).
	Mask string `json:"mask,omitempty"`
	// Type is the column's type in the database; empty when missing there.
	Type string `json:"type,omitempty"`
}

// DatabaseOverview is what the database holds.
type DatabaseOverview struct {
	Tables []TableCount `json:"tables"`
	// Subjects is the number of rows of the subject table.
	Subjects int64           `json:"subjects"`
	OptOuts  []PurposeOptOut `json:"opt_outs"`
}

// TableCount is one table of the database.
type TableCount struct {
	Name      string `json:"name"`
	Rows      int64  `json:"rows"`
	Protected bool   `json:"protected"`
	// Confidential tables are readable only by roles that name them.
	Confidential bool `json:"confidential,omitempty"`
	// LinkedToSubject: each row belongs to a data subject.
	LinkedToSubject bool `json:"linked_to_subject,omitempty"`
}

// PurposeOptOut is how many subjects opted out of a purpose.
type PurposeOptOut struct {
	Purpose  string  `json:"purpose"`
	Subjects int64   `json:"subjects"`
	Share    float64 `json:"share"` // of all subjects, 0..1
	// Recorded is false when the rules record this purpose's opt-outs
	// nowhere (then nobody can opt out of it).
	Recorded bool `json:"recorded"`
}

// RiskSection is the re-identification risk per anonymized or disclosure
// role.
type RiskSection struct {
	// Measured is false when no measurement ran; Note says why.
	Measured  bool       `json:"measured"`
	Note      string     `json:"note,omitempty"`
	Threshold int        `json:"threshold,omitempty"`
	Roles     []RoleRisk `json:"roles"`
}

// RoleRisk is the k-anonymity of what one role sees of one table.
type RoleRisk struct {
	Role    string `json:"role"`
	Profile string `json:"profile"`
	Table   string `json:"table"`
	// K is the size of the smallest group of subjects sharing the same
	// combination of shown, generalized and banded columns.
	K int64 `json:"k"`
	// QuasiIdentifiers are the columns the grouping uses, with what the
	// role sees of them ("birth_date: generalize year").
	QuasiIdentifiers []string `json:"quasi_identifiers"`
	// Drivers are the columns that make the smallest groups small: without
	// any one of them, k would rise most.
	Drivers []string `json:"drivers"`
	// SubjectsBelow are the subjects in groups smaller than the threshold.
	SubjectsBelow int64 `json:"subjects_below_threshold"`
	Subjects      int64 `json:"subjects"`
	Groups        int64 `json:"groups"`
	// OK: the threshold is met (or none is set, or the role sees no one).
	OK bool `json:"ok"`
	// Login is the principal measured (its row filter applies).
	Login string `json:"login,omitempty"`
	// PseudonymizedKeys are key columns seen pseudonymized, left out of
	// the grouping; RawKeys, key columns seen raw (they make k 1).
	PseudonymizedKeys []string `json:"pseudonymized_keys,omitempty"`
	RawKeys           []string `json:"raw_keys,omitempty"`
	Error             string   `json:"error,omitempty"`
}

// PrivacyViews are the profiles and what each role sees.
type PrivacyViews struct {
	Profiles []ProfileFacts `json:"profiles"`
	Roles    []RoleView     `json:"roles"`
	// Delegation is the setting delegating applications name their end
	// user with, and whether it must be signed.
	DelegationSetting string `json:"delegation_setting"`
	DelegationSigned  bool   `json:"delegation_signed"`
}

// ProfileFacts is a privacy view: what each class looks like.
type ProfileFacts struct {
	Name    string `json:"name"`
	Builtin bool   `json:"builtin"`
	// Classes maps a class to its action ("mask", "mask: initial").
	Classes map[string]string `json:"classes"`
	// Keys is what the profile does with key columns, "" when they follow
	// their class.
	Keys                 string   `json:"keys,omitempty"`
	ColumnOverrides      int      `json:"column_overrides"`
	HonorSensitiveOptOut bool     `json:"honor_sensitive_opt_out"`
	Roles                []string `json:"roles"`
}

// RoleView is what one role may do and see.
type RoleView struct {
	Name         string   `json:"name"`
	Unrestricted bool     `json:"unrestricted,omitempty"`
	Profile      string   `json:"profile,omitempty"`
	Purposes     []string `json:"purposes"`
	PurposeFixed bool     `json:"purpose_fixed,omitempty"`
	Statements   []string `json:"statements"`
	// ReviewChanges: changes to personal data become change requests.
	ReviewChanges bool `json:"review_changes,omitempty"`
	// Tables is the table × column matrix.
	Tables []RoleTable `json:"tables"`
	// Logins map to the role; Applications are the delegating logins that
	// may act for its logins as their end user.
	Logins       []LoginFacts `json:"logins"`
	Applications []string     `json:"applications"`
	// ObservedThrough: delegating applications seen acting for an end user
	// of this role in the period (from the access log).
	ObservedThrough []string `json:"observed_through,omitempty"`
}

// RoleTable is one protected table as a role sees it.
type RoleTable struct {
	Table   string `json:"table"`
	Allowed bool   `json:"allowed"`
	Reason  string `json:"reason,omitempty"` // why not
	// Filter is the row filter as written; Inherited names the filters of
	// linked tables that limit this one too.
	Filter    string   `json:"filter,omitempty"`
	Inherited []string `json:"inherited_filters,omitempty"`
	// Columns: column name → show, mask, pseudonymize, hide, deny (with
	// ":name" for a mask, and "+opt-out" when hidden for subjects who opted
	// out of sensitive_data).
	Columns []CellView `json:"columns"`
	// BlindWrites are columns the role may write without seeing them.
	BlindWrites []string `json:"blind_writes,omitempty"`
}

// CellView is one cell of the matrix.
type CellView struct {
	Column         string `json:"column"`
	Class          string `json:"class"`
	Action         string `json:"action"`
	Mask           string `json:"mask,omitempty"` // described
	MaskName       string `json:"mask_name,omitempty"`
	HideIfOptedOut bool   `json:"hide_if_opted_out,omitempty"`
}

// LoginFacts is a login of a role.
type LoginFacts struct {
	Login          string            `json:"login"` // "(default)" for principals.default
	Delegating     bool              `json:"delegating,omitempty"`
	Attributes     map[string]string `json:"attributes,omitempty"`
	AttributeQuery string            `json:"attribute_query,omitempty"`
}

// Activity is what the access log says about the period.
type Activity struct {
	// Logs is false when no access log was given.
	Logs bool `json:"logs"`
	// First and Last are the times of the first and last statement in the
	// period.
	First *time.Time `json:"first,omitempty"`
	Last  *time.Time `json:"last,omitempty"`

	Statements int64 `json:"statements"`
	// Decisions counts allowed, rewritten and denied statements.
	Decisions map[string]int64 `json:"decisions"`
	// ServerErrors are statements the server answered with an error.
	ServerErrors int64 `json:"server_errors"`

	ByRole    []Count `json:"by_role"`
	ByLogin   []Count `json:"by_login"`
	ByEndUser []Count `json:"by_end_user"`
	// ByClass counts statements that touched at least one column of each
	// class (a statement touching several classes counts in each).
	ByClass []Count `json:"by_class"`
	// ByRoleDecision: role → decision → statements.
	ByRoleDecision map[string]map[string]int64 `json:"by_role_decision"`

	// Refusals by reason (the rule that refused) and by reason family.
	Refusals      []Count `json:"refusals"`
	RefusalFamily []Count `json:"refusal_families"`

	// Incidents are statements with result columns the wire check sent as
	// NULL; IncidentColumns, those columns in total.
	Incidents       int64   `json:"wire_check_incidents"`
	IncidentColumns int64   `json:"wire_check_columns"`
	IncidentsByRole []Count `json:"wire_check_incidents_by_role"`

	// Sessions: auth outcomes.
	Auth []Count `json:"auth"`

	// TopStatements are the most frequent normalized statements per role.
	TopStatements []RoleStatements `json:"top_statements"`
	// RulesVersions are the rules in force over time.
	RulesVersions []RulesPeriod `json:"rules_versions"`
	// Timeline buckets statements by time.
	Timeline Timeline `json:"timeline"`
	// Skipped counts lines that are not access records.
	Skipped int64 `json:"skipped_lines,omitempty"`
}

// Count is a named count.
type Count struct {
	Name  string `json:"name"`
	Count int64  `json:"count"`
}

// RoleStatements are the most frequent statements of a role.
type RoleStatements struct {
	Role       string          `json:"role"`
	Statements []StatementFreq `json:"statements"`
}

// StatementFreq is a normalized statement and how often it ran.
type StatementFreq struct {
	Query    string `json:"query"`
	Kind     string `json:"kind"`
	Count    int64  `json:"count"`
	Denied   int64  `json:"denied"`
	Decision string `json:"decision"` // of its latest execution
}

// RulesPeriod is a rules version and when it was in force.
type RulesPeriod struct {
	Version string    `json:"version"`
	From    time.Time `json:"from"`
	// Until is when the next version came, nil for the last one.
	Until *time.Time `json:"until,omitempty"`
	Why   string     `json:"why"` // start, restart, reload
}

// Timeline counts statements per bucket of time.
type Timeline struct {
	Start   time.Time        `json:"start"`
	Bucket  string           `json:"bucket"` // a duration ("1h0m0s")
	Buckets []TimelineBucket `json:"buckets"`
}

// TimelineBucket is one bucket of the timeline.
type TimelineBucket struct {
	Start     time.Time `json:"start"`
	Allowed   int64     `json:"allowed"`
	Rewritten int64     `json:"rewritten"`
	Denied    int64     `json:"denied"`
}

// Changes are the change requests and opt-out changes.
type Changes struct {
	// Available is false when pgcloak.change_requests does not exist;
	// Note says why.
	Available   bool    `json:"available"`
	Note        string  `json:"note,omitempty"`
	ByState     []Count `json:"by_state"`
	ByRequester []Count `json:"by_requester"`
	ByApprover  []Count `json:"by_approver"`
	// Requests lists the requests in the period, newest first, without
	// their values.
	Requests []ChangeFacts `json:"requests"`
	// Decisions are the review decisions in the access log.
	Decisions []Count `json:"review_decisions"`
	// OptOutChanges are the writes to where opt-outs are recorded, from
	// the access log.
	OptOutChanges OptOutChanges `json:"opt_out_changes"`
}

// ChangeFacts is a change request without its values.
type ChangeFacts struct {
	ID          int64      `json:"id"`
	RequestedAt time.Time  `json:"requested_at"`
	Requester   string     `json:"requester"`
	Role        string     `json:"requester_role"`
	Table       string     `json:"table"`
	Columns     []string   `json:"columns"`
	Status      string     `json:"status"`
	DecidedBy   string     `json:"decided_by,omitempty"`
	DecidedAt   *time.Time `json:"decided_at,omitempty"`
}

// OptOutChanges are the opt-out changes in the period, from the three
// places that record them.
type OptOutChanges struct {
	// Source says what Statements counts.
	Source string `json:"source"`
	// Statements that wrote the opt-out table or flags through pgcloak and
	// succeeded.
	Statements int64   `json:"statements"`
	Rows       int64   `json:"rows"`
	ByLogin    []Count `json:"by_login"`
	ByKind     []Count `json:"by_kind"`
	// Portal: the customers' own changes in the portal's access records
	// (type portal), applied and unchanged (already so), by what they did.
	PortalApplied   int64   `json:"portal_applied"`
	PortalUnchanged int64   `json:"portal_unchanged"`
	PortalByChange  []Count `json:"portal_by_change"`
	// History is pgcloak.opt_out_history, the table the portal writes a
	// row to for each change.
	History OptOutHistory `json:"history"`
}

// OptOutHistory is what pgcloak.opt_out_history holds for the period.
type OptOutHistory struct {
	// Available is false when the table does not exist (no portal set up).
	Available bool            `json:"available"`
	Changes   int64           `json:"changes"`
	Subjects  int64           `json:"subjects"` // distinct subjects who changed a choice
	ByPurpose []PurposeChange `json:"by_purpose"`
	BySource  []Count         `json:"by_source"`
}

// PurposeChange counts the changes of one purpose.
type PurposeChange struct {
	Purpose  string `json:"purpose"`
	OptedOut int64  `json:"opted_out"`
	OptedIn  int64  `json:"opted_in"` // allowed again
}

// LogIntegrity is the result of verifying one access log's hash chain.
type LogIntegrity struct {
	// Pattern is the --audit-file value; Files the files it matched, in
	// chain order.
	Pattern  string   `json:"pattern"`
	Files    []string `json:"files"`
	Intact   bool     `json:"intact"`
	Closed   bool     `json:"closed"`
	Records  int      `json:"records"`
	FirstSeq uint64   `json:"first_seq,omitempty"`
	LastSeq  uint64   `json:"last_seq,omitempty"`
	Notes    []string `json:"notes,omitempty"`
	// Break is the first place the chain does not hold.
	Break *ChainBreak `json:"break,omitempty"`
	// Error: the files could not be read.
	Error string `json:"error,omitempty"`
}

// ChainBreak is where a chain breaks.
type ChainBreak struct {
	File    string `json:"file"`
	Line    int    `json:"line"`
	Seq     uint64 `json:"seq,omitempty"`
	Message string `json:"message"`
}

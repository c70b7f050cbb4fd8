package audit

import (
	"strings"
	"time"
)

// Record types. Statement, connection and chain records share one shape;
// the fields a type does not use are left out of its line.
const (
	// TypeStart opens a chain, or a file of it (Cause says which), and
	// names the rules in force.
	TypeStart = "start"
	// TypeEnd closes a file: at rotation and at shutdown.
	TypeEnd = "end"
	// TypeLost says how many records could not be written (fail_open).
	TypeLost = "lost"
	// TypeRules says the rules in force changed.
	TypeRules = "rules"

	TypeConnect    = "connect"    // a client sent its start-up packet
	TypeAuth       = "auth"       // the outcome of its authentication
	TypeDisconnect = "disconnect" // the session ended
	TypeStatement  = "statement"  // one statement execution
)

// Decisions on a statement.
const (
	Allowed   = "allowed"   // forwarded unchanged
	Rewritten = "rewritten" // forwarded as rewritten by the rules
	Denied    = "denied"    // refused by pgcloak; the server never ran it
)

// Auth outcomes.
const (
	AuthOK       = "ok"       // the server accepted the login and the rules mapped it
	AuthRejected = "rejected" // the server refused the login (wrong password, no such role)
	AuthRefused  = "refused"  // pgcloak refused the login (unmapped, TLS required, too many clients)
	AuthError    = "error"    // the server could not be reached
	AuthAborted  = "aborted"  // the client went away during authentication
)

// Record is one line of the access log. A Record is immutable once
// emitted: the writer adds the sequence number and the hash chain as it
// writes the line.
type Record struct {
	// Instance is the replica that wrote the record: set by the writer
	// (Options.Instance), not by the emitter; read back from a log.
	Instance string `json:"instance,omitempty"`

	Time time.Time `json:"time"`
	Type string    `json:"type"`

	// The session.
	Session     string `json:"session,omitempty"`
	Client      string `json:"client,omitempty"`
	Login       string `json:"login,omitempty"`
	Database    string `json:"database,omitempty"`
	Application string `json:"application_name,omitempty"`
	TLS         bool   `json:"tls,omitempty"`

	// What the rules made of the statement (statement records), or of the
	// login (auth records: Role, Purpose).
	*Statement

	// What the server made of it.
	Protocol   string `json:"protocol,omitempty"` // simple, extended or function_call
	Rows       *int64 `json:"rows,omitempty"`     // returned or affected, when the command says
	Suspended  bool   `json:"suspended,omitempty"`
	DurationUS int64  `json:"duration_us,omitempty"`
	SQLState   string `json:"sqlstate,omitempty"` // on error
	// WireCheck counts the result columns the wire check sent as NULL
	// (DESIGN.md §5.4): each is an incident, a rewrite that failed.
	WireCheck int `json:"wire_check,omitempty"`

	// Auth records.
	Outcome string `json:"outcome,omitempty"`

	// Chain records.
	Cause        string `json:"cause,omitempty"`    // start: new, restart, rotate, reopen; end: rotate, shutdown
	Previous     string `json:"previous,omitempty"` // start: none, closed, unclean
	RulesVersion string `json:"rules_version,omitempty"`
	Lost         int64  `json:"lost,omitempty"`

	rows int64 // where SetRows points Rows, saving an allocation
	// written marks not a record but a Written call: the writer closes it
	// once the records queued before it are written.
	written chan struct{}
}

// SetRows sets Rows to n.
func (r *Record) SetRows(n int64) {
	r.rows = n
	r.Rows = &r.rows
}

// Statement is what the policy knows about one statement: who runs it, what
// it is and touches, and what the rules decided. Policies build it once per
// statement text and share it between executions: it is never modified.
// It carries no value: the query text has every constant replaced.
type Statement struct {
	Role    string `json:"role,omitempty"`
	Purpose string `json:"purpose,omitempty"`
	EndUser string `json:"end_user,omitempty"`

	Kind        string `json:"kind,omitempty"`
	Fingerprint string `json:"fingerprint,omitempty"`
	// Query is the statement with constants replaced by $n and comments
	// removed; empty when it does not parse.
	Query   string   `json:"query,omitempty"`
	Objects []Object `json:"objects,omitempty"`

	Decision string `json:"decision,omitempty"`
	// Reason is the rule behind a denial ("roles.sales_rep.statements").
	Reason string `json:"reason,omitempty"`

	// ReasonCode is Reason's family, for metrics.
	ReasonCode ReasonCode `json:"-"`
	// Masked counts the masked columns of Objects, for metrics.
	Masked int `json:"-"`
}

// Object is one relation a statement touches.
type Object struct {
	Relation string `json:"relation"`
	Access   string `json:"access"` // read or write
	// Protected: the rules name the relation.
	Protected bool `json:"protected,omitempty"`
	// Columns touched, with their class (protected relations only).
	Columns map[string]string `json:"columns,omitempty"`
	// Masked columns and how (mask, pseudonymize, hide, deny).
	Masked map[string]string `json:"masked,omitempty"`
	// Filters applied: row_filter, opt_out:<purpose>.
	Filters []string `json:"filters,omitempty"`
}

// A ReasonCode is the family of a refusal's rule: the first segment of a
// rule name ("roles" of "roles.sales_rep.statements"), or a refusal
// pgcloak makes on its own. The decision names its rule with these
// constants (Rule), the access log carries the rule and metrics label
// denials with its family only, so a misspelt family is a compile error,
// not "other" in a dashboard.
type ReasonCode string

// The reason codes.
const (
	ReasonRoles            ReasonCode = "roles"              // a role's statements, tables, profile, write permissions
	ReasonTables           ReasonCode = "tables"             // a table the rules protect or do not allow
	ReasonStatements       ReasonCode = "statements"         // a statement no restricted role may run
	ReasonSettings         ReasonCode = "settings"           // a session setting outside the allow-list
	ReasonCatalog          ReasonCode = "catalog"            // a system catalog relation refused
	ReasonFunctions        ReasonCode = "function_allowlist" // a function not judged safe
	ReasonTypes            ReasonCode = "type_allowlist"     // a type whose input could read data
	ReasonSubject          ReasonCode = "subject"            // the data subject's key and opt-outs
	ReasonPrincipals       ReasonCode = "principals"         // a login's mapping
	ReasonFailClosed       ReasonCode = "fail_closed"        // what pgcloak cannot prove safe
	ReasonVerify           ReasonCode = "verify"             // the rewritten SQL did not parse back as checked
	ReasonLogin            ReasonCode = "login"              // a login refused at start-up
	ReasonNotReady         ReasonCode = "not_ready"          // no rules or catalog loaded yet
	ReasonPreparedStale    ReasonCode = "prepared_stale"     // a statement prepared under older rules
	ReasonDelegation       ReasonCode = "delegation"         // naming the end user
	ReasonAuditUnavailable ReasonCode = "audit_unavailable"  // the access log cannot be written
	ReasonOther            ReasonCode = "other"              // none of the above
)

// ReasonCodes are every ReasonCode, for metrics' label values.
var ReasonCodes = []ReasonCode{
	ReasonRoles, ReasonTables, ReasonStatements, ReasonSettings, ReasonCatalog, ReasonFunctions,
	ReasonTypes, ReasonSubject, ReasonPrincipals, ReasonFailClosed, ReasonVerify, ReasonLogin,
	ReasonNotReady, ReasonPreparedStale, ReasonDelegation, ReasonAuditUnavailable, ReasonOther,
}

// Rule names a rule: its family, then the path to it under the family,
// dot-separated ("roles", "sales_rep", "statements").
func Rule(family ReasonCode, path ...string) string {
	if len(path) == 0 {
		return string(family)
	}
	return string(family) + "." + strings.Join(path, ".")
}

// ReasonOf maps a rule name to its family in ReasonCodes; ReasonOther
// when the name is none of them.
func ReasonOf(rule string) ReasonCode {
	head, _, _ := strings.Cut(rule, ".")
	for _, c := range ReasonCodes {
		if string(c) == head {
			return c
		}
	}
	return ReasonOther
}

package proxy

import (
	"context"
	"net"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgcloak/pgcloak/audit"
)

// Policy is the seam between the wire protocol and the privacy rules. The
// proxy knows messages; a Policy knows what a principal may do. Open is
// called once PostgreSQL has authenticated the client, before the client
// learns that it has: an error from Open refuses the connection.
type Policy interface {
	Open(ctx context.Context, info SessionInfo) (SessionPolicy, error)
}

// SessionInfo describes an authenticated client session.
type SessionInfo struct {
	ID       string            // pgcloak's session id, for logs
	User     string            // login from the StartupMessage, verified by the server
	Database string            // database the session is connected to
	Params   map[string]string // every StartupMessage parameter
	// ServerParams are the server's ParameterStatus values at start-up.
	ServerParams map[string]string
	ClientAddr   net.Addr
	TLS          bool // the client connection is encrypted
	// Upstream runs queries on the session's own server connection, before
	// the client has it (the session's search_path, for instance). Valid
	// only during Open.
	Upstream UpstreamQuerier
	// BackendPID is the server process id of the session's upstream
	// connection (from BackendKeyData; 0 when the server sent none). The
	// client knows it too, so it can bind values to the session.
	BackendPID uint32
	// Idle, called during a decision, says whether the server had answered
	// everything sent before the message being decided and was outside a
	// transaction block (its last ReadyForQuery said 'I').
	Idle func() bool
}

// UpstreamQuerier runs one simple-protocol query and returns its rows as
// text (nil for NULL).
type UpstreamQuerier interface {
	Query(ctx context.Context, sql string) ([][]*string, error)
}

// SessionPolicy decides on each statement of one session. It is used by one
// goroutine at a time. A nil SessionPolicy means the session passes through
// untouched: no message is even decoded.
type SessionPolicy interface {
	// Query decides on a simple-protocol Query message (which may hold
	// several statements).
	Query(sql string) Decision
	// Parse decides on an extended-protocol Parse message.
	Parse(name, sql string, paramOIDs []uint32) Decision
	// FunctionCall decides on the legacy fast-path FunctionCall message.
	FunctionCall(function uint32) Decision
	// Close is called once when the session ends.
	Close()
}

// Action says what happens to a client message.
type Action uint8

const (
	Forward Action = iota // send the message upstream unchanged
	Rewrite               // send Decision.SQL in place of the message's SQL
	Refuse                // answer with Decision.Err; the server never sees the statement
)

// Decision is a SessionPolicy's answer for one message.
type Decision struct {
	Action Action
	SQL    string // with Rewrite
	Err    *Error // with Refuse
	// Audit describes the message's statements, in order, for the access
	// log and the statement metrics; the proxy adds what the server
	// answers to each. Shared and never modified.
	Audit []*audit.Statement
	// Ack, when set, is called with the tag of each CommandComplete the
	// server sends for the message's statements (for a Parse: for each
	// Execute of a portal bound to it), on the server-to-client
	// goroutine (see Follower). A statement the server skipped or failed
	// gets no call.
	Ack func(tag string)
	// Deallocates names the prepared statements the message's SQL
	// deallocates ("" for all): the proxy stops keeping them.
	Deallocates []string
	// Prepared, with Rewrite for a simple Query of one statement, is the
	// same statement as a server-side prepared statement and the values
	// of its parameters: the proxy may run it so in place of SQL, which
	// stays what it sends otherwise (shapeprep.go).
	Prepared *PreparedQuery
	// Once, for a Parse, says that the decision holds only for the
	// Binds sent with the Parse, before the next Sync: a later Bind of
	// the statement is decided again, as after a rules change
	// (reprepare.go). For statements whose effect the policy follows
	// from the decision on, such as an end-user switch.
	Once bool
}

// PreparedQuery is a statement to prepare once per server connection
// under Name (which must start with ShapePrefix and name this SQL and
// these parameter types only) and execute with Values, in text.
type PreparedQuery struct {
	Name   string
	SQL    string
	OIDs   []uint32
	Values [][]byte
}

// ErrRefused builds a refusal decision.
func ErrRefused(code, message string) Decision {
	return Decision{Action: Refuse, Err: &Error{Code: code, Message: message}}
}

// AllowAll is the default Policy: every session passes through untouched.
type AllowAll struct{}

var _ Policy = AllowAll{}

func (AllowAll) Open(context.Context, SessionInfo) (SessionPolicy, error) { return nil, nil }

// The types below cross the seam to a policy's optional interfaces
// (ErrorFilter, WireChecker): pgcloak's own, so that a policy knows
// nothing of the wire's message types. The proxy converts to and from the
// messages itself.

// Column describes one column of a result as the server's RowDescription
// names it: the table and column it comes straight from, if any.
type Column struct {
	Name     string
	TableOID uint32 // 0: not a plain column of a table
	// Attribute is the column's number in its table (pg_attribute.attnum).
	Attribute uint16
}

// columns converts a RowDescription's fields.
func columns(fields []pgproto3.FieldDescription) []Column {
	out := make([]Column, len(fields))
	for i, f := range fields {
		out[i] = Column{Name: string(f.Name), TableOID: f.TableOID, Attribute: f.TableAttributeNumber}
	}
	return out
}

// ServerError holds the fields of an error from the server that an
// ErrorFilter sees and may change; the proxy keeps the others as they
// came.
type ServerError struct {
	Severity string // read only: ERROR, FATAL, PANIC
	Code     string // SQLSTATE
	Message  string
	Detail   string
	Hint     string
}

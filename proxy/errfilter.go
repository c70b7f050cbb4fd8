package proxy

import "github.com/jackc/pgx/v5/pgproto3"

// ErrorFilter is implemented by a SessionPolicy that must edit the server's
// errors before the client sees them. PostgreSQL puts values in some of its
// messages: a constraint violation's DETAIL shows the whole failing row
// ("Failing row contains (…)"), hidden columns included. The filter may
// change the fields of e and reports whether it did.
type ErrorFilter interface {
	FilterError(e *ServerError) bool
}

// filterError runs the filter on an ErrorResponse message and returns the
// message to send instead, if the filter changed it.
func filterError(f ErrorFilter, msg []byte) ([]byte, bool) {
	var e pgproto3.ErrorResponse
	if e.Decode(msg[5:]) != nil {
		return nil, false
	}
	se := ServerError{Severity: e.Severity, Code: e.Code, Message: e.Message, Detail: e.Detail, Hint: e.Hint}
	if !f.FilterError(&se) {
		return nil, false
	}
	e.Code, e.Message, e.Detail, e.Hint = se.Code, se.Message, se.Detail, se.Hint
	out, err := e.Encode(nil)
	if err != nil {
		return nil, false
	}
	return out, true
}

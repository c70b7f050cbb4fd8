package proxy

import (
	"errors"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5/pgproto3"
)

// Error is an error pgcloak itself reports to a client, as an ErrorResponse
// with a SQLSTATE. Errors that come from PostgreSQL are relayed untouched
// and never pass through this type.
type Error struct {
	Severity string // ERROR (default) or FATAL
	Code     string // SQLSTATE, from pgerrcode
	Message  string
	Detail   string
	Hint     string
}

func (e *Error) Error() string { return e.Message + " (SQLSTATE " + e.Code + ")" }

func (e *Error) encode(dst []byte) []byte {
	sev := e.Severity
	if sev == "" {
		sev = "ERROR"
	}
	code := e.Code
	if code == "" {
		code = pgerrcode.InternalError
	}
	msg := &pgproto3.ErrorResponse{
		Severity:            sev,
		SeverityUnlocalized: sev,
		Code:                code,
		Message:             e.Message,
		Detail:              e.Detail,
		Hint:                e.Hint,
	}
	out, err := msg.Encode(dst)
	if err != nil { // only possible for absurd lengths; keep the stream valid
		return dst
	}
	return out
}

func fatal(code, message string) *Error {
	return &Error{Severity: "FATAL", Code: code, Message: message}
}

// Named constructors for the errors pgcloak raises on its own.
func errProtocol(msg string) *Error { return fatal(pgerrcode.ProtocolViolation, msg) }

func errTooManyClients() *Error {
	return fatal(pgerrcode.TooManyConnections, "sorry, too many clients already")
}

func errUpstreamUnavailable(detail string) *Error {
	e := fatal(pgerrcode.SQLClientUnableToEstablishSQLConnection, "pgcloak: cannot connect to the database server")
	e.Detail = detail
	return e
}

func errUpstreamLost() *Error {
	return fatal(pgerrcode.ConnectionFailure, "pgcloak: connection to the database server was lost")
}

func errShutdown() *Error {
	return fatal(pgerrcode.AdminShutdown, "terminating connection due to administrator command")
}

// asError turns any error into one pgcloak can report, keeping its SQLSTATE
// if it has one and using XX000 otherwise.
func asError(err error, severity string) *Error {
	var pe *Error
	if errors.As(err, &pe) {
		c := *pe
		if c.Severity == "" {
			c.Severity = severity
		}
		return &c
	}
	return &Error{Severity: severity, Code: pgerrcode.InternalError, Message: err.Error()}
}

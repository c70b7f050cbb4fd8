package proxy

import (
	"bytes"
	"strconv"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgcloak/pgcloak/audit"
)

// AccessLog receives the access records (design.md §6): one per statement
// execution, and one per connection event. *audit.Log and audit.Logs
// implement it.
type AccessLog interface {
	Emit(*audit.Record)
	// Admit is nil while new statements may run; otherwise the reason
	// they may not (fail_closed, and the log cannot be written).
	Admit() error
}

// WaitingLog is implemented by an AccessLog that can make the answers of a
// batch wait for their records: Written returns once the records emitted
// before it are written (audit.Options.WaitForWrite).
type WaitingLog interface {
	Written()
}

// The access logs pgcloak ships, with the optional interface the relay
// finds by type assertion.
var (
	_ AccessLog  = (*audit.Log)(nil)
	_ WaitingLog = (*audit.Log)(nil)
	_ AccessLog  = audit.Logs(nil)
	_ WaitingLog = audit.Logs(nil)
)

// Access records follow the wire. The policy describes each statement when
// it decides on it (Decision.Audit); the client-to-server side attaches the
// description to the request it forwards: a simple Query carries its
// statements, a Parse names its statement, a Bind takes the statement's
// description to its portal and an Execute takes the portal's. The
// server-to-client side completes them as the answers come: each
// CommandComplete or ErrorResponse of a Query belongs to its next
// statement, an Execute's to the Execute. So a statement prepared once and
// executed a thousand times gives a thousand records, each with the rows
// its CommandComplete reports.

// unknownStatement describes a statement nobody described: an Execute of a
// portal pgcloak did not see bound (a SQL-level cursor), say.
var unknownStatement = &audit.Statement{Kind: "unknown", Decision: audit.Allowed}

// completion is one statement execution the server has answered.
type completion struct {
	st        *audit.Statement
	protocol  clientMsg // Query, Execute or FunctionCall
	start     time.Time
	end       time.Time
	rows      int64 // -1: the command reports none
	suspended bool
	code      string // SQLSTATE of an error
	wireCheck int    // result columns the wire check sent as NULL
}

// countMasked counts the columns a wire-check mask sends as NULL.
func countMasked(mask []bool) int {
	n := 0
	for _, m := range mask {
		if m {
			n++
		}
	}
	return n
}

// completed records an answered execution of the request h.
func (w *wireState) completed(st *audit.Statement, protocol clientMsg, start time.Time, rows int64, suspended bool, code string) {
	if st == nil {
		st = unknownStatement
	}
	w.done = append(w.done, completion{st: st, protocol: protocol, start: start, end: w.now,
		rows: rows, suspended: suspended, code: code})
}

// simpleAnswered completes the next statement of the simple Query at the
// head of the queue.
func (w *wireState) simpleAnswered(h *wireReq, rows int64, code string) {
	var st *audit.Statement
	if w.qi < len(h.stmts) {
		st = h.stmts[w.qi]
	}
	start := h.at
	if w.qi > 0 {
		start = w.qAt
	}
	w.completed(st, clientQuery, start, rows, false, code)
	w.qi++
	w.qAt = w.now
}

// failed completes the request at the head with the error being relayed.
func (w *wireState) failed(h *wireReq) {
	if h == nil || !w.tracking || h.quiet {
		return
	}
	switch h.kind {
	case clientQuery:
		w.simpleAnswered(h, -1, w.errCode)
	case clientExecute, clientFunctionCall:
		w.completed(h.info, h.kind, h.at, -1, false, w.errCode)
	case clientParse, clientBind:
		// The statement failed before it ran (it does not parse, a
		// refusal, a bad parameter): still an attempt to record.
		if h.info != nil {
			w.completed(h.info, clientExecute, h.at, -1, false, w.errCode)
		}
	}
}

// abandon completes, when the session ends, the executions the server never
// answered: the statement in progress of each pending request.
func (w *wireState) abandon() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.tracking {
		return
	}
	w.now = time.Now()
	for _, h := range w.queue {
		switch h.kind {
		case clientQuery:
			if w.qi < len(h.stmts) && !h.quiet {
				w.simpleAnswered(&h, -1, pgerrcode.ConnectionFailure)
			}
			w.qi = 0
		case clientExecute, clientFunctionCall:
			if !h.quiet {
				w.completed(h.info, h.kind, h.at, -1, false, pgerrcode.ConnectionFailure)
			}
		}
	}
	w.queue = nil
}

// commandRows is the row count a CommandComplete tag reports ("SELECT 5",
// "INSERT 0 3", "UPDATE 2", "COPY 10"…), -1 for commands without one.
func commandRows(msg []byte) int64 {
	if len(msg) < 6 {
		return -1
	}
	tag := bytes.TrimRight(msg[5:], "\x00")
	sp := bytes.IndexByte(tag, ' ')
	if sp < 0 {
		return -1
	}
	switch string(tag[:sp]) {
	case "SELECT", "INSERT", "UPDATE", "DELETE", "MERGE", "COPY", "FETCH", "MOVE":
	default:
		return -1
	}
	last := tag[bytes.LastIndexByte(tag, ' ')+1:]
	n, err := strconv.ParseInt(string(last), 10, 64)
	if err != nil {
		return -1
	}
	return n
}

// errorCode is the SQLSTATE of an ErrorResponse, read without decoding the
// whole message.
func errorCode(msg []byte) string {
	body := msg[5:]
	for len(body) > 1 && body[0] != 0 {
		end := bytes.IndexByte(body[1:], 0)
		if end < 0 {
			break
		}
		if body[0] == errFieldCode {
			return string(body[1 : 1+end])
		}
		body = body[end+2:]
	}
	return pgerrcode.InternalError
}

// emitCompletions turns the executions completed in the last batch of
// server messages into access records and metrics.
func (s *session) emitCompletions() {
	w := s.wire
	if len(w.done) == 0 {
		return
	}
	log, m := s.srv.cfg.AccessLog, s.srv.cfg.Metrics
	for i := range w.done {
		c := &w.done[i]
		d := c.end.Sub(c.start)
		s.srv.top.add(c.st, d, c.code != "")
		if m != nil {
			m.statement(c.st, d)
		}
		if log == nil {
			continue
		}
		r := s.recordAt(audit.TypeStatement, c.end)
		r.Statement = c.st
		switch c.protocol {
		case clientQuery:
			r.Protocol = "simple"
		case clientExecute:
			r.Protocol = "extended"
		case clientFunctionCall:
			r.Protocol = "function_call"
		}
		if c.rows >= 0 {
			r.SetRows(c.rows)
		}
		r.Suspended = c.suspended
		r.DurationUS = max(d.Microseconds(), 1)
		r.SQLState = c.code
		r.WireCheck = c.wireCheck
		log.Emit(r)
	}
	clear(w.done)
	w.done = w.done[:0]
	if wl, ok := log.(WaitingLog); ok {
		wl.Written() // the answers wait for their records (audit.Options.WaitForWrite)
	}
}

// record starts a record with the session's fields, now.
func (s *session) record(typ string) *audit.Record { return s.recordAt(typ, time.Now()) }

func (s *session) recordAt(typ string, t time.Time) *audit.Record {
	if s.login == "" {
		s.login, s.database = s.params["user"], s.params["database"]
		if s.database == "" {
			s.database = s.login
		}
	}
	return &audit.Record{Time: t, Type: typ, Session: s.id, Login: s.login,
		Database: s.database, Application: s.appName, TLS: s.tls, Client: s.clientAddr}
}

// emit sends a connection record to the access log, if there is one.
func (s *session) emit(r *audit.Record) {
	if log := s.srv.cfg.AccessLog; log != nil {
		log.Emit(r)
	}
}

// authRecord records the outcome of a session's start-up.
func (s *session) authRecord(outcome, code string) {
	if m := s.srv.cfg.Metrics; m != nil {
		switch outcome {
		case audit.AuthRejected:
			m.authFailures.WithLabelValues("server").Inc()
		case audit.AuthRefused:
			m.authFailures.WithLabelValues("pgcloak").Inc()
		}
	}
	if s.srv.cfg.AccessLog == nil {
		return
	}
	r := s.record(audit.TypeAuth)
	r.Outcome, r.SQLState = outcome, code
	r.Statement = s.identity
	s.emit(r)
}

// Identity is implemented by a SessionPolicy that can say whom a session
// works for, for its auth record.
type Identity interface {
	Identity() audit.Statement // Role, Purpose and EndUser
}

// refuseForAudit replaces a statement-running message when the access log
// cannot take its record (fail_closed): a Query or FunctionCall becomes a
// refused Query; an Execute gets a failing Parse before it, so that the
// server skips it until Sync.
func (s *session) refuseForAudit(msg []byte, why error) (repl, pre []byte) {
	e := &Error{Code: pgerrcode.InsufficientResources,
		Message: "pgcloak: the access log cannot be written, so statements are refused until it can: " + why.Error(),
		Hint:    "pgcloak's access log is set to fail_closed; see its operational log and /readyz"}
	if m := s.srv.cfg.Metrics; m != nil {
		m.denials.WithLabelValues("audit_unavailable").Inc()
	}
	sql := RefusalSQL(e)
	if clientMsg(msg[0]) == clientExecute {
		pre, _ = (&pgproto3.Parse{Name: refusalStatement, Query: sql}).Encode(nil)
		s.wire.internal(clientParse, 0, refusalStatement)
		return nil, pre
	}
	repl, _ = (&pgproto3.Query{String: sql}).Encode(nil)
	return repl, nil
}

// refusalStatement names the statement a refused Execute's Parse would
// create; the Parse always fails, so it never exists.
const refusalStatement = "pgcloak_refused"

package proxy

import (
	"fmt"

	"github.com/jackc/pgerrcode"
)

// One session must not take from everyone what pgcloak holds for it: the
// prepared statements and portals it keeps by name, and the SQL text of
// its statements, are bounded (Config.MaxSessionStatements and
// MaxSessionStatementBytes). Close, DEALLOCATE and DISCARD shrink them. A
// session past a bound is ended with FATAL 54000 saying which; the
// others go on.

// overLimits says which bound the session has passed, if any. Client-to-
// server side.
func (s *session) overLimits() *Error {
	cfg := &s.srv.cfg
	w := s.wire
	n := max(len(s.prepared), len(s.portalGen), len(w.described), len(w.stmtInfo), len(w.portalInfo))
	limit := ""
	switch {
	case n > cfg.MaxSessionStatements:
		limit = "statements"
		n = cfg.MaxSessionStatements
	case s.preparedBytes > cfg.MaxSessionStatementBytes:
		limit = "statement_bytes"
		n = cfg.MaxSessionStatementBytes
	default:
		return nil
	}
	if m := cfg.Metrics; m != nil {
		m.overLimits.WithLabelValues(limit).Inc()
	}
	what := fmt.Sprintf("%d prepared statements or portals", n)
	if limit == "statement_bytes" {
		what = fmt.Sprintf("%d bytes of prepared statement text", n)
	}
	return fatal(pgerrcode.ProgramLimitExceeded, "pgcloak: this session holds more than "+what+
		" (limits.max_session_statements, limits.max_session_statement_bytes); close or deallocate what it no longer uses")
}

// forget drops what a session keeps of its prepared statements and
// portals after the server discarded them all (DISCARD ALL).
// Client-to-server side, at its next message.
func (s *session) forget() {
	w := s.wire
	clear(w.described)
	clear(w.stmtInfo)
	clear(w.portalInfo)
	clear(w.stmtAck)
	clear(w.portalAck)
	clear(s.prepared)
	clear(s.batch)
	clear(s.portalGen)
	clear(s.portalBatch)
	s.preparedBytes = 0
}

// forgetStatements drops what a session keeps of its named prepared
// statements after the server dropped them (DEALLOCATE ALL), and keeps
// its portals and its unnamed statement, which the server keeps.
// Client-to-server side.
func (s *session) forgetStatements() {
	for name := range s.prepared {
		if name != "" {
			s.dropStatement(name)
		}
	}
	for name := range s.wire.described {
		if name != "" {
			s.dropStatement(name)
		}
	}
}

// deallocated forgets the prepared statements a message's SQL deallocates
// ("" for all). Forgetting before the server confirms is safe: a Bind of
// a forgotten statement is refused.
func (s *session) deallocated(names []string) {
	for _, n := range names {
		if n == "" {
			s.forgetStatements()
			return
		}
		s.dropStatement(n)
	}
}

// dropStatement forgets one prepared statement. Client-to-server side.
func (s *session) dropStatement(name string) {
	if st := s.prepared[name]; st != nil {
		s.preparedBytes -= len(st.sql)
	}
	delete(s.prepared, name)
	delete(s.batch, name)
	w := s.wire
	delete(w.described, name)
	delete(w.stmtInfo, name)
	delete(w.stmtAck, name)
}

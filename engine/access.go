package engine

import (
	"context"
	"strings"

	"github.com/pgcloak/pgcloak/audit"
	"github.com/pgcloak/pgcloak/proxy"
	"github.com/pgcloak/pgcloak/rewrite"
)

// Every decision carries the descriptions of its statements for the access
// log (design.md §6): a rewrite's own (rewrite.Result.Statements, made from
// the walk the decision was made on), or, for what is decided without a
// rewrite, rewrite.Describer's, with the decision set here. The proxy adds
// what the server answered.

// rewrite is st.rewrite, counting cache hits and remembering the result
// for the access log.
func (s *session) rewrite(st *engineState, v *rewrite.Viewer, sql string, oids []uint32) *rewrite.Result {
	if r := st.results.get(resultKey(v, sql, oids)); r != nil {
		s.e.cacheHits.Add(1)
		s.lastRes = r
		return r
	}
	s.e.cacheMisses.Add(1)
	r := st.rewrite(v, sql, oids)
	s.lastRes = r
	return r
}

// audited adds to a decision of decide the descriptions of sql's
// statements.
func (s *session) audited(sql string, d proxy.Decision) proxy.Decision {
	res := s.lastRes
	s.lastRes = nil
	switch {
	case d.Action == proxy.Refuse && d.Err == errUnknownTooSoon.Err:
		d.Audit = denyAll(s.observe(sql), "fail_closed")
	case res != nil && d.Action == proxy.Refuse && len(res.Refused) == 0:
		d.Audit = denyAll(s.observe(sql), "prepared_stale")
	case res != nil && len(res.Statements) > 0:
		d.Audit = res.Statements
		if s.endUserLogin() != "" {
			d.Audit = withEndUser(d.Audit, s.endUserLogin())
		}
	case res != nil:
		// Refused as a whole (it does not parse, or cannot be printed).
		rule := "fail_closed"
		if len(res.Refused) > 0 {
			rule = res.Refused[0].Rule
		}
		d.Audit = denyAll(s.observe(sql), rule)
	case s.openErr != nil:
		d.Audit = denyAll(s.observe(sql), "login")
	case s.viewer == nil && d.Action != proxy.Refuse:
		d.Audit = s.observe(sql)
	case s.e.state.Load() == nil:
		d.Audit = denyAll(s.observe(sql), "not_ready")
	case d.Action == proxy.Refuse:
		d.Audit = denyAll(s.observe(sql), "delegation")
	default:
		d.Audit = s.observe(sql)
	}
	return d
}

// observe describes sql as the session's principal runs it, without the
// rules' decisions (unrestricted sessions, and statements pgcloak decides
// on without a rewrite).
func (s *session) observe(sql string) []*audit.Statement {
	d := &rewrite.Describer{Policy: s.pol, SearchPath: s.searchPath}
	if st := s.e.state.Load(); st != nil {
		d.Catalog = st.cat
	}
	if s.pr != nil {
		d.Role = s.pr.Role.Name
	}
	d.Purpose = strings.Join(s.purposes, ",")
	d.EndUser = s.endUserLogin()
	key := "observe\x00" + d.Role + "\x00" + d.Purpose + "\x00" + d.EndUser + "\x00" + strings.Join(d.SearchPath, ",")
	if s.pol != nil {
		key += "\x00" + s.pol.Version()
	}
	return d.Describe(sql, key)
}

func denyAll(in []*audit.Statement, rule string) []*audit.Statement {
	out := make([]*audit.Statement, len(in))
	for i, st := range in {
		c := *st
		c.Decision, c.Reason, c.ReasonCode = audit.Denied, rule, audit.ReasonOf(rule)
		out[i] = &c
	}
	return out
}

func withEndUser(in []*audit.Statement, endUser string) []*audit.Statement {
	if in[0].EndUser == endUser {
		return in
	}
	out := make([]*audit.Statement, len(in))
	for i, st := range in {
		c := *st
		c.EndUser = endUser
		out[i] = &c
	}
	return out
}

// functionCall describes a FunctionCall message, which pgcloak refuses to
// restricted roles.
func (s *session) functionCall(d proxy.Decision) proxy.Decision {
	st := &audit.Statement{Kind: "function_call", Decision: audit.Allowed, EndUser: s.endUserLogin()}
	if s.pr != nil {
		st.Role = s.pr.Role.Name
	}
	if d.Action == proxy.Refuse {
		st.Decision, st.Reason, st.ReasonCode = audit.Denied, audit.Rule(audit.ReasonFailClosed), audit.ReasonFailClosed
	}
	d.Audit = []*audit.Statement{st}
	return d
}

// CacheStats counts lookups in the rewrite cache since start.
func (e *Engine) CacheStats() (hits, misses int64) { return e.cacheHits.Load(), e.cacheMisses.Load() }

// ShapeStats counts lookups in the shape cache (rewrite.ShapeCache) since
// start: statements answered from their shape's template, statements whose
// shape had none yet, and statements of shapes that are not shared.
func (e *Engine) ShapeStats() (hits, misses, unshared int64) { return e.shapeCounts.Counts() }

// Observer is the Policy of a pgcloak that has no rules but keeps an access
// log: every session passes through unchanged, and its statements are
// described for the log.
type Observer struct{}

func (Observer) Open(context.Context, proxy.SessionInfo) (proxy.SessionPolicy, error) {
	return observed{}, nil
}

type observed struct{}

func (observed) Query(sql string) proxy.Decision { return proxy.Decision{Audit: observedSQL(sql)} }

func (observed) Parse(_, sql string, _ []uint32) proxy.Decision {
	return proxy.Decision{Audit: observedSQL(sql)}
}

func (observed) FunctionCall(uint32) proxy.Decision {
	return proxy.Decision{Audit: []*audit.Statement{{Kind: "function_call", Decision: audit.Allowed}}}
}

func (observed) Close() {}

func observedSQL(sql string) []*audit.Statement {
	return (&rewrite.Describer{}).Describe(sql, "observer")
}

// Identity says whom the session works for, for its auth record.
func (s *session) Identity() audit.Statement {
	st := audit.Statement{EndUser: s.endUserLogin(), Purpose: strings.Join(s.purposes, ",")}
	if s.pr != nil {
		st.Role = s.pr.Role.Name
	}
	return st
}

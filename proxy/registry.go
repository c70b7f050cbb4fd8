package proxy

import (
	"cmp"
	"slices"
	"sync"
	"time"

	"github.com/pgcloak/pgcloak/audit"
)

// The runtime view: what an operator sees of the sessions being served
// (PgBouncer's SHOW CLIENTS) and of the statements they run (ProxySQL's
// query digests). It shows no value a client sent: statements appear as
// their fingerprint and their normalized text (constants replaced by $n),
// as in the access log.

// SessionView is one session as the runtime view shows it.
type SessionView struct {
	ID       string    `json:"id"`
	Login    string    `json:"login,omitempty"`
	Database string    `json:"database,omitempty"`
	Role     string    `json:"role,omitempty"`
	Purpose  string    `json:"purpose,omitempty"`
	EndUser  string    `json:"end_user,omitempty"`
	Client   string    `json:"client"`
	TLS      bool      `json:"tls,omitempty"`
	Since    time.Time `json:"since"`
	// State is starting (authenticating), idle, active, idle in
	// transaction, idle in transaction (aborted) or terminating.
	State     string         `json:"state"`
	Statement *StatementView `json:"statement,omitempty"`
}

// StatementView is the statement a session is running: never its text
// with values.
type StatementView struct {
	Fingerprint string    `json:"fingerprint,omitempty"`
	Kind        string    `json:"kind,omitempty"`
	Query       string    `json:"query,omitempty"` // normalized: constants are $n
	Started     time.Time `json:"started"`
	DurationMS  float64   `json:"duration_ms"`
}

// Sessions lists the sessions being served, oldest first.
func (s *Server) Sessions() []SessionView {
	s.mu.Lock()
	list := make([]*session, 0, len(s.sessions))
	for sess := range s.sessions {
		list = append(list, sess)
	}
	s.mu.Unlock()
	now := time.Now()
	views := make([]SessionView, 0, len(list))
	for _, sess := range list {
		views = append(views, sess.view(now))
	}
	slices.SortFunc(views, func(a, b SessionView) int {
		return cmp.Or(a.Since.Compare(b.Since), cmp.Compare(a.ID, b.ID))
	})
	return views
}

// Terminate ends the session with this id as PostgreSQL's
// pg_terminate_backend does: its running statement is cancelled and the
// client gets FATAL 57P01. It reports whether the session was found.
func (s *Server) Terminate(id string) bool {
	s.mu.Lock()
	var found *session
	for sess := range s.sessions {
		if sess.id == id {
			found = sess
			break
		}
	}
	s.mu.Unlock()
	if found == nil {
		return false
	}
	found.log.Info("session terminated by an operator (admin API)")
	found.terminate()
	return true
}

// view reads what the session's goroutines publish: everything but the
// address and the start time only once the start-up is over.
func (s *session) view(now time.Time) SessionView {
	v := SessionView{ID: s.id, Client: s.clientAddr, Since: s.since, State: "starting"}
	if s.terminating.Load() {
		v.State = "terminating"
	}
	if !s.relaying.Load() {
		return v
	}
	// Written before relaying was set, never after.
	v.Login, v.Database, v.TLS = s.params["user"], s.params["database"], s.tls
	if v.Database == "" {
		v.Database = v.Login
	}
	if s.identity != nil {
		v.Role, v.Purpose, v.EndUser = s.identity.Role, s.identity.Purpose, s.identity.EndUser
	}
	if v.State == "terminating" {
		return v
	}
	switch {
	case s.busy():
		v.State = "active"
	case txState(s.txStatus.Load()) == txInBlock:
		v.State = "idle in transaction"
	case txState(s.txStatus.Load()) == txFailed:
		v.State = "idle in transaction (aborted)"
	default:
		v.State = "idle"
	}
	if v.State != "active" || s.wire == nil {
		return v
	}
	st, at := s.wire.current()
	if at.IsZero() {
		return v
	}
	sv := &StatementView{Started: at, DurationMS: float64(now.Sub(at).Microseconds()) / 1000}
	if st != nil {
		sv.Fingerprint, sv.Kind, sv.Query = st.Fingerprint, st.Kind, st.Query
		if st.EndUser != "" { // the statement's own, after a change of end user
			v.EndUser = st.EndUser
		}
	}
	v.Statement = sv
	return v
}

// current is the first statement the server has not answered yet, and
// when it was sent (zero when none is known).
func (w *wireState) current() (*audit.Statement, time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.tracking {
		return nil, time.Time{}
	}
	for i := range w.queue {
		h := &w.queue[i]
		if h.internal || h.quiet {
			continue
		}
		switch h.kind {
		case clientQuery:
			if i == 0 && w.qi > 0 {
				var st *audit.Statement
				if w.qi < len(h.stmts) {
					st = h.stmts[w.qi]
				}
				return st, w.qAt
			}
			return first(h.stmts), h.at
		case clientExecute, clientFunctionCall:
			return h.info, h.at
		}
	}
	return nil, time.Time{}
}

// Top statements: executions counted per role and fingerprint, bounded in
// size so that a client sending ever new statements cannot grow it.

// maxTopEntries bounds the statements kept; beyond it, executions of new
// ones are counted in one entry per role with the fingerprint "other".
const maxTopEntries = 5000

// TopEntry is one statement of the top view: how often a role ran it and
// for how long in all.
type TopEntry struct {
	Role        string  `json:"role"`
	Fingerprint string  `json:"fingerprint"`
	Kind        string  `json:"kind,omitempty"`
	Query       string  `json:"query,omitempty"` // normalized
	Calls       int64   `json:"calls"`
	Errors      int64   `json:"errors"`
	TotalMS     float64 `json:"total_ms"`
	MaxMS       float64 `json:"max_ms"`
}

type topKey struct{ role, fingerprint string }

type topStats struct {
	mu sync.Mutex
	m  map[topKey]*TopEntry
}

// add counts one answered execution.
func (t *topStats) add(st *audit.Statement, d time.Duration, failed bool) {
	if st == nil || st.Fingerprint == "" {
		return
	}
	k := topKey{st.Role, st.Fingerprint}
	ms := float64(d.Microseconds()) / 1000
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil {
		t.m = map[topKey]*TopEntry{}
	}
	e := t.m[k]
	if e == nil {
		if len(t.m) >= maxTopEntries {
			k.fingerprint = "other"
			e = t.m[k]
		}
		if e == nil {
			e = &TopEntry{Role: k.role, Fingerprint: k.fingerprint}
			if k.fingerprint != "other" {
				e.Kind, e.Query = st.Kind, st.Query
			}
			t.m[k] = e
		}
	}
	e.Calls++
	if failed {
		e.Errors++
	}
	e.TotalMS += ms
	e.MaxMS = max(e.MaxMS, ms)
}

// Top lists the statements run through this server by total time, at most
// limit per role (all when limit <= 0); role, when set, keeps that role's.
func (s *Server) Top(role string, limit int) []TopEntry {
	t := &s.top
	t.mu.Lock()
	list := make([]TopEntry, 0, len(t.m))
	for _, e := range t.m {
		if role == "" || e.Role == role {
			list = append(list, *e)
		}
	}
	t.mu.Unlock()
	slices.SortFunc(list, func(a, b TopEntry) int {
		return cmp.Or(cmp.Compare(a.Role, b.Role), cmp.Compare(b.TotalMS, a.TotalMS), cmp.Compare(a.Fingerprint, b.Fingerprint))
	})
	if limit <= 0 {
		return list
	}
	var out []TopEntry
	n := 0
	for i, e := range list {
		if i > 0 && e.Role != list[i-1].Role {
			n = 0
		}
		if n < limit {
			out = append(out, e)
		}
		n++
	}
	return out
}

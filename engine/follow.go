package engine

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgerrcode"
	pg_query "github.com/pganalyze/pg_query_go/v6"

	"github.com/pgcloak/pgcloak/proxy"
)

// A session's own state follows the server (proxy/follow.go): the end
// user, the SQL-level prepared statements and the cursors change when the
// server's answer shows that the statement that changes them ran
// (Decision.Ack with its CommandComplete, Ready with the transaction
// status), not when pgcloak decides on it. The callbacks run on the
// proxy's server-to-client goroutine; they only post events, which the
// session applies on its own goroutine before its next decision.
//
// The end-user switch is allowed only outside a transaction block, with
// nothing in flight: it cannot then be rolled back, and no statement
// decided for the old end user can run after it. It takes effect at the
// ReadyForQuery ('I') after its CommandComplete; statements sent before
// that are refused. DISCARD ALL and RESET ALL clear the end user. A new
// end user (or a rules reload) moves the session to a new generation: the
// proxy re-prepares protocol-level statements and refuses their old
// portals, and the session refuses EXECUTE of SQL-level statements and
// FETCH or MOVE of cursors opened under an older one.

// following is the part of a session the server-to-client side touches.
type following struct {
	mu        sync.Mutex
	events    []func()
	wantReady atomic.Bool // a switch waits for its ReadyForQuery
}

// post queues an event for the session's goroutine.
func (s *session) post(f func()) {
	s.f.mu.Lock()
	s.f.events = append(s.f.events, f)
	s.f.mu.Unlock()
}

// drain applies the events the server's answers posted.
func (s *session) drain() {
	s.f.mu.Lock()
	ev := s.f.events
	s.f.events = nil
	s.f.mu.Unlock()
	for _, f := range ev {
		f()
	}
}

// Ready implements proxy.Follower.
func (s *session) Ready(status byte) {
	if s.f.wantReady.Load() {
		s.post(func() { s.ready(status) })
	}
}

// switchReq is an end-user switch the server has not yet acknowledged.
type switchReq struct {
	value string // "" resets
	acked bool   // its CommandComplete came
}

// ready ends a pending switch at its ReadyForQuery: it takes effect when
// the server completed it outside a transaction block.
func (s *session) ready(status byte) {
	p := s.pending
	if p == nil {
		return
	}
	s.pending = nil
	s.f.wantReady.Store(false)
	if !p.acked || status != 'I' {
		return
	}
	s.switchTo(p.value)
}

// switchTo makes value the end user ("" for none) and starts a new
// generation.
func (s *session) switchTo(value string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s.endUser = value
	if err := s.resolve(ctx); err != nil {
		// Checked when decided; the end user may have vanished since
		// (a rules reload): the application's own role applies.
		s.e.log.Warn("end-user switch failed after the server acknowledged it; the application's own role applies", "err", err)
		s.endUser = ""
		s.openErr = s.resolve(ctx)
	}
	s.setViewer()
	s.gen++
}

// idle says whether the server has answered everything and is outside a
// transaction block.
func (s *session) idleNow() bool { return s.idle == nil || s.idle() }

// errPending refuses statements sent while an end-user switch awaits the
// server's answer.
var errPending = proxy.ErrRefused(pgerrcode.InsufficientPrivilege,
	"pgcloak: statement sent before the server answered the end-user switch; wait for its answer (rule: delegation)")

// cursorState is a SQL-level cursor the session declared.
type cursorState struct {
	gen  uint64
	hold bool
}

// maxCursors bounds the cursors a session keeps; past it, those not WITH
// HOLD are forgotten (their transactions have ended, or FETCH of them is
// refused).
const maxCursors = 1024

// sessionOp is a statement whose effect on the session pgcloak follows.
type sessionOp struct {
	kind byte // Declare, Fetch (or MOVE), Close, Prepare, eXecute, deAllocate, Reset all (DISCARD ALL, RESET ALL)
	name string
	hold bool // a cursor WITH HOLD
}

// opsKeywords are the words one of which a statement must contain to be of
// interest to parseOps.
var opsKeywords = []string{"declare", "fetch", "move", "close", "discard", "reset", "prepare", "execute", "deallocate"}

// parseOps finds, in order, the statements of sql whose effect on the
// session pgcloak follows; it parses only when a keyword occurs.
func parseOps(sql string) []sessionOp {
	lower := strings.ToLower(sql)
	found := false
	for _, k := range opsKeywords {
		found = found || strings.Contains(lower, k)
	}
	if !found {
		return nil
	}
	tree, err := pg_query.Parse(sql)
	if err != nil {
		return nil
	}
	var ops []sessionOp
	for _, raw := range tree.Stmts {
		switch x := raw.Stmt.GetNode().(type) {
		case *pg_query.Node_DeclareCursorStmt:
			ops = append(ops, sessionOp{kind: 'D', name: x.DeclareCursorStmt.Portalname,
				hold: x.DeclareCursorStmt.Options&cursorOptHold != 0})
		case *pg_query.Node_FetchStmt:
			ops = append(ops, sessionOp{kind: 'F', name: x.FetchStmt.Portalname})
		case *pg_query.Node_ClosePortalStmt:
			ops = append(ops, sessionOp{kind: 'C', name: x.ClosePortalStmt.Portalname})
		case *pg_query.Node_DiscardStmt:
			if x.DiscardStmt.Target == pg_query.DiscardMode_DISCARD_ALL {
				ops = append(ops, sessionOp{kind: 'R'})
			}
		case *pg_query.Node_VariableSetStmt:
			if x.VariableSetStmt.Kind == pg_query.VariableSetKind_VAR_RESET_ALL {
				ops = append(ops, sessionOp{kind: 'R'})
			}
		case *pg_query.Node_PrepareStmt:
			ops = append(ops, sessionOp{kind: 'P', name: x.PrepareStmt.Name})
		case *pg_query.Node_ExecuteStmt:
			ops = append(ops, sessionOp{kind: 'X', name: x.ExecuteStmt.Name})
		case *pg_query.Node_ExplainStmt:
			if e := x.ExplainStmt.Query.GetExecuteStmt(); e != nil {
				ops = append(ops, sessionOp{kind: 'X', name: e.Name})
			}
		case *pg_query.Node_CreateTableAsStmt:
			if e := x.CreateTableAsStmt.Query.GetExecuteStmt(); e != nil {
				ops = append(ops, sessionOp{kind: 'X', name: e.Name})
			}
		case *pg_query.Node_DeallocateStmt:
			name := x.DeallocateStmt.Name
			if x.DeallocateStmt.Isall {
				name = ""
			}
			ops = append(ops, sessionOp{kind: 'A', name: name})
		}
	}
	return ops
}

// follow checks a decided message against the session's cursors and
// prepared statements, statement by statement, and returns the decision
// with the callback that applies its effects when the server acknowledges
// them. What ends (CLOSE, DEALLOCATE) is forgotten at once, which is safe
// before the server confirms. What begins (DECLARE, PREPARE) counts once
// the server completed it, with the generation it was decided under, and
// before that only for the statements after it in the same Query, which
// the server runs only if it succeeded; a DECLARE also forgets the
// cursor of its name at once. So a DECLARE or PREPARE the server refuses,
// because an older cursor or statement of the name is open, never makes
// the older one usable under the generation in force.
func (s *session) follow(sql string, d proxy.Decision) proxy.Decision {
	if d.Action == proxy.Refuse {
		return d
	}
	ops := parseOps(sql)
	if len(ops) == 0 {
		return d
	}
	gen := s.gen
	var prepares []string
	var declares []sessionOp
	// Begun earlier in this message.
	declared, prepared := map[string]bool{}, map[string]bool{}
	reset := false
	for _, op := range ops {
		switch op.kind {
		case 'F':
			if c, ok := s.cursors[op.name]; !declared[op.name] && (!ok || c.gen != gen) {
				return proxy.ErrRefused(pgerrcode.InsufficientPrivilege, fmt.Sprintf(
					"pgcloak: cursor %q was not opened in this session under the privacy rules and end user in force; declare it again (rule: prepared_stale)", op.name))
			}
		case 'X':
			if g, ok := s.sqlPrepared[op.name]; !prepared[op.name] && (!ok || g != gen) {
				return proxy.ErrRefused(pgerrcode.InsufficientPrivilege, fmt.Sprintf(
					"pgcloak: prepared statement %q was not prepared in this session under the privacy rules and end user in force; PREPARE it again (rule: prepared_stale)", op.name))
			}
		case 'C':
			if op.name == "" {
				clear(s.cursors)
				clear(declared)
			}
			delete(s.cursors, op.name)
			delete(declared, op.name)
		case 'A':
			if op.name == "" {
				clear(s.sqlPrepared)
				clear(prepared)
			}
			delete(s.sqlPrepared, op.name)
			delete(prepared, op.name)
			d.Deallocates = append(d.Deallocates, op.name)
		case 'D':
			delete(s.cursors, op.name)
			if len(s.cursors)+len(declares) >= maxCursors {
				for n, c := range s.cursors {
					if !c.hold {
						delete(s.cursors, n)
					}
				}
				if len(s.cursors)+len(declares) >= maxCursors {
					return proxy.ErrRefused(pgerrcode.ProgramLimitExceeded, fmt.Sprintf(
						"pgcloak: a session may hold at most %d cursors WITH HOLD; close some (rule: fail_closed)", maxCursors))
				}
			}
			declared[op.name] = true
			declares = append(declares, op)
		case 'P':
			prepared[op.name] = true
			prepares = append(prepares, op.name)
		case 'R':
			reset = true
		}
	}
	if len(prepares) == 0 && len(declares) == 0 && !reset {
		return d
	}
	kp, kd := 0, 0
	d.Ack = func(tag string) {
		switch {
		case tag == "PREPARE" && kp < len(prepares):
			n := prepares[kp]
			kp++
			s.post(func() {
				if s.sqlPrepared == nil || len(s.sqlPrepared) >= maxCursors {
					s.sqlPrepared = map[string]uint64{}
				}
				s.sqlPrepared[n] = gen
			})
		case tag == "DECLARE CURSOR" && kd < len(declares):
			op := declares[kd]
			kd++
			s.post(func() {
				if s.cursors == nil {
					s.cursors = map[string]cursorState{}
				}
				s.cursors[op.name] = cursorState{gen: gen, hold: op.hold}
			})
		case reset && (tag == "DISCARD ALL" || tag == "RESET"):
			s.post(func() {
				clear(s.sqlPrepared)
				clear(s.cursors)
				if s.endUser != "" {
					s.switchTo("")
				}
			})
		}
	}
	return d
}

// cursorOptHold is PostgreSQL's CURSOR_OPT_HOLD.
const cursorOptHold = 0x0020

// endUserLogin is the login of the end user a delegating application
// named, for the access log: never the value it set (which may carry a
// signature).
func (s *session) endUserLogin() string {
	if s.endUser == "" || s.pr == nil {
		return ""
	}
	return s.pr.Login
}

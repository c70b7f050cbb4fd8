package proxy

import (
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/prometheus/client_golang/prometheus"
)

// Shape statements. A restricted session's simple Query that the policy
// answers from a statement shape's template comes with the template as a
// parameterized statement and the Query's literals as its parameters
// (Decision.Prepared): the decision the extended protocol's Parse of the
// template gets, which never sees a value. pgcloak prepares the template
// once per server connection and runs each such Query as
//
//	Bind (unnamed portal, the statement, text parameters), Describe
//	(the portal), Execute, Sync
//
// so that the server parses and plans the rewritten statement once
// instead of for every Query. The client gets what the Query would have
// got: the BindComplete and a NoData are kept from it; the RowDescription,
// rows, CommandComplete or ErrorResponse, and the ReadyForQuery (the
// Sync's, standing for the Query's) reach it. The request stays a Query
// in the queue (wirecheck.go), marked with the statement's name, so the
// wire check, the access log and the policy's acknowledgements see a
// simple Query as before.
//
// What differs, PostgreSQL's own differences between a constant and a
// parameter and between the two protocols: an expression of constants
// the planner folds (10 / 0, 2147483647 + 1, or a CASE branch never
// taken) raises its error while the statement runs under the generic
// plan, after the RowDescription, or not at all when the branch is never
// reached; an error in a parameter's input (a bad number) has no
// Position and a Where naming the parameter, the client's own value; a
// Query run so leaves the client's unnamed prepared statement in place,
// where a simple Query drops it; after a column's type changes under a
// prepared statement, a run before pgcloak's catalog snapshot follows
// fails with 0A000 "cached plan must not change result type" (once: the
// statement is prepared again; and the name of a template includes the
// snapshot's generation, so a new snapshot prepares anew).
//
// A shape is prepared at its second Query on a server connection (the
// first runs as text: a connection that runs each shape once, connect per
// request, pays no Parse). A statement is prepared by a Parse and a Sync
// of pgcloak's own, sent before a simple Query that goes to an idle server (every request
// answered, no extended-protocol message since the last Sync, outside a
// transaction block; a client that runs every statement in a transaction
// block gets it before its next BEGIN), and kept from the client: a
// template PostgreSQL cannot prepare (a string parameter whose type
// nothing determines, say) then fails without touching the client's
// session, and its Queries are sent as text. A cancel the Parse takes
// while it waits for a lock, with a request of the client's behind it,
// was meant for that request (the client's, through any pgcloak replica,
// an operator's, or a statement timeout): pgcloak sends a cancel again
// before the client hears more, on the server-to-client side (which
// waits for it, at worst twice the connect timeout). A statement timeout
// then reads "canceling statement due to user request". The statement counts as prepared once the
// server says ParseComplete; a Query waits for that before it runs as
// one, and is sent as text meanwhile and whenever the server may not be
// ready for the messages above: with requests of the client unanswered,
// or an extended-protocol error or a COPY pending. The server's FATAL
// ends the session as always.
//
// The server forgets the statements at DISCARD ALL or DEALLOCATE ALL
// (their CommandComplete), and at an error saying one does not exist. The
// names start with ShapePrefix; a client may not Parse, Bind, Describe or Close a
// statement of that name (nor PREPARE or DEALLOCATE it in SQL: package
// engine), so no statement of the client's ever stands under a name
// pgcloak binds. A statement the server confirmed under an older
// generation of the policy (a rules reload, another end user) is prepared
// again before use.

// ShapePrefix starts the name of every statement pgcloak prepares for a
// statement shape (rewrite.PreparedPrefix).
const ShapePrefix = "pgcloak_shape_"

// Bounds per server connection: the statements kept (the least recently
// used is closed past it), those the server failed to prepare, those run
// once as text, those waiting for an idle moment, and the Parses sent at
// one.
var maxShapeStmts = 64 // a variable for the tests

const (
	maxShapeFailed = 256
	maxShapeSeen   = 256
	maxShapeWanted = 16
	maxShapeProbes = 4
)

// shapeStmt is a statement the server confirmed.
type shapeStmt struct {
	gen  uint64 // the policy's generation when it was prepared
	used uint64 // wireState.shapeTick at its last use
}

// shapeCounts count, across sessions, the shape statements prepared, those
// the server failed to prepare, and the Queries run as one.
type shapeCounts struct {
	n       [3]atomic.Int64
	metrics [3]prometheus.Counter // the same, when metrics are on
}

// The events shapeCounts count.
const (
	evPrepared = iota
	evFailed
	evExecuted
)

func newShapeCounts(m *Metrics) *shapeCounts {
	c := &shapeCounts{}
	if m != nil {
		for i, e := range []string{"prepared", "failed", "executed"} {
			c.metrics[i] = m.shapeStatements.WithLabelValues(e)
		}
	}
	return c
}

func (c *shapeCounts) add(ev int) {
	if c == nil {
		return
	}
	c.n[ev].Add(1)
	if c.metrics[ev] != nil {
		c.metrics[ev].Inc()
	}
}

// ShapeStatements returns how many statements of statement shapes pgcloak
// prepared on server connections, how many the server failed to prepare,
// and how many Queries ran as one.
func (s *Server) ShapeStatements() (prepared, failed, executed int64) {
	return s.shapes.n[evPrepared].Load(), s.shapes.n[evFailed].Load(), s.shapes.n[evExecuted].Load()
}

// errShapeName refuses a client's statement named with ShapePrefix.
func errShapeName(name string) Decision {
	return ErrRefused(pgerrcode.InsufficientPrivilege, fmt.Sprintf(
		"pgcloak: statement names starting with %q are reserved for pgcloak; %q cannot be used (rule: fail_closed)", ShapePrefix, name))
}

// refuseShapeName returns a failing Parse to send before a client's Close
// or Describe of a statement named with ShapePrefix; nil for any other
// message.
func (s *session) refuseShapeName(msg []byte) []byte {
	if s.policy == nil || len(msg) < 6 || objectKind(msg[5]) != objectStatement || !strings.HasPrefix(cstring(msg[6:]), ShapePrefix) {
		return nil
	}
	return s.refuseMessage(errShapeName(cstring(msg[6:])).Err)
}

// shapeRun decides how a simple Query goes upstream when the policy
// offered pq (nil when it did not). run, when set, replaces the Query:
// the Bind, Describe, Execute and Sync of the prepared statement shape.
// Client-to-server side.
func (s *session) shapeRun(pq *PreparedQuery) (run []byte, shape string) {
	if pq == nil {
		return nil, ""
	}
	w, gen := s.wire, s.generation()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.shapes == nil {
		w.shapes, w.shapeFailed, w.shapeSeen, w.wanted = map[string]*shapeStmt{}, map[string]bool{}, map[string]bool{}, map[string]*PreparedQuery{}
	}
	if len(w.queue) == 0 && !w.skipping && !w.copyIn {
		if st := w.shapes[pq.Name]; st != nil && st.gen == gen {
			w.shapeTick++
			st.used = w.shapeTick
			w.counts.add(evExecuted)
			return encodeShapeRun(pq), pq.Name
		}
	}
	switch {
	case w.shapeFailed[pq.Name], len(w.wanted) >= maxShapeWanted:
	case !w.shapeSeen[pq.Name] && w.shapes[pq.Name] == nil:
		// Its first Query on this connection: prepared at the second,
		// so that a connection that runs a shape once (connect per
		// request) pays no Parse for it.
		if len(w.shapeSeen) >= maxShapeSeen {
			clear(w.shapeSeen)
		}
		w.shapeSeen[pq.Name] = true
	default:
		w.wanted[pq.Name] = pq
	}
	return nil, ""
}

// generation is the policy's generation (Generational), 0 for a policy
// whose decisions never change.
func (s *session) generation() uint64 {
	if g, ok := s.policy.(Generational); ok {
		return g.Generation()
	}
	return 0
}

// shapePrepare returns, to send before a simple Query, the Parses (and a
// Sync) preparing the statements wanted, and Closes of those they
// displace; nil unless the server is idle: every request answered, no
// extended-protocol message since the last Sync, outside a transaction
// block. A Parse that fails then fails alone, and its Sync commits
// nothing of the client's. Client-to-server side.
func (s *session) shapePrepare() (out []byte) {
	w := s.wire
	if len(w.wanted) == 0 || !s.idle { // both the client-to-server side's own
		return nil
	}
	gen := s.generation()
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.queue) != 0 || w.skipping || w.copyIn || txState(s.txStatus.Load()) != txIdle {
		return nil
	}
	n := 0
	for name, q := range w.wanted {
		if n == maxShapeProbes {
			break
		}
		delete(w.wanted, name)
		st := w.shapes[name]
		if st != nil && st.gen == gen || w.shapeFailed[name] {
			continue
		}
		if st != nil { // prepared under an older generation
			out = w.closeShape(out, name)
		} else if len(w.shapes) >= maxShapeStmts {
			out = w.closeShape(out, w.leastUsedShape())
		}
		out, _ = (&pgproto3.Parse{Name: name, Query: q.SQL, ParameterOIDs: q.OIDs}).Encode(out)
		w.queue = append(w.queue, wireReq{kind: clientParse, name: name, internal: true, shape: name, gen: gen})
		n++
	}
	if n > 0 {
		out, _ = (&pgproto3.Sync{}).Encode(out)
		w.queue = append(w.queue, wireReq{kind: clientSync, internal: true})
		s.sent.Add(1) // its ReadyForQuery counts as done
	}
	return out
}

// cancelMeantForClient says whether msg, an error answering pgcloak's own
// Parse at the head of the queue, is a cancel with a request of the
// client's waiting behind it. The Parse is no one else's: a cancel the
// client sent (through any pgcloak), an operator's, or a statement
// timeout that it took was meant for that request. Server-to-client side,
// under mu.
func (s *session) cancelMeantForClient(msg []byte) bool {
	w := s.wire
	h := w.head()
	if h == nil || errorCode(msg) != pgerrcode.QueryCanceled {
		return false
	}
	for i := 1; i < len(w.queue); i++ {
		if !w.queue[i].internal {
			return true
		}
	}
	return false
}

// closeShape appends a Close of the shape statement name, forgotten at
// once: nothing sent after it can use it.
func (w *wireState) closeShape(out []byte, name string) []byte {
	delete(w.shapes, name)
	out, _ = (&pgproto3.Close{ObjectType: byte(objectStatement), Name: name}).Encode(out)
	w.queue = append(w.queue, wireReq{kind: clientClose, sub: objectStatement, name: name, internal: true})
	return out
}

// leastUsedShape names the shape statement used longest ago.
func (w *wireState) leastUsedShape() string {
	var name string
	var used uint64
	for n, st := range w.shapes {
		if name == "" || st.used < used {
			name, used = n, st.used
		}
	}
	return name
}

// encodeShapeRun encodes the messages that run pq's prepared statement
// as a simple Query runs its statement.
func encodeShapeRun(pq *PreparedQuery) []byte {
	out, _ := (&pgproto3.Bind{PreparedStatement: pq.Name, Parameters: pq.Values}).Encode(nil)
	out, _ = (&pgproto3.Describe{ObjectType: byte(objectPortal)}).Encode(out)
	out, _ = (&pgproto3.Execute{}).Encode(out)
	out, _ = (&pgproto3.Sync{}).Encode(out)
	return out
}

// shapePrepared applies a ParseComplete: a Parse of pgcloak's own makes
// its statement usable, any other Parse of the name (which the client may
// not send) makes it unusable. Server-to-client side.
func (w *wireState) shapePrepared(h *wireReq) {
	switch {
	case h.internal && h.shape != "":
		w.shapes[h.shape] = &shapeStmt{gen: h.gen}
		w.counts.add(evPrepared)
	case len(w.shapes) > 0:
		delete(w.shapes, h.name)
	}
}

// shapeFailedAt applies an ErrorResponse to the request h it answers, for
// the shape statements; keep says the error answers a Parse of pgcloak's
// own, which the client does not see. Server-to-client side.
func (w *wireState) shapeFailedAt(h *wireReq, msg []byte) (keep bool) {
	if h == nil || h.shape == "" {
		return false
	}
	code := errorCode(msg)
	if h.kind == clientParse {
		// A statement the server cannot prepare is sent as text from
		// now on; one it could not prepare just now (cancelled, a lock
		// not granted, out of resources) is tried again. One of the name
		// may exist already, left on the server connection by an earlier
		// session (a pooler without a reset query): it is not trusted,
		// but closed and prepared again.
		switch {
		case code == pgerrcode.DuplicatePreparedStatement:
			w.shapes[h.shape] = &shapeStmt{gen: staleShape}
		case !transientError(code):
			if len(w.shapeFailed) >= maxShapeFailed {
				clear(w.shapeFailed)
			}
			w.shapeFailed[h.shape] = true
		}
		w.counts.add(evFailed)
		return !isFatal(msg) // the session's end: the client hears of it
	}
	switch st := w.shapes[h.shape]; {
	case st == nil:
	case code == pgerrcode.InvalidSQLStatementName:
		delete(w.shapes, h.shape) // the server does not have it
	case code == pgerrcode.FeatureNotSupported:
		// "cached plan must not change result type": a table changed
		// under the statement, which is prepared again before its next
		// use.
		st.gen = staleShape
	}
	return false
}

// staleShape is the generation of a shape statement to prepare again.
const staleShape = ^uint64(0)

// transientError says whether an error of SQLSTATE code may not come
// again: a transaction conflict, insufficient resources, a lock not
// granted, an operator's intervention, a system error.
func transientError(code string) bool {
	return len(code) == 5 && strings.Contains(" 40 53 55 57 58 ", " "+code[:2]+" ")
}

// shapeParseAtHead says whether the request at the head is a Parse of
// pgcloak's own for a shape, whose error the client does not see.
// Server-to-client side, under mu.
func (w *wireState) shapeParseAtHead() bool {
	w.settle()
	h := w.head()
	return h != nil && h.internal && h.kind == clientParse && h.shape != ""
}

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
// simple Query as before. One difference remains, PostgreSQL's own
// between a constant and a parameter: an error the server raises while
// it plans a Query, folding an expression of its constants (10 / 0,
// 2147483647 + 1), comes under the prepared statement's generic plan
// while the statement runs, so after the RowDescription, as any error of
// a running statement does.
//
// A statement is prepared by a Parse and a Sync of pgcloak's own, sent
// only while the server is idle (every request answered, outside a
// transaction block) and kept from the client: a template PostgreSQL
// cannot prepare (a string parameter whose type nothing determines, say)
// then fails without touching the client's session, and its Queries are
// sent as text. The statement counts as prepared once the server says
// ParseComplete; a Query waits for that before it runs as one, and is
// sent as text meanwhile and whenever the server may not be ready for the
// messages above: with requests of the client unanswered, or an extended-
// protocol error or a COPY pending.
//
// The server forgets the statements at DISCARD ALL or DEALLOCATE ALL
// (their CommandComplete), and at an error saying one does not exist. The
// names start with ShapePrefix; a client may not Parse, Bind or Close a
// statement of that name (nor PREPARE or DEALLOCATE it in SQL: package
// engine), so no statement of the client's ever stands under a name
// pgcloak binds. A statement the server confirmed under an older
// generation of the policy (a rules reload, another end user) is prepared
// again before use.

// ShapePrefix starts the name of every statement pgcloak prepares for a
// statement shape (rewrite.PreparedPrefix).
const ShapePrefix = "pgcloak_shape_"

// Bounds per server connection: the statements kept (the least recently
// used is closed past it), those the server failed to prepare, those
// waiting for an idle moment, and the Parses sent at one.
var maxShapeStmts = 256 // a variable for the tests

const (
	maxShapeFailed = 256
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
// of a statement named with ShapePrefix; nil for any other message.
func (s *session) refuseShapeName(msg []byte) []byte {
	if s.policy == nil || len(msg) < 6 || objectKind(msg[5]) != objectStatement || !strings.HasPrefix(cstring(msg[6:]), ShapePrefix) {
		return nil
	}
	return s.refuseMessage(errShapeName(cstring(msg[6:])).Err)
}

// shapeRun decides how a simple Query goes upstream when the policy
// offered pq (nil when it did not). run, when set, replaces the Query:
// the Bind, Describe, Execute and Sync of the prepared statement shape.
// pre goes before it: Parses (and a Sync) preparing the statements wanted,
// and Closes of those they displace. Client-to-server side.
func (s *session) shapeRun(pq *PreparedQuery) (pre, run []byte, shape string) {
	w := s.wire
	if pq == nil && len(w.wanted) == 0 {
		return nil, nil, ""
	}
	var gen uint64
	if g, ok := s.policy.(Generational); ok {
		gen = g.Generation()
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.shapes == nil {
		w.shapes, w.shapeFailed, w.wanted = map[string]*shapeStmt{}, map[string]bool{}, map[string]*PreparedQuery{}
	}
	if pq != nil {
		if len(w.queue) == 0 && !w.skipping && !w.copyIn {
			if st := w.shapes[pq.Name]; st != nil && st.gen == gen {
				w.shapeTick++
				st.used = w.shapeTick
				w.counts.add(evExecuted)
				return nil, encodeShapeRun(pq), pq.Name
			}
		}
		if !w.shapeFailed[pq.Name] && len(w.wanted) < maxShapeWanted {
			w.wanted[pq.Name] = pq
		}
	}
	// Prepare what is wanted while the server is idle: a Parse that fails
	// then fails alone, and its Sync commits nothing.
	if len(w.queue) != 0 || w.skipping || w.copyIn || txState(s.txStatus.Load()) != txIdle {
		return nil, nil, ""
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
			pre = w.closeShape(pre, name)
		} else if len(w.shapes) >= maxShapeStmts {
			pre = w.closeShape(pre, w.leastUsedShape())
		}
		pre, _ = (&pgproto3.Parse{Name: name, Query: q.SQL, ParameterOIDs: q.OIDs}).Encode(pre)
		w.queue = append(w.queue, wireReq{kind: clientParse, name: name, internal: true, shape: name, gen: gen})
		n++
	}
	if n > 0 {
		pre, _ = (&pgproto3.Sync{}).Encode(pre)
		w.queue = append(w.queue, wireReq{kind: clientSync, internal: true})
		s.sent.Add(1) // its ReadyForQuery counts as done
	}
	return pre, nil, ""
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
		return true
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

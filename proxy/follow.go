package proxy

import "bytes"

// pgcloak follows the server, not its own decisions: what it knows of a
// session (the request queue, the prepared statements and their
// generations, the policy's own state such as the end user) changes when
// the server's answer shows the change happened. This file models the
// server's rules for which requests it answers (PostgreSQL's
// src/backend/tcop/postgres.c and the protocol documentation):
//
//   - Parse, Bind, Describe, Close and Execute are answered one by one
//     (ParseComplete, BindComplete, a description, CloseComplete, the
//     rows and CommandComplete); Sync, Query and FunctionCall end with
//     ReadyForQuery; Flush, CopyData, CopyDone and CopyFail get no answer
//     of their own.
//   - An ErrorResponse to an extended-protocol message makes the server
//     ignore every message until the next Sync, a simple Query and a
//     FunctionCall included: none of them is answered, and none ran. The
//     Sync then gets ReadyForQuery. An error in a simple Query or at a
//     Sync does not.
//   - In COPY FROM STDIN (after CopyInResponse) the server ignores Flush
//     and Sync; CopyDone or CopyFail ends the copy. Copy messages outside
//     a copy are dropped.
//   - A failed Parse of the unnamed statement has already dropped the old
//     one; a failed Parse of a named one leaves the old one in place.
//
// The client-to-server side queues each request as it forwards it
// (wirecheck.go); the server-to-client side consumes the queue here.

// Follower is implemented by a SessionPolicy that keeps state the server
// must acknowledge. Ready is called with the status of every
// ReadyForQuery ('I', 'T' or 'E'), after the Ack callbacks of the
// statements it ends. Both run on the server-to-client goroutine, while
// the policy may be deciding on the other: a Follower guards what they
// touch.
type Follower interface {
	Ready(status byte)
}

// settle drops the requests at the head of the queue that the server
// answers with nothing: copy messages outside a copy.
func (w *wireState) settle() {
	for h := w.head(); h != nil && !w.copyIn && (h.kind == clientCopyDone || h.kind == clientCopyFail); h = w.head() {
		w.pop()
	}
}

// acknowledged applies a ParseComplete, BindComplete or CloseComplete to
// the request h it answers.
func (w *wireState) acknowledged(h *wireReq, typ serverMsg) {
	switch {
	case typ == serverParseComplete && h.kind == clientParse:
		if h.prep != nil {
			w.confirmed[h.name] = h.prep
		}
		w.shapePrepared(h)
	case typ == serverBindComplete && h.kind == clientBind:
		w.portals[h.name] = w.stmts[h.stmt]
		if len(w.boundGen) >= maxPortals {
			clear(w.boundGen)
		}
		w.boundGen[h.name] = h.gen
	case typ == serverCloseComplete && h.kind == clientClose:
		if h.sub == objectStatement {
			delete(w.stmts, h.name)
			delete(w.confirmed, h.name)
			delete(w.shapes, h.name)
		} else {
			delete(w.portals, h.name)
			delete(w.boundGen, h.name)
		}
	}
}

// errored applies an ErrorResponse to the request h it answers.
func (w *wireState) errored(h *wireReq) {
	if h == nil {
		return
	}
	switch h.kind {
	case clientParse, clientBind, clientDescribe, clientExecute, clientClose:
		if h.kind == clientParse && h.name == "" {
			delete(w.confirmed, "")
		}
		w.pop()
		w.skipping = true
	}
	// Query, FunctionCall and Sync stay at the head for their
	// ReadyForQuery.
}

// ready applies a ReadyForQuery: it ends the Sync, Query or FunctionCall
// at the head, and when the server was skipping, every request up to and
// including the Sync that ended it. internal says that the request it
// ended was a Sync pgcloak sent on its own (shapeprep.go): the client and
// the follower do not hear of it.
func (w *wireState) ready(status byte) (internal bool) {
	for h := w.head(); h != nil; h = w.head() {
		w.pop()
		if h.kind == clientSync || !w.skipping && (h.kind == clientQuery || h.kind == clientFunctionCall) {
			internal = h.internal
			break
		}
	}
	w.skipping = false
	w.copyIn = false
	if w.follower != nil && !internal {
		w.follower.Ready(status)
	}
	return internal
}

// copyEnded is called at the CommandComplete (ok) or ErrorResponse that
// may end a COPY FROM STDIN. The Syncs the client sent during the copy,
// before the CopyDone or CopyFail that ended it, were ignored by the
// server: they leave the queue with the marker. An error without a
// CopyFail may have come before those Syncs were read (a bad row), so
// they stay.
func (w *wireState) copyEnded(ok bool) {
	if !w.copyIn {
		return
	}
	w.copyIn = false
	for i := 1; i < len(w.queue); i++ {
		switch k := w.queue[i].kind; k {
		case clientSync:
			continue
		case clientCopyDone, clientCopyFail:
			if ok && k == clientCopyDone || !ok && k == clientCopyFail {
				w.queue = append(w.queue[:1], w.queue[i+1:]...)
			}
		}
		return
	}
}

// followAcks carries a policy's acknowledgement callback from a Parse to
// the portals bound to its statement and their Executes. Client-to-server
// side.
func (w *wireState) followAcks(r *wireReq, ack func(string)) {
	switch r.kind {
	case clientQuery:
		r.ack = ack
	case clientParse:
		r.ack = nil // a Parse runs nothing
		if ack != nil {
			w.stmtAck[r.name] = ack
		} else {
			delete(w.stmtAck, r.name)
		}
	case clientBind:
		if a := w.stmtAck[r.stmt]; a != nil {
			w.portalAck[r.name] = a
		} else {
			delete(w.portalAck, r.name)
		}
	case clientExecute:
		r.ack = w.portalAck[r.name]
	case clientClose:
		if r.sub == objectStatement {
			delete(w.stmtAck, r.name)
		} else {
			delete(w.portalAck, r.name)
		}
	}
}

// commandTag is the tag of a CommandComplete.
func commandTag(msg []byte) string {
	return string(bytes.TrimRight(msg[5:], "\x00"))
}

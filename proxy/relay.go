package proxy

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgcloak/pgcloak/audit"
)

// relay runs the message loop until either side ends. A session that is a
// pure byte relay goes to an event loop (evloop_linux.go) for as long as
// it stays one; the rest of the time, client-to-server runs in this
// goroutine and server-to-client in another. Each direction reads as many
// messages as one read brings and writes them with one write.
func (s *session) relay() {
	var up, down []byte
	if s.onEventLoop() {
		var ok bool
		if up, down, ok = s.relayOnLoop(); !ok {
			return
		}
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.serverToClient(down)
		s.client.Close()
	}()
	s.clientToServer(up)
	s.upstream.Close()
	wg.Wait()
}

// onEventLoop reports whether the session may be relayed by an event loop:
// nothing of it is decoded but transaction status and errors, and both
// connections are plain sockets with nothing buffered yet.
func (s *session) onEventLoop() bool {
	return !s.srv.cfg.GoroutineRelay && s.policy == nil && s.wire == nil && !s.tls &&
		s.srv.cfg.UpstreamTLS == nil && s.cr.r == s.cr.w && s.ur.r == s.ur.w
}

// busy reports whether the backend may be working on something the client
// sent.
func (s *session) busy() bool {
	return s.dirty.Load() || s.sent.Load() != s.done.Load()
}

// endUpstream stops the backend's work for a session that is going away:
// a running query is cancelled (closing the socket alone would let it run
// to completion), then the connection is closed.
func (s *session) endUpstream() {
	if s.busy() && s.cancel != nil {
		s.srv.forwardCancel(s.cancel)
	}
	s.upstream.Close()
}

// terminate ends the session from outside (server shutdown): the client
// gets FATAL 57P01 at the next message boundary.
func (s *session) terminate() {
	if s.terminating.Swap(true) {
		return
	}
	s.endReason.CompareAndSwap(nil, errShutdown())
	if !s.relaying.Load() {
		s.raw.Close() // still starting up: nothing to tell
		return
	}
	s.loopMu.Lock()
	ls := s.onLoop
	s.termOnEject = ls != nil
	s.loopMu.Unlock()
	if ls != nil {
		// The session's goroutine ends it once the loop lets go.
		ls.requestEject()
		return
	}
	s.endFromOutside()
}

// endFromOutside is terminate's work on the session's connections: the
// client gets the end reason when the upstream's end reaches the
// server-to-client side.
func (s *session) endFromOutside() {
	s.client.SetWriteDeadline(time.Now().Add(5 * time.Second))
	go s.endUpstream()
}

// clientToServer relays client messages, asking the policy about those that
// carry SQL. pending are messages already scanned (by the event loop) to
// write first; messages already buffered are handled before reading more.
func (s *session) clientToServer(pending []byte) {
	if len(pending) > 0 {
		if _, err := s.upstream.Write(pending); err != nil {
			s.endUpstream()
			return
		}
	}
	for buffered := s.cr.r < s.cr.w; ; buffered = false {
		if buffered {
			// Left by the event loop: handled before reading more.
		} else if err := s.cr.fill(); err != nil {
			if !s.terminating.Load() {
				s.clientDone.Store(true)
				s.endUpstream()
			}
			return
		}
		start := s.cr.r // first byte not yet written upstream
		out := s.cout[:0]
		terminate := false
		var now time.Time
		if s.wire != nil && s.wire.tracking {
			now = time.Now()
		}
		for {
			at := s.cr.r
			msg, ok, err := s.cr.next()
			if err != nil {
				s.endReason.CompareAndSwap(nil, errProtocol(err.Error()))
				s.endUpstream()
				return
			}
			if !ok {
				break
			}
			typ := clientMsg(msg[0])
			// Whether the server has answered everything and is outside a
			// transaction block, for the policy (SessionInfo.Idle).
			// done before txStatus: the server-to-client side stores the
			// status before it counts the ReadyForQuery, so a count that
			// includes it comes with its status, never an older one.
			done := s.done.Load()
			s.idle = txState(s.txStatus.Load()) == txIdle && !s.dirty.Load() && s.sent.Load() == done
			switch typ {
			case clientQuery, clientFunctionCall, clientSync:
				s.dirty.Store(false)
				s.sent.Add(1)
			case clientTerminate:
				// Before the write: the server closes as soon as it reads
				// Terminate, and that EOF must not read as a lost server.
				terminate = true
				s.clientDone.Store(true)
			default:
				s.dirty.Store(true)
			}
			if s.wire != nil {
				// The server dropped statements (DISCARD ALL, DEALLOCATE
				// ALL): before this message's own, if it prepares one.
				switch s.wire.discarded.Swap(0) {
				case discardedAll:
					s.forget()
				case discardedStatements:
					s.forgetStatements()
				}
			}
			var pre, post []byte
			var dd decided
			refused := false
			if log := s.srv.cfg.AccessLog; log != nil && (typ == clientQuery || typ == clientExecute || typ == clientFunctionCall) {
				if why := log.Admit(); why != nil {
					dd.repl, pre = s.refuseForAudit(msg, why)
					refused = true
				}
			}
			if !refused && s.policy != nil && (typ == clientQuery || typ == clientParse || typ == clientFunctionCall) {
				dd, err = s.decide(msg)
				if err != nil {
					s.endReason.CompareAndSwap(nil, errProtocol(err.Error()))
					s.endUpstream()
					return
				}
			}
			if s.wire != nil {
				switch typ {
				case clientBind:
					pre = s.reprepare(msg)
				case clientExecute:
					if !refused {
						pre = s.checkPortal(msg)
					}
				case clientClose:
					s.closed(msg)
					pre = s.refuseShapeName(msg)
				case clientDescribe:
					pre = s.refuseShapeName(msg)
				case clientSync:
					clear(s.batch)
					clear(s.portalBatch)
				}
				var shape string
				if typ == clientQuery && !refused {
					var run []byte
					if run, shape = s.shapeRun(dd.shape); run != nil {
						dd.repl = run
					}
					pre = s.shapePrepare()
				}
				post = s.wire.request(msg, dd.stmts, now, refused, dd.prep, dd.ack, shape)
				if e := s.overLimits(); e != nil {
					s.endReason.CompareAndSwap(nil, e)
					s.endUpstream()
					return
				}
			}
			if dd.repl != nil || pre != nil || post != nil {
				out = append(out, s.cr.buf[start:at]...)
				out = append(out, pre...)
				if dd.repl != nil {
					out = append(out, dd.repl...)
				} else {
					out = append(out, msg...)
				}
				out = append(out, post...)
				start = s.cr.r
			}
		}
		var err error
		if len(out) == 0 {
			if start < s.cr.r {
				_, err = s.upstream.Write(s.cr.buf[start:s.cr.r])
			}
		} else {
			out = append(out, s.cr.buf[start:s.cr.r]...)
			_, err = s.upstream.Write(out)
			s.cout = out[:0]
		}
		if terminate || err != nil {
			s.clientDone.Store(terminate)
			if err != nil && !terminate {
				s.endUpstream()
			}
			return
		}
	}
}

// decided is what the session policy's decision on one client message
// means for the relay.
type decided struct {
	repl  []byte             // the bytes to send in the message's place; nil: the message itself
	stmts []*audit.Statement // the policy's descriptions of its statements
	prep  *preparedStmt      // for a Parse: the statement, as decided
	ack   func(string)       // the policy's wish to hear of its CommandCompletes
	shape *PreparedQuery     // for a Query: the shape's prepared form the policy offered (shapeprep.go)
}

// decide asks the session policy about one SQL-carrying message.
func (s *session) decide(msg []byte) (out decided, err error) {
	var d Decision
	var parse pgproto3.Parse
	isParse := false // a Parse the policy decided on
	var t0 time.Time
	m := s.srv.cfg.Metrics
	if m != nil {
		t0 = time.Now()
	}
	switch clientMsg(msg[0]) {
	case clientQuery:
		var q pgproto3.Query
		if err := q.Decode(msg[5:]); err != nil {
			return out, malformed("Query", err)
		}
		d = s.policy.Query(q.String)
		if d.Action == Rewrite && d.Prepared != nil && strings.HasPrefix(d.Prepared.Name, ShapePrefix) {
			out.shape = d.Prepared
		}
	case clientParse:
		if err := parse.Decode(msg[5:]); err != nil {
			return out, malformed("Parse", err)
		}
		if strings.HasPrefix(parse.Name, ShapePrefix) {
			d = errShapeName(parse.Name)
			break
		}
		d = s.policy.Parse(parse.Name, parse.Query, parse.ParameterOIDs)
		isParse = true
	case clientFunctionCall:
		var fc pgproto3.FunctionCall
		if err := fc.Decode(msg[5:]); err != nil {
			return out, malformed("FunctionCall", err)
		}
		d = s.policy.FunctionCall(fc.Function)
		if d.Action == Rewrite { // a function call has no SQL to rewrite
			d = ErrRefused(pgerrcode.FeatureNotSupported, "pgcloak cannot rewrite a FunctionCall message")
		}
	}
	if m != nil {
		m.rewriteDuration.Observe(time.Since(t0).Seconds())
	}
	out.stmts, out.ack = d.Audit, d.Ack
	if s.wire != nil {
		s.deallocated(d.Deallocates)
	}
	if isParse {
		// After the deallocations: a Parse of DEALLOCATE ALL forgets
		// the others, not itself.
		out.prep = s.remember(&parse)
		if out.prep != nil {
			out.prep.once = d.Once
		}
	}
	if d.Action == Forward {
		return out, nil
	}
	sql := decidedSQL(d)
	if clientMsg(msg[0]) == clientParse {
		parse.Query = sql
		out.repl, err = parse.Encode(nil)
	} else {
		out.repl, err = (&pgproto3.Query{String: sql}).Encode(nil)
	}
	return out, err
}

// decidedSQL is the SQL to send for a Rewrite or Refuse decision.
func decidedSQL(d Decision) string {
	if d.Action == Refuse {
		// The refusal travels through the server as a statement that fails
		// at parse analysis, so that the server itself keeps the protocol
		// state a real error leaves (transaction aborted, messages
		// discarded until Sync); the server-to-client side swaps that error
		// for the refusal.
		return RefusalSQL(d.Err)
	}
	return d.SQL
}

// malformed describes a client message pgcloak could not decode; the
// decoder's own error ("EOF") does not say which message was wrong.
func malformed(name string, err error) error {
	return fmt.Errorf("invalid %s message: %s", name, strings.TrimSpace(err.Error()))
}

// serverToClient relays server messages, tracking transaction state and
// replacing the errors that stand for refusals. pending and what is
// buffered are as for clientToServer.
func (s *session) serverToClient(pending []byte) {
	if len(pending) > 0 {
		if _, err := s.client.Write(pending); err != nil {
			s.clientDone.Store(true)
			return
		}
	}
	for buffered := s.ur.r < s.ur.w; ; buffered = false {
		if buffered {
			// Left by the event loop: handled before reading more.
		} else if err := s.ur.fill(); err != nil {
			s.upstreamEnded()
			return
		}
		start := s.ur.r
		out := s.sout[:0]
		recancel := false
		if s.wire != nil {
			s.wire.mu.Lock()
			if s.wire.tracking {
				s.wire.now = time.Now()
			}
		}
		for {
			at := s.ur.r
			msg, ok, _ := s.ur.next()
			if !ok {
				break
			}
			switch serverMsg(msg[0]) {
			case serverReadyForQuery:
				s.txStatus.Store(uint32(msg[5]))
				s.done.Add(1)
			case serverErrorResponse:
				if s.wire != nil && s.wire.shapeParseAtHead() && !isFatal(msg) {
					// A Parse of pgcloak's own: kept from the client
					// (shapeprep.go). A cancel it took was meant for the
					// client's request behind it, which is cancelled
					// again before the client hears more.
					recancel = recancel || s.cancelMeantForClient(msg)
					break
				}
				if s.terminating.Load() {
					// Ended from outside (shutdown, an operator's kill):
					// the error of the statement pgcloak cancelled for
					// that is the session's end, and the client is told so.
					if e := s.endReason.Load(); e != nil {
						out = append(out, s.ur.buf[start:at]...)
						out = e.encode(out)
						s.client.Write(out)
						s.clientDone.Store(true)
						if s.wire != nil {
							s.wire.mu.Unlock()
						}
						return
					}
				}
				s.serverFatal = isFatal(msg)
				e := matchRefusal(msg)
				if e != nil {
					out = append(out, s.ur.buf[start:at]...)
					out = e.encode(out)
					start = s.ur.r
				} else if s.errFilter != nil {
					if repl, ok := filterError(s.errFilter, msg); ok {
						out = append(out, s.ur.buf[start:at]...)
						out = append(out, repl...)
						start = s.ur.r
					}
				}
				if s.wire != nil && s.wire.tracking {
					if e != nil {
						s.wire.errCode = e.Code
					} else {
						s.wire.errCode = errorCode(msg)
					}
				}
			case serverParameterStatus:
				if s.settings != nil {
					if e := s.watchSetting(msg); e != nil {
						// Nothing more of this session reaches either
						// side: the server's answers to what follows were
						// read under a setting pgcloak cannot parse with.
						s.upstream.Close()
						out = append(out, s.ur.buf[start:at]...)
						out = e.encode(out)
						s.client.SetWriteDeadline(time.Now().Add(5 * time.Second))
						s.client.Write(out)
						s.clientDone.Store(true)
						if s.wire != nil {
							s.wire.mu.Unlock()
						}
						return
					}
				}
				if s.wire != nil && s.wire.tracking {
					var ps pgproto3.ParameterStatus
					if ps.Decode(msg[5:]) == nil && ps.Name == "application_name" {
						s.appName = ps.Value
					}
				}
			}
			if s.wire != nil {
				if repl, changed := s.wire.response(msg, s.scratch); changed {
					if start <= at { // not already replaced above
						out = append(out, s.ur.buf[start:at]...)
						out = append(out, repl...)
						start = s.ur.r
					}
				}
			}
		}
		if s.wire != nil {
			s.wire.mu.Unlock()
			// Recorded before the client sees the answers.
			s.emitCompletions()
		}
		if recancel && s.cancel != nil {
			// The client cannot send anything after the cancelled
			// request before it hears of it, so this cancel finds that
			// request or nothing.
			s.srv.forwardCancel(s.cancel)
		}
		var err error
		if len(out) == 0 {
			if start < s.ur.r {
				_, err = s.client.Write(s.ur.buf[start:s.ur.r])
			}
		} else {
			out = append(out, s.ur.buf[start:s.ur.r]...)
			_, err = s.client.Write(out)
			s.sout = out[:0]
		}
		if err == nil {
			err = s.streamLarge()
		}
		if err != nil {
			s.clientDone.Store(true)
			return
		}
	}
}

// streamLarge copies a message larger than the read buffer (a big DataRow or
// CopyData) straight through instead of holding it in memory.
func (s *session) streamLarge() error {
	typ, total, ok := s.ur.pendingHeader()
	if !ok || total <= len(s.ur.buf) {
		return nil
	}
	switch serverMsg(typ) {
	case serverErrorResponse, serverNoticeResponse, serverReadyForQuery, serverRowDescription,
		serverParameterStatus, serverNotificationResponse, serverBackendKeyData:
		return nil // inspected (or may be): read whole
	case serverDataRow:
		if s.wire != nil && s.wire.checker != nil {
			return nil // may need masking: read whole
		}
		if s.wire != nil {
			s.wire.mu.Lock()
			if h := s.wire.head(); h != nil && h.kind == clientExecute {
				s.wire.rows++
			}
			s.wire.mu.Unlock()
		}
	}
	s.midStream = true // until the copy completes
	head := s.ur.take()
	if _, err := s.client.Write(head); err != nil {
		return err
	}
	if _, err := io.CopyN(s.client, s.upstream, int64(total-len(head))); err != nil {
		return err
	}
	s.midStream = false
	return nil
}

// upstreamEnded tells the client why the session ends, unless it already
// knows (it left, or the server sent its own FATAL) or cannot be told (the
// stream stopped in the middle of a message).
func (s *session) upstreamEnded() {
	if s.clientDone.Load() || s.midStream {
		return
	}
	e := s.endReason.Load()
	if e == nil {
		if s.serverFatal {
			return
		}
		e = errUpstreamLost()
	}
	s.client.SetWriteDeadline(time.Now().Add(5 * time.Second))
	s.client.Write(e.encode(nil))
}

// isFatal reports whether an ErrorResponse ends the session.
func isFatal(msg []byte) bool {
	var e pgproto3.ErrorResponse
	if e.Decode(msg[5:]) != nil {
		return false
	}
	return e.Severity == "FATAL" || e.Severity == "PANIC"
}

package proxy

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgcloak/pgcloak/audit"
)

// relay runs the message loop until either side ends: client-to-server in
// this goroutine, server-to-client in another. Each direction reads as many
// messages as one read brings and writes them with one write.
func (s *session) relay() {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.serverToClient()
		s.client.Close()
	}()
	s.clientToServer()
	s.upstream.Close()
	wg.Wait()
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
	s.client.SetWriteDeadline(time.Now().Add(5 * time.Second))
	go s.endUpstream()
}

// clientToServer relays client messages, asking the policy about those that
// carry SQL.
func (s *session) clientToServer() {
	for {
		if err := s.cr.fill(); err != nil {
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
			switch msg[0] {
			case 'Q', 'F', 'S':
				s.dirty.Store(false)
				s.sent.Add(1)
			case 'X':
				// Before the write: the server closes as soon as it reads
				// Terminate, and that EOF must not read as a lost server.
				terminate = true
				s.clientDone.Store(true)
			default:
				s.dirty.Store(true)
			}
			var repl, pre, post []byte
			var stmts []*audit.Statement
			changed, refused := false, false
			if log := s.srv.cfg.AccessLog; log != nil && (msg[0] == 'Q' || msg[0] == 'E' || msg[0] == 'F') {
				if why := log.Admit(); why != nil {
					repl, pre = s.refuseForAudit(msg, why)
					changed, refused = repl != nil, true
				}
			}
			if !refused && s.policy != nil && (msg[0] == 'Q' || msg[0] == 'P' || msg[0] == 'F') {
				repl, changed, stmts, err = s.decide(msg)
				if err != nil {
					s.endReason.CompareAndSwap(nil, errProtocol(err.Error()))
					s.endUpstream()
					return
				}
			}
			if s.wire != nil {
				if msg[0] == 'B' {
					pre = s.reprepare(msg)
				}
				post = s.wire.request(msg, stmts, now, refused)
			}
			if changed || pre != nil || post != nil {
				out = append(out, s.cr.buf[start:at]...)
				out = append(out, pre...)
				if changed {
					out = append(out, repl...)
				} else {
					out = append(out, msg...)
				}
				out = append(out, post...)
				start = s.cr.r
			}
		}
		var err error
		if len(out) == 0 {
			_, err = s.upstream.Write(s.cr.buf[start:s.cr.r])
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

// decide asks the session policy about one SQL-carrying message and returns
// the bytes to send in its place when the answer is not Forward, and the
// policy's descriptions of its statements.
func (s *session) decide(msg []byte) (repl []byte, changed bool, stmts []*audit.Statement, err error) {
	var d Decision
	var parse pgproto3.Parse
	var t0 time.Time
	m := s.srv.cfg.Metrics
	if m != nil {
		t0 = time.Now()
	}
	switch msg[0] {
	case 'Q':
		var q pgproto3.Query
		if err := q.Decode(msg[5:]); err != nil {
			return nil, false, nil, malformed("Query", err)
		}
		d = s.policy.Query(q.String)
	case 'P':
		if err := parse.Decode(msg[5:]); err != nil {
			return nil, false, nil, malformed("Parse", err)
		}
		d = s.policy.Parse(parse.Name, parse.Query, parse.ParameterOIDs)
		s.remember(&parse)
	case 'F':
		var fc pgproto3.FunctionCall
		if err := fc.Decode(msg[5:]); err != nil {
			return nil, false, nil, malformed("FunctionCall", err)
		}
		d = s.policy.FunctionCall(fc.Function)
		if d.Action == Rewrite { // a function call has no SQL to rewrite
			d = ErrRefused("0A000", "pgcloak cannot rewrite a FunctionCall message")
		}
	}
	if m != nil {
		m.rewriteDuration.Observe(time.Since(t0).Seconds())
	}
	stmts = d.Audit
	if d.Action == Forward {
		return nil, false, stmts, nil
	}
	sql := decidedSQL(d)
	if msg[0] == 'P' {
		parse.Query = sql
		repl, err = parse.Encode(nil)
	} else {
		repl, err = (&pgproto3.Query{String: sql}).Encode(nil)
	}
	return repl, true, stmts, err
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
// replacing the errors that stand for refusals.
func (s *session) serverToClient() {
	for {
		if err := s.ur.fill(); err != nil {
			s.upstreamEnded()
			return
		}
		start := s.ur.r
		out := s.sout[:0]
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
			switch msg[0] {
			case 'Z':
				s.txStatus.Store(uint32(msg[5]))
				s.done.Add(1)
			case 'E':
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
			case 'S':
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
		var err error
		if len(out) == 0 {
			_, err = s.client.Write(s.ur.buf[start:s.ur.r])
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
	switch typ {
	case 'E', 'N', 'Z', 'T', 'S', 'A', 'K':
		return nil // inspected (or may be): read whole
	case 'D':
		if s.wire != nil && s.wire.checker != nil {
			return nil // may need masking: read whole
		}
		if s.wire != nil {
			s.wire.mu.Lock()
			if h := s.wire.head(); h != nil && h.kind == 'E' {
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

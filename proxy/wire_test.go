package proxy_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/pgcloak/pgcloak/internal/pgtest"
	"github.com/pgcloak/pgcloak/proxy"
)

// wireTimeout bounds every raw-protocol exchange, so that a proxy that
// hangs fails the test instead of stalling it.
const wireTimeout = 20 * time.Second

// wireConn is a raw protocol client: it sends exactly the bytes and
// messages a test gives it and reports exactly what comes back.
type wireConn struct {
	t  testing.TB
	c  net.Conn
	fe *pgproto3.Frontend
}

func dialWire(t testing.TB, addr string) *wireConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, wireTimeout)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(wireTimeout))
	t.Cleanup(func() { c.Close() })
	return &wireConn{t: t, c: c, fe: pgproto3.NewFrontend(c, c)}
}

// startup logs in as a trust user and returns what the server said up to
// and including ReadyForQuery, normalized (see describe).
func (w *wireConn) startup(user string, params ...string) []string {
	w.t.Helper()
	p := map[string]string{"user": user, "database": pgtest.Database}
	for i := 0; i+1 < len(params); i += 2 {
		p[params[i]] = params[i+1]
	}
	w.send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersion30, Parameters: p})
	out, err := w.readUntil('Z', 1)
	if err != nil {
		w.t.Fatalf("start-up as %s: %v (so far: %v)", user, err, out)
	}
	return out
}

func (w *wireConn) send(msgs ...pgproto3.FrontendMessage) {
	w.t.Helper()
	for _, m := range msgs {
		w.fe.Send(m)
	}
	if err := w.fe.Flush(); err != nil {
		w.t.Fatalf("send: %v", err)
	}
}

func (w *wireConn) sendRaw(b []byte) {
	w.t.Helper()
	if _, err := w.c.Write(b); err != nil {
		w.t.Fatalf("send: %v", err)
	}
}

// readUntil reads until n messages of type typ (a backend message type
// byte) have arrived, and returns them all, normalized.
func (w *wireConn) readUntil(typ byte, n int) ([]string, error) {
	var out []string
	for seen := 0; seen < n; {
		msg, err := w.fe.Receive()
		if err != nil {
			return out, err
		}
		out = append(out, describe(msg))
		if messageType(msg) == typ {
			seen++
		}
	}
	return out, nil
}

// expectFatal reads until an ErrorResponse of severity FATAL, checks its
// SQLSTATE (a prefix: "57" accepts class 57) and that the connection
// closes right after it, and returns it.
func (w *wireConn) expectFatal(codePrefix string) *pgproto3.ErrorResponse {
	w.t.Helper()
	var seen []string
	for {
		msg, err := w.fe.Receive()
		if err != nil {
			w.t.Fatalf("want FATAL %s…, got %v after %v", codePrefix, err, seen)
		}
		seen = append(seen, describe(msg))
		e, ok := msg.(*pgproto3.ErrorResponse)
		if !ok || e.Severity != "FATAL" {
			continue
		}
		if !strings.HasPrefix(e.Code, codePrefix) {
			w.t.Fatalf("want FATAL %s…, got %v", codePrefix, seen)
		}
		got := *e
		if msg, err := w.fe.Receive(); err == nil {
			w.t.Fatalf("connection still open after FATAL %s: got %s", e.Code, describe(msg))
		} else if isTimeout(err) {
			w.t.Fatalf("connection not closed after FATAL %s", e.Code)
		}
		return &got
	}
}

// expectClosed checks that the peer closes the connection without saying
// anything more.
func (w *wireConn) expectClosed() {
	w.t.Helper()
	msg, err := w.fe.Receive()
	if err == nil {
		w.t.Fatalf("want the connection closed, got %s", describe(msg))
	}
	if isTimeout(err) {
		w.t.Fatal("connection not closed")
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// messageType is the type byte of a backend message.
func messageType(msg pgproto3.BackendMessage) byte {
	b, err := msg.Encode(nil)
	if err != nil || len(b) == 0 {
		return 0
	}
	return b[0]
}

// describe renders a backend message as JSON with the values that differ
// from one backend to the next (process id, cancel key, the OIDs of
// per-session temporary tables) zeroed.
func describe(msg pgproto3.BackendMessage) string {
	switch m := msg.(type) {
	case *pgproto3.BackendKeyData:
		c := *m
		c.ProcessID, c.SecretKey = 0, nil
		msg = &c
	case *pgproto3.NotificationResponse:
		c := *m
		c.PID = 0
		msg = &c
	case *pgproto3.RowDescription:
		c := pgproto3.RowDescription{Fields: append([]pgproto3.FieldDescription(nil), m.Fields...)}
		for i := range c.Fields {
			c.Fields[i].TableOID = 0
		}
		msg = &c
	}
	b, err := json.Marshal(msg)
	if err != nil {
		b = []byte("unencodable: " + err.Error())
	}
	return fmt.Sprintf("%T %s", msg, b)
}

// passPolicy opens a SessionPolicy that forwards everything, so that the
// proxy decodes every Query, Parse and FunctionCall (the path restricted
// roles take) without changing any.
type passPolicy struct{}

func (passPolicy) Open(context.Context, proxy.SessionInfo) (proxy.SessionPolicy, error) {
	return passSession{}, nil
}

type passSession struct{}

func (passSession) Query(string) proxy.Decision                   { return proxy.Decision{} }
func (passSession) Parse(string, string, []uint32) proxy.Decision { return proxy.Decision{} }
func (passSession) FunctionCall(uint32) proxy.Decision            { return proxy.Decision{} }
func (passSession) Close()                                        {}

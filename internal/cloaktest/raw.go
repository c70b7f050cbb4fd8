package cloaktest

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgcloak/pgcloak/examples/crm"
)

// Raw is a raw protocol client through pgcloak: the test writes the
// frontend messages itself (pipelines, COPY in the extended protocol).
type Raw struct {
	conn net.Conn
	fe   *pgproto3.Frontend
}

// DialRaw logs in as one of the sample's logins through the pgcloak at
// addr and hands over the connection after start-up.
func DialRaw(t testing.TB, addr, login string) *Raw {
	t.Helper()
	pc, err := pgconn.Connect(context.Background(), DSN(addr, login, crm.DemoPassword))
	if err != nil {
		t.Fatal(err)
	}
	return Hijack(t, pc)
}

// Hijack takes over a connection that pgconn started.
func Hijack(t testing.TB, pc *pgconn.PgConn) *Raw {
	t.Helper()
	hc, err := pc.Hijack()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hc.Conn.Close() })
	hc.Conn.SetDeadline(time.Now().Add(30 * time.Second))
	return &Raw{conn: hc.Conn, fe: hc.Frontend}
}

// RoundTrip sends msgs in one write and reads until n ReadyForQuery; it
// returns the answers, one a line: the message type, and the tag, row
// values or SQLSTATE.
func (w *Raw) RoundTrip(t testing.TB, n int, msgs ...pgproto3.FrontendMessage) string {
	t.Helper()
	w.Send(t, msgs...)
	return w.Read(t, func(m pgproto3.BackendMessage) bool {
		if _, ok := m.(*pgproto3.ReadyForQuery); ok {
			n--
		}
		return n == 0
	})
}

// Send writes msgs in one write.
func (w *Raw) Send(t testing.TB, msgs ...pgproto3.FrontendMessage) {
	t.Helper()
	for _, m := range msgs {
		w.fe.Send(m)
	}
	if err := w.fe.Flush(); err != nil {
		t.Fatal(err)
	}
}

// Read reads answers until last says the one read is the last, and
// returns them as RoundTrip does. The connection ending is a failure,
// unless last accepts a nil message.
func (w *Raw) Read(t testing.TB, last func(pgproto3.BackendMessage) bool) string {
	t.Helper()
	var b strings.Builder
	for {
		msg, err := w.fe.Receive()
		if err != nil {
			if last(nil) {
				fmt.Fprintf(&b, "ended: %v\n", err)
				return b.String()
			}
			t.Fatalf("%v after %s", err, b.String())
		}
		switch m := msg.(type) {
		case *pgproto3.CommandComplete:
			fmt.Fprintf(&b, "CommandComplete %s\n", m.CommandTag)
		case *pgproto3.DataRow:
			fmt.Fprintf(&b, "DataRow")
			for _, v := range m.Values {
				fmt.Fprintf(&b, " %s", v)
			}
			b.WriteString("\n")
		case *pgproto3.ErrorResponse:
			fmt.Fprintf(&b, "ErrorResponse %s %s\n", m.Code, m.Message)
		case *pgproto3.ReadyForQuery:
			fmt.Fprintf(&b, "ReadyForQuery %c\n", m.TxStatus)
		default:
			fmt.Fprintf(&b, "%T\n", msg)
		}
		if last(msg) {
			return b.String()
		}
	}
}

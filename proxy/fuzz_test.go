package proxy_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/pgcloak/pgcloak/internal/pgtest"
	"github.com/pgcloak/pgcloak/proxy"
)

// fuzzPolicy exercises every policy answer: SQL that mentions "refuse" is
// refused, SQL that mentions "rewrite" is rewritten, FunctionCalls of odd
// OIDs are refused, everything else is forwarded.
type fuzzPolicy struct{}

func (fuzzPolicy) Open(_ context.Context, _ proxy.SessionInfo) (proxy.SessionPolicy, error) {
	return fuzzSession{}, nil
}

type fuzzSession struct{}

func (fuzzSession) decide(sql string) proxy.Decision {
	switch {
	case strings.Contains(sql, "refuse"):
		return proxy.ErrRefused(pgerrcode.InsufficientPrivilege, "refused by the fuzz policy")
	case strings.Contains(sql, "rewrite"):
		return proxy.Decision{Action: proxy.Rewrite, SQL: "select 'rewritten'"}
	}
	return proxy.Decision{}
}

func (s fuzzSession) Query(sql string) proxy.Decision                { return s.decide(sql) }
func (s fuzzSession) Parse(_, sql string, _ []uint32) proxy.Decision { return s.decide(sql) }
func (fuzzSession) FunctionCall(oid uint32) proxy.Decision {
	if oid%2 == 1 {
		return proxy.ErrRefused(pgerrcode.InsufficientPrivilege, "refused by the fuzz policy")
	}
	return proxy.Decision{}
}
func (fuzzSession) Close() {}

// checkMessages checks that b is a sequence of whole, decodable backend
// messages; with truncatedOK the last one may be cut short.
func checkMessages(t *testing.T, b []byte, truncatedOK bool) {
	t.Helper()
	n, whole := 0, 0
	for rest := b; len(rest) > 0; n++ {
		if len(rest) < 5 || len(rest) < 1+int(binary.BigEndian.Uint32(rest[1:])) {
			if truncatedOK {
				break
			}
			t.Fatalf("answer ends inside a message: % x", rest[:min(len(rest), 32)])
		}
		l := int(binary.BigEndian.Uint32(rest[1:]))
		if l < 4 {
			t.Fatalf("message %d has length %d", n, l)
		}
		rest = rest[1+l:]
		whole = len(b) - len(rest)
	}
	fe := pgproto3.NewFrontend(bytes.NewReader(b[:whole]), io.Discard)
	for i := range n {
		if _, err := fe.Receive(); err != nil {
			t.Fatalf("message %d of the answer: %v", i, err)
		}
	}
}

// FuzzClientBytes sends arbitrary bytes after a valid start-up, through a
// pgcloak that relays them untouched and one whose policy decodes every
// SQL-carrying message, then half-closes. pgcloak must not panic, must
// answer only well-formed messages, and must close the session. The seed
// corpus is testdata/fuzz/FuzzClientBytes; `go test` runs it.
func FuzzClientBytes(f *testing.F) {
	const maxMsg = 64 << 10
	_, plain := startProxy(f, proxy.Config{MaxMessageSize: maxMsg})
	_, decoding := startProxy(f, proxy.Config{MaxMessageSize: maxMsg, Policy: fuzzPolicy{}})
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, addr := range []string{plain, decoding} {
			w := dialWire(t, addr)
			w.startup(pgtest.TrustUser)
			if len(data) > 0 {
				if _, err := w.c.Write(data); err != nil {
					t.Fatalf("send: %v", err)
				}
			}
			w.c.(*net.TCPConn).CloseWrite()
			// pgcloak closes; when it had not read everything we sent, the
			// close is a reset, which may lose the end of its answer.
			answer, err := io.ReadAll(w.c)
			reset := errors.Is(err, syscall.ECONNRESET)
			if err != nil && !reset {
				t.Fatalf("%s: %v", addr, err)
			}
			checkMessages(t, answer, reset)
		}
	})
}

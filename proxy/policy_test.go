package proxy_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/pgcloak/pgcloak/internal/pgtest"
	"github.com/pgcloak/pgcloak/proxy"
)

// testPolicy exercises the seam: it refuses SQL mentioning "forbidden",
// rewrites 'rewrite-me' to 'rewritten', refuses every FunctionCall, and
// refuses to open sessions for the password user.
type testPolicy struct {
	opened, closed atomic.Int32
	lastInfo       atomic.Pointer[proxy.SessionInfo]
}

func (p *testPolicy) Open(_ context.Context, info proxy.SessionInfo) (proxy.SessionPolicy, error) {
	if info.User == pgtest.PasswordUser {
		return nil, &proxy.Error{Code: pgerrcode.InvalidAuthorizationSpecification, Message: `pgcloak: login "password_user" is not mapped to a role`}
	}
	p.opened.Add(1)
	p.lastInfo.Store(&info)
	return &testSession{p}, nil
}

type testSession struct{ p *testPolicy }

func (s *testSession) decide(sql string) proxy.Decision {
	if strings.Contains(sql, "forbidden") {
		return proxy.ErrRefused(pgerrcode.InsufficientPrivilege, `pgcloak: statement refused by rule "test.forbidden"`)
	}
	if strings.Contains(sql, "'rewrite-me'") {
		return proxy.Decision{Action: proxy.Rewrite, SQL: strings.ReplaceAll(sql, "'rewrite-me'", "'rewritten'")}
	}
	return proxy.Decision{}
}

func (s *testSession) Query(sql string) proxy.Decision                { return s.decide(sql) }
func (s *testSession) Parse(_, sql string, _ []uint32) proxy.Decision { return s.decide(sql) }
func (s *testSession) FunctionCall(uint32) proxy.Decision {
	return proxy.ErrRefused(pgerrcode.FeatureNotSupported, "pgcloak: the FunctionCall message is refused")
}
func (s *testSession) Close() { s.p.closed.Add(1) }

func wantCode(t *testing.T, err error, code, msgPart string) {
	t.Helper()
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != code || !strings.Contains(pe.Message, msgPart) {
		t.Fatalf("want SQLSTATE %s with %q, got %v", code, msgPart, err)
	}
}

func TestPolicySeam(t *testing.T) {
	pol := &testPolicy{}
	_, addr := startProxy(t, proxy.Config{Policy: pol})
	ctx := context.Background()

	_, err := pgx.Connect(ctx, dsn(addr, pgtest.PasswordUser))
	wantCode(t, err, pgerrcode.InvalidAuthorizationSpecification, "not mapped")

	conn := connect(t, addr, pgtest.ScramUser)
	if info := pol.lastInfo.Load(); info == nil || info.User != pgtest.ScramUser || info.Database != pgtest.Database || info.ID == "" {
		t.Fatalf("SessionInfo = %+v", info)
	}

	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeExec, pgx.QueryExecModeCacheStatement} {
		t.Run(mode.String(), func(t *testing.T) {
			var s string
			if err := conn.QueryRow(ctx, "select 'rewrite-me'", mode).Scan(&s); err != nil || s != "rewritten" {
				t.Fatalf("rewrite: %q, %v", s, err)
			}
			_, err := conn.Exec(ctx, "select 'forbidden'", mode)
			wantCode(t, err, pgerrcode.InsufficientPrivilege, `rule "test.forbidden"`)

			// Inside a transaction a refusal aborts it, as a real error would.
			tx, err := conn.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			_, err = tx.Exec(ctx, "select 'forbidden'", mode)
			wantCode(t, err, pgerrcode.InsufficientPrivilege, "refused")
			_, err = tx.Exec(ctx, "select 1", mode)
			wantCode(t, err, pgerrcode.InFailedSQLTransaction, "aborted")
			if err := tx.Rollback(ctx); err != nil {
				t.Fatal(err)
			}
			var n int
			if err := conn.QueryRow(ctx, "select 5", mode).Scan(&n); err != nil || n != 5 {
				t.Fatalf("after rollback: %d, %v", n, err)
			}
		})
	}

	// A pipeline: the refused statement fails where it stands; what comes
	// before it ran, what comes after it is discarded until Sync.
	if _, err := conn.Exec(ctx, "create temp table seen (x int)"); err != nil {
		t.Fatal(err)
	}
	b := &pgx.Batch{}
	b.Queue("insert into seen values (1)")
	b.Queue("select 'forbidden'")
	b.Queue("insert into seen values (3)")
	err = conn.SendBatch(ctx, b).Close()
	wantCode(t, err, pgerrcode.InsufficientPrivilege, "refused")
	var count int
	if err := conn.QueryRow(ctx, "select count(*) from seen").Scan(&count); err != nil || count != 0 {
		// the batch runs in one implicit transaction: nothing stays
		t.Fatalf("rows after refused pipeline: %d, %v", count, err)
	}

	// Several statements in one Query: the whole string is decided.
	_, err = conn.PgConn().Exec(ctx, "insert into seen values (1); select 'forbidden'").ReadAll()
	wantCode(t, err, pgerrcode.InsufficientPrivilege, "refused")

	// Session close reaches the policy.
	conn.Close(ctx)
	pgtest.Eventually(t, 5*time.Second, "every session closed", func() (bool, string) {
		return pol.closed.Load() == pol.opened.Load(), fmt.Sprintf("opened %d sessions, closed %d", pol.opened.Load(), pol.closed.Load())
	})
}

package engine_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgcloak/pgcloak/engine"
	"github.com/pgcloak/pgcloak/examples/crm"
	"github.com/pgcloak/pgcloak/internal/pgtest"
	"github.com/pgcloak/pgcloak/proxy"
	"github.com/pgcloak/pgcloak/rules"
	"github.com/pgcloak/pgcloak/schema"
)

var (
	pg        *pgtest.Server
	proxyAddr string
	policy    *rules.Policy
	eng       *engine.Engine
	stats     *crm.Stats
)

const testCustomers = 2000

func TestMain(m *testing.M) {
	pgtest.Main(runner{m}, pgtest.Options{}, &pg)
}

// runner loads the sample CRM and starts pgcloak before the tests run.
type runner struct{ m *testing.M }

func (r runner) Run() int {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pg.DSN(pgtest.SuperUser, pgtest.Database))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	stats, err = crm.Load(ctx, conn, crm.Options{Customers: testCustomers, Seed: 7})
	if err == nil {
		err = schema.Setup(ctx, conn.Exec)
	}
	conn.Close(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "loading the sample CRM:", err)
		return 1
	}
	policy, err = rules.Parse("rules.yaml", crm.Rules)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	eng = engine.NewEngine(func() *rules.Policy { return policy }, pg.DSN(pgtest.SuperUser, pgtest.Database), nil)
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := eng.Start(cctx, time.Minute); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 1
	}
	srv := proxy.New(proxy.Config{Upstream: pg.Addr(), Policy: eng})
	go srv.Serve(l)
	defer srv.Shutdown(ctx)
	proxyAddr = l.Addr().String()
	return r.m.Run()
}

// as connects through pgcloak as one of the sample logins.
func as(t testing.TB, login string) *pgx.Conn {
	t.Helper()
	host, port, _ := net.SplitHostPort(proxyAddr)
	conn, err := pgx.Connect(context.Background(), fmt.Sprintf("host=%s port=%s user=%s password=%s dbname=%s sslmode=disable",
		host, port, login, crm.DemoPassword, pgtest.Database))
	if err != nil {
		t.Fatalf("connect as %s: %v", login, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// wantRefused fails unless err is a server error with code whose message
// contains part.
func wantRefused(t *testing.T, err error, code, part string) {
	t.Helper()
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != code || !strings.Contains(pe.Message, part) {
		t.Fatalf("want %s %q, got %v", code, part, err)
	}
}

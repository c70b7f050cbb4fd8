// Package cloaktest is the test fixture "PostgreSQL with the sample CRM and
// pgcloak in front".
//
// It loads the sample CRM (examples/crm) and pgcloak's own schema into a
// throwaway server from internal/pgtest, starts the session engine with a
// set of rules, and runs a pgcloak (proxy.Server) on a free loopback port in
// front of a server. Each piece is separate so that a test takes only what
// it needs: the proxy's tests run a pgcloak without the CRM, the access
// check's tests load the CRM without pgcloak's schema.
//
// It is not part of pgtest because it imports proxy, rewrite and rules,
// whose own tests import pgtest; for the same reason a test inside one of
// those packages (package rules, not rules_test) cannot use it.
package cloaktest

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgcloak/pgcloak/engine"
	"github.com/pgcloak/pgcloak/examples/crm"
	"github.com/pgcloak/pgcloak/internal/pgtest"
	"github.com/pgcloak/pgcloak/proxy"
	"github.com/pgcloak/pgcloak/rules"
	"github.com/pgcloak/pgcloak/schema"
)

// Options say what server to start and what to load into it.
type Options struct {
	PG  pgtest.Options
	CRM crm.Options
	// NoSchema leaves pgcloak's own schema (schema.Setup) out.
	NoSchema bool
}

// Load loads the sample CRM into s's database as the superuser (crm.Load
// replaces the sample tables) and, unless opts.NoSchema, installs
// pgcloak's own schema.
func Load(ctx context.Context, s *pgtest.Server, opts Options) (*crm.Stats, error) {
	conn, err := pgx.Connect(ctx, AdminDSN(s))
	if err != nil {
		return nil, err
	}
	defer conn.Close(ctx)
	stats, err := crm.Load(ctx, conn, opts.CRM)
	if err != nil {
		return nil, fmt.Errorf("loading the sample CRM: %w", err)
	}
	if !opts.NoSchema {
		if err := schema.Setup(ctx, conn.Exec); err != nil {
			return nil, fmt.Errorf("installing pgcloak's schema: %w", err)
		}
	}
	return stats, nil
}

// Start starts a server and loads the sample CRM into it.
func Start(opts Options) (*pgtest.Server, error) {
	s, err := pgtest.Start(opts.PG)
	if err != nil {
		return nil, err
	}
	if _, err := Load(context.Background(), s, opts); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

// Main is pgtest.Main with the sample CRM loaded before the tests run. Each
// of before then runs, with a context that ends when the tests are over
// (to start an engine, say); an error fails the package.
//
//	var pg *pgtest.Server
//	func TestMain(m *testing.M) { cloaktest.Main(m, cloaktest.Options{}, &pg) }
func Main(m interface{ Run() int }, opts Options, srv **pgtest.Server, before ...func(context.Context) error) {
	pgtest.Main(runner{m, opts, srv, before}, opts.PG, srv)
}

type runner struct {
	m      interface{ Run() int }
	opts   Options
	srv    **pgtest.Server
	before []func(context.Context) error
}

func (r runner) Run() int {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := Load(ctx, *r.srv, r.opts); err != nil {
		fmt.Fprintln(os.Stderr, "FAIL:", err)
		return 1
	}
	for _, f := range r.before {
		if err := f(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "FAIL:", err)
			return 1
		}
	}
	return r.m.Run()
}

// Shared is a server with the sample CRM that starts when a test first
// asks for it, for a package whose tests do not all need one. TestMain
// stops it.
type Shared struct {
	opts Options
	once sync.Once
	srv  *pgtest.Server
	err  error
}

// NewShared returns a server to start on first use.
func NewShared(opts Options) *Shared { return &Shared{opts: opts} }

// Get starts the server the first time and returns it; a server that
// cannot start fails the test.
func (sh *Shared) Get(t testing.TB) *pgtest.Server {
	t.Helper()
	sh.once.Do(func() { sh.srv, sh.err = Start(sh.opts) })
	if sh.err != nil {
		t.Fatal(sh.err)
	}
	return sh.srv
}

// Stop stops the server if it was started.
func (sh *Shared) Stop() {
	sh.once.Do(func() {})
	if sh.srv != nil {
		sh.srv.Stop()
	}
}

// AdminDSN is the superuser's connection string for s's database.
func AdminDSN(s *pgtest.Server) string { return s.DSN(pgtest.SuperUser, pgtest.Database) }

// Admin is a superuser connection to s, closed at the end of the test.
func Admin(t testing.TB, s *pgtest.Server) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), AdminDSN(s))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// Rules parses the sample CRM's shipped rules, or src when given (an
// edited copy, say).
func Rules(t testing.TB, src ...[]byte) *rules.Policy {
	t.Helper()
	b := crm.Rules
	if len(src) > 0 {
		b = src[0]
	}
	p, err := rules.Parse("rules.yaml", b)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// StartEngine starts the session engine on s's database with the rules
// current returns (nil log: discarded); it runs until ctx ends.
func StartEngine(ctx context.Context, s *pgtest.Server, current func() *rules.Policy, log *slog.Logger) (*engine.Engine, error) {
	eng := engine.NewEngine(current, AdminDSN(s), log)
	if err := eng.Start(ctx, time.Minute); err != nil {
		return nil, err
	}
	return eng, nil
}

// Engine starts the session engine on s's database with pol for the rest
// of the test.
func Engine(t testing.TB, s *pgtest.Server, pol *rules.Policy, log *slog.Logger) *engine.Engine {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	eng, err := StartEngine(ctx, s, func() *rules.Policy { return pol }, log)
	if err != nil {
		t.Fatal(err)
	}
	return eng
}

// Cloak is a pgcloak running in a test.
type Cloak struct {
	*proxy.Server
	Addr string // where it listens, host:port

	done chan error
	once sync.Once
}

// Serve runs a pgcloak with cfg (cfg.Upstream is the server behind it) on a
// free loopback port until the test ends or Stop.
func Serve(t testing.TB, cfg proxy.Config) *Cloak {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &Cloak{Server: proxy.New(cfg), Addr: l.Addr().String(), done: make(chan error, 1)}
	go func() { c.done <- c.Server.Serve(l) }()
	t.Cleanup(c.Stop)
	return c
}

// Stop shuts the pgcloak down, giving sessions 5 seconds, and waits until
// it stopped serving; later calls do nothing.
func (c *Cloak) Stop() {
	c.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c.Shutdown(ctx)
		<-c.done
	})
}

// DSN is a connection string through the pgcloak for user with password
// (crm.DemoPassword for the sample CRM's logins), to the test database,
// without TLS.
func (c *Cloak) DSN(user, password string) string { return DSN(c.Addr, user, password) }

// DSN is a connection string through the pgcloak at addr (host:port) for
// user with password, to the test database, without TLS.
func DSN(addr, user, password string) string {
	host, port, _ := net.SplitHostPort(addr)
	return fmt.Sprintf("host=%s port=%s user=%s password=%s dbname=%s sslmode=disable",
		host, port, user, password, pgtest.Database)
}

// FailingFile returns a path for an access log that is a symlink to
// /dev/full (every write fails with ENOSPC, as on a full disk) and a
// function that points it at a working file instead.
func FailingFile(t testing.TB) (path string, heal func()) {
	t.Helper()
	dir := t.TempDir()
	path = filepath.Join(dir, "audit.log")
	if err := os.Symlink("/dev/full", path); err != nil {
		t.Fatal(err)
	}
	return path, func() {
		tmp := filepath.Join(dir, "new")
		if err := os.Symlink(filepath.Join(dir, "real.log"), tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
}

// Front is a package's server with the sample CRM, an engine on the
// shipped rules and a pgcloak in front of it (MainFront).
type Front struct {
	PG     *pgtest.Server
	Policy *rules.Policy
	Engine *engine.Engine
	Addr   string // the pgcloak's address, host:port
}

// MainFront is Main with customers sample customers (seed 7), an engine on
// the shipped rules and a pgcloak serving until the tests are over; ready
// gets them before the first test runs.
//
//	func TestMain(m *testing.M) { cloaktest.MainFront(m, 2000, func(f *cloaktest.Front) { … }) }
func MainFront(m interface{ Run() int }, customers int, ready func(*Front)) {
	f := &Front{}
	Main(m, Options{CRM: crm.Options{Customers: customers, Seed: 7}}, &f.PG, func(ctx context.Context) error {
		pol, err := rules.Parse("rules.yaml", crm.Rules)
		if err != nil {
			return err
		}
		f.Policy = pol
		if f.Engine, err = StartEngine(ctx, f.PG, func() *rules.Policy { return pol }, nil); err != nil {
			return err
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		srv := proxy.New(proxy.Config{Upstream: f.PG.Addr(), Policy: f.Engine})
		go srv.Serve(l)
		go func() {
			<-ctx.Done()
			srv.Shutdown(context.Background())
		}()
		f.Addr = l.Addr().String()
		ready(f)
		return nil
	})
}

// As connects through the pgcloak as one of the sample's logins, for the
// rest of the test.
func (f *Front) As(t testing.TB, login string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), DSN(f.Addr, login, crm.DemoPassword))
	if err != nil {
		t.Fatalf("connect as %s: %v", login, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

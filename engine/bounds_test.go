package engine_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgcloak/pgcloak/engine"
	"github.com/pgcloak/pgcloak/examples/crm"
	"github.com/pgcloak/pgcloak/internal/pgtest"
	"github.com/pgcloak/pgcloak/proxy"
	"github.com/pgcloak/pgcloak/rules"
)

// boundedCloak is a pgcloak with its own engine and limits.
func boundedCloak(t *testing.T, pol *rules.Policy, l engine.Limits) (*engine.Engine, func(login string) *pgx.Conn) {
	t.Helper()
	eng := engine.NewEngine(func() *rules.Policy { return pol }, pg.DSN(pgtest.SuperUser, pgtest.Database), slog.New(slog.DiscardHandler))
	eng.SetLimits(l)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := eng.Start(ctx, time.Hour); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := proxy.New(proxy.Config{Upstream: pg.Addr(), Policy: eng})
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	host, port, _ := net.SplitHostPort(ln.Addr().String())
	return eng, func(login string) *pgx.Conn {
		c, err := pgx.Connect(context.Background(), fmt.Sprintf("host=%s port=%s user=%s password=%s dbname=%s sslmode=disable",
			host, port, login, crm.DemoPassword, pgtest.Database))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close(context.Background()) })
		return c
	}
}

// The rewrite cache is bounded in bytes, and large refused or unparsable
// statements are not kept at all; meanwhile another session is answered.
func TestRewriteCacheBytes(t *testing.T) {
	const budget = 1 << 20
	eng, as := boundedCloak(t, policy, engine.Limits{CacheBytes: budget})
	ctx := context.Background()
	mallory, other := as("alice"), as("bob")
	huge := strings.Repeat("x", 512<<10)
	for i := range 20 {
		// 512 KiB that does not parse, and 512 KiB refused as a whole.
		mallory.Exec(ctx, fmt.Sprintf("SELEC %d %s", i, huge), pgx.QueryExecModeSimpleProtocol)
		mallory.Exec(ctx, fmt.Sprintf("SELECT %d FROM commissions WHERE '%s' <> ''", i, huge), pgx.QueryExecModeSimpleProtocol)
		if n := eng.CacheBytes(); n > 64<<10 {
			t.Fatalf("after %d large refused statements the cache holds %d bytes", i+1, n)
		}
		var one int
		if err := other.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
			t.Fatal(err)
		}
	}
	// Many small distinct statements, each of its own shape (a comment is
	// part of it): the cache stays within its budget.
	peak := int64(0)
	pad := strings.Repeat("y", 2000)
	for i := range 1500 {
		if _, err := mallory.Exec(ctx, fmt.Sprintf("SELECT count(*) /* %d */ FROM customers WHERE last_name <> '%s%d'", i, pad, i),
			pgx.QueryExecModeSimpleProtocol); err != nil {
			t.Fatal(err)
		}
		peak = max(peak, eng.CacheBytes())
	}
	if peak > budget || peak < budget/4 {
		t.Fatalf("cache peaked at %d bytes for a budget of %d", peak, budget)
	}
}

// A statement naming relations the catalog lacks has the catalog reloaded
// for its session a few times, then is refused, instead of reloading it for
// everyone each time; other sessions keep their own allowance and are
// answered.
func TestUnknownRelationRefreshBounded(t *testing.T) {
	// Unknown names reach the catalog only where unlisted tables are
	// allowed (or the role may create temporary ones).
	pol, err := rules.Parse("rules.yaml", []byte(strings.Replace(string(crm.Rules), "unlisted_tables: deny", "unlisted_tables: allow", 1)))
	if err != nil {
		t.Fatal(err)
	}
	eng, as := boundedCloak(t, pol, engine.Limits{UnknownRefreshInterval: time.Hour})
	ctx := context.Background()
	mallory, other := as("alice"), as("bob")
	refused := 0
	for i := range 50 {
		_, err := mallory.Exec(ctx, fmt.Sprintf("SELECT * FROM no_such_relation_%d", i))
		if err != nil && strings.Contains(err.Error(), "54000") {
			refused++
		}
	}
	done, nrefused := eng.UnknownRefreshes()
	if done != 5 || nrefused != 45 || refused != 45 {
		t.Fatalf("refreshes %d, refused %d (client saw %d)", done, nrefused, refused)
	}
	var one int
	if err := other.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Exec(ctx, "SELECT * FROM no_such_relation_x"); err == nil || strings.Contains(err.Error(), "54000") {
		t.Fatalf("another session's own allowance: %v", err)
	}
}

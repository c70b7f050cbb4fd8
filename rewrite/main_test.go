package rewrite_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/pgcloak/pgcloak/catalog"
	"github.com/pgcloak/pgcloak/engine"
	"github.com/pgcloak/pgcloak/examples/crm"
	"github.com/pgcloak/pgcloak/internal/cloaktest"
	"github.com/pgcloak/pgcloak/internal/pgtest"
	"github.com/pgcloak/pgcloak/proxy"
	"github.com/pgcloak/pgcloak/rewrite"
	"github.com/pgcloak/pgcloak/rules"
)

var (
	front     *cloaktest.Front
	pg        *pgtest.Server
	proxyAddr string
	policy    *rules.Policy
	eng       *engine.Engine
)

const testCustomers = 2000

// TestMain loads the sample CRM and starts pgcloak with the shipped rules
// before the tests run.
func TestMain(m *testing.M) {
	cloaktest.MainFront(m, testCustomers, func(f *cloaktest.Front) {
		front, pg, policy, eng, proxyAddr = f, f.PG, f.Policy, f.Engine, f.Addr
	})
}

// as connects through pgcloak as one of the sample logins.
func as(t testing.TB, login string) *pgx.Conn { return front.As(t, login) }

// direct connects straight to the server as the superuser, for expected
// answers computed from the raw data.
func direct(t testing.TB) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), pg.DSN(pgtest.SuperUser, pgtest.Database))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func TestSmoke(t *testing.T) {
	ctx := context.Background()
	alice := as(t, "alice")
	rows, err := alice.Query(ctx, "select distinct region from customers")
	if err != nil {
		t.Fatal(err)
	}
	regions, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || len(regions) != 1 || regions[0] != "north" {
		t.Fatalf("alice sees regions %v, %v", regions, err)
	}
	var email, nid *string
	if err := alice.QueryRow(ctx, "select email, national_id from customers limit 1").Scan(&email, &nid); err != nil {
		t.Fatal(err)
	}
	t.Logf("email %v national_id %v", deref(email), deref(nid))
}

func deref(s *string) string {
	if s == nil {
		return "NULL"
	}
	return *s
}

// coldRewriter rewrites as a session of one login would, with no result
// cache: the rewriter alone, against a catalog snapshot of its own
// (search_path public), rendering refusals as the proxy does.
type coldRewriter struct {
	cat  *rewrite.Catalog
	ctx  *rewrite.Viewer
	subq *rewrite.SubqueryCache
}

// newColdRewriter reads the catalog of the database conn is connected to
// and maps login to its principal under pol, as a session without start-up
// parameters would.
func newColdRewriter(ctx context.Context, conn *pgx.Conn, pol *rules.Policy, login string) (*coldRewriter, error) {
	cat, err := catalog.Load(ctx, conn.Query)
	if err != nil {
		return nil, err
	}
	pr, err := rules.Resolve(ctx, pol, conn.QueryRow, login)
	if err != nil {
		return nil, err
	}
	if pr.Unrestricted() {
		return nil, fmt.Errorf("unrestricted login %s: nothing to rewrite", login)
	}
	purposes := pr.Role.Purposes
	if pr.Role.PurposeFixed && len(purposes) > 0 {
		purposes = purposes[:1]
	}
	return &coldRewriter{cat: cat, ctx: rewrite.NewViewer(pol, pr, purposes, []string{"public"}), subq: rewrite.NewSubqueryCache()}, nil
}

// Cold rewrites sql; the policy subqueries are cached across calls.
func (c *coldRewriter) Cold(sql string) *rewrite.Result {
	return rewrite.Rewrite(c.cat, c.ctx, c.subq, sql, refusalSQL)
}

// refusalSQL renders a refusal as the proxy does.
func refusalSQL(r *rewrite.Refusal) string {
	return proxy.RefusalSQL(&proxy.Error{Code: r.Code, Message: r.Message})
}

// cloakWith is a pgcloak of its own with rules pol, for tests of a
// variant of the sample's rules; it returns how to connect through it.
func cloakWith(t *testing.T, pol *rules.Policy) func(login string) *pgx.Conn {
	t.Helper()
	eng := cloaktest.Engine(t, pg, pol, slog.New(slog.DiscardHandler))
	c := cloaktest.Serve(t, proxy.Config{Upstream: pg.Addr(), Policy: eng})
	return func(login string) *pgx.Conn {
		conn, err := pgx.Connect(context.Background(), c.DSN(login, crm.DemoPassword))
		if err != nil {
			t.Fatalf("connect as %s: %v", login, err)
		}
		t.Cleanup(func() { conn.Close(context.Background()) })
		return conn
	}
}

package engine_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
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
)

func regionsSeen(t *testing.T, conn *pgx.Conn) string {
	t.Helper()
	var got string
	if err := conn.QueryRow(context.Background(), "select string_agg(distinct region, ',') from customers").Scan(&got); err != nil {
		t.Fatal(err)
	}
	return got
}

// A reload reaches open sessions at their next statement; a broken file
// leaves the rules in force; sessions stay open throughout. Logins are
// mapped at connect: inline, by attribute query, or refused.
func TestReloadAndPrincipalMapping(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(path, crm.Rules, 0o644); err != nil {
		t.Fatal(err)
	}
	store, err := rules.NewStore(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	eng := engine.NewEngine(store.Current, pg.DSN(pgtest.SuperUser, pgtest.Database), nil)
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := eng.Start(cctx, time.Minute); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := proxy.New(proxy.Config{Upstream: pg.Addr(), Policy: eng})
	go srv.Serve(l)
	defer srv.Shutdown(ctx)
	connect := func(login, password string) (*pgx.Conn, error) {
		host, port, _ := net.SplitHostPort(l.Addr().String())
		return pgx.Connect(ctx, fmt.Sprintf("host=%s port=%s user=%s password=%s dbname=%s sslmode=disable",
			host, port, login, password, pgtest.Database))
	}

	alice, err := connect("alice", crm.DemoPassword)
	if err != nil {
		t.Fatal(err)
	}
	defer alice.Close(ctx)
	if got := regionsSeen(t, alice); got != "north" {
		t.Fatalf("alice sees %q", got)
	}
	erin, err := connect("erin", crm.DemoPassword)
	if err != nil {
		t.Fatal(err)
	}
	defer erin.Close(ctx)
	if got := regionsSeen(t, erin); got != "east" {
		t.Fatalf("erin (attribute query) sees %q", got)
	}
	dana, err := connect("dana", crm.DemoPassword)
	if err != nil {
		t.Fatal(err)
	}
	defer dana.Close(ctx)
	if got := regionsSeen(t, dana); !strings.Contains(got, "south") {
		t.Fatalf("dana (dba) sees %q", got)
	}
	_, err = connect(pgtest.TrustUser, pgtest.Password)
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "28000" || !strings.Contains(pe.Message, "not mapped") {
		t.Fatalf("unmapped login: %v", err)
	}

	if _, err := alice.Exec(ctx, "PREPARE rq AS SELECT count(*) FROM customers", pgx.QueryExecModeSimpleProtocol); err != nil {
		t.Fatal(err)
	}

	// Move alice to the south: her open session follows at its next statement.
	moved := bytes.Replace(crm.Rules, []byte("alice: {role: sales_rep, attributes: {region: north}}"),
		[]byte("alice: {role: sales_rep, attributes: {region: south}}"), 1)
	// And make dana a sales rep of the north.
	moved = bytes.Replace(moved, []byte("dana: {role: dba}"), []byte("dana: {role: sales_rep, attributes: {region: north}}"), 1)
	if bytes.Equal(moved, crm.Rules) || bytes.Contains(moved, []byte("dana: {role: dba}")) {
		t.Fatal("test needs alice's and dana's lines in rules.yaml")
	}
	if err := os.WriteFile(path, moved, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := store.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := regionsSeen(t, alice); got != "south" {
		t.Fatalf("after reload alice sees %q", got)
	}
	// dana's open session began unrestricted: nothing was checked or
	// followed of it, so it is refused; a new one has the rules.
	var n int
	err = dana.QueryRow(ctx, "SELECT count(*) FROM customers").Scan(&n)
	if !errors.As(err, &pe) || pe.Code != "42501" || !strings.Contains(pe.Message, "connect again") {
		t.Fatalf("dana's session begun unrestricted, after the reload restricted her: %v (%d rows)", err, n)
	}
	dana2, err := connect("dana", crm.DemoPassword)
	if err != nil {
		t.Fatal(err)
	}
	defer dana2.Close(ctx)
	if got := regionsSeen(t, dana2); got != "north" {
		t.Fatalf("dana's new session sees %q", got)
	}

	// Her protocol-level prepared statements were prepared again (pgx's
	// statement cache above); an SQL-level one prepared under the old
	// rules is refused.
	_, err = alice.Exec(ctx, "EXECUTE rq", pgx.QueryExecModeSimpleProtocol)
	if !errors.As(err, &pe) || pe.Code != "42501" || !strings.Contains(pe.Message, "PREPARE it again") {
		t.Fatalf("EXECUTE of a statement prepared under old rules: %v", err)
	}

	// A broken file is refused; the rules in force stay.
	if err := os.WriteFile(path, append(moved, []byte("\nroles: {oops: [}\n")...), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := store.Reload(); err == nil {
		t.Fatal("broken rules accepted")
	}
	if st := store.Stats(); st.LastSuccessful || st.Failures == 0 {
		t.Fatalf("stats after a failed reload: %+v", st)
	}
	if got := regionsSeen(t, alice); got != "south" {
		t.Fatalf("after a failed reload alice sees %q", got)
	}
	if got := regionsSeen(t, erin); got != "east" {
		t.Fatalf("after a failed reload erin sees %q", got)
	}
}

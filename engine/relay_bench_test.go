package engine_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgcloak/pgcloak/examples/crm"
	"github.com/pgcloak/pgcloak/internal/cloaktest"
	"github.com/pgcloak/pgcloak/internal/pgtest"
	"github.com/pgcloak/pgcloak/proxy"
)

// BenchmarkRelay is a CRM screen (bench/crm_select.sql: a customer by id,
// then their last orders) over one open connection, in process, so that
// -cpuprofile sees pgcloak's part of a statement: directly, through a
// pgcloak without a policy (on the event loop, and in the goroutine relay
// that sessions with a policy take), and through the test pgcloak as dana
// (unrestricted) and alice (north sales rep), each with prepared
// statements (pgx's statement cache) and in the simple protocol with the
// constants inline. cpu-ns/op is this process's CPU per screen (client
// and pgcloak), pg-cpu-ns/op PostgreSQL's.
//
//	go test -run XXX -bench Relay -benchtime 3000x ./engine/
func BenchmarkRelay(b *testing.B) {
	bare := cloaktest.Serve(b, proxy.Config{Upstream: pg.Addr()})
	goroutines := cloaktest.Serve(b, proxy.Config{Upstream: pg.Addr(), GoroutineRelay: true})
	postmaster := postmasterPID(b)
	type target struct{ name, addr, login string }
	targets := []target{{"direct", "", "alice"}, {"nopolicy", bare.Addr, "alice"},
		{"nopolicy-goroutines", goroutines.Addr, "alice"},
		{"dana", proxyAddr, "dana"}, {"alice", proxyAddr, "alice"}}
	modes := []struct {
		name string
		mode pgx.QueryExecMode
	}{{"prepared", pgx.QueryExecModeCacheStatement}, {"simple", pgx.QueryExecModeSimpleProtocol}}
	for _, tc := range targets {
		for _, m := range modes {
			b.Run(tc.name+"/"+m.name, func(b *testing.B) {
				ctx := context.Background()
				dsn := cloaktest.DSN(tc.addr, tc.login, crm.DemoPassword)
				if tc.addr == "" {
					dsn = pg.DSN(tc.login, pgtest.Database)
				}
				cfg, err := pgx.ParseConfig(dsn)
				if err != nil {
					b.Fatal(err)
				}
				cfg.DefaultQueryExecMode = m.mode
				c, err := pgx.ConnectConfig(ctx, cfg)
				if err != nil {
					b.Fatal(err)
				}
				defer c.Close(ctx)
				i := 0
				screen := func() {
					i++
					id := 1 + i%testCustomers
					for _, q := range []string{benchQueries[0].sql, benchQueries[1].sql} {
						rows, err := c.Query(ctx, q, id)
						if err != nil {
							b.Fatal(err)
						}
						for rows.Next() {
						}
						if err := rows.Err(); err != nil {
							b.Fatal(err)
						}
					}
				}
				for range 200 { // warm the caches and the plans
					screen()
				}
				time.Sleep(20 * time.Millisecond)
				pg0 := treeCPU(postmaster)
				loop(b, screen)
				b.ReportMetric(float64(treeCPU(postmaster)-pg0)/float64(b.N), "pg-cpu-ns/op")
			})
		}
	}
}

//go:build soak

package main

// The soak (bench/soak.sh): many concurrent sessions of mixed roles through
// one pgcloak with rules and the access log, in two phases; after each
// phase every session is closed, and pgcloak's goroutines, file
// descriptors and memory must come back to the same level.
//
//	SOAK_SESSIONS=1000 SOAK_PHASE=90s go test -tags soak -run TestSoak -v -timeout 30m ./cmd/pgcloak/

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgcloak/pgcloak/examples/crm"
	"github.com/pgcloak/pgcloak/internal/cloaktest"
	"github.com/pgcloak/pgcloak/internal/pgtest"
)

func envInt(t *testing.T, name string, dflt int) int {
	if v := os.Getenv(name); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return n
	}
	return dflt
}

func envDuration(t *testing.T, name string, dflt time.Duration) time.Duration {
	if v := os.Getenv(name); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return d
	}
	return dflt
}

// soakSample is what pgcloak says of its resources.
type soakSample struct {
	goroutines, fds, rssMiB, heapMiB, sessions float64
}

func (s soakSample) String() string {
	return fmt.Sprintf("sessions %.0f, goroutines %.0f, open fds %.0f, RSS %.1f MiB, heap in use %.1f MiB",
		s.sessions, s.goroutines, s.fds, s.rssMiB, s.heapMiB)
}

func sample(t *testing.T, s *served) soakSample {
	mfs := s.metrics(t)
	return soakSample{
		goroutines: value(mfs, "go_goroutines", nil),
		fds:        value(mfs, "process_open_fds", nil),
		rssMiB:     value(mfs, "process_resident_memory_bytes", nil) / (1 << 20),
		heapMiB:    value(mfs, "go_memstats_heap_inuse_bytes", nil) / (1 << 20),
		sessions:   value(mfs, "pgcloak_proxy_client_connections_active", nil),
	}
}

func TestSoak(t *testing.T) {
	sessions := envInt(t, "SOAK_SESSIONS", 1000)
	phase := envDuration(t, "SOAK_PHASE", 90*time.Second)
	think := envDuration(t, "SOAK_THINK", time.Second) // mean pause between statements

	pg, err := cloaktest.Start(cloaktest.Options{CRM: crm.Options{Customers: 2000}, PG: pgtest.Options{Settings: []string{
		fmt.Sprintf("max_connections = %d", sessions+50), "shared_buffers = 64MB"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Stop()
	ctx := context.Background()
	dsn := cloaktest.AdminDSN(pg)

	bin := buildPgcloak(t)
	logDir := t.TempDir()
	s := serveAdmin(t, bin, "--upstream", pg.Addr(), "--rules", writeRules(t, crm.Rules), "--catalog-dsn", dsn,
		"--audit-file", filepath.Join(logDir, "audit.log"), "--max-client-conn", strconv.Itoa(sessions+100))
	s.waitStatus(t, "/readyz", 200)

	// Who runs what: every statement here is one the role may run, but
	// the commissions query, which every role here is refused.
	type work struct {
		login string
		table string
	}
	roles := []work{{"alice", "orders"}, {"bob", "orders"}, {"sam", "orders"}, {"connie", "orders"}, {"walt", "orders"},
		{"ana", "orders"}, {"dex", "orders"}, {"mia", "customers"}}
	var statements, refusals, failures atomic.Int64
	var firstErr atomic.Pointer[string]
	fail := func(format string, args ...any) {
		failures.Add(1)
		msg := fmt.Sprintf(format, args...)
		firstErr.CompareAndSwap(nil, &msg)
	}

	runPhase := func(name string) {
		stop := make(chan struct{})
		var wg sync.WaitGroup
		var connected atomic.Int64
		for i := range sessions {
			w := roles[i%len(roles)]
			wg.Add(1)
			go func() {
				defer wg.Done()
				time.Sleep(time.Duration(rand.Int64N(int64(10 * time.Second)))) // ramp up over 10s
				c, err := s.connect(t, w.login)
				if err != nil {
					fail("%s: connect: %v", w.login, err)
					return
				}
				connected.Add(1)
				defer c.Close(ctx)
				for n := 0; ; n++ {
					select {
					case <-stop:
						return
					case <-time.After(time.Duration(rand.Int64N(int64(2 * think)))):
					}
					key := rand.IntN(2000) + 1
					var err error
					switch n % 4 {
					case 0:
						_, err = c.Exec(ctx, fmt.Sprintf("SELECT * FROM %s WHERE %s > %d ORDER BY 1 LIMIT 5", w.table, keyColumn(w.table), key)).ReadAll()
					case 1:
						err = c.ExecParams(ctx, fmt.Sprintf("SELECT count(*) FROM %s WHERE %s > $1", w.table, keyColumn(w.table)),
							[][]byte{[]byte(strconv.Itoa(key))}, nil, nil, nil).Read().Err
					case 2:
						_, err = c.Exec(ctx, "BEGIN; SELECT count(*) FROM "+w.table+"; COMMIT").ReadAll()
					case 3:
						_, err = c.Exec(ctx, "SELECT amount FROM commissions").ReadAll()
						var pe *pgconn.PgError
						if errors.As(err, &pe) && pe.Severity == "ERROR" {
							refusals.Add(1)
							err = nil
						} else if err == nil {
							fail("%s read commissions", w.login)
						}
					}
					if err != nil {
						fail("%s: %v", w.login, err)
						return
					}
					statements.Add(1)
				}
			}()
		}
		start := time.Now()
		for time.Since(start) < phase {
			time.Sleep(min(15*time.Second, phase-time.Since(start)))
			t.Logf("%s %3.0fs: %d connected; %d statements, %d refusals, %d failures; %s", name, time.Since(start).Seconds(),
				connected.Load(), statements.Load(), refusals.Load(), failures.Load(), sample(t, s))
		}
		close(stop)
		wg.Wait()
		if int(connected.Load()) != sessions {
			t.Errorf("%s: %d of %d sessions connected", name, connected.Load(), sessions)
		}
	}
	// Settled: every session closed, the count of goroutines stable.
	settle := func(name string) soakSample {
		var last soakSample
		deadline := time.Now().Add(60 * time.Second)
		for {
			time.Sleep(2 * time.Second)
			cur := sample(t, s)
			if cur.sessions == 0 && cur.goroutines == last.goroutines && cur.fds == last.fds {
				t.Logf("%s, settled: %s", name, cur)
				return cur
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: pgcloak did not settle: %s", name, cur)
			}
			last = cur
		}
	}

	base := settle("before")
	runPhase("phase 1")
	after1 := settle("after phase 1")
	runPhase("phase 2")
	after2 := settle("after phase 2")

	if failures.Load() > 0 {
		t.Errorf("%d failures; the first: %s", failures.Load(), *firstErr.Load())
	}
	t.Logf("%d sessions × 2 phases of %s: %d statements, %d refusals (expected), %d failures",
		sessions, phase, statements.Load(), refusals.Load(), failures.Load())
	// Flat: what phase 2 leaves is what phase 1 left.
	if after2.goroutines > after1.goroutines+2 || after1.goroutines > base.goroutines+10 {
		t.Errorf("goroutines: %v before, %v after phase 1, %v after phase 2", base.goroutines, after1.goroutines, after2.goroutines)
	}
	if after2.fds > after1.fds+2 || after1.fds > base.fds+10 {
		t.Errorf("open fds: %v before, %v after phase 1, %v after phase 2", base.fds, after1.fds, after2.fds)
	}
	if after2.rssMiB > after1.rssMiB*1.15+16 {
		t.Errorf("RSS grew from %.1f MiB after phase 1 to %.1f MiB after phase 2", after1.rssMiB, after2.rssMiB)
	}
	code, out := verifyCLI(t, bin, "--open", logDir)
	if code != 0 {
		t.Errorf("audit verify: exit %d\n%s", code, out)
	}
	t.Log(out)
	s.stop(t)
}

func keyColumn(table string) string {
	if table == "customers" {
		return "customer_id"
	}
	return "order_id"
}

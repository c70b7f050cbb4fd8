package engine_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgcloak/pgcloak/examples/crm"
	"github.com/pgcloak/pgcloak/internal/cloaktest"
	"github.com/pgcloak/pgcloak/internal/pgtest"
	"github.com/pgcloak/pgcloak/proxy"
)

// BenchmarkOpen is a connect (and close) in process, with nothing run or
// (the /lookup variants) one customer lookup by an id not seen before, as
// a connect-per-request client runs: the client (pgconn), the pgcloak in
// front of the test server (the proxy and this engine) and its start-up
// work share the benchmark's process, so that -cpuprofile and -benchmem
// see pgcloak's part of a connect (docs/benchmarks.md, "Per-connection
// cost"); the direct variant is the client's own part, to subtract.
// cpu-ns/op is this process's CPU time per connect (client and pgcloak),
// pg-cpu-ns/op PostgreSQL's (the postmaster, its live children and those
// it reaped: backends that exited).
//
//	go test -run XXX -bench Open -benchtime 300x -count 5 ./engine/
//
// Targets: PostgreSQL directly, a pgcloak without a policy (the
// event-loop relay) and the test pgcloak with the shipped rules as dana
// (unrestricted: mapped, then relayed), alice (sales rep, attributes in
// the rules) and erin (sales rep, attribute query).
//
// The rtt-1ms variants connect (and nothing more) through a relay that
// delays every byte by 0.5 ms each way, as a database on another host
// would: there a connect's wall time counts the round trips it waits for.
// The refreshing variants connect while catalog snapshots load one after
// the other (as after DDL).
func BenchmarkOpen(b *testing.B) {
	bare := cloaktest.Serve(b, proxy.Config{Upstream: pg.Addr()})
	far := newDelayRelay(b, pg.Addr(), 500*time.Microsecond)
	farCloak := cloaktest.Serve(b, proxy.Config{Upstream: far, Policy: eng})
	postmaster := postmasterPID(b)
	type target struct{ name, addr, login string }
	targets := []target{
		{"direct", "", "alice"},
		{"nopolicy", bare.Addr, "alice"},
		{"dana", proxyAddr, "dana"},
		{"alice", proxyAddr, "alice"},
		{"erin", proxyAddr, "erin"},
	}
	targets = append(targets, target{"direct/rtt-1ms", far, "alice"}, target{"alice/rtt-1ms", farCloak.Addr, "alice"},
		target{"alice/refreshing", proxyAddr, "alice"}, target{"erin/refreshing", proxyAddr, "erin"})
	for _, tc := range targets {
		for _, lookup := range []bool{false, true} {
			name := tc.name
			if lookup {
				if strings.Contains(name, "/") {
					continue
				}
				name += "/lookup"
			}
			b.Run(name, func(b *testing.B) {
				dsn := cloaktest.DSN(tc.addr, tc.login, crm.DemoPassword)
				if tc.addr == "" {
					dsn = pg.DSN(tc.login, pgtest.Database)
				}
				if tc.addr == far {
					dsn = cloaktest.DSN(far, tc.login, pgtest.Password)
				}
				ctx := context.Background()
				if strings.HasSuffix(tc.name, "/refreshing") {
					stop := refreshing(b)
					defer stop()
				}
				i := 0
				pg0 := treeCPU(postmaster)
				loop(b, func() {
					c, err := pgconn.Connect(ctx, dsn)
					if err != nil {
						b.Fatal(err)
					}
					if lookup {
						i++
						sql := fmt.Sprintf("SELECT customer_id, first_name, last_name, email, phone, city FROM customers WHERE customer_id = %d", 1+i%testCustomers)
						if _, err := c.Exec(ctx, sql).ReadAll(); err != nil {
							b.Fatal(err)
						}
					}
					c.Close(ctx)
				})
				time.Sleep(50 * time.Millisecond) // the last backend's exit
				b.ReportMetric(float64(treeCPU(postmaster)-pg0)/float64(b.N), "pg-cpu-ns/op")
			})
		}
	}
}

// refreshing loads catalog snapshots one after the other, as after DDL,
// until stop.
func refreshing(b *testing.B) (stop func()) {
	done := make(chan struct{})
	over := make(chan struct{})
	go func() {
		defer close(over)
		for {
			select {
			case <-done:
				return
			default:
			}
			if err := eng.Refresh(context.Background()); err != nil {
				b.Error(err)
				return
			}
		}
	}()
	return func() { close(done); <-over }
}

// postmasterPID is the test server's postmaster: the parent of a backend.
func postmasterPID(b *testing.B) int {
	c, err := pgconn.Connect(context.Background(), cloaktest.AdminDSN(pg))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close(context.Background())
	f := procStat(int(c.PID()))
	if f == nil {
		b.Fatal("no /proc entry for the backend")
	}
	ppid, _ := strconv.Atoi(f[1])
	return ppid
}

// procStat is /proc/pid/stat's fields after the command name (field 3
// onwards), or nil.
func procStat(pid int) []string {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil
	}
	return strings.Fields(string(data[bytes.LastIndexByte(data, ')')+2:]))
}

// treeCPU is the CPU time of pid, the children it reaped and its live
// children.
func treeCPU(pid int) time.Duration {
	ticks := func(f []string, reaped bool) int64 {
		var t int64
		n := 13
		if reaped {
			n = 15
		}
		for _, s := range f[11:n] {
			v, _ := strconv.ParseInt(s, 10, 64)
			t += v
		}
		return t
	}
	f := procStat(pid)
	if f == nil {
		return 0
	}
	t := ticks(f, true)
	if kids, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid)); err == nil {
		for _, k := range strings.Fields(string(kids)) {
			kid, _ := strconv.Atoi(k)
			if kf := procStat(kid); kf != nil {
				t += ticks(kf, false)
			}
		}
	}
	return time.Duration(t) * 10 * time.Millisecond
}

// newDelayRelay relays connections to upstream, each byte delivered d
// after it arrived, in both directions; it returns its address.
func newDelayRelay(b *testing.B, upstream string, d time.Duration) string {
	b.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close() })
	type chunk struct {
		at   time.Time
		data []byte
	}
	pipe := func(dst, src net.Conn) {
		q := make(chan chunk, 64)
		go func() {
			defer close(q)
			for {
				buf := make([]byte, 16<<10)
				n, err := src.Read(buf)
				if n > 0 {
					q <- chunk{time.Now().Add(d), buf[:n]}
				}
				if err != nil {
					return
				}
			}
		}()
		defer dst.Close()
		for c := range q {
			time.Sleep(time.Until(c.at))
			if _, err := dst.Write(c.data); err != nil {
				return
			}
		}
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", upstream)
			if err != nil {
				c.Close()
				continue
			}
			go pipe(s, c)
			go pipe(c, s)
		}
	}()
	return l.Addr().String()
}

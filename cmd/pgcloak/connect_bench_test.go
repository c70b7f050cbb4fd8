package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgcloak/pgcloak/examples/crm"
	"github.com/pgcloak/pgcloak/internal/pgtest"
)

// BenchmarkConnect measures where a connect-per-request client's time goes
// (docs/benchmarks.md, "Per-connection cost"): one iteration opens a
// session, runs one statement with a constant not seen before (as a
// connect-per-request application does: a cold rewrite for a restricted
// login) and the same statement again (a cache hit), and closes. Reported
// per iteration: connect-µs (from dial to ReadyForQuery: PostgreSQL's
// backend start, and through pgcloak with rules the mapping of the login
// to its principal, its attribute query if any, and the session guards'
// query of search_path), first-µs and again-µs (the two statements),
// and pgcloak-cpu-µs, the pgcloak process's CPU time per iteration (which,
// unlike the wall-clock figures, hardly depends on what else the machine
// runs). The connect-only variants open and close a session and run
// nothing.
//
//	go test -run XXX -bench Connect -benchtime 200x ./cmd/pgcloak/
//
// Targets: PostgreSQL directly, pgcloak without rules, and pgcloak with
// the CRM rules as dana (unrestricted: mapped, then relayed), alice (a
// sales rep, inline attributes) and erin (a sales rep whose region comes
// from an attribute query).
func BenchmarkConnect(b *testing.B) {
	pg := crmServer.Get(b)
	bin := filepath.Join(b.TempDir(), "pgcloak")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	pass, passPID := benchServe(b, bin, "--upstream", pg.Addr())
	rules, rulesPID := benchServe(b, bin, "--upstream", pg.Addr(), "--rules", writeRulesTB(b),
		"--catalog-dsn", pg.DSN(pgtest.SuperUser, pgtest.Database))
	// Until the catalog is loaded, restricted logins are refused.
	host, port, _ := net.SplitHostPort(rules)
	for deadline := time.Now().Add(30 * time.Second); ; {
		c, err := pgconn.Connect(context.Background(), fmt.Sprintf("host=%s port=%s user=alice password=%s dbname=%s sslmode=disable",
			host, port, crm.DemoPassword, pgtest.Database))
		if err == nil {
			c.Close(context.Background())
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("alice through pgcloak with rules: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	type target struct {
		name, addr, login string
		pid               int
	}
	var cases []target
	for _, tc := range []target{
		{"direct/alice", pg.Addr(), "alice", 0},
		{"pgcloak/alice", pass, "alice", passPID},
		{"rules/dana", rules, "dana", rulesPID},
		{"rules/alice", rules, "alice", rulesPID},
		{"rules/erin", rules, "erin", rulesPID},
	} {
		cases = append(cases, tc)
		c := tc
		c.name += "/connect-only"
		cases = append(cases, c)
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			only := strings.HasSuffix(tc.name, "/connect-only")
			host, port, _ := net.SplitHostPort(tc.addr)
			dsn := fmt.Sprintf("host=%s port=%s user=%s password=%s dbname=%s sslmode=disable",
				host, port, tc.login, crm.DemoPassword, pgtest.Database)
			ctx := context.Background()
			var connect, first, again time.Duration
			cpu0 := procCPU(tc.pid)
			for i := 0; b.Loop(); i++ {
				t0 := time.Now()
				c, err := pgconn.Connect(ctx, dsn)
				if err != nil {
					b.Fatal(err)
				}
				t1 := time.Now()
				if only {
					c.Close(ctx)
					connect += t1.Sub(t0)
					continue
				}
				sql := fmt.Sprintf("SELECT customer_id, first_name, last_name, email, phone, city FROM customers WHERE customer_id = %d", 1+i%1999)
				if _, err := c.Exec(ctx, sql).ReadAll(); err != nil {
					b.Fatal(err)
				}
				t2 := time.Now()
				if _, err := c.Exec(ctx, sql).ReadAll(); err != nil {
					b.Fatal(err)
				}
				t3 := time.Now()
				c.Close(ctx)
				connect += t1.Sub(t0)
				first += t2.Sub(t1)
				again += t3.Sub(t2)
			}
			n := float64(b.N)
			if tc.pid != 0 {
				b.ReportMetric(float64((procCPU(tc.pid)-cpu0).Microseconds())/n, "pgcloak-cpu-µs")
			}
			b.ReportMetric(float64(connect.Microseconds())/n, "connect-µs")
			if !only {
				b.ReportMetric(float64(first.Microseconds())/n, "first-µs")
				b.ReportMetric(float64(again.Microseconds())/n, "again-µs")
			}
		})
	}
}

// procCPU is the user and system CPU time process pid has used so far
// (clock ticks: 10 ms; a benchmark of a few hundred connections gets tens
// to hundreds of them).
func procCPU(pid int) time.Duration {
	if pid == 0 {
		return 0
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(data[bytes.LastIndexByte(data, ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}

// benchServe starts `pgcloak serve` and returns its address and pid.
func benchServe(b *testing.B, bin string, args ...string) (string, int) {
	b.Helper()
	cmd := exec.Command(bin, append([]string{"serve", "--listen", "127.0.0.1:0", "--log-level", "info"}, args...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		if m := listenLine.FindStringSubmatch(sc.Text()); m != nil {
			go func() {
				for sc.Scan() {
				}
			}()
			return m[1], cmd.Process.Pid
		}
	}
	b.Fatal("pgcloak serve exited before listening")
	return "", 0
}

func writeRulesTB(b *testing.B) string {
	path := filepath.Join(b.TempDir(), "rules.yaml")
	if err := os.WriteFile(path, crm.Rules, 0o644); err != nil {
		b.Fatal(err)
	}
	return path
}

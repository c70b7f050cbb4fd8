package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/pgcloak/pgcloak/examples/crm"
	"github.com/pgcloak/pgcloak/internal/pgtest"
)

// served is a running `pgcloak serve`.
type served struct {
	cmd   *exec.Cmd
	addr  string // client listener
	admin string // admin listener
	mu    sync.Mutex
	log   strings.Builder // its operational log (stderr)
	done  chan struct{}
}

var (
	listenLine = regexp.MustCompile(`msg="pgcloak listening" addr=(\S+)`)
	adminLine  = regexp.MustCompile(`msg="admin listening" addr=(\S+)`)
)

// serveAdmin starts `pgcloak serve` with an admin listener and returns once it
// listens.
func serveAdmin(t *testing.T, bin string, args ...string) *served {
	t.Helper()
	s := &served{done: make(chan struct{})}
	s.cmd = exec.Command(bin, append([]string{"serve", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"}, args...)...)
	stderr, err := s.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.cmd.Process.Kill(); <-s.done })
	ready := make(chan struct{})
	go func() {
		defer close(s.done)
		defer s.cmd.Wait()
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			s.mu.Lock()
			s.log.WriteString(line + "\n")
			if m := adminLine.FindStringSubmatch(line); m != nil {
				s.admin = m[1]
			}
			if m := listenLine.FindStringSubmatch(line); m != nil && s.addr == "" {
				s.addr = m[1]
				close(ready)
			}
			s.mu.Unlock()
		}
	}()
	select {
	case <-ready:
	case <-s.done:
		t.Fatalf("pgcloak serve exited before listening:\n%s", s.stderr())
	case <-time.After(30 * time.Second):
		t.Fatalf("pgcloak serve did not listen:\n%s", s.stderr())
	}
	return s
}

func (s *served) stderr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.String()
}

func (s *served) get(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + s.admin + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// waitStatus polls an admin path until it answers code.
func (s *served) waitStatus(t *testing.T, path string, code int) string {
	t.Helper()
	var body string
	pgtest.Eventually(t, 15*time.Second, fmt.Sprintf("%s answering %d", path, code), func() (bool, string) {
		var got int
		got, body = s.get(t, path)
		return got == code, fmt.Sprintf("%d %s", got, body)
	})
	return body
}

// stop sends SIGTERM and waits for a clean exit.
func (s *served) stop(t *testing.T) {
	t.Helper()
	s.cmd.Process.Signal(os.Interrupt)
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		t.Fatal("pgcloak did not stop")
	}
	if !s.cmd.ProcessState.Success() {
		t.Fatalf("pgcloak exited with %v:\n%s", s.cmd.ProcessState, s.stderr())
	}
}

func (s *served) connect(t *testing.T, login string) (*pgconn.PgConn, error) {
	t.Helper()
	host, port, _ := net.SplitHostPort(s.addr)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return pgconn.Connect(ctx, fmt.Sprintf("host=%s port=%s user=%s password=%s dbname=%s sslmode=disable",
		host, port, login, crm.DemoPassword, pgtest.Database))
}

// metrics scrapes /metrics and parses it as the Prometheus text format.
func (s *served) metrics(t *testing.T) map[string]*dto.MetricFamily {
	t.Helper()
	code, body := s.get(t, "/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("/metrics does not parse as Prometheus text format: %v", err)
	}
	return mfs
}

// value sums the samples of a family whose labels include want.
func value(mfs map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	sum := 0.0
	for _, m := range mfs[name].GetMetric() {
		match := true
		for k, v := range want {
			found := false
			for _, l := range m.GetLabel() {
				found = found || (l.GetName() == k && l.GetValue() == v)
			}
			match = match && found
		}
		if match {
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue() + float64(m.GetHistogram().GetSampleCount())
		}
	}
	return sum
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestMetricsEndpoint runs a workload through `pgcloak serve` and checks
// that /metrics parses as Prometheus text format and counts it.
func TestMetricsEndpoint(t *testing.T) {
	pg := crmDB(t)
	bin := buildPgcloak(t)
	auditFile := filepath.Join(t.TempDir(), "audit.log")
	s := serveAdmin(t, bin, "--upstream", pg.Addr(), "--rules", writeRules(t, crm.Rules),
		"--catalog-dsn", pg.DSN(pgtest.SuperUser, pgtest.Database), "--audit-file", auditFile)
	if code, body := s.get(t, "/healthz"); code != 200 || body != "ok\n" {
		t.Fatalf("/healthz: %d %q", code, body)
	}
	s.waitStatus(t, "/readyz", 200)

	ctx := context.Background()
	alice, err := s.connect(t, "alice")
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		if _, err := alice.Exec(ctx, "SELECT count(*) FROM customers; SELECT 1").ReadAll(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := alice.Exec(ctx, "SELECT amount FROM commissions").ReadAll(); err == nil {
		t.Fatal("alice read commissions")
	}
	for i := range 10 {
		res := alice.ExecParams(ctx, "SELECT birth_date FROM customers WHERE customer_id = $1", [][]byte{[]byte(fmt.Sprint(i + 1))}, nil, nil, nil).Read()
		if res.Err != nil {
			t.Fatal(res.Err)
		}
	}
	dana, err := s.connect(t, "dana")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dana.Exec(ctx, "SELECT count(*) FROM customers").ReadAll(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.connect(t, "nobody_like_this"); err == nil { // the server refuses it
		t.Fatal("an unknown login connected")
	}
	if _, err := s.connect(t, pgtest.TrustUser); err == nil { // the rules do not map it
		t.Fatal("an unmapped login connected")
	}
	alice.Close(ctx)
	dana.Close(ctx)

	var mfs map[string]*dto.MetricFamily
	// The sessions' ends are counted asynchronously.
	pgtest.Eventually(t, 10*time.Second, "no client connection active", func() bool {
		mfs = s.metrics(t)
		return value(mfs, "pgcloak_proxy_client_connections_active", nil) == 0
	})
	checks := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"pgcloak_statements_total", nil, 20*2 + 1 + 10 + 1},
		{"pgcloak_statements_total", map[string]string{"role": "sales_rep", "kind": "select", "decision": "rewritten"}, 20 + 10},
		{"pgcloak_statements_total", map[string]string{"role": "sales_rep", "decision": "denied"}, 1},
		{"pgcloak_statements_total", map[string]string{"role": "dba", "decision": "allowed"}, 1},
		{"pgcloak_statements_denied_total", map[string]string{"reason": "tables"}, 1},
		{"pgcloak_statement_duration_seconds", nil, 52},
		{"pgcloak_masked_columns_served_total", nil, 10},
		{"pgcloak_proxy_client_connections_total", nil, 4},
		{"pgcloak_proxy_client_connections_active", nil, 0},
		{"pgcloak_proxy_auth_failures_total", map[string]string{"by": "pgcloak"}, 1},
		{"pgcloak_proxy_auth_failures_total", map[string]string{"by": "server"}, 1},
		{"pgcloak_proxy_upstream_connect_errors_total", nil, 0},
		{"pgcloak_rules_last_reload_successful", nil, 1},
		{"pgcloak_rules_reloads_total", map[string]string{"result": "failure"}, 0},
		{"pgcloak_rewrite_wire_check_incidents_total", nil, 0},
		{"pgcloak_rewrite_catalog_loaded", nil, 1},
		{"pgcloak_audit_sink_up", map[string]string{"sink": "file"}, 1},
		{"pgcloak_audit_dropped_records_total", nil, 0},
		{"pgcloak_audit_write_errors_total", nil, 0},
	}
	for _, c := range checks {
		if got := value(mfs, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	// Rewrites: 3 distinct statement texts for alice, computed once each.
	if h, m := value(mfs, "pgcloak_rewrite_cache_hits_total", nil), value(mfs, "pgcloak_rewrite_cache_misses_total", nil); m < 3 || h+m != 20*1+1+10 {
		t.Errorf("rewrite cache: %v hits, %v misses", h, m)
	}
	if value(mfs, "pgcloak_rewrite_duration_seconds", nil) != 20+1+10+1 {
		t.Errorf("rewrite latency observations: %v", value(mfs, "pgcloak_rewrite_duration_seconds", nil))
	}
	for _, name := range []string{"go_goroutines", "process_cpu_seconds_total", "pgcloak_audit_queue_depth", "pgcloak_audit_records_written_total"} {
		if mfs[name] == nil {
			t.Errorf("no %s", name)
		}
	}
	// No label value outside the fixed sets: no login, no SQL.
	for name, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if v := l.GetValue(); strings.Contains(v, "alice") || strings.Contains(v, "dana") || strings.Contains(v, " ") {
					t.Errorf("%s has label %s=%q", name, l.GetName(), v)
				}
			}
		}
	}
	written := value(mfs, "pgcloak_audit_records_written_total", nil)
	s.stop(t)
	b, _ := os.ReadFile(auditFile)
	if lines := strings.Count(string(b), "\n"); float64(lines) < written {
		t.Errorf("the file has %d records, the metric said %v were written", lines, written)
	}
	if n := strings.Count(string(b), `"type":"statement"`); n != 52 {
		t.Errorf("%d statement records, want 52", n)
	}
}

// TestReadiness: /readyz names what is wrong: the upstream is down, the
// rules did not load at start (pgcloak stays up, refuses sessions, and
// becomes ready once the file is fixed), the access log cannot be written.
func TestReadiness(t *testing.T) {
	pg := crmDB(t)
	bin := buildPgcloak(t)
	dsn := pg.DSN(pgtest.SuperUser, pgtest.Database)

	t.Run("upstream down", func(t *testing.T) {
		s := serveAdmin(t, bin, "--upstream", freeAddr(t))
		body := s.waitStatus(t, "/readyz", 503)
		if !strings.Contains(body, "upstream unreachable") {
			t.Fatalf("/readyz: %s", body)
		}
		if code, _ := s.get(t, "/healthz"); code != 200 {
			t.Fatal("not alive")
		}
		mfs := s.metrics(t)
		if value(mfs, "pgcloak_proxy_upstream_connect_errors_total", nil) < 1 {
			t.Error("upstream connect errors not counted")
		}
		s.stop(t)
	})

	t.Run("rules failed at start", func(t *testing.T) {
		rulesFile := writeRules(t, []byte("version: 1\ntables:\n  customers: {columns: {email: secret}}\n"))
		s := serveAdmin(t, bin, "--upstream", pg.Addr(), "--rules", rulesFile, "--catalog-dsn", dsn)
		body := s.waitStatus(t, "/readyz", 503)
		if !strings.Contains(body, "rules not loaded") {
			t.Fatalf("/readyz: %s", body)
		}
		mfs := s.metrics(t)
		if value(mfs, "pgcloak_rules_last_reload_successful", nil) != 0 || value(mfs, "pgcloak_rules_reloads_total", map[string]string{"result": "failure"}) < 1 {
			t.Error("rules metrics do not show the failure")
		}
		_, err := s.connect(t, "dana")
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "57P03" {
			t.Fatalf("a session while no rules are loaded: %v", err)
		}
		if err := os.WriteFile(rulesFile, crm.Rules, 0o644); err != nil {
			t.Fatal(err)
		}
		s.waitStatus(t, "/readyz", 200)
		conn, err := s.connect(t, "alice")
		if err != nil {
			t.Fatalf("after the rules were fixed: %v", err)
		}
		conn.Close(context.Background())
		s.stop(t)
	})

	t.Run("access log not writable", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "audit.log")
		if err := os.Symlink("/dev/full", path); err != nil {
			t.Fatal(err)
		}
		s := serveAdmin(t, bin, "--upstream", pg.Addr(), "--audit-file", path)
		body := s.waitStatus(t, "/readyz", 503)
		if !strings.Contains(body, "access log not writable") {
			t.Fatalf("/readyz: %s", body)
		}
		conn, err := s.connect(t, "dana")
		if err != nil {
			t.Fatal(err)
		}
		_, err = conn.Exec(context.Background(), "SELECT 1").ReadAll()
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "53000" {
			t.Fatalf("a statement while the access log fails (fail_closed): %v", err)
		}
		conn.Close(context.Background())
		s.cmd.Process.Kill() // its access log cannot be closed cleanly
	})
}

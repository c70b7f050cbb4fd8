package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/pgcloak/pgcloak/examples/crm"
	"github.com/pgcloak/pgcloak/internal/pgtest"
	"github.com/pgcloak/pgcloak/rules"
)

// TestHelpAndVersionExitZero: asking for help or the version is not a
// usage error, for pgcloak itself and for every subcommand.
func TestHelpAndVersionExitZero(t *testing.T) {
	bin := buildPgcloak(t)
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}, {"--version"}, {"version"}} {
		out, err := exec.Command(bin, args...).Output()
		if err != nil {
			t.Errorf("pgcloak %s: %v", strings.Join(args, " "), err)
		}
		if args[0] == "--version" && !strings.HasPrefix(string(out), "pgcloak ") {
			t.Errorf("pgcloak --version: %q", out)
		}
	}
	if err := exec.Command(bin).Run(); err == nil {
		t.Error("pgcloak without a command exited 0")
	}
	if len(commands) < 8 {
		t.Fatalf("only %d commands registered", len(commands))
	}
	for name := range commands {
		for _, h := range []string{"-h", "--help"} {
			if err := exec.Command(bin, name, h).Run(); err != nil {
				t.Errorf("pgcloak %s %s: %v", name, h, err)
			}
		}
	}
}

// TestOpsMetricsAndDraining: the build, the rules version in force and the
// catalog's age are metrics; /readyz answers 503 as soon as SIGTERM starts
// the drain, while a session is still open.
func TestOpsMetricsAndDraining(t *testing.T) {
	pg := crmDB(t)
	bin := buildPgcloak(t)
	pol, err := rules.Parse("rules.yaml", crm.Rules)
	if err != nil {
		t.Fatal(err)
	}
	certs, err := pgtest.WriteCerts(t.TempDir()) // client TLS: its certificate's metrics
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	s := serveAdmin(t, bin, "--upstream", pg.Addr(), "--rules", writeRules(t, crm.Rules),
		"--catalog-dsn", pg.DSN(pgtest.SuperUser, pgtest.Database), "--catalog-refresh", "5m", "--shutdown-grace", "20s",
		"--audit-file", filepath.Join(t.TempDir(), "audit.log"), "--tls-cert", certs.CertFile, "--tls-key", certs.KeyFile)
	s.waitStatus(t, "/readyz", 200)
	conn, err := s.connect(t, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(context.Background(), "SELECT count(*) FROM customers").ReadAll(); err != nil {
		t.Fatal(err)
	}
	// A labelled family appears with its first sample.
	var mfs map[string]*dto.MetricFamily
	pgtest.Eventually(t, 10*time.Second, "pgcloak_statements_total in /metrics", func() bool {
		mfs = s.metrics(t)
		return mfs["pgcloak_statements_total"] != nil
	})
	checkReferencedMetrics(t, mfs)
	if mf := mfs["pgcloak_build_info"]; len(mf.GetMetric()) != 1 || mf.GetMetric()[0].GetGauge().GetValue() != 1 {
		t.Errorf("pgcloak_build_info: %v", mf)
	} else {
		labels := map[string]string{}
		for _, l := range mf.GetMetric()[0].GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		if !strings.HasPrefix(labels["goversion"], "go1.") || labels["version"] == "" || labels["revision"] == "" {
			t.Errorf("pgcloak_build_info labels: %v", labels)
		}
	}
	if got := value(mfs, "pgcloak_rules_info", map[string]string{"version": pol.Version()}); got != 1 {
		t.Errorf("pgcloak_rules_info{version=%q} = %v; %v", pol.Version(), got, mfs["pgcloak_rules_info"])
	}
	if got := value(mfs, "pgcloak_rules_loaded_timestamp_seconds", nil); got < float64(start.Unix()) || got > float64(time.Now().Unix()+1) {
		t.Errorf("pgcloak_rules_loaded_timestamp_seconds = %v, started at %d", got, start.Unix())
	}
	age := value(mfs, "pgcloak_rewrite_catalog_age_seconds", nil)
	if age < 0 || age > time.Since(start).Seconds()+1 {
		t.Errorf("pgcloak_rewrite_catalog_age_seconds = %v", age)
	}
	if got := value(mfs, "pgcloak_rewrite_catalog_last_load_timestamp_seconds", nil); got < float64(start.Unix()) {
		t.Errorf("pgcloak_rewrite_catalog_last_load_timestamp_seconds = %v", got)
	}
	if got := value(mfs, "pgcloak_rewrite_catalog_refresh_interval_seconds", nil); got != 300 {
		t.Errorf("pgcloak_rewrite_catalog_refresh_interval_seconds = %v, want 300", got)
	}

	s.cmd.Process.Signal(os.Interrupt)
	body := s.waitStatus(t, "/readyz", 503)
	if !strings.Contains(body, "draining") {
		t.Errorf("/readyz while draining: %q", body)
	}
	select {
	case <-s.done:
		t.Fatal("pgcloak exited with a session open, before the grace period")
	default:
	}
	if _, err := conn.Exec(context.Background(), "SELECT count(*) FROM customers").ReadAll(); err != nil {
		t.Errorf("the open session during the drain: %v", err)
	}
	conn.Close(context.Background())
	select {
	case <-s.done:
	case <-time.After(15 * time.Second):
		t.Fatal("pgcloak did not stop once the session ended")
	}
}

var metricName = regexp.MustCompile(`\b(?:pgcloak|process|go)_[a-z0-9_]+`)

// checkReferencedMetrics: every metric the Grafana dashboard and the alert
// rules in deploy/ query is one pgcloak serves (mfs: a scrape of a pgcloak
// with rules and an access log, so that every family is present).
func checkReferencedMetrics(t *testing.T, mfs map[string]*dto.MetricFamily) {
	t.Helper()
	for _, file := range []string{"../../deploy/grafana/pgcloak.json", "../../deploy/prometheus/alerts.yaml"} {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		names := map[string]bool{}
		for _, n := range metricName.FindAllString(string(data), -1) {
			names[n] = true
		}
		if len(names) < 12 {
			t.Errorf("%s: only %d metric names found: %v", file, len(names), names)
		}
		for n := range names {
			if mfs[n] != nil {
				continue
			}
			base := n
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				base = strings.TrimSuffix(base, suffix)
			}
			if mf := mfs[base]; mf != nil && mf.GetType() == dto.MetricType_HISTOGRAM {
				continue
			}
			t.Errorf("%s queries %s, which pgcloak does not export", file, n)
		}
	}
}

package proxy_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pgcloak/pgcloak/internal/pgtest"
	"github.com/pgcloak/pgcloak/proxy"
)

// metricValue reads one sample of a counter from a registry.
func metricValue(t *testing.T, reg *prometheus.Registry, name, label, value string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.Metric {
			for _, l := range m.Label {
				if l.GetName() == label && l.GetValue() == value {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no %s{%s=%q}", name, label, value)
	return 0
}

// One session cannot hold more prepared statements, portals or statement
// text than the limits allow: past them it is ended with FATAL 54000 and
// counted, while Close, DEALLOCATE and DISCARD ALL shrink what it holds,
// and other sessions keep being answered.
func TestSessionLimits(t *testing.T) {
	reg := prometheus.NewRegistry()
	pol := &followPolicy{generational: true}
	_, addr := startProxy(t, proxy.Config{Policy: pol, AccessLog: &memLog{}, Metrics: proxy.NewMetrics(reg),
		MaxSessionStatements: 50, MaxSessionStatementBytes: 256 << 10})
	other := dialWire(t, addr)
	other.startup(pgtest.TrustUser)
	stillAnswered := func() {
		t.Helper()
		other.send(query("select 1"))
		if _, err := other.readUntil('Z', 1); err != nil {
			t.Fatalf("another session: %v", err)
		}
	}

	t.Run("pruned", func(t *testing.T) {
		w := dialWire(t, addr)
		w.startup(pgtest.TrustUser)
		for i := range 200 { // Parse and Close: nothing accumulates
			name := fmt.Sprintf("s%d", i)
			w.send(parse(name, "select 1"), bind(name, name), execute(name, 0), closePortal(name), closeStmt(name), &pgproto3.Sync{})
			if _, err := w.readUntil('Z', 1); err != nil {
				t.Fatal(err)
			}
		}
		for _, drop := range []string{"discard all", "deallocate all", "deallocate s39"} {
			for i := range 40 {
				w.send(parse(fmt.Sprintf("s%d", i), "select 1"), &pgproto3.Sync{})
			}
			w.send(query(drop))
			if out, err := w.readUntil('Z', 41); err != nil || strings.Contains(strings.Join(out, ""), "ErrorResponse") {
				t.Fatalf("%s: %v %v", drop, out, err)
			}
			// What is prepared after it is kept, and runs.
			w.send(parse("after", "select 'after'"), &pgproto3.Sync{})
			w.send(bind("", "after"), execute("", 0), closeStmt("after"), &pgproto3.Sync{})
			if out, err := w.readUntil('Z', 2); err != nil || strings.Contains(strings.Join(out, ""), "ErrorResponse") ||
				!strings.Contains(strings.Join(out, ""), "DataRow") {
				t.Fatalf("after %s: %v %v", drop, out, err)
			}
		}
		if n := metricValue(t, reg, "pgcloak_proxy_sessions_over_limits_total", "limit", "statements"); n != 0 {
			t.Fatalf("a pruned session counted over limits: %v", n)
		}
	})
	t.Run("statements", func(t *testing.T) {
		w := dialWire(t, addr)
		w.startup(pgtest.TrustUser)
		for i := range 60 {
			w.send(parse(fmt.Sprintf("s%d", i), "select 1"))
		}
		w.send(&pgproto3.Sync{})
		if e := w.expectFatal(pgerrcode.ProgramLimitExceeded); !strings.Contains(e.Message, "max_session_statements") {
			t.Fatal(e.Message)
		}
		if n := metricValue(t, reg, "pgcloak_proxy_sessions_over_limits_total", "limit", "statements"); n != 1 {
			t.Fatalf("counted %v", n)
		}
		stillAnswered()
	})
	t.Run("statement bytes", func(t *testing.T) {
		w := dialWire(t, addr)
		w.startup(pgtest.TrustUser)
		big := "select '" + strings.Repeat("x", 64<<10) + "'"
		for i := range 5 {
			w.send(parse(fmt.Sprintf("b%d", i), big))
		}
		w.send(&pgproto3.Sync{})
		w.expectFatal(pgerrcode.ProgramLimitExceeded)
		if n := metricValue(t, reg, "pgcloak_proxy_sessions_over_limits_total", "limit", "statement_bytes"); n != 1 {
			t.Fatalf("counted %v", n)
		}
		stillAnswered()
	})
}

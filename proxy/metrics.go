package proxy

import (
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pgcloak/pgcloak/audit"
)

const (
	namespace        = "pgcloak"
	subsystemProxy   = "proxy"
	subsystemRewrite = "rewrite"
)

// Metrics are the proxy's Prometheus collectors. Labels take values from
// fixed sets only: statement kinds, decisions, denial reason codes
// (audit.ReasonCodes), the roles of the rules; never a login, a value or
// SQL. Statements are counted for sessions whose messages are decoded
// (sessions with a policy: all of them when the access log is on).
type Metrics struct {
	connectionsActive prometheus.Gauge
	connectionsTotal  prometheus.Counter
	authFailures      *prometheus.CounterVec
	upstreamErrors    prometheus.Counter
	statements        *prometheus.CounterVec
	denials           *prometheus.CounterVec
	overLimits        *prometheus.CounterVec
	statementDuration prometheus.Histogram
	rewriteDuration   prometheus.Histogram
	maskedColumns     prometheus.Counter
	shapeStatements   *prometheus.CounterVec // shapeprep.go

	mu     sync.RWMutex
	byKind map[statementLabels]prometheus.Counter
}

type statementLabels struct{ kind, role, decision string }

// NewMetrics creates the proxy's collectors and registers them on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		connectionsActive: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Subsystem: subsystemProxy,
			Name: "client_connections_active", Help: "Client sessions being served."}),
		connectionsTotal: prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Subsystem: subsystemProxy,
			Name: "client_connections_total", Help: "Client sessions started (start-up packet received)."}),
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Subsystem: subsystemProxy,
			Name: "auth_failures_total", Help: "Logins refused: by the server (credentials) or by pgcloak (rules, TLS, limits)."},
			[]string{"by"}),
		upstreamErrors: prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Subsystem: subsystemProxy,
			Name: "upstream_connect_errors_total", Help: "Failed connections to the database server."}),
		statements: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace,
			Name: "statements_total", Help: "Statement executions, by statement kind, role and decision."},
			[]string{"kind", "role", "decision"}),
		denials: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace,
			Name: "statements_denied_total", Help: "Statements pgcloak refused, by reason."},
			[]string{"reason"}),
		overLimits: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Subsystem: subsystemProxy,
			Name: "sessions_over_limits_total", Help: "Sessions ended because they held more than the limits allow, by limit."},
			[]string{"limit"}),
		statementDuration: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: namespace,
			Name: "statement_duration_seconds", Help: "Time from forwarding a statement to the server's answer.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}}),
		rewriteDuration: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: namespace, Subsystem: subsystemRewrite,
			Name: "duration_seconds", Help: "Time the policy took to decide on a Query, Parse or FunctionCall message (rewrite cache hits included).",
			Buckets: []float64{.000005, .00001, .000025, .00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .1}}),
		maskedColumns: prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace,
			Name: "masked_columns_served_total", Help: "Masked columns in the statements served (one per masked column per execution)."}),
		shapeStatements: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Subsystem: subsystemRewrite,
			Name: "prepared_shapes_total", Help: "Statement shapes' templates prepared on server connections (prepared), those the server could not prepare (failed), and Queries run as one (executed)."},
			[]string{"event"}),
		byKind: map[statementLabels]prometheus.Counter{},
	}
	reg.MustRegister(m.connectionsActive, m.connectionsTotal, m.authFailures, m.upstreamErrors, m.statements,
		m.denials, m.overLimits, m.statementDuration, m.rewriteDuration, m.maskedColumns, m.shapeStatements)
	for _, e := range []string{"prepared", "failed", "executed"} {
		m.shapeStatements.WithLabelValues(e)
	}
	// The label values are known: show them at zero from the start.
	for _, by := range []string{"server", "pgcloak"} {
		m.authFailures.WithLabelValues(by)
	}
	for _, r := range audit.ReasonCodes {
		m.denials.WithLabelValues(string(r))
	}
	for _, l := range []string{"statements", "statement_bytes"} {
		m.overLimits.WithLabelValues(l)
	}
	return m
}

// statement counts one completed statement execution.
func (m *Metrics) statement(st *audit.Statement, d time.Duration) {
	role := st.Role
	if role == "" {
		role = "none"
	}
	k := statementLabels{st.Kind, role, st.Decision}
	m.mu.RLock()
	c := m.byKind[k]
	m.mu.RUnlock()
	if c == nil {
		c = m.statements.WithLabelValues(k.kind, k.role, k.decision)
		m.mu.Lock()
		m.byKind[k] = c
		m.mu.Unlock()
	}
	c.Inc()
	m.statementDuration.Observe(d.Seconds())
	if st.Decision == audit.Denied {
		m.denials.WithLabelValues(string(reasonLabel(st.ReasonCode))).Inc()
	}
	if st.Masked > 0 {
		m.maskedColumns.Add(float64(st.Masked))
	}
}

// reasonLabel keeps the label values to the known codes.
func reasonLabel(code audit.ReasonCode) audit.ReasonCode {
	if slices.Contains(audit.ReasonCodes, code) {
		return code
	}
	return audit.ReasonOther
}

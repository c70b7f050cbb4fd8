package main

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

const (
	namespace        = "pgcloak"
	subsystemRules   = "rules"
	subsystemRewrite = "rewrite"
)

// registerPolicyMetrics exports the rules store's reload counters and the
// rewrite engine's cache and wire-check counters. They read, at scrape
// time, counters the store and the engine keep anyway. (The proxy's and
// the access log's collectors are proxy.Metrics and audit's.)
func registerPolicyMetrics(reg prometheus.Registerer, p *policyState, refresh time.Duration) {
	stats := func() (ok, failed uint64, last float64, successful bool) {
		s := p.store.Load()
		if s == nil {
			return 0, p.startFailures.Load(), 0, false
		}
		st := s.Stats()
		return st.Successes, st.Failures + p.startFailures.Load(), float64(st.LastSuccess.UnixNano()) / 1e9, st.LastSuccessful
	}
	counter := func(sub, name, help string, labels prometheus.Labels, f func() float64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: namespace, Subsystem: sub, Name: name,
			Help: help, ConstLabels: labels}, f)
	}
	gauge := func(sub, name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: namespace, Subsystem: sub, Name: name, Help: help}, f)
	}
	boolean := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}
	reg.MustRegister(
		counter(subsystemRules, "reloads_total", "Rules loads and reloads (an unchanged file counts as a success).",
			prometheus.Labels{"result": "success"}, func() float64 { ok, _, _, _ := stats(); return float64(ok) }),
		counter(subsystemRules, "reloads_total", "Rules loads and reloads (an unchanged file counts as a success).",
			prometheus.Labels{"result": "failure"}, func() float64 { _, failed, _, _ := stats(); return float64(failed) }),
		gauge(subsystemRules, "last_reload_successful", "1 if the rules file on disk is the one in force, 0 while it does not load.",
			func() float64 { _, _, _, ok := stats(); return boolean(ok) }),
		gauge(subsystemRules, "last_reload_success_timestamp_seconds", "When the rules last loaded or were found unchanged.",
			func() float64 { _, _, last, _ := stats(); return last }),
		counter(subsystemRewrite, "cache_hits_total", "Rewrites answered from the rewrite cache.", nil,
			func() float64 { h, _ := p.engine.CacheStats(); return float64(h) }),
		counter(subsystemRewrite, "cache_misses_total", "Rewrites computed (not in the rewrite cache).", nil,
			func() float64 { _, m := p.engine.CacheStats(); return float64(m) }),
		counter(subsystemRewrite, "shape_cache_lookups_total", "Statements with inline constants looked up in the shape cache, by result (hit: rewritten from the shape's template).",
			prometheus.Labels{"result": "hit"}, func() float64 { h, _, _ := p.engine.ShapeStats(); return float64(h) }),
		counter(subsystemRewrite, "shape_cache_lookups_total", "Statements with inline constants looked up in the shape cache, by result (hit: rewritten from the shape's template).",
			prometheus.Labels{"result": "miss"}, func() float64 { _, m, _ := p.engine.ShapeStats(); return float64(m) }),
		counter(subsystemRewrite, "shape_cache_lookups_total", "Statements with inline constants looked up in the shape cache, by result (hit: rewritten from the shape's template).",
			prometheus.Labels{"result": "unshared"}, func() float64 { _, _, u := p.engine.ShapeStats(); return float64(u) }),
		counter(subsystemRewrite, "wire_check_incidents_total", "Result columns that came straight from a protected column the principal may not see raw, sent as NULL (design.md §5.4).", nil,
			func() float64 { return float64(p.engine.Incidents()) }),
		counter(subsystemRewrite, "verify_failures_total", "Statements refused because their rewritten text did not parse back to the tree pgcloak checked (rule verify).", nil,
			func() float64 { return float64(p.engine.VerifyFailures()) }),
		gauge(subsystemRewrite, "catalog_loaded", "1 once the database catalog is loaded.",
			func() float64 { return boolean(p.engine.Ready()) }),
		gauge(subsystemRewrite, "cache_bytes", "Estimated bytes held by the rewrite cache (limits.rewrite_cache_bytes).",
			func() float64 { return float64(p.engine.CacheBytes()) }),
		counter(subsystemRewrite, "unknown_relation_refreshes_total", "Catalog refreshes for relations a statement named and the snapshot lacked, and statements refused because their session had one moments before.",
			prometheus.Labels{"result": "refreshed"}, func() float64 { n, _ := p.engine.UnknownRefreshes(); return float64(n) }),
		counter(subsystemRewrite, "unknown_relation_refreshes_total", "Catalog refreshes for relations a statement named and the snapshot lacked, and statements refused because their session had one moments before.",
			prometheus.Labels{"result": "refused"}, func() float64 { _, n := p.engine.UnknownRefreshes(); return float64(n) }),
		gauge(subsystemRules, "loaded_timestamp_seconds", "When the rules in force were put in force (0 while none is).",
			func() float64 { return unixSeconds(p.loadedAt()) }),
		gauge(subsystemRewrite, "catalog_last_load_timestamp_seconds", "When the catalog snapshot in force began loading (0 while none is).",
			func() float64 { return unixSeconds(p.engine.CatalogLoadedAt()) }),
		gauge(subsystemRewrite, "catalog_age_seconds", "Age of the catalog snapshot in force; it is refreshed every catalog_refresh and after DDL (-1 while none is loaded).",
			func() float64 {
				at := p.engine.CatalogLoadedAt()
				if at.IsZero() {
					return -1
				}
				return time.Since(at).Seconds()
			}),
		gauge(subsystemRewrite, "catalog_refresh_interval_seconds", "The configured catalog_refresh, for alerts on the catalog's age.",
			func() float64 { return refresh.Seconds() }),
		rulesInfo{p},
	)
}

// registerServeMetrics exports what the configuration and the build fix:
// pgcloak_build_info and the client connection limit (for saturation).
func registerServeMetrics(reg prometheus.Registerer, cfg fileConfig) {
	reg.MustRegister(buildInfoCollector(),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: namespace, Subsystem: "proxy", Name: "client_connections_limit",
			Help: "limits.max_client_connections: client sessions beyond it are refused (0: no limit)."},
			func() float64 { return float64(cfg.Limits.MaxClientConnections) }))
}

func unixSeconds(t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return float64(t.UnixNano()) / 1e9
}

// rulesInfo is pgcloak_rules_info{version}: 1 for the rules version in
// force (the hash also in every access record), no
// sample while none is. Replicas agree when their versions do.
type rulesInfo struct{ p *policyState }

var rulesInfoDesc = prometheus.NewDesc(namespace+"_"+subsystemRules+"_info",
	"Always 1; the version label is the rules version in force.", []string{"version"}, nil)

func (r rulesInfo) Describe(ch chan<- *prometheus.Desc) { ch <- rulesInfoDesc }

func (r rulesInfo) Collect(ch chan<- prometheus.Metric) {
	if v := r.p.version(); v != "" {
		ch <- prometheus.MustNewConstMetric(rulesInfoDesc, prometheus.GaugeValue, 1, v)
	}
}

package audit

import "github.com/prometheus/client_golang/prometheus"

const (
	namespace = "pgcloak"
	subsystem = "audit"
)

// registerMetrics exports a log's counters, labelled with its sink (file
// or stdout). They read the log's own atomic counters, so the writer does
// no extra work for them.
func registerMetrics(reg prometheus.Registerer, l *Log) {
	labels := prometheus.Labels{"sink": l.sink.name()}
	counter := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: namespace, Subsystem: subsystem,
			Name: name, Help: help, ConstLabels: labels}, f)
	}
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: namespace, Subsystem: subsystem,
			Name: name, Help: help, ConstLabels: labels}, f)
	}
	reg.MustRegister(
		counter("records_written_total", "Access records written, chain records included.",
			func() float64 { return float64(l.written.Load()) }),
		counter("write_errors_total", "Failed attempts to write to the access log sink.",
			func() float64 { return float64(l.errs.Load()) }),
		counter("dropped_records_total", "Access records lost: the sink failed (fail_open), the queue stayed full, or shutdown could not wait.",
			func() float64 { return float64(l.lost.Load()) }),
		gauge("queue_depth", "Access records waiting for the writer.",
			func() float64 { return float64(len(l.ch)) }),
		gauge("queue_capacity", "Size of the access record queue.",
			func() float64 { return float64(cap(l.ch)) }),
		gauge("sink_up", "1 while the access log sink is written, 0 while it fails.",
			func() float64 {
				if l.failing.Load() {
					return 0
				}
				return 1
			}),
	)
}

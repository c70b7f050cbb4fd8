package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/pgcloak/pgcloak/audit"
	"github.com/pgcloak/pgcloak/engine"
	"github.com/pgcloak/pgcloak/proxy"
)

func init() {
	register("serve", "run the proxy", runServe)
}

func runServe(args []string) int {
	cfg, cfgFile, err := serveFlagsPath(args, os.Stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(os.Stderr, "pgcloak serve:", err)
		return 2
	}
	level := new(slog.LevelVar)
	log := newLoggerLevel(cfg.Log, level)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	// From the start: SIGHUP's default action would end the process.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	if code := checkPooling(ctx, cfg, log); code != 0 {
		return code
	}
	pc, svc, err := setup(ctx, cfg, log)
	if err != nil {
		fmt.Fprintln(os.Stderr, "pgcloak serve:", err)
		return 2
	}
	svc.reloader = newReloader(args, cfgFile, cfg, log, level, &svc)
	go svc.reloader.run(ctx, hup)
	if err := serve(ctx, cfg, pc, log, svc); err != nil {
		log.Error("pgcloak stopped", "err", err)
		return 1
	}
	return 0
}

// services are what runs beside the proxy: the rules and rewrite engine,
// the access log, and the metrics registry the admin listener serves.
type services struct {
	policy *policyState // nil without rules
	logs   audit.Logs   // nil without an access log
	reg    *prometheus.Registry
	// draining is set once shutdown begins: /readyz answers 503 from then
	// on, so that load balancers stop sending new sessions.
	draining *atomic.Bool
	// cert is the client-side certificate, nil without client TLS.
	cert *certReloader
	// token is the admin API's bearer token; "" turns the API off.
	token    *atomic.Pointer[string]
	reloader *reloader
}

// setup builds the proxy's config and starts the services it needs: the
// rules and the rewrite engine, the access log, the metrics.
func setup(ctx context.Context, cfg fileConfig, log *slog.Logger) (proxy.Config, services, error) {
	var svc services
	pc, err := cfg.proxyConfig()
	if err != nil {
		return pc, svc, err
	}
	pc.Logger = log
	svc.reg = prometheus.NewRegistry()
	svc.draining = new(atomic.Bool)
	svc.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	registerServeMetrics(svc.reg, cfg)
	svc.token = new(atomic.Pointer[string])
	svc.token.Store(&cfg.AdminToken)
	if cfg.TLS.CertFile != "" {
		svc.cert, err = newCertReloader(cfg.TLS.CertFile, cfg.TLS.KeyFile, log, svc.reg)
		if err != nil {
			return pc, svc, &configError{key: "tls.cert_file", msg: err.Error()}
		}
		pc.ClientTLS = svc.cert.tlsConfig()
	}
	pc.Metrics = proxy.NewMetrics(svc.reg)
	if cfg.Rules != "" {
		svc.policy = startPolicy(ctx, cfg, log)
		registerPolicyMetrics(svc.reg, svc.policy, time.Duration(cfg.CatalogRefresh))
		pc.Policy = svc.policy.engine
	}
	if cfg.Audit.on() {
		version := func() string { return "" }
		if svc.policy != nil {
			version = svc.policy.version
		}
		opts := audit.Options{MaxSize: int64(cfg.Audit.MaxSize), MaxFiles: cfg.Audit.MaxFiles,
			QueueSize: cfg.Audit.QueueSize, OnFailure: audit.OnFailure(cfg.Audit.OnFailure),
			RulesVersion: version, Logger: log, Registerer: svc.reg, Instance: cfg.InstanceID,
			WaitForWrite: cfg.Audit.WaitForWrite}
		var sinks []audit.Options
		if cfg.Audit.File != "" {
			o := opts
			o.File = cfg.Audit.File
			sinks = append(sinks, o)
		}
		if cfg.Audit.Stdout {
			o := opts
			o.Stream = os.Stdout
			sinks = append(sinks, o)
		}
		for _, o := range sinks {
			l, err := audit.Open(o)
			if err != nil {
				svc.logs.Close()
				return pc, svc, err
			}
			svc.logs = append(svc.logs, l)
		}
		pc.AccessLog = svc.logs
		if pc.Policy == nil {
			// Without rules every session passes through; with an access
			// log each is still observed, statement by statement.
			pc.Policy = engine.Observer{}
		}
		if svc.policy != nil {
			go recordRulesChanges(ctx, svc.policy, svc.logs)
		}
		log.Info("access log on", "file", cfg.Audit.File, "stdout", cfg.Audit.Stdout, "on_failure", cfg.Audit.OnFailure)
	}
	return pc, svc, nil
}

// recordRulesChanges writes a rules record to the access log whenever the
// rules in force change.
func recordRulesChanges(ctx context.Context, p *policyState, logs audit.Logs) {
	last := p.version()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if v := p.version(); v != last {
			logs.Emit(&audit.Record{Time: time.Now(), Type: audit.TypeRules, RulesVersion: v})
			last = v
		}
	}
}

// serve listens on every address, serves until ctx is done, then shuts
// down gracefully and closes the access log.
func serve(ctx context.Context, cfg fileConfig, pc proxy.Config, log *slog.Logger, svc services) error {
	srv := proxy.New(pc)
	defer func() {
		if svc.logs != nil {
			if err := svc.logs.Close(); err != nil {
				log.Error("the access log did not close cleanly", "err", err)
			}
		}
	}()
	var listeners []net.Listener
	closeAll := func() {
		for _, l := range listeners {
			l.Close()
		}
	}
	for _, addr := range cfg.Listen {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			closeAll()
			return fmt.Errorf("listen %s: %w", addr, err)
		}
		listeners = append(listeners, l)
	}
	var admin *http.Server
	if cfg.Admin != "" {
		l, err := net.Listen("tcp", cfg.Admin)
		if err != nil {
			closeAll()
			return fmt.Errorf("admin listen %s: %w", cfg.Admin, err)
		}
		admin = &http.Server{Handler: adminHandler(srv, svc), ReadHeaderTimeout: 10 * time.Second}
		go admin.Serve(l)
		log.Info("admin listening", "addr", l.Addr().String())
	}
	errc := make(chan error, len(listeners))
	var wg sync.WaitGroup
	for _, l := range listeners {
		wg.Add(1)
		log.Info("pgcloak listening", "addr", l.Addr().String(), "upstream", cfg.Upstream.Address)
		go func() {
			defer wg.Done()
			if err := srv.Serve(l); err != nil && !errors.Is(err, proxy.ErrServerClosed) {
				errc <- err
			}
		}()
	}
	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
	}
	svc.draining.Store(true)
	grace := time.Duration(cfg.Timeouts.ShutdownGrace)
	log.Info("shutting down", "active_sessions", srv.ActiveSessions(), "grace", grace.String())
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("sessions still open after the grace period were terminated")
	}
	wg.Wait()
	if admin != nil {
		admin.Close()
	}
	log.Info("pgcloak stopped")
	return serveErr
}

// adminHandler serves /metrics, /healthz (the process is alive) and
// /readyz: ready when the rules and the catalog are loaded, the upstream
// accepts connections and the access log is being written.
func adminHandler(srv *proxy.Server, svc services) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(svc.reg, promhttp.HandlerOpts{Registry: svc.reg}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := ready(ctx, srv, svc); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	adminAPI(mux, srv, svc)
	return mux
}

// ready is nil when pgcloak can serve: every failing check is named.
func ready(ctx context.Context, srv *proxy.Server, svc services) error {
	if svc.draining != nil && svc.draining.Load() {
		return errors.New("draining: shutting down, sessions are finishing")
	}
	var errs []error
	if svc.policy != nil {
		if err := svc.policy.ready(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := srv.PingUpstream(ctx); err != nil {
		errs = append(errs, fmt.Errorf("upstream unreachable: %w", err))
	}
	if svc.logs != nil {
		if err := svc.logs.Healthy(); err != nil {
			errs = append(errs, fmt.Errorf("access log not writable: %w", err))
		}
	}
	return errors.Join(errs...)
}

func newLogger(c logConfig) *slog.Logger { return newLoggerLevel(c, new(slog.LevelVar)) }

// newLoggerLevel is newLogger with its level in lv, which a reload sets.
func newLoggerLevel(c logConfig, lv *slog.LevelVar) *slog.Logger {
	var level slog.Level
	level.UnmarshalText([]byte(c.Level))
	lv.Set(level)
	opts := &slog.HandlerOptions{Level: lv}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}

package main

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Reloading: on SIGHUP, when the config file changes, and on POST
// /admin/reload, pgcloak reads its configuration again (the same command
// line, environment and file as at start), reads the client certificate
// files and the rules file again, and puts in force what can change while
// sessions run. What cannot (the listen and upstream addresses, the access
// log, ...) is logged as needing a restart, and the old value stays in
// force. The certificate files and the rules file are also watched on
// their own.

// reloadableKeys are the config keys a reload puts in force; every other
// key changes only with a restart.
var reloadableKeys = []string{"admin_token", "log.level", "tls.cert_file", "tls.key_file"}

// reloader owns the configuration in force of a running pgcloak.
type reloader struct {
	args       []string // serve's arguments
	configFile string
	log        *slog.Logger
	level      *slog.LevelVar
	svc        *services

	mu  sync.Mutex
	cfg fileConfig // in force

	reloads        *prometheus.CounterVec
	lastOK         prometheus.Gauge
	restartPending prometheus.Gauge
}

// reloadReport says what a reload did.
type reloadReport struct {
	// Applied are the config keys whose new values are in force.
	Applied []string `json:"applied,omitempty"`
	// RestartNeeded are the keys changed in the configuration whose old
	// values stay in force until a restart.
	RestartNeeded []string `json:"restart_needed,omitempty"`
	Certificate   string   `json:"certificate,omitempty"` // reloaded or unchanged
	Rules         string   `json:"rules,omitempty"`       // reloaded, unchanged or not loaded yet
	RulesVersion  string   `json:"rules_version,omitempty"`
	// Errors: what did not load; the old state stays in force.
	Errors []string `json:"errors,omitempty"`
}

func newReloader(args []string, configFile string, cfg fileConfig, log *slog.Logger, level *slog.LevelVar, svc *services) *reloader {
	r := &reloader{args: args, configFile: configFile, cfg: cfg, log: log, level: level, svc: svc,
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Subsystem: "config",
			Name: "reloads_total", Help: "Reloads (SIGHUP, config file change, POST /admin/reload), by result."}, []string{"result"}),
		lastOK: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Subsystem: "config",
			Name: "last_reload_successful", Help: "1 if the last reload put everything it read in force."}),
		restartPending: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Subsystem: "config",
			Name: "restart_pending", Help: "1 if the configuration read at the last reload changes keys that need a restart."}),
	}
	r.reloads.WithLabelValues("success")
	r.reloads.WithLabelValues("failure")
	r.lastOK.Set(1)
	svc.reg.MustRegister(r.reloads, r.lastOK, r.restartPending)
	return r
}

// run reloads on SIGHUP and when the config file changes, and watches the
// certificate files, until ctx is done. hup is already notified of SIGHUP.
func (r *reloader) run(ctx context.Context, hup chan os.Signal) {
	defer signal.Stop(hup)
	if r.svc.cert != nil {
		go r.svc.cert.watch(ctx, time.Second)
	}
	t := time.NewTicker(time.Second)
	defer t.Stop()
	last := fileSum(r.configFile)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			r.reload("SIGHUP")
		case <-t.C:
			if r.configFile == "" {
				continue
			}
			if sum := fileSum(r.configFile); sum != last {
				last = sum
				r.reload("config file changed")
			}
		}
	}
}

func fileSum(path string) [32]byte {
	if path == "" {
		return [32]byte{}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return [32]byte{}
	}
	return sha256.Sum256(b)
}

// reload reads everything again and puts in force what may change.
func (r *reloader) reload(why string) reloadReport {
	r.mu.Lock()
	defer r.mu.Unlock()
	var rep reloadReport
	cfg, _, err := serveFlagsPath(r.args, io.Discard)
	if err != nil {
		rep.Errors = append(rep.Errors, "config: "+err.Error())
		r.log.Error("config not reloaded; the config in force stays", "why", why, "err", err)
	} else {
		var errs []string
		rep.Applied, rep.RestartNeeded, errs = r.apply(cfg)
		rep.Errors = append(rep.Errors, errs...)
	}
	if r.svc.cert != nil && !slices.Contains(rep.Applied, "tls.cert_file") && !slices.Contains(rep.Applied, "tls.key_file") {
		changed, err := r.svc.cert.reload()
		switch {
		case err != nil:
			rep.Errors = append(rep.Errors, "certificate: "+err.Error())
		case changed:
			rep.Certificate = "reloaded"
		default:
			rep.Certificate = "unchanged"
		}
	}
	if p := r.svc.policy; p != nil {
		store := p.store.Load()
		if store == nil {
			rep.Rules = "not loaded yet (retried every second)"
		} else {
			before := store.Current().Version()
			if err := store.Reload(); err != nil {
				rep.Errors = append(rep.Errors, "rules: "+err.Error())
				r.log.Error("rules reload failed; the old rules stay in force", "err", err)
			} else if v := store.Current().Version(); v != before {
				rep.Rules = "reloaded"
				r.log.Info("rules reloaded", "version", v)
			} else {
				rep.Rules = "unchanged"
			}
			rep.RulesVersion = store.Current().Version()
		}
	}
	result := "success"
	if len(rep.Errors) > 0 {
		result = "failure"
		r.lastOK.Set(0)
	} else {
		r.lastOK.Set(1)
	}
	r.reloads.WithLabelValues(result).Inc()
	r.log.Info("reload done", "why", why, "result", result, "applied", strings.Join(rep.Applied, ","),
		"restart_needed", strings.Join(rep.RestartNeeded, ","))
	return rep
}

// apply puts in force the reloadable keys that changed and lists the
// others. Values are not logged: some are secrets (admin_token, a password
// in catalog_dsn).
func (r *reloader) apply(cfg fileConfig) (applied, restart, errs []string) {
	old, cur := flatten(r.cfg), flatten(cfg)
	var keys []string
	for k, v := range cur {
		if old[k] != v {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	tlsOnBoth := r.cfg.TLS.CertFile != "" && cfg.TLS.CertFile != ""
	for _, k := range keys {
		ok := slices.Contains(reloadableKeys, k)
		if (k == "tls.cert_file" || k == "tls.key_file") && !tlsOnBoth {
			ok = false // turning TLS on or off changes what the listener accepts
		}
		if !ok {
			restart = append(restart, k)
			r.log.Warn("config change needs a restart; the old value stays in force until then", "key", k)
		}
	}
	if len(restart) > 0 {
		r.restartPending.Set(1)
	} else {
		r.restartPending.Set(0)
	}
	for _, k := range keys {
		if slices.Contains(restart, k) {
			continue
		}
		switch k {
		case "admin_token":
			tok := cfg.AdminToken
			r.svc.token.Store(&tok)
			r.cfg.AdminToken = cfg.AdminToken
		case "log.level":
			var l slog.Level
			l.UnmarshalText([]byte(cfg.Log.Level))
			r.level.Set(l)
			r.cfg.Log.Level = cfg.Log.Level
		case "tls.cert_file", "tls.key_file":
			continue // below, both at once
		}
		applied = append(applied, k)
	}
	var tlsKeys []string
	for _, k := range keys {
		if (k == "tls.cert_file" || k == "tls.key_file") && !slices.Contains(restart, k) {
			tlsKeys = append(tlsKeys, k)
		}
	}
	if len(tlsKeys) > 0 {
		if err := r.svc.cert.setFiles(cfg.TLS.CertFile, cfg.TLS.KeyFile); err != nil {
			errs = append(errs, "certificate: "+err.Error()) // the old files stay in force
		} else {
			r.cfg.TLS.CertFile, r.cfg.TLS.KeyFile = cfg.TLS.CertFile, cfg.TLS.KeyFile
			applied = append(applied, tlsKeys...)
		}
	}
	return applied, restart, errs
}

// flatten lists the config's leaf keys (dotted, as in the file) with
// their values printed.
func flatten(cfg fileConfig) map[string]string {
	m := map[string]string{}
	var walk func(prefix string, v reflect.Value)
	walk = func(prefix string, v reflect.Value) {
		t := v.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			key := strings.Split(f.Tag.Get("yaml"), ",")[0]
			if prefix != "" {
				key = prefix + "." + key
			}
			if f.Type.Kind() == reflect.Struct {
				walk(key, v.Field(i))
				continue
			}
			m[key] = fmt.Sprint(v.Field(i).Interface())
		}
	}
	walk("", reflect.ValueOf(cfg))
	return m
}

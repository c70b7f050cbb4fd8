package main

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/pgcloak/pgcloak/engine"
	"github.com/pgcloak/pgcloak/rules"
)

// policyState is the rules and the rewrite engine of a running pgcloak.
type policyState struct {
	file   string
	engine *engine.Engine
	store  atomic.Pointer[rules.Store] // nil until the rules file first loads
	// startErr says why the rules did not load at start; startFailures
	// counts the attempts.
	startErr      atomic.Pointer[string]
	startFailures atomic.Uint64
}

// current is the policy in force, nil while none has loaded.
func (p *policyState) current() *rules.Policy {
	if s := p.store.Load(); s != nil {
		return s.Current()
	}
	return nil
}

func (p *policyState) version() string {
	if pol := p.current(); pol != nil {
		return pol.Version()
	}
	return ""
}

// loadedAt is when the rules in force were put in force; zero while none is.
func (p *policyState) loadedAt() time.Time {
	if s := p.store.Load(); s != nil {
		return s.Stats().Loaded
	}
	return time.Time{}
}

// ready is nil when the rules and the database catalog are loaded.
func (p *policyState) ready() error {
	if p.store.Load() == nil {
		msg := "not loaded"
		if e := p.startErr.Load(); e != nil {
			msg = *e
		}
		return errors.New("rules not loaded: " + msg)
	}
	if !p.engine.Ready() {
		return errors.New("the database catalog is not loaded yet")
	}
	return nil
}

// startPolicy loads the rules, reloads them when the file changes (and,
// reload.go, on SIGHUP and POST /admin/reload), and starts the rewrite engine. A rules file that does not load
// at start does not stop pgcloak: it stays up but not ready (/readyz),
// refusing every session, and loads the file as soon as it is valid, so
// that an orchestrator routes around it and a fixed ConfigMap heals it. A
// catalog that cannot be read yet is retried: until then restricted
// sessions are refused.
func startPolicy(ctx context.Context, cfg fileConfig, log *slog.Logger) *policyState {
	p := &policyState{file: cfg.Rules}
	p.engine = engine.NewEngine(p.current, cfg.CatalogDSN, log)
	p.engine.SetLimits(cfg.rewriteLimits())
	if err := p.engine.Start(ctx, time.Duration(cfg.CatalogRefresh)); err != nil {
		log.Warn("catalog not loaded yet; restricted sessions are refused until it is", "err", err)
	}
	store, err := rules.NewStore(cfg.Rules, log)
	if err == nil {
		p.loaded(ctx, store, log)
		return p
	}
	p.failedAtStart(err, log)
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			store, err := rules.NewStore(cfg.Rules, log)
			if err != nil {
				p.failedAtStart(err, log)
				continue
			}
			p.loaded(ctx, store, log)
			return
		}
	}()
	return p
}

func (p *policyState) failedAtStart(err error, log *slog.Logger) {
	p.startFailures.Add(1)
	msg := err.Error()
	if old := p.startErr.Swap(&msg); old == nil || *old != msg {
		log.Error("rules did not load; pgcloak is not ready and refuses every session until the file is valid",
			"file", p.file, "err", err)
	}
}

// loaded puts a store in force and starts watching its file.
func (p *policyState) loaded(ctx context.Context, store *rules.Store, log *slog.Logger) {
	p.store.Store(store)
	go store.Watch(ctx, time.Second)
	log.Info("rules loaded", "file", store.Path(), "version", store.Current().Version())
}

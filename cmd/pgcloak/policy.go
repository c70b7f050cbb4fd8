package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/pgcloak/pgcloak/rewrite"
	"github.com/pgcloak/pgcloak/rules"
)

// startPolicy loads the rules (an invalid file stops start-up with its
// position), reloads them on SIGHUP and when the file changes, and starts
// the rewrite engine. A catalog that cannot be read yet is retried: until
// then restricted sessions are refused.
func startPolicy(ctx context.Context, cfg fileConfig, log *slog.Logger) (*rewrite.Engine, error) {
	store, err := rules.NewStore(cfg.Rules, log)
	if err != nil {
		return nil, err
	}
	go store.Watch(ctx, time.Second)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		defer signal.Stop(hup)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				if err := store.Reload(); err != nil {
					log.Error("rules reload failed; the old rules stay in force", "err", err)
				} else {
					log.Info("rules reloaded", "version", store.Current().Version())
				}
			}
		}
	}()
	engine := rewrite.NewEngine(store.Current, cfg.CatalogDSN, log)
	if err := engine.Start(ctx, time.Duration(cfg.CatalogRefresh)); err != nil {
		log.Warn("catalog not loaded yet; restricted sessions are refused until it is", "err", err)
	}
	log.Info("rules loaded", "file", cfg.Rules, "version", store.Current().Version())
	return engine, nil
}

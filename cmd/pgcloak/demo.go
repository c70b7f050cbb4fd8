package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/pgcloak/pgcloak/internal/pgtest"
)

func init() {
	register("demo", "start a throwaway PostgreSQL and pgcloak in front of it", runDemo)
}

func runDemo(args []string) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:6432", "pgcloak's client address, HOST:PORT")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	fmt.Fprintln(os.Stderr, "pgcloak demo: starting a throwaway PostgreSQL...")
	pg, err := pgtest.Start(pgtest.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "pgcloak demo:", err)
		return 1
	}
	defer pg.Stop()

	cfg := defaultConfig()
	cfg.Listen = []string{*listen}
	cfg.Upstream.Address = pg.Addr()
	cfg.Log.Level = "warn"
	pc, err := cfg.proxyConfig()
	if err != nil {
		fmt.Fprintln(os.Stderr, "pgcloak demo:", err)
		return 1
	}
	log := newLogger(cfg.Log)
	pc.Logger = log

	host, port, _ := net.SplitHostPort(*listen)
	fmt.Printf(`
pgcloak is listening on %s, in front of a throwaway PostgreSQL on %s.
Connect through pgcloak (password %q):

  psql "host=%s port=%s user=%s dbname=%s"
  psql "host=%s port=%s user=%s dbname=%s"

Every statement passes through pgcloak's relay. Ctrl-C stops both and removes the data.
`, *listen, pg.Addr(), pgtest.Password,
		host, port, pgtest.ScramUser, pgtest.Database,
		host, port, pgtest.MD5User, pgtest.Database)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := serve(ctx, cfg, pc, log); err != nil {
		fmt.Fprintln(os.Stderr, "pgcloak demo:", err)
		return 1
	}
	return 0
}

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgcloak/pgcloak/examples/crm"
	"github.com/pgcloak/pgcloak/internal/pgtest"
	"github.com/pgcloak/pgcloak/schema"
)

func init() {
	register("demo", "run pgcloak with the sample CRM on a throwaway PostgreSQL", runDemo)
}

func runDemo(args []string) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:6432", "pgcloak's client address, HOST:PORT")
	customers := fs.Int("customers", 5000, "customers in the sample CRM")
	portalListen := fs.String("portal-listen", "127.0.0.1:8080", "the customers' portal's address, HOST:PORT")
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
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "pgcloak demo:", err)
		return 1
	}

	fmt.Fprintf(os.Stderr, "pgcloak demo: loading the sample CRM (%d customers)...\n", *customers)
	ctx := context.Background()
	adminDSN := pg.DSN(pgtest.SuperUser, pgtest.Database)
	conn, err := pgx.Connect(ctx, adminDSN)
	if err != nil {
		return fail(err)
	}
	_, err = crm.Load(ctx, conn, crm.Options{Customers: *customers})
	if err == nil {
		err = schema.Setup(ctx, conn.Exec)
	}
	conn.Close(ctx)
	if err != nil {
		return fail(err)
	}
	rulesFile := filepath.Join(pg.Dir, "rules.yaml")
	if err := os.WriteFile(rulesFile, crm.Rules, 0o644); err != nil {
		return fail(err)
	}

	cfg := defaultConfig()
	cfg.Listen = []string{*listen}
	cfg.Upstream.Address = pg.Addr()
	cfg.Rules = rulesFile
	cfg.CatalogDSN = adminDSN
	cfg.Audit.File = filepath.Join(pg.Dir, "audit.log")
	cfg.Log.Level = "warn"
	log := newLogger(cfg.Log)
	sctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	pc, svc, err := setup(sctx, cfg, log)
	if err != nil {
		return fail(err)
	}

	portalHelp, err := startDemoPortal(sctx, pg, rulesFile, *portalListen)
	if err != nil {
		return fail(err)
	}

	host, port, _ := net.SplitHostPort(*listen)
	psql := func(user string) string {
		return fmt.Sprintf("PGPASSWORD=%s psql \"host=%s port=%s user=%s dbname=%s\"", crm.DemoPassword, host, port, user, pgtest.Database)
	}
	fmt.Printf(`
pgcloak is listening on %s, in front of a throwaway PostgreSQL with the
sample CRM (examples/crm) and its rules (examples/crm/rules.yaml).
Try the same query as three people:

  %s
      alice is a sales rep in the north: north customers only, sensitive columns hidden

  %s
      ana is an analyst: names pseudonymized, birth dates and incomes generalized,
      customers who opted out of automated decisions left out

  %s
      petra is the privacy officer: everything

  SELECT customer_id, first_name, last_name, email, birth_date, annual_income, region, national_id
  FROM customers ORDER BY customer_id LIMIT 5;

Then try what they may not: SELECT * FROM commissions; SELECT * FROM pg_stats;
SET search_path = x; DO $$ BEGIN END $$; or ask pgcloak directly:

  pgcloak explain --rules %s --database "%s" --user alice 'SELECT * FROM orders'

Other logins (all with password %s): bob, erin, sam, connie, walt, victor, mia, dex, dana (a DBA,
unrestricted). Ctrl-C stops pgcloak and PostgreSQL and removes the data.

%s`, *listen, psql("alice"), psql("ana"), psql("petra"), rulesFile, adminDSN, crm.DemoPassword, portalHelp)
	fmt.Printf(`
The privacy officer's report of what you did (docs/report.md), from another terminal:

  pgcloak report --rules %s --database "%s" --audit-file '%s' --audit-open --out report.html
`, rulesFile, adminDSN, filepath.Join(pg.Dir, "audit*.log"))

	start := time.Now()
	if err := serve(sctx, cfg, pc, log, svc); err != nil {
		return fail(err)
	}
	fmt.Fprintf(os.Stderr, "pgcloak demo: stopped after %s\n", time.Since(start).Round(time.Second))
	return 0
}

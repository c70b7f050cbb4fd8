package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgcloak/pgcloak/audit"
	"github.com/pgcloak/pgcloak/examples/crm"
	"github.com/pgcloak/pgcloak/internal/pgtest"
	"github.com/pgcloak/pgcloak/portal"
	"github.com/pgcloak/pgcloak/rules"
)

// startDemoPortal starts the customers' portal of the demo on listen, as
// the sample login pgcloak_portal with its grants, and returns the lines
// that tell a newcomer how to use it. It stops when ctx ends.
func startDemoPortal(ctx context.Context, pg *pgtest.Server, rulesFile, listen string) (string, error) {
	pol, err := rules.Load(rulesFile)
	if err != nil {
		return "", err
	}
	conn, err := pgx.Connect(ctx, pg.DSN(pgtest.SuperUser, pgtest.Database))
	if err != nil {
		return "", err
	}
	for _, g := range portal.Grants(pol, "pgcloak_portal") {
		if _, err := conn.Exec(ctx, g); err != nil {
			conn.Close(ctx)
			return "", fmt.Errorf("portal grants: %w", err)
		}
	}
	var subject string
	err = conn.QueryRow(ctx, "SELECT min(customer_id)::text FROM customers").Scan(&subject)
	conn.Close(ctx)
	if err != nil {
		return "", err
	}
	key, err := portal.KeyFromEnv()
	if err != nil {
		b := make([]byte, 32)
		rand.Read(b)
		os.Setenv(portal.KeyEnv, hex.EncodeToString(b))
		key, _ = portal.KeyFromEnv()
	}
	db, err := pgxpool.New(ctx, pg.DSN("pgcloak_portal", pgtest.Database))
	if err != nil {
		return "", err
	}
	auditFile := filepath.Join(pg.Dir, "portal-access.log")
	alog, err := audit.Open(audit.Options{File: auditFile, RulesVersion: pol.Version})
	if err != nil {
		db.Close()
		return "", err
	}
	srv, err := portal.New(ctx, portal.Config{Policy: pol, DB: db, Key: key, Audit: alog})
	if err != nil {
		db.Close()
		alog.Close()
		return "", err
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		db.Close()
		alog.Close()
		return "", err
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(slog.DiscardHandler, 0)}
	go hs.Serve(ln)
	go func() {
		<-ctx.Done()
		hs.Close()
		db.Close()
		alog.Close()
	}()
	base := "http://" + ln.Addr().String()
	return fmt.Sprintf(`The customers' portal (docs/portal.md) is on %s. Customer %s's own page,
valid for 24 hours:

  %s

Opt out there, or send a correction and approve it as petra:

  pgcloak review list --database "%s"
  pgcloak review approve --database "%s" --rules %s \
      --approver-database "%s" ID

More links: PGCLOAK_PORTAL_KEY=%s pgcloak portal link --base-url %s --subject KEY
The portal's access log: %s
`, base, subject, portal.Link(base, key, subject, time.Now().Add(24*time.Hour)),
		pg.DSN(pgtest.SuperUser, pgtest.Database), pg.DSN(pgtest.SuperUser, pgtest.Database), rulesFile,
		approverDSN(pg), os.Getenv(portal.KeyEnv), base, auditFile), nil
}

// approverDSN connects to the demo's PostgreSQL as petra, the privacy
// officer, whom review authenticates as the approver.
func approverDSN(pg *pgtest.Server) string {
	host, port, _ := net.SplitHostPort(pg.Addr())
	return fmt.Sprintf("host=%s port=%s user=petra password=%s dbname=%s sslmode=disable", host, port, crm.DemoPassword, pgtest.Database)
}

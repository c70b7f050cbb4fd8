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
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgcloak/pgcloak/audit"
	"github.com/pgcloak/pgcloak/portal"
	"github.com/pgcloak/pgcloak/rules"
)

func init() {
	register("portal", "the customers' own web page: their data, opt-outs and corrections", runPortal)
}

func portalUsage() {
	fmt.Fprintln(os.Stderr, `usage: pgcloak portal --rules FILE --database DSN --listen ADDR [--tls-cert FILE --tls-key FILE | --tls-proxy]
                      [--audit-file FILE] [--requester LOGIN]
       pgcloak portal link --subject KEY [--ttl 24h] [--base-url URL]
       pgcloak portal grants --rules FILE --login LOGIN

The link key is read from $PGCLOAK_PORTAL_KEY (docs/portal.md).`)
}

func runPortal(args []string) int {
	if len(args) > 0 {
		switch args[0] {
		case "link":
			return runPortalLink(args[1:])
		case "grants":
			return runPortalGrants(args[1:])
		}
	}
	fs := flag.NewFlagSet("portal", flag.ContinueOnError)
	fs.Usage = func() { portalUsage(); fmt.Fprintln(os.Stderr); fs.PrintDefaults() }
	rulesFile := fs.String("rules", "", "privacy rules `FILE` (required)")
	dsn := fs.String("database", "", "connection string of the CRM database, as the portal's own login (required; grants: pgcloak portal grants)")
	listen := fs.String("listen", "127.0.0.1:8443", "address to serve on, HOST:PORT")
	certFile := fs.String("tls-cert", "", "TLS certificate `FILE` (PEM); with --tls-key the portal serves HTTPS")
	keyFile := fs.String("tls-key", "", "TLS private key `FILE` (PEM)")
	auditFile := fs.String("audit-file", "", "access log `FILE` for what visitors do: a file of its own, not the one pgcloak serve writes")
	tlsProxy := fs.Bool("tls-proxy", false, "customers reach the portal through a TLS-terminating proxy: mark the cookie Secure and send HSTS")
	requester := fs.String("requester", "", "login of the rules that corrections are recorded for (default: the database login)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *rulesFile == "" || *dsn == "" || fs.NArg() != 0 || (*certFile == "") != (*keyFile == "") {
		portalUsage()
		return 2
	}
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "pgcloak portal:", err)
		return 1
	}
	key, err := portal.KeyFromEnv()
	if err != nil {
		return fail(err)
	}
	pol, err := rules.Load(*rulesFile)
	if err != nil {
		return fail(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	db, err := pgxpool.New(ctx, *dsn)
	if err != nil {
		return fail(err)
	}
	defer db.Close()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	cfg := portal.Config{Policy: pol, DB: db, Key: key, Requester: *requester, TLS: *certFile != "" || *tlsProxy, Logger: logger}
	if *auditFile != "" {
		log, err := audit.Open(audit.Options{File: *auditFile, OnFailure: audit.FailClosed,
			RulesVersion: pol.Version, Logger: logger})
		if err != nil {
			return fail(err)
		}
		defer log.Close()
		cfg.Audit = log
	}
	srv, err := portal.New(ctx, cfg)
	if err != nil {
		return fail(err)
	}
	return servePortal(ctx, srv, *listen, *certFile, *keyFile, logger)
}

// servePortal serves the portal on listen until ctx ends.
func servePortal(ctx context.Context, h http.Handler, listen, certFile, keyFile string, logger *slog.Logger) int {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, "pgcloak portal:", err)
		return 1
	}
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 16 << 10,
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn)}
	done := make(chan error, 1)
	go func() {
		if certFile != "" {
			done <- hs.ServeTLS(ln, certFile, keyFile)
		} else {
			done <- hs.Serve(ln)
		}
	}()
	logger.Info("pgcloak portal listening", "addr", ln.Addr().String(), "tls", certFile != "")
	select {
	case err := <-done:
		fmt.Fprintln(os.Stderr, "pgcloak portal:", err)
		return 1
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	hs.Shutdown(sctx)
	return 0
}

func runPortalLink(args []string) int {
	fs := flag.NewFlagSet("portal link", flag.ContinueOnError)
	fs.Usage = portalUsage
	subject := fs.String("subject", "", "the data subject's key (the subject table's key column) (required)")
	ttl := fs.Duration("ttl", 24*time.Hour, "how long the link is valid")
	base := fs.String("base-url", "https://localhost:8443", "the portal's address as customers reach it")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *subject == "" || fs.NArg() != 0 {
		portalUsage()
		return 2
	}
	if *ttl <= 0 || *ttl > portal.MaxLinkTTL {
		fmt.Fprintf(os.Stderr, "pgcloak portal link: --ttl must be positive and at most %s\n", portal.MaxLinkTTL)
		return 2
	}
	key, err := portal.KeyFromEnv()
	if err != nil {
		fmt.Fprintln(os.Stderr, "pgcloak portal link:", err)
		return 1
	}
	fmt.Println(portal.Link(*base, key, *subject, time.Now().Add(*ttl)))
	return 0
}

func runPortalGrants(args []string) int {
	fs := flag.NewFlagSet("portal grants", flag.ContinueOnError)
	fs.Usage = portalUsage
	rulesFile := fs.String("rules", "", "privacy rules `FILE` (required)")
	login := fs.String("login", "", "the portal's database login (required)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *rulesFile == "" || *login == "" {
		portalUsage()
		return 2
	}
	pol, err := rules.Load(*rulesFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	for _, g := range portal.Grants(pol, *login) {
		fmt.Println(g + ";")
	}
	return 0
}

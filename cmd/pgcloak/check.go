package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgcloak/pgcloak/anonymity"
	"github.com/pgcloak/pgcloak/internal/dbcheck"
	"github.com/pgcloak/pgcloak/rules"
)

func init() {
	register("check", "validate rules (optionally against a live database)", runCheck)
}

func runCheck(args []string) int { return check(args, os.Stdout, os.Stderr) }

// checkReport is the --format json output.
type checkReport struct {
	Rules    string          `json:"rules"`
	Version  string          `json:"version,omitempty"`
	Database bool            `json:"database_checked"`
	OK       bool            `json:"ok"`
	Errors   int             `json:"errors"`
	Warnings int             `json:"warnings"`
	Findings []rules.Finding `json:"findings"`
	// Anonymity: k per anonymizing role (check_anonymity.go).
	Anonymity []*anonymity.Result `json:"anonymity,omitempty"`
}

// check is pgcloak check: exit status 0 when clean, 1 on errors (and on
// warnings with --strict), 2 on bad usage.
func check(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	rulesFile := fs.String("rules", "", "rules file to check (required)")
	dsn := fs.String("database", "", "connection string of the database to check the rules against (optional)")
	format := fs.String("format", "text", "output format: text or json")
	strict := fs.Bool("strict", false, "fail on warnings too (unclassed and personal-looking columns)")
	timeout := fs.Duration("timeout", 2*time.Minute, "give up on the database check after this long")
	var proxyAddrs []string
	fs.Func("proxy-addresses", "pgcloak's addresses as the database sees them, CIDR[,CIDR...]: report every restricted login "+
		"that can connect from elsewhere (pg_hba.conf) or whose attributes defeat the rules; needs --database as a superuser",
		func(v string) error { proxyAddrs = append(proxyAddrs, v); return nil })
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: pgcloak check --rules FILE [--database DSN [--proxy-addresses CIDR,...]] [--format text|json] [--strict]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	proxies, err := parseProxyAddresses(proxyAddrs)
	if *rulesFile == "" || fs.NArg() > 0 || (*format != "text" && *format != "json") || err != nil ||
		(len(proxyAddrs) > 0 && (*dsn == "" || len(proxies) == 0)) {
		if err != nil {
			fmt.Fprintln(stderr, "pgcloak check:", err)
		}
		fs.Usage()
		return 2
	}
	rep := checkReport{Rules: *rulesFile, Findings: []rules.Finding{}}
	p, err := rules.Load(*rulesFile)
	if err != nil {
		rep.Findings = append(rep.Findings, rules.FindingsOf(err, "rules")...)
	} else {
		rep.Version = p.Version()
		rep.Findings = append(rep.Findings, p.CheckRules()...)
		if *dsn != "" {
			rep.Database = true
			ctx, cancel := context.WithTimeout(context.Background(), *timeout)
			defer cancel()
			findings, err := checkDatabase(ctx, p, *dsn)
			if err != nil {
				fmt.Fprintf(stderr, "pgcloak check: %v\n", err)
				return 1
			}
			rep.Findings = append(rep.Findings, findings...)
			if rep.Anonymity, findings, err = checkAnonymity(ctx, p, *dsn); err != nil {
				fmt.Fprintf(stderr, "pgcloak check: %v\n", err)
				return 1
			}
			rep.Findings = append(rep.Findings, findings...)
			if len(proxies) > 0 {
				if findings, err = checkAccess(ctx, p, *dsn, proxies); err != nil {
					fmt.Fprintf(stderr, "pgcloak check: %v\n", err)
					return 1
				}
				rep.Findings = append(rep.Findings, findings...)
			}
		}
	}
	for _, f := range rep.Findings {
		if f.Severity == rules.SevError {
			rep.Errors++
		} else {
			rep.Warnings++
		}
	}
	rep.OK = rep.Errors == 0 && (!*strict || rep.Warnings == 0)
	if *format == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(rep)
	} else {
		writeCheckText(stdout, rep, p)
	}
	if !rep.OK {
		return 1
	}
	return 0
}

func checkDatabase(ctx context.Context, p *rules.Policy, dsn string) ([]rules.Finding, error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	return dbcheck.Check(ctx, p, conn)
}

func writeCheckText(w io.Writer, rep checkReport, p *rules.Policy) {
	for _, f := range rep.Findings {
		fmt.Fprintf(w, "%-7s %s\n", f.Severity, f)
	}
	writeAnonymityText(w, rep.Anonymity)
	if p != nil {
		fmt.Fprintf(w, "%s: version %s, %d tables, %d roles", rep.Rules, rep.Version, len(p.Tables()), len(p.Roles()))
		if rep.Database {
			fmt.Fprint(w, ", checked against the database")
		}
		fmt.Fprintln(w)
	}
	switch {
	case rep.Errors == 0 && rep.Warnings == 0:
		fmt.Fprintln(w, "ok")
	default:
		fmt.Fprintf(w, "%d error(s), %d warning(s)\n", rep.Errors, rep.Warnings)
	}
}

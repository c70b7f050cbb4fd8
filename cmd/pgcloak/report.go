package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgcloak/pgcloak/report"
	"github.com/pgcloak/pgcloak/rules"
)

func init() {
	register("report", "the privacy officer's report: data model, roles, activity, integrity (HTML or JSON)", runReport)
}

func runReport(args []string) int { return reportCmd(args, os.Stdout, os.Stderr) }

// stringList is a flag that may be given more than once.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

func reportCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	fs.SetOutput(stderr)
	rulesFile := fs.String("rules", "", "privacy rules `FILE` (required)")
	dsn := fs.String("database", "", "connection string of the protected database, as a login that reads every table (its owner)")
	var auditFiles stringList
	fs.Var(&auditFiles, "audit-file", "access log `FILE` or glob pattern of one log's files (audit*.log); repeat for several logs")
	auditOpen := fs.Bool("audit-open", false, "accept logs without an end record: the live log of a running pgcloak")
	since := fs.String("since", "", "start of the period (RFC 3339 or 2006-01-02), inclusive")
	until := fs.String("until", "", "end of the period (RFC 3339 or 2006-01-02), exclusive")
	out := fs.String("out", "", "output `FILE` (default stdout)")
	format := fs.String("format", "html", "html or json")
	timeout := fs.Duration("timeout", 10*time.Minute, "give up after this long")
	fs.Usage = func() {
		fmt.Fprintln(stderr, `usage: pgcloak report --rules FILE --database DSN [--audit-file FILE…] [--since T --until T]
                      [--out report.html] [--format html|json]

Writes the privacy officer's report: the data model as the rules class it,
the database overview and opt-outs, re-identification risk, the privacy
views and who reaches them, the activity of the period from the access log,
change requests and opt-out changes, and the integrity of the access log.`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *rulesFile == "" || fs.NArg() > 0 || (*format != "html" && *format != "json") {
		fs.Usage()
		return 2
	}
	fail := func(err error) int {
		fmt.Fprintln(stderr, "pgcloak report:", err)
		return 1
	}
	var opts report.Options
	var err error
	if opts.Since, err = parseWhen(*since); err != nil {
		return fail(fmt.Errorf("--since: %w", err))
	}
	if opts.Until, err = parseWhen(*until); err != nil {
		return fail(fmt.Errorf("--until: %w", err))
	}
	if opts.Policy, err = rules.Load(*rulesFile); err != nil {
		return fail(err)
	}
	opts.AuditFiles, opts.AuditOpen = auditFiles, *auditOpen
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	if *dsn != "" {
		conn, err := pgx.Connect(ctx, *dsn)
		if err != nil {
			return fail(err)
		}
		defer conn.Close(context.Background())
		opts.Conn = conn
	}
	facts, err := report.Gather(ctx, opts)
	if err != nil {
		return fail(err)
	}
	var buf bytes.Buffer
	if *format == "json" {
		err = report.WriteJSON(&buf, facts)
	} else {
		err = report.WriteHTML(&buf, facts)
	}
	if err != nil {
		return fail(err)
	}
	if *out == "" {
		_, err = stdout.Write(buf.Bytes())
	} else {
		err = os.WriteFile(*out, buf.Bytes(), 0o640)
	}
	if err != nil {
		return fail(err)
	}
	if *out != "" {
		fmt.Fprintf(stderr, "pgcloak report: wrote %s (%d statements, %d access-log chain(s))\n", *out, facts.Activity.Statements, len(facts.Integrity))
	}
	return 0
}

// parseWhen reads a time: RFC 3339, or a date (midnight UTC).
func parseWhen(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	return time.Parse("2006-01-02", s)
}

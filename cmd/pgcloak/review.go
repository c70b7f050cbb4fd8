package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgcloak/pgcloak/audit"
	"github.com/pgcloak/pgcloak/engine"
	"github.com/pgcloak/pgcloak/rules"
	"github.com/pgcloak/pgcloak/schema"
)

func init() {
	register("review", "list, show, approve or reject held changes to personal data", runReview)
}

func runReview(args []string) int {
	usage := func() {
		fmt.Fprintln(os.Stderr, `usage: pgcloak review list    --database DSN [--status pending|applied|rejected|all]
       pgcloak review show    --database DSN ID
       pgcloak review approve --database DSN --rules FILE --approver-database DSN ID
       pgcloak review reject  --database DSN --rules FILE --approver-database DSN [--note TEXT] ID

approve and reject connect a second time as the approver's own database
login (--approver-database): PostgreSQL authenticates the approver, whose
role must have approve_changes and who must not be the requester.`)
	}
	if len(args) == 0 {
		usage()
		return 2
	}
	if isHelp(args[0]) {
		usage()
		return 0
	}
	verb := args[0]
	fs := flag.NewFlagSet("review "+verb, flag.ContinueOnError)
	dsn := fs.String("database", "", "connection string of the protected database, as its owner (required)")
	rulesFile := fs.String("rules", "", "privacy rules `FILE` (approve, reject)")
	approverDSN := fs.String("approver-database", "", "connection string as the approver's own login, which PostgreSQL authenticates (approve, reject)")
	approverName := fs.String("approver", "", "optional: the login expected to decide; must be the login of --approver-database")
	status := fs.String("status", "pending", "which requests to list: pending, applied, rejected or all")
	note := fs.String("note", "", "why the request is rejected")
	format := fs.String("format", "text", "output format: text or json")
	auditFile := fs.String("audit-file", "", "access log `FILE` for the decisions (approve, reject): a file of its own, not the one pgcloak serve writes")
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *dsn == "" {
		usage()
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, *dsn)
	if err != nil {
		fmt.Fprintln(os.Stderr, "pgcloak review:", err)
		return 1
	}
	defer conn.Close(ctx)
	id := func() (int64, bool) {
		if fs.NArg() != 1 {
			usage()
			return 0, false
		}
		n, err := strconv.ParseInt(fs.Arg(0), 10, 64)
		if err != nil {
			fmt.Fprintf(os.Stderr, "pgcloak review: %q is not a request id\n", fs.Arg(0))
			return 0, false
		}
		return n, true
	}
	approver := new(string)
	openEngine := func() (*engine.Engine, bool) {
		if *rulesFile == "" || *approverDSN == "" {
			usage()
			return nil, false
		}
		aconn, err := pgx.Connect(ctx, *approverDSN)
		if err != nil {
			fmt.Fprintln(os.Stderr, "pgcloak review: connecting as the approver:", err)
			return nil, false
		}
		login, err := schema.Approver(ctx, aconn.Query)
		aconn.Close(ctx)
		if err != nil {
			fmt.Fprintln(os.Stderr, "pgcloak review: approver:", err)
			return nil, false
		}
		if *approverName != "" && *approverName != login {
			fmt.Fprintf(os.Stderr, "pgcloak review: --approver %s, but --approver-database is authenticated as %s\n", *approverName, login)
			return nil, false
		}
		*approver = login
		pol, err := rules.Load(*rulesFile)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return nil, false
		}
		e := engine.NewEngine(func() *rules.Policy { return pol }, *dsn, nil)
		if err := e.Refresh(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "pgcloak review:", err)
			return nil, false
		}
		return e, true
	}
	switch verb {
	case "list":
		st := *status
		if st == "all" {
			st = ""
		}
		list, err := schema.ListChanges(ctx, conn.Query, st)
		if err != nil {
			fmt.Fprintln(os.Stderr, "pgcloak review:", err)
			return 1
		}
		if *format == "json" {
			json.NewEncoder(os.Stdout).Encode(list)
			return 0
		}
		for _, c := range list {
			fmt.Printf("%d\t%s\t%s\t%s (%s)\t%s\t%s\n", c.ID, c.Status, c.RequestedAt.Format(time.RFC3339),
				c.Requester, c.Role, c.Table, strings.Join(keys(c.NewValues), ","))
		}
		return 0
	case "show":
		n, ok := id()
		if !ok {
			return 2
		}
		c, err := schema.GetChange(ctx, conn.Query, n)
		if err != nil {
			fmt.Fprintln(os.Stderr, "pgcloak review:", err)
			return 1
		}
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		enc.Encode(c)
		return 0
	case "approve", "reject":
		n, ok := id()
		if !ok {
			return 2
		}
		e, ok := openEngine()
		if !ok {
			return 1
		}
		if verb == "approve" {
			err = e.ApplyChange(ctx, conn, n, *approver)
		} else {
			err = e.RejectChange(ctx, conn, n, *approver, *note)
		}
		if *auditFile != "" {
			if aerr := recordDecision(ctx, conn, *auditFile, verb, n, *approver, err); aerr != nil {
				fmt.Fprintln(os.Stderr, "pgcloak review: access log:", aerr)
				return 1
			}
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "pgcloak review:", err)
			return 1
		}
		fmt.Printf("change request %d %sed by %s\n", n, strings.TrimSuffix(verb, "e"), *approver)
		return 0
	}
	usage()
	return 2
}

func keys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// recordDecision writes one access record for an approval or rejection,
// whatever its outcome: who decided, on which request of whom, on which
// table, and the normalized statement (never the new values).
func recordDecision(ctx context.Context, conn *pgx.Conn, file, verb string, id int64, approver string, decided error) error {
	log, err := audit.Open(audit.Options{File: file, OnFailure: audit.FailClosed})
	if err != nil {
		return err
	}
	r := &audit.Record{Time: time.Now(), Type: "review", Login: approver,
		Statement: &audit.Statement{Kind: "review_" + verb}}
	if c, err := schema.GetChange(ctx, conn.Query, id); err == nil {
		r.Query = c.Statement
		r.Objects = []audit.Object{{Relation: c.Table, Access: "write", Protected: true}}
		r.Outcome = fmt.Sprintf("request %d of %s (role %s)", id, c.Requester, c.Role)
	}
	switch {
	case decided != nil:
		// A server error can quote the new value; keep only its SQLSTATE.
		r.Decision, r.Reason = "refused", decided.Error()
		var pe *pgconn.PgError
		if errors.As(decided, &pe) {
			r.SQLState, r.Reason = pe.Code, "the change could not be applied"
		}
	case verb == "approve":
		r.Decision = "applied"
	default:
		r.Decision = "rejected"
	}
	log.Emit(r)
	return log.Close()
}

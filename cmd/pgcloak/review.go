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

	"github.com/pgcloak/pgcloak/rewrite"
	"github.com/pgcloak/pgcloak/rules"
)

func init() {
	register("review", "list, show, approve or reject held changes to personal data", runReview)
}

func runReview(args []string) int {
	usage := func() {
		fmt.Fprintln(os.Stderr, `usage: pgcloak review list    --database DSN [--status pending|applied|rejected|all]
       pgcloak review show    --database DSN ID
       pgcloak review approve --database DSN --rules FILE --approver LOGIN ID
       pgcloak review reject  --database DSN --rules FILE --approver LOGIN [--note TEXT] ID`)
	}
	if len(args) == 0 {
		usage()
		return 2
	}
	verb := args[0]
	fs := flag.NewFlagSet("review "+verb, flag.ContinueOnError)
	dsn := fs.String("database", "", "connection string of the protected database, as its owner (required)")
	rulesFile := fs.String("rules", "", "privacy rules `FILE` (approve, reject)")
	approver := fs.String("approver", "", "the principal deciding: a login of the rules, not the requester (approve, reject)")
	status := fs.String("status", "pending", "which requests to list: pending, applied, rejected or all")
	note := fs.String("note", "", "why the request is rejected")
	format := fs.String("format", "text", "output format: text or json")
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
	engine := func() (*rewrite.Engine, bool) {
		if *rulesFile == "" || *approver == "" {
			usage()
			return nil, false
		}
		pol, err := rules.Load(*rulesFile)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return nil, false
		}
		e := rewrite.NewEngine(func() *rules.Policy { return pol }, *dsn, nil)
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
		list, err := rewrite.ListChanges(ctx, conn, st)
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
		c, err := rewrite.GetChange(ctx, conn, n)
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
		e, ok := engine()
		if !ok {
			return 1
		}
		if verb == "approve" {
			err = e.ApplyChange(ctx, conn, n, *approver)
		} else {
			err = e.RejectChange(ctx, conn, n, *approver, *note)
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

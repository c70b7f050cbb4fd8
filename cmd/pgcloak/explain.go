package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/pgcloak/pgcloak/engine"
	"github.com/pgcloak/pgcloak/rules"
)

func init() {
	register("explain", "show what pgcloak does with a statement for a user", runExplain)
}

func runExplain(args []string) int {
	fs := flag.NewFlagSet("explain", flag.ContinueOnError)
	rulesFile := fs.String("rules", "", "privacy rules `FILE` (required)")
	dsn := fs.String("database", "", "connection string pgcloak reads the catalog with (required)")
	user := fs.String("user", "", "the login to explain for (required)")
	searchPath := fs.String("search-path", "public", "the session's schemas, comma-separated")
	fs.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: pgcloak explain --rules FILE --database DSN --user LOGIN 'SQL'")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *rulesFile == "" || *dsn == "" || *user == "" || fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	pol, err := rules.Load(*rulesFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	eng := engine.NewEngine(func() *rules.Policy { return pol }, *dsn, nil)
	if err := eng.Refresh(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "pgcloak explain:", err)
		return 1
	}
	res, pr, err := eng.Explain(ctx, *user, strings.Split(*searchPath, ","), fs.Arg(0))
	if err != nil {
		fmt.Printf("login:    %s\ndecision: connection refused\nreason:   %v\n", *user, err)
		return 0
	}
	fmt.Printf("login:    %s\nrole:     %s\n", *user, pr.Role.Name)
	if len(pr.Attributes) > 0 {
		keys := make([]string, 0, len(pr.Attributes))
		for k := range pr.Attributes {
			keys = append(keys, k+"="+pr.Attributes[k])
		}
		sort.Strings(keys)
		fmt.Printf("attributes: %s\n", strings.Join(keys, ", "))
	}
	switch {
	case pr.Unrestricted():
		fmt.Println("decision: forwarded unchanged (unrestricted role)")
	case len(res.Refused) > 0:
		fmt.Println("decision: refused")
		for _, r := range res.Refused {
			fmt.Printf("  SQLSTATE %s: %s\n", r.Code, r.Message)
		}
	case res.Unchanged:
		fmt.Println("decision: forwarded unchanged (no protected relation)")
	default:
		fmt.Printf("decision: rewritten (protected relations read: %s)\n", strings.Join(res.Reads, ", "))
	}
	if !res.Unchanged {
		fmt.Printf("\n%s\n", res.SQL)
	}
	return 0
}

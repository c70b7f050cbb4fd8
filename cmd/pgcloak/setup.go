package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgcloak/pgcloak/schema"
)

func init() {
	register("setup", "create pgcloak's schema in the database (idempotent)", runSetup)
}

func runSetup(args []string) int {
	fs := flag.NewFlagSet("setup", flag.ContinueOnError)
	dsn := fs.String("database", "", "connection string of the protected database, as a role that may create a schema (required)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *dsn == "" {
		fmt.Fprintln(os.Stderr, "pgcloak setup: --database is required")
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, *dsn)
	if err != nil {
		fmt.Fprintln(os.Stderr, "pgcloak setup:", err)
		return 1
	}
	defer conn.Close(ctx)
	if err := schema.Setup(ctx, conn.Exec); err != nil {
		fmt.Fprintln(os.Stderr, "pgcloak setup:", err)
		return 1
	}
	fmt.Println("pgcloak setup: schema pgcloak is ready (pseudonym functions and key)")
	return 0
}

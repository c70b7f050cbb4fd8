// Command crmgen loads the sample CRM (schema, sample logins and generated
// data) into a database. It replaces the sample tables if they exist.
//
//	crmgen --database 'postgres://postgres@localhost/crm' --customers 25000
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgcloak/pgcloak/examples/crm"
)

func main() {
	dsn := flag.String("database", os.Getenv("DATABASE_URL"), "connection string of the target database (a role that may create tables and roles); default $DATABASE_URL, else libpq's PG* variables")
	customers := flag.Int("customers", crm.DefaultCustomers, "number of customers")
	seed := flag.Uint64("seed", 1, "random seed: the same seed and size give the same data")
	flag.Parse()
	if flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, *dsn)
	if err != nil {
		fmt.Fprintln(os.Stderr, "crmgen:", err)
		os.Exit(1)
	}
	defer conn.Close(ctx)
	start := time.Now()
	st, err := crm.Load(ctx, conn, crm.Options{Customers: *customers, Seed: *seed})
	if err != nil {
		fmt.Fprintln(os.Stderr, "crmgen:", err)
		os.Exit(1)
	}
	fmt.Printf("loaded in %v: %d customers, %d orders (%d lines), %d support tickets, %d accounts, %d contacts, %d campaign members\n",
		time.Since(start).Round(time.Millisecond), st.Customers, st.Orders, st.OrderLines, st.Tickets, st.Accounts, st.Contacts, st.CampaignMembers)
	purposes := make([]string, 0, len(st.OptOuts))
	for p := range st.OptOuts {
		purposes = append(purposes, p)
	}
	sort.Strings(purposes)
	for _, p := range purposes {
		fmt.Printf("  opted out of %-23s %6d (%.1f%%)\n", p, st.OptOuts[p], 100*float64(st.OptOuts[p])/float64(st.Customers))
	}
}

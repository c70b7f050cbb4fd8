package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Pooling in front of pgcloak's upstream (docs/deploy.md, "Pooling").
//
// pgcloak may run in front of PgBouncer (pgcloak -> PgBouncer ->
// PostgreSQL) in session pooling, where one client session keeps one
// server connection from its first statement to its last. A restricted
// session rests on that: pgcloak reads the session's search_path once,
// checks its settings at start-up and follows every change the server
// reports, tracks its temporary relations, prepared statements and
// cursors, and binds a delegated end user to it. In transaction or
// statement pooling each transaction may run on another server
// connection, whose settings another client may have changed without this
// session hearing of it (PgBouncer runs no reset query between
// transactions): a name would resolve to one table for pgcloak and to
// another for the server. pgcloak with rules therefore refuses to start
// when its upstream hands a client's statements to different server
// connections.

// errPoolsTransactions is returned when the upstream pools by transaction
// or by statement.
var errPoolsTransactions = errors.New("the upstream hands one client's transactions to different server connections " +
	"(PgBouncer pool_mode transaction or statement?): restricted sessions need session pooling; " +
	"set pool_mode = session for the database pgcloak uses, or point pgcloak at PostgreSQL (docs/deploy.md, \"Pooling\")")

// checkUpstreamPooling connects twice to the upstream address with the
// catalog connection's credentials and tells whether the upstream keeps a
// client on one server connection:
//
//  1. client A asks for its backend's process id;
//  2. client B opens a transaction and asks for its own: a pooler that
//     released A's server after its statement hands that server (the most
//     recently used: PgBouncer reuses servers last in, first out) to B;
//  3. A asks again, while B's transaction holds B's server.
//
// In session pooling (and on PostgreSQL itself) A keeps its backend and B
// has another. A different pid for A, the same pid for A and B, A waiting
// for a server, or a pooler refusing B's transaction block all mean the
// upstream pools by transaction or statement: errPoolsTransactions. An
// error of another kind means the check could not be made (the upstream is
// down, or does not know the catalog login); the caller warns.
func checkUpstreamPooling(ctx context.Context, catalogDSN, upstream string) (bool, error) {
	cfg, err := pgx.ParseConfig(catalogDSN)
	if err != nil {
		return false, err
	}
	host, port, err := net.SplitHostPort(upstream)
	if err != nil {
		return false, err
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return false, err
	}
	cfg.Host, cfg.Port, cfg.Fallbacks = host, uint16(p), nil
	if cfg.TLSConfig != nil && cfg.TLSConfig.ServerName != "" {
		cfg.TLSConfig.ServerName = host
	}
	cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol // no statement cache: nothing prepared to lose
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var waited bool // the last pid call ran out of its time
	pid := func(c *pgx.Conn, wait time.Duration) (int32, error) {
		qctx, cancel := context.WithTimeout(ctx, wait)
		defer cancel()
		var n int32
		err := c.QueryRow(qctx, "SELECT pg_catalog.pg_backend_pid()").Scan(&n)
		waited = err != nil && qctx.Err() != nil && ctx.Err() == nil
		return n, err
	}
	a, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return false, err
	}
	defer a.Close(context.Background())
	b, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return false, err
	}
	defer b.Close(context.Background())
	a1, err := pid(a, 5*time.Second)
	if err != nil {
		return false, err
	}
	if _, err := b.Exec(ctx, "BEGIN"); err != nil {
		// PgBouncer: "transaction blocks not allowed in statement pooling mode"
		if strings.Contains(err.Error(), "pooling mode") || strings.Contains(err.Error(), "pool mode") {
			return true, errPoolsTransactions
		}
		return false, err
	}
	b1, err := pid(b, 5*time.Second)
	if err != nil {
		return false, err
	}
	if b1 == a1 {
		return true, errPoolsTransactions
	}
	a2, err := pid(a, 2*time.Second)
	if waited {
		// No server for A while B's transaction holds the only one.
		return true, errPoolsTransactions
	}
	if err != nil {
		return false, err
	}
	if a2 != a1 {
		return true, errPoolsTransactions
	}
	if _, err := b.Exec(ctx, "COMMIT"); err != nil {
		return false, fmt.Errorf("commit: %w", err)
	}
	return false, nil
}

// checkPooling runs checkUpstreamPooling for `pgcloak serve` with rules:
// 0 to go on (a check that could not be made is a warning), 2 to stop.
func checkPooling(ctx context.Context, cfg fileConfig, log interface{ Warn(string, ...any) }) int {
	if cfg.Rules == "" || cfg.CatalogDSN == "" {
		return 0
	}
	pooled, err := checkUpstreamPooling(ctx, cfg.CatalogDSN, cfg.Upstream.Address)
	if pooled {
		fmt.Fprintln(os.Stderr, "pgcloak serve:", err)
		return 2
	}
	if err != nil {
		log.Warn("could not check that the upstream keeps each session on one server connection (docs/deploy.md, \"Pooling\")",
			"upstream", cfg.Upstream.Address, "err", err)
	}
	return 0
}

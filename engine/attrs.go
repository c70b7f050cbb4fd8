package engine

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Attribute queries (a login's region from the CRM, an end user's
// principal) run at every connect of such a login. They used to share the
// engine's one connection under its lock with the catalog snapshots, so a
// connect waited for every other login's attribute query and for a whole
// catalog load. They run on a small pool of their own, on the same DSN:
// still asked of the database at every connect (design.md: attributes
// follow the database; nothing is cached), but side by side.

// attrPoolSize is the most connections attribute queries hold open.
const attrPoolSize = 4

// newAttrPool returns the attribute queries' pool; it connects on first
// use, and drops connections idle for ten minutes (until then a login with
// an attribute query finds one open, as it found the engine's).
func newAttrPool(dsn string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("attribute query pool: %w", err)
	}
	cfg.MaxConns = attrPoolSize
	cfg.MinConns = 0
	cfg.MaxConnIdleTime = 10 * time.Minute
	return pgxpool.NewWithConfig(context.Background(), cfg)
}

// queryValues runs an attribute query and returns its first row's values
// (errRow{pgx.ErrNoRows} when it has none): on the pool once Start has
// made it, else on the engine's connection.
func (e *Engine) queryValues(ctx context.Context, sql string, args ...any) pgx.Row {
	pool := e.attrs.Load()
	if pool == nil {
		return connQuerier{e}.connQueryRow(ctx, sql, args...)
	}
	rows, err := pool.Query(ctx, sql, args...)
	if err != nil {
		return errRow{err}
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return errRow{err}
		}
		return errRow{pgx.ErrNoRows}
	}
	raw, err := rows.Values()
	if err != nil {
		return errRow{err}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return errRow{err}
	}
	return valuesRow(raw)
}

// Package dbcheck runs the rules' check against a database
// (rules.CheckDatabase) on a pgx connection, for pgcloak check and the
// report: in a read-only transaction it rolls back, with pgx's Prepare
// describing the statements the check prepares but does not run.
//
// It is apart from package rules because that describing is the one part
// of the check no SQL statement can do (a prepared statement's result
// types are in pg_prepared_statements only from PostgreSQL 16), so it
// needs the driver, and rules must not import one: the rewriter imports
// rules, and knows no driver.
package dbcheck

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/pgcloak/pgcloak/rules"
)

// Check checks policy p against the database conn is connected to, which
// it only reads.
func Check(ctx context.Context, p *rules.Policy, conn *pgx.Conn) ([]rules.Finding, error) {
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(ctx)
	return rules.CheckDatabase(ctx, p, tx.Query, Describe(tx))
}

// Describe returns the rules.Describe of transaction tx: it prepares a
// statement (unnamed, replaced by the next) and reports its parameter and
// result column types.
func Describe(tx pgx.Tx) rules.Describe {
	return func(ctx context.Context, sql string) (params, fields []uint32, err error) {
		sd, err := tx.Conn().Prepare(ctx, "", sql)
		if err != nil {
			return nil, nil, err
		}
		fields = make([]uint32, len(sd.Fields))
		for i, f := range sd.Fields {
			fields[i] = f.DataTypeOID
		}
		return sd.ParamOIDs, fields, nil
	}
}

// Package schema is pgcloak's own schema inside the protected database,
// the schema named pgcloak: the names of its objects, the SQL that
// installs it (Setup), and the administration of the change requests it
// holds (ListChanges, LockChange, ...).
//
// It is the one place that knows that schema. The rules write the
// pseudonym function into masks, the rewriter writes CheckViolation and
// RequestChange into the statements it rewrites, pgcloak check asks
// whether Setup has run, the catalog leaves the schema out of the user's
// relations, and the report and review read the change requests: all of
// them take the names from here.
//
// The package imports no database driver, so that rules and rewrite, which
// only need the names, do not depend on one. The functions that run SQL
// take the Query or Exec method of the caller's connection or transaction
// (conn.Query of a *pgx.Conn, tx.Exec of a pgx.Tx): the method value is
// the whole interface, and any driver whose rows have Next, Scan, Err and
// Close fits.
package schema

import (
	"context"
	"errors"
)

// Name is the name of pgcloak's schema.
const Name = "pgcloak"

// The objects of the schema that other packages name in SQL.
const (
	// PseudonymFunction is the function the pseudonymize mask calls. Its
	// key lives in the database, readable only by the function's owner,
	// so it is never in the SQL that pgcloak sends nor in its logs.
	PseudonymFunction = "pgcloak.pseudonym"
	// CheckViolation is the function a rewritten write calls to fail, as
	// a WITH CHECK policy would, when a row it writes is outside the
	// principal's row filter. It raises 42501 with the message it is
	// given (which names the rule, never a value).
	CheckViolation = "pgcloak.check_violation"
	// RequestChange is the function that records a change request.
	RequestChange = "pgcloak.request_change"
	// RowCheck runs a row filter check that needs sub-selects on one new
	// row of a COPY … FROM (the rewriter writes it into COPY's WHERE).
	RowCheck = "pgcloak.row_check"
)

// Rows is a query's result; pgx.Rows is one.
type Rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close()
}

// Query is the Query method of a connection or transaction.
type Query[R Rows] = func(ctx context.Context, sql string, args ...any) (R, error)

// Exec is the Exec method of a connection or transaction; T is whatever it
// returns besides the error (a command tag).
type Exec[T any] = func(ctx context.Context, sql string, args ...any) (T, error)

// errNoRows is queryRow's error when the query returns no row.
var errNoRows = errors.New("no rows")

// queryRow runs a query that returns at most one row and scans it into
// dest, or returns errNoRows.
func queryRow[R Rows](ctx context.Context, query Query[R], sql string, args []any, dest ...any) error {
	rows, err := query(ctx, sql, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return err
		}
		return errNoRows
	}
	if err := rows.Scan(dest...); err != nil {
		return err
	}
	rows.Close()
	return rows.Err()
}

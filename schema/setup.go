package schema

import (
	"context"
	"crypto/rand"
	"fmt"
)

// Setup creates, idempotently, what pgcloak needs inside the database: the
// pgcloak schema with the keyed pseudonym functions and a random key that
// only their owner can read, the function rewritten writes call to fail,
// the change requests and the opt-out history. Run it as the owner of the
// protected tables (or a superuser). An existing key is kept, so
// pseudonyms stay stable.
//
// exec is the Exec method of the connection (conn.Exec of a *pgx.Conn).
func Setup[T any](ctx context.Context, exec Exec[T]) error {
	if _, err := exec(ctx, pseudonymSQL); err != nil {
		return fmt.Errorf("setup: pseudonym functions: %w", err)
	}
	if _, err := exec(ctx, checkViolationSQL); err != nil {
		return fmt.Errorf("setup: check function: %w", err)
	}
	if _, err := exec(ctx, optOutHistorySQL); err != nil {
		return fmt.Errorf("setup: opt-out history: %w", err)
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return err
	}
	// The key travels as a bind parameter: never in SQL text, never in logs.
	if _, err := exec(ctx, "INSERT INTO pgcloak.pseudonym_key (key) VALUES ($1) ON CONFLICT (id) DO NOTHING", key); err != nil {
		return fmt.Errorf("setup: pseudonym key: %w", err)
	}
	return nil
}

const checkViolationSQL = `
CREATE OR REPLACE FUNCTION pgcloak.check_violation(message text) RETURNS boolean
	LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog
	AS $$ BEGIN RAISE EXCEPTION USING ERRCODE = '42501', MESSAGE = message; END $$;

-- row_check runs a row filter check pgcloak wrote on one new row ($1), for
-- COPY … FROM, whose WHERE may not hold the check's sub-selects. It runs as
-- the caller, with the session's search_path, as INSERT's check does (the
-- relations pgcloak writes are schema-qualified); the function allowlist
-- keeps restricted sessions from calling it themselves.
CREATE OR REPLACE FUNCTION pgcloak.row_check(query text, new_row anyelement) RETURNS boolean
	LANGUAGE plpgsql VOLATILE
	AS $$ DECLARE ok boolean; BEGIN EXECUTE query INTO ok USING new_row; RETURN ok; END $$;

-- Change requests (design.md §2.5): held changes to personal data. Sessions
-- cannot read or write the table; they reach it only through
-- request_change, which pgcloak calls in the SQL it writes (and which the
-- function allowlist keeps restricted sessions from calling themselves).
CREATE TABLE IF NOT EXISTS pgcloak.change_requests (
	id             bigserial PRIMARY KEY,
	requested_at   timestamptz NOT NULL DEFAULT now(),
	requester      text NOT NULL,
	requester_role text NOT NULL,
	table_name     text NOT NULL,
	row_key        jsonb NOT NULL,
	new_values     jsonb NOT NULL,
	statement      text NOT NULL,
	status         text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'applied', 'rejected')),
	decided_by     text,
	decided_at     timestamptz,
	decision_note  text
);
ALTER TABLE pgcloak.change_requests ADD COLUMN IF NOT EXISTS row_version text;
REVOKE ALL ON pgcloak.change_requests FROM PUBLIC;
REVOKE ALL ON SEQUENCE pgcloak.change_requests_id_seq FROM PUBLIC;
-- The row version binds a request to the row as it was (rewrite.RowVersion);
-- the six-argument form, for trusted components such as a customer portal,
-- reads it from the row the key names. A key that names no row, or several,
-- records a request without a version, which is never applied: the function
-- answers the same either way, so that it tells its caller nothing about
-- rows it could not read.
CREATE OR REPLACE FUNCTION pgcloak.request_change(requester text, requester_role text, table_name text,
		row_key jsonb, new_values jsonb, statement text) RETURNS boolean
	LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog
	AS $$
DECLARE
	versions text[];
BEGIN
	EXECUTE format('SELECT array_agg(md5(t::text)) FROM %s t WHERE to_jsonb(t) @> $1', table_name::regclass)
		INTO versions USING row_key;
	IF coalesce(array_length(versions, 1), 0) <> 1 THEN
		versions := ARRAY[NULL::text];
	END IF;
	RETURN pgcloak.request_change(requester, requester_role, table_name, row_key, new_values, statement, versions[1]);
END $$;
CREATE OR REPLACE FUNCTION pgcloak.request_change(requester text, requester_role text, table_name text,
		row_key jsonb, new_values jsonb, statement text, row_version text) RETURNS boolean
	LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog
	AS $$
DECLARE
	rid bigint;
BEGIN
	INSERT INTO pgcloak.change_requests (requester, requester_role, table_name, row_key, new_values, statement, row_version)
	VALUES (requester, requester_role, table_name, row_key, new_values, statement, row_version)
	RETURNING id INTO rid;
	RAISE NOTICE 'pgcloak: change request % recorded; an approver will apply or reject it', rid
		USING DETAIL = 'table ' || table_name;
	RETURN true;
END $$;
`

// Installed says which of Setup's functions the database has, for pgcloak
// check: the pseudonym functions that masks call, the function that
// rewritten writes call to fail, and the one that checks COPY's rows.
type Installed struct {
	Pseudonym, CheckViolation, RowCheck bool
}

// Inspect reads what Installed says; query is the Query method of a
// connection or transaction.
func Inspect[R Rows](ctx context.Context, query Query[R]) (Installed, error) {
	var in Installed
	err := queryRow(ctx, query, `SELECT
		pg_catalog.to_regprocedure('pgcloak.pseudonym(text, text)') IS NOT NULL,
		pg_catalog.to_regprocedure('pgcloak.check_violation(text)') IS NOT NULL,
		pg_catalog.to_regprocedure('pgcloak.row_check(text, anyelement)') IS NOT NULL`, nil, &in.Pseudonym, &in.CheckViolation, &in.RowCheck)
	return in, err
}

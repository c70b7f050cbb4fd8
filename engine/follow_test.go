package engine_test

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgcloak/pgcloak/internal/cloaktest"
)

const regionsSQL = "SELECT string_agg(DISTINCT region, ',' ORDER BY region) FROM customers"

// regions returns the regions the session sees, or the error.
func regions(t *testing.T, c *pgx.Conn) (string, error) {
	t.Helper()
	var r *string
	err := c.QueryRow(context.Background(), regionsSQL, pgx.QueryExecModeSimpleProtocol).Scan(&r)
	if r == nil {
		return "", err
	}
	return *r, err
}

// seesNothing checks that the application's own role applies (none: every
// read of customers refused).
func seesNothing(t *testing.T, c *pgx.Conn) {
	t.Helper()
	if r, err := regions(t, c); err == nil {
		t.Fatalf("the application sees regions %q: an end user is still in force", r)
	}
}

func mustExec(t *testing.T, c *pgx.Conn, sql string) {
	t.Helper()
	if _, err := c.Exec(context.Background(), sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// The end-user switch follows the transaction: refused inside a block (so
// neither ROLLBACK nor a failed transaction can leave it behind), never
// SET LOCAL, cleared by DISCARD ALL and RESET ALL, and without effect
// when the server skipped it.
func TestEndUserFollowsTransaction(t *testing.T) {
	ctx := context.Background()
	t.Run("in a transaction block", func(t *testing.T) {
		app := as(t, "crm_app")
		mustExec(t, app, "BEGIN")
		_, err := app.Exec(ctx, "SET pgcloak.end_user = 'alice'")
		wantRefused(t, err, "25001", "outside a transaction block")
		mustExec(t, app, "ROLLBACK")
		seesNothing(t, app)
	})
	t.Run("aborted transaction", func(t *testing.T) {
		app := as(t, "crm_app")
		mustExec(t, app, "BEGIN")
		app.Exec(ctx, "SELECT 1/0")
		if _, err := app.Exec(ctx, "SET pgcloak.end_user = 'alice'"); err == nil {
			t.Fatal("SET in an aborted transaction succeeded")
		}
		mustExec(t, app, "ROLLBACK")
		seesNothing(t, app)
	})
	t.Run("rollback to savepoint", func(t *testing.T) {
		app := as(t, "crm_app")
		mustExec(t, app, "BEGIN")
		mustExec(t, app, "SAVEPOINT s")
		app.Exec(ctx, "SET pgcloak.end_user = 'alice'")
		mustExec(t, app, "ROLLBACK TO SAVEPOINT s")
		mustExec(t, app, "COMMIT")
		seesNothing(t, app)
	})
	t.Run("set local", func(t *testing.T) {
		app := as(t, "crm_app")
		_, err := app.Exec(ctx, "SET LOCAL pgcloak.end_user = 'alice'")
		wantRefused(t, err, "42501", "SET LOCAL")
		seesNothing(t, app)
	})
	t.Run("DISCARD ALL", func(t *testing.T) {
		app := as(t, "crm_app")
		mustExec(t, app, "SET pgcloak.end_user = 'alice'")
		if r, err := regions(t, app); err != nil || r != "north" {
			t.Fatalf("as alice: %q %v", r, err)
		}
		mustExec(t, app, "DISCARD ALL")
		seesNothing(t, app)
	})
	t.Run("RESET ALL", func(t *testing.T) {
		// Every role may RESET ALL (rewrite/settings.go); like DISCARD
		// ALL, it clears the end user.
		app := as(t, "crm_app")
		mustExec(t, app, "SET pgcloak.end_user = 'alice'")
		if r, err := regions(t, app); err != nil || r != "north" {
			t.Fatalf("as alice: %q %v", r, err)
		}
		mustExec(t, app, "RESET ALL")
		seesNothing(t, app)
	})
	t.Run("skipped in a pipeline", func(t *testing.T) {
		app := as(t, "crm_app")
		b := &pgx.Batch{}
		b.Queue("SELECT 1/0")
		b.Queue("SET pgcloak.end_user = 'alice'")
		app.SendBatch(ctx, b).Close()
		seesNothing(t, app)
	})
	t.Run("statements sent before its answer", func(t *testing.T) {
		w := cloaktest.DialRaw(t, proxyAddr, "crm_app")
		out := w.RoundTrip(t, 2, &pgproto3.Query{String: "SET pgcloak.end_user = 'alice'"}, &pgproto3.Query{String: regionsSQL})
		if !strings.Contains(out, "CommandComplete SET") || strings.Contains(out, "north") || !strings.Contains(out, "42501") {
			t.Fatalf("pipelined after the switch: %s", out)
		}
		out = w.RoundTrip(t, 1, &pgproto3.Query{String: regionsSQL})
		if !strings.Contains(out, "DataRow north") {
			t.Fatalf("after the switch's answer: %s", out)
		}
	})
}

// What the old end user opened is refused or prepared again for the new
// one: WITH HOLD cursors, SQL-level prepared statements (also after a
// re-PREPARE the server rejected), protocol-level prepared statements; the
// catalog views that show other statements' texts are refused.
func TestIdentitySwitchClosesOld(t *testing.T) {
	ctx := context.Background()
	t.Run("cursor with hold", func(t *testing.T) {
		app := as(t, "crm_app")
		mustExec(t, app, "SET pgcloak.end_user = 'alice'")
		mustExec(t, app, "DECLARE c CURSOR WITH HOLD FOR SELECT DISTINCT region FROM customers")
		var r string
		if err := app.QueryRow(ctx, "FETCH 1 FROM c").Scan(&r); err != nil || r != "north" {
			t.Fatalf("as alice: %q %v", r, err)
		}
		mustExec(t, app, "SET pgcloak.end_user = 'erin'")
		_, err := app.Exec(ctx, "FETCH ALL FROM c")
		wantRefused(t, err, "42501", "cursor \"c\"")
		_, err = app.Exec(ctx, "MOVE 1 IN c")
		wantRefused(t, err, "42501", "cursor \"c\"")
		mustExec(t, app, "CLOSE c")
	})
	t.Run("prepare", func(t *testing.T) {
		app := as(t, "crm_app")
		mustExec(t, app, "SET pgcloak.end_user = 'alice'")
		mustExec(t, app, "PREPARE q AS "+regionsSQL)
		mustExec(t, app, "EXECUTE q")
		mustExec(t, app, "SET pgcloak.end_user = 'erin'")
		_, err := app.Exec(ctx, "EXECUTE q")
		wantRefused(t, err, "42501", "prepared statement \"q\"")
		// The server rejects the re-PREPARE: the old body stays refused.
		_, err = app.Exec(ctx, "PREPARE q AS "+regionsSQL)
		wantRefused(t, err, "42P05", "")
		_, err = app.Exec(ctx, "EXECUTE q")
		wantRefused(t, err, "42501", "prepared statement \"q\"")
		mustExec(t, app, "DEALLOCATE q")
		mustExec(t, app, "PREPARE q AS "+regionsSQL)
		var r string
		if err := app.QueryRow(ctx, "EXECUTE q").Scan(&r); err != nil || r != "east" {
			t.Fatalf("as erin: %q %v", r, err)
		}
	})
	t.Run("protocol-level statement", func(t *testing.T) {
		app := as(t, "crm_app")
		for _, who := range []struct{ user, want string }{{"alice", "north"}, {"erin", "east"}, {"alice", "north"}} {
			mustExec(t, app, "SET pgcloak.end_user = '"+who.user+"'")
			var r string
			if err := app.QueryRow(ctx, regionsSQL, pgx.QueryExecModeCacheStatement).Scan(&r); err != nil || r != who.want {
				t.Fatalf("as %s: %q %v", who.user, r, err)
			}
		}
	})
	t.Run("catalog views", func(t *testing.T) {
		app := as(t, "crm_app")
		mustExec(t, app, "SET pgcloak.end_user = 'alice'")
		for _, q := range []string{"SELECT statement FROM pg_prepared_statements", "SELECT statement FROM pg_cursors",
			"SELECT statement FROM pg_catalog.pg_cursor()", "SELECT statement FROM pg_prepared_statement()"} {
			_, err := app.Exec(ctx, q)
			wantRefused(t, err, "42501", "other end users")
		}
	})
}

// A cursor or SQL-level statement counts from the server's answer to its
// DECLARE or PREPARE; before that, only for the statements after it in
// the same Query, which the server runs only if it succeeded (an EXECUTE
// pipelined in the next Query, decided before that answer, is refused).
func TestCursorsAndStatementsCountWhenRun(t *testing.T) {
	r := cloaktest.DialRaw(t, front.Addr, "alice")
	step := func(sql, want string) {
		t.Helper()
		if got := r.RoundTrip(t, 1, &pgproto3.Query{String: sql}); !strings.Contains(got, want) {
			t.Fatalf("%s: want %q, got\n%s", sql, want, got)
		}
	}
	// In one Query.
	step("BEGIN; DECLARE cc CURSOR FOR SELECT customer_id FROM customers ORDER BY customer_id; FETCH 1 FROM cc", "DataRow")
	step("FETCH 1 FROM cc", "DataRow")
	step("COMMIT", "CommandComplete COMMIT")
	step("PREPARE cp AS SELECT count(*) FROM customers; EXECUTE cp", "DataRow")
	step("EXECUTE cp", "DataRow")
	// A PREPARE the server refused (cp exists) leaves cp as it was.
	step("PREPARE cp AS SELECT 1; EXECUTE cp", "ErrorResponse 42P05")
	step("EXECUTE cp", "DataRow")
	// A DECLARE the server refused leaves the name unusable.
	step("DECLARE ch CURSOR WITH HOLD FOR SELECT customer_id FROM customers", "CommandComplete DECLARE CURSOR")
	step("DECLARE ch CURSOR WITH HOLD FOR SELECT 1", "ErrorResponse 42P03")
	step("FETCH 1 FROM ch", "ErrorResponse 42501")
	step("CLOSE ch", "CommandComplete CLOSE CURSOR")
}

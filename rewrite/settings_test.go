package rewrite_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/pgcloak/pgcloak/internal/pgtest"
)

// settingCase is one request about session settings, made as alice (a
// sales rep, whose role does not allow the statement kind set).
type settingCase struct {
	sql     string
	refused bool   // pgcloak refuses it (42501 or 0A000)
	fails   string // else: the server rejects it with this SQLSTATE
	show    string // SHOW show afterwards …
	want    string // … gives want
	multi   bool   // several statements: simple protocol only
}

var settingCases = []settingCase{
	// What drivers and ORMs send when they connect.
	{sql: "SET TIME ZONE INTERVAL '+00:00' HOUR TO MINUTE", show: "TimeZone", want: "<+00>-00"},
	{sql: "SET TIME ZONE 'UTC'", show: "TimeZone", want: "UTC"},
	{sql: "SET TIME ZONE LOCAL"},
	{sql: "SET TIME ZONE -7", show: "TimeZone", want: "<-07>+07"},
	{sql: "SET timezone TO 'Europe/Paris'", show: "TimeZone", want: "Europe/Paris"},
	{sql: "SET client_min_messages TO 'warning'", show: "client_min_messages", want: "warning"},
	{sql: "SET client_min_messages TO warning; SET TIME ZONE INTERVAL '+00:00' HOUR TO MINUTE", show: "client_min_messages", want: "warning", multi: true},
	{sql: "SET standard_conforming_strings = on", show: "standard_conforming_strings", want: "on"},
	{sql: "SET extra_float_digits = 3", show: "extra_float_digits", want: "3"},
	{sql: "SET DateStyle = ISO, MDY", show: "DateStyle", want: "ISO, MDY"},
	{sql: "SET IntervalStyle = iso_8601", show: "IntervalStyle", want: "iso_8601"},
	{sql: "SET statement_timeout = '7s'", show: "statement_timeout", want: "7s"},
	{sql: "SET lock_timeout = 1000", show: "lock_timeout", want: "1s"},
	{sql: "SET idle_in_transaction_session_timeout = '1min'", show: "idle_in_transaction_session_timeout", want: "1min"},
	{sql: "SET bytea_output = 'escape'", show: "bytea_output", want: "escape"},
	{sql: "SET NAMES 'UTF8'", show: "client_encoding", want: "UTF8"},
	{sql: "SET client_encoding = 'utf-8'", show: "client_encoding", want: "UTF8"},
	{sql: "SET SESSION default_transaction_isolation = 'serializable'", show: "default_transaction_isolation", want: "serializable"},
	{sql: "RESET TimeZone"},
	{sql: "RESET standard_conforming_strings", show: "standard_conforming_strings", want: "on"},
	{sql: "RESET ALL"},
	{sql: "SET SESSION AUTHORIZATION DEFAULT", show: "session_authorization", want: "alice"},
	{sql: "SET statement_timeout TO DEFAULT"},
	{sql: "SELECT set_config('TimeZone', 'UTC', false)", show: "TimeZone", want: "UTC"},
	{sql: "SELECT pg_catalog.set_config('application_name', 'crm screen', false)", show: "application_name", want: "crm screen"},

	// Hostile values stay one constant: the text after the quote is never run.
	{sql: "SET application_name = 'x''; SELECT national_id FROM customers --'", show: "application_name", want: "x'; SELECT national_id FROM customers --"},
	{sql: `SET application_name = E'x\'; SELECT national_id FROM customers --'`, show: "application_name", want: "x'; SELECT national_id FROM customers --"},
	{sql: "SET application_name = $$x$$; SELECT national_id FROM customers WHERE region <> 'north'", show: "application_name", want: "x", multi: true},
	{sql: "SELECT set_config('application_name', 'y''); SELECT national_id FROM customers --', false)", show: "application_name", want: "y'); SELECT national_id FROM customers --"},
	{sql: "SET TIME ZONE 'UTC''; SELECT national_id FROM customers --'", fails: "22023"},
	{sql: "SET TIME ZONE INTERVAL '+00:00; SELECT national_id FROM customers' HOUR TO MINUTE", fails: "22007"},

	// Refused: guarded settings, other settings, set_config elsewhere.
	{sql: "SET search_path = public", refused: true},
	{sql: "SET SCHEMA 'public'", refused: true},
	{sql: "SELECT set_config('search_path', 'public', false)", refused: true},
	{sql: "SELECT set_config('search_path', 'pg_temp, public', true)", refused: true},
	{sql: "SELECT set_config('standard_conforming_strings', 'on', false)", refused: true},
	{sql: "SELECT set_config('role', 'dana', false)", refused: true},
	{sql: "SET standard_conforming_strings = off", refused: true},
	{sql: "SET client_encoding = 'SJIS'", refused: true},
	{sql: "SET NAMES 'mskanji'", refused: true},
	{sql: "SET client_encoding = 'win932'", refused: true},
	{sql: "SET ROLE dana", refused: true},
	{sql: "SET SESSION AUTHORIZATION dana", refused: true},
	{sql: "SET row_security = off", refused: true},
	{sql: "SET work_mem = '1GB'", refused: true},
	{sql: "RESET work_mem", refused: true},
	{sql: "SET client_min_messages = debug5", refused: true},
	{sql: "SET client_min_messages = log", refused: true},
	{sql: "SELECT set_config('client_min_messages', 'log', false)", refused: true},
	{sql: "SET pgcloak.end_user = 'petra'", refused: true},
	{sql: "SELECT set_config('pgcloak.end_user', 'petra', false)", refused: true},
	{sql: "SELECT count(*) FROM customers WHERE set_config('application_name', 'seen', false) = 'seen'", refused: true},
	{sql: "SELECT 1 FROM customers c JOIN orders o ON set_config('TimeZone', 'UTC', false) <> '' LIMIT 1", refused: true},
	{sql: "SELECT (SELECT set_config('TimeZone', 'UTC', false))", refused: true},
	{sql: "SELECT * FROM set_config('TimeZone', 'UTC', false)", refused: true},
	{sql: "SELECT set_config('application_name', national_id, false) FROM customers", refused: true},
	{sql: "SELECT set_config('application_name', current_setting('search_path'), false)", refused: true},
	{sql: "SELECT set_config(setting_name => 'TimeZone', new_value => 'UTC', is_local => false)", refused: true},
	{sql: "WITH x AS (SELECT set_config('TimeZone', 'UTC', false)) SELECT * FROM x", refused: true},
	{sql: "SELECT count(*) FROM customers GROUP BY region HAVING set_config('TimeZone', 'UTC', false) <> ''", refused: true},
}

// TestSessionSettings: the session settings of docs/rules.md work for a
// role without the statement kind set, in both protocols; everything else
// about settings stays refused, and hostile values run nothing.
func TestSessionSettings(t *testing.T) {
	ctx := context.Background()
	w, err := dialWire(ctx, proxyAddr, "alice", pgtest.Database, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.close()
	for _, mode := range leakModes {
		for _, c := range settingCases {
			if c.multi && mode.name != "simple" {
				continue
			}
			r := mode.run(w, c.sql, nil)
			if r.broken != nil {
				t.Fatalf("[%s] %s: %v", mode.name, c.sql, r.broken)
			}
			refused := slices.ContainsFunc(r.codes, func(code string) bool { return code == "42501" || code == "0A000" })
			switch {
			case c.refused && !refused:
				t.Errorf("[%s] %s: not refused: %v", mode.name, c.sql, r.outcome)
			case !c.refused && c.fails == "" && r.errored():
				t.Errorf("[%s] %s: failed: %v", mode.name, c.sql, r.outcome)
			case c.fails != "" && !slices.Contains(r.codes, c.fails):
				t.Errorf("[%s] %s: want SQLSTATE %s, got %v", mode.name, c.sql, c.fails, r.outcome)
			}
			// No hostile value ran a query: the only rows are those of
			// set_config, and alice's customers are all in the north.
			for _, o := range r.outcome {
				if strings.HasPrefix(o, "columns ") && strings.Contains(o, "national_id") && !c.multi {
					t.Errorf("[%s] %s: a query in a value ran: %v", mode.name, c.sql, r.outcome)
				}
			}
			if c.multi && r.rows > 0 {
				t.Errorf("[%s] %s: rows outside alice's region: %v", mode.name, c.sql, r.outcome)
			}
			if c.show != "" && !c.refused {
				s := w.simple("SHOW " + c.show)
				if !slices.Contains(s.outcome, "row "+c.want) {
					t.Errorf("[%s] %s: SHOW %s: want %q, got %v", mode.name, c.sql, c.show, c.want, s.outcome)
				}
			}
			if err := w.reset(true); err != nil {
				t.Fatal(err)
			}
			// A refused change changed nothing.
			if c.refused {
				s := w.simple("SELECT current_setting('search_path'), current_setting('standard_conforming_strings'), current_setting('client_encoding'), current_user")
				if want := `row "$user", public|on|UTF8|alice`; !slices.Contains(s.outcome, want) {
					t.Errorf("[%s] %s: the session changed: %v", mode.name, c.sql, s.outcome)
				}
			}
		}
	}
}

// TestSessionSettingsAtStartup: a driver that sends the settings as
// start-up parameters connects (pgJDBC sends extra_float_digits, DateStyle
// and TimeZone there).
func TestSessionSettingsAtStartup(t *testing.T) {
	w, err := dialWire(context.Background(), proxyAddr, "alice", pgtest.Database, map[string]string{
		"extra_float_digits": "3", "DateStyle": "ISO", "TimeZone": "UTC", "application_name": "PostgreSQL JDBC Driver"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.close()
	r := w.simple("SHOW TimeZone")
	if !slices.Contains(r.outcome, "row UTC") {
		t.Fatalf("SHOW TimeZone: %v", r.outcome)
	}
}

// TestDriverCatalogQueries: the catalog queries drivers run when they
// connect work for a restricted role in both protocols (Sequelize reads
// pg_range's columns by qualified name; the catalog snapshot does not list
// the columns of pg_catalog relations, which must not make them calls).
func TestDriverCatalogQueries(t *testing.T) {
	ctx := context.Background()
	alice := as(t, "alice")
	for _, m := range modes {
		rows, err := alice.Query(ctx, `SELECT t.typname, t.oid, r.rngtypid, r.rngsubtype FROM pg_range r JOIN pg_type t ON t.oid = r.rngtypid
			WHERE t.typname = ANY($1)`, m.mode, []string{"int4range", "tstzrange"})
		if err != nil {
			t.Fatalf("[%s] %v", m.name, err)
		}
		n := 0
		for rows.Next() {
			n++
		}
		if rows.Close(); rows.Err() != nil || n != 2 {
			t.Fatalf("[%s] %d rows, %v", m.name, n, rows.Err())
		}
	}
}

package engine_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
)

// A delegating application names its end user; the name never reaches
// the server, and the session is decided for that user from then on.
func TestDelegation(t *testing.T) {
	ctx := context.Background()
	app := as(t, "crm_app")
	_, err := app.Exec(ctx, "SELECT count(*) FROM customers")
	wantRefused(t, err, "42501", "")
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeExec} {
		tag, err := app.Exec(ctx, "SET pgcloak.end_user = 'alice'", mode)
		if err != nil || tag.String() != "SET" {
			t.Fatalf("%s: naming the end user: %v %v", mode, tag, err)
		}
		var regions string
		if err := app.QueryRow(ctx, "SELECT string_agg(DISTINCT region, ',') FROM customers", mode).Scan(&regions); err != nil || regions != "north" {
			t.Fatalf("%s: as alice: %q %v", mode, regions, err)
		}
		var seen *string
		if err := app.QueryRow(ctx, "SELECT current_setting('pgcloak.end_user', true)", mode).Scan(&seen); err != nil {
			t.Fatal(err)
		}
		if seen != nil && *seen != "" {
			t.Fatalf("the end user's name reached the server: %q", *seen)
		}
		if _, err := app.Exec(ctx, "SET pgcloak.end_user = 'dana'", mode); err == nil {
			t.Fatal("an unrestricted login was accepted as end user")
		}
		if _, err := app.Exec(ctx, "SET pgcloak.end_user = 'erin'", mode); err != nil {
			t.Fatal(err)
		}
		if err := app.QueryRow(ctx, "SELECT string_agg(DISTINCT region, ',') FROM customers", mode).Scan(&regions); err != nil || regions != "east" {
			t.Fatalf("%s: as erin (attribute query): %q %v", mode, regions, err)
		}
		if _, err := app.Exec(ctx, "RESET pgcloak.end_user", mode); err != nil {
			t.Fatal(err)
		}
		_, err = app.Exec(ctx, "SELECT count(*) FROM customers", mode)
		wantRefused(t, err, "42501", "")
	}
	// Only a delegating login may name an end user.
	alice := as(t, "alice")
	_, err = alice.Exec(ctx, "SET pgcloak.end_user = 'bob'")
	wantRefused(t, err, "42501", "reserved")
}

package engine_test

import (
	"context"
	"fmt"
	"net"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgcloak/pgcloak/examples/crm"
	"github.com/pgcloak/pgcloak/internal/pgtest"
)

// connectWith connects through pgcloak with start-up parameters.
func connectWith(t *testing.T, login string, params map[string]string) (*pgconn.PgConn, error) {
	t.Helper()
	host, port, _ := net.SplitHostPort(proxyAddr)
	cfg, err := pgconn.ParseConfig(fmt.Sprintf("host=%s port=%s user=%s password=%s dbname=%s sslmode=disable",
		host, port, login, crm.DemoPassword, pgtest.Database))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range params {
		cfg.RuntimeParams[k] = v
	}
	c, err := pgconn.ConnectConfig(context.Background(), cfg)
	if err == nil {
		t.Cleanup(func() { c.Close(context.Background()) })
	}
	return c, err
}

// Start-up options are judged as SET is: what a restricted role may not
// set, it may not set at connect either.
func TestStartupSettings(t *testing.T) {
	refused := []map[string]string{
		{"options": "-c client_min_messages=log -c debug_print_plan=on"},
		{"options": "-c debug_print_plan=on"},
		{"options": "--debug-print-plan=on"},
		{"options": "-cclient_min_messages=debug5"},
		{"options": "-c role=dana"},
		{"options": "-c session_authorization=dana"},
		{"options": "-c pgcloak.end_user=alice"},
		{"options": "-d 5"},
		{"role": "dana"},
		{"debug_print_parse": "on"},
		{"client_min_messages": "debug1"},
		{"pgcloak.end_user": "petra"},
		{"search_path": "shadow, public"},
	}
	for _, p := range refused {
		for _, login := range []string{"alice", "crm_app"} {
			_, err := connectWith(t, login, p)
			wantRefused(t, err, "42501", "")
		}
	}
	allowed := []map[string]string{
		{"options": "-c statement_timeout=5s -c client_min_messages=warning"},
		{"application_name": "crm", "DateStyle": "ISO", "extra_float_digits": "3"},
	}
	for _, p := range allowed {
		if _, err := connectWith(t, "alice", p); err != nil {
			t.Errorf("%v: %v", p, err)
		}
	}
	// An unrestricted login is not judged.
	if _, err := connectWith(t, "dana", map[string]string{"options": "-c debug_print_plan=on"}); err != nil {
		t.Errorf("unrestricted: %v", err)
	}
}

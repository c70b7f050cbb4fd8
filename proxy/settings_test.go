package proxy_test

import (
	"context"
	"testing"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"

	"github.com/pgcloak/pgcloak/internal/pgtest"
	"github.com/pgcloak/pgcloak/proxy"
)

// watchPolicy forwards everything and watches standard_conforming_strings,
// as a policy that parses SQL must.
type watchPolicy struct{ testPolicy }

func (p *watchPolicy) Open(ctx context.Context, info proxy.SessionInfo) (proxy.SessionPolicy, error) {
	sp, err := p.testPolicy.Open(ctx, info)
	if err != nil {
		return nil, err
	}
	return &watchSession{sp.(*testSession)}, nil
}

type watchSession struct{ *testSession }

func (s *watchSession) ParameterStatus(name, value string) *proxy.Error {
	if name == "standard_conforming_strings" && value != "on" {
		return &proxy.Error{Code: pgerrcode.InsufficientPrivilege, Message: "pgcloak: standard_conforming_strings is off (rule: settings)"}
	}
	return nil
}

// TestSettingsWatch: a setting changed by a route the policy never saw
// (here a function's SET clause would do as well as SET) ends the session
// with the watcher's error as FATAL, and the statement after it never
// runs; other settings pass.
func TestSettingsWatch(t *testing.T) {
	_, addr := startProxy(t, proxy.Config{Policy: &watchPolicy{}})
	ctx := context.Background()
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeExec} {
		t.Run(mode.String(), func(t *testing.T) {
			conn := connect(t, addr, pgtest.ScramUser)
			if _, err := conn.Exec(ctx, "SET application_name = 'watched'", mode); err != nil {
				t.Fatalf("a setting nobody watches: %v", err)
			}
			_, err := conn.Exec(ctx, "UPDATE pg_catalog.pg_settings SET setting = 'off' WHERE name = 'standard_conforming_strings'", mode)
			wantCode(t, err, pgerrcode.InsufficientPrivilege, "rule: settings")
			if _, err := conn.Exec(ctx, "SELECT 1", mode); err == nil {
				t.Fatal("the session went on after the watched setting changed")
			}
		})
	}
}

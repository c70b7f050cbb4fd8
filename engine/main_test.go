package engine_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgcloak/pgcloak/engine"
	"github.com/pgcloak/pgcloak/internal/cloaktest"
	"github.com/pgcloak/pgcloak/internal/pgtest"
	"github.com/pgcloak/pgcloak/rules"
)

var (
	front     *cloaktest.Front
	pg        *pgtest.Server
	proxyAddr string
	policy    *rules.Policy
	eng       *engine.Engine
)

const testCustomers = 2000

// TestMain loads the sample CRM and starts pgcloak with the shipped rules
// before the tests run.
func TestMain(m *testing.M) {
	cloaktest.MainFront(m, testCustomers, func(f *cloaktest.Front) {
		front, pg, policy, eng, proxyAddr = f, f.PG, f.Policy, f.Engine, f.Addr
	})
}

// as connects through pgcloak as one of the sample logins.
func as(t testing.TB, login string) *pgx.Conn { return front.As(t, login) }

// wantRefused fails unless err is a server error with code whose message
// contains part.
func wantRefused(t *testing.T, err error, code, part string) {
	t.Helper()
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != code || !strings.Contains(pe.Message, part) {
		t.Fatalf("want %s %q, got %v", code, part, err)
	}
}

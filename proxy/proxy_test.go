package proxy_test

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pgcloak/pgcloak/internal/cloaktest"
	"github.com/pgcloak/pgcloak/internal/pgtest"
	"github.com/pgcloak/pgcloak/proxy"
)

var (
	pg    *pgtest.Server
	certs *pgtest.Certs // the test CA and the certificate of pg and of TLS pgcloaks
)

// The shared server has TLS on (it still accepts plaintext connections).
func TestMain(m *testing.M) { pgtest.MainTLS(m, pgtest.Options{}, &pg, &certs) }

// startProxy runs a pgcloak in front of the test server and returns its
// address.
func startProxy(t testing.TB, cfg proxy.Config) (*proxy.Server, string) {
	t.Helper()
	if cfg.Upstream == "" {
		cfg.Upstream = pg.Addr()
	}
	c := cloaktest.Serve(t, cfg)
	return c.Server, c.Addr
}

func dsn(addr, user string) string {
	host, port, _ := net.SplitHostPort(addr)
	return fmt.Sprintf("host=%s port=%s user=%s password=%s dbname=%s sslmode=disable",
		host, port, user, pgtest.Password, pgtest.Database)
}

func connect(t testing.TB, addr, user string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn(addr, user))
	if err != nil {
		t.Fatalf("connect through pgcloak as %s: %v", user, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func TestThinPath(t *testing.T) {
	_, addr := startProxy(t, proxy.Config{})
	conn := connect(t, addr, pgtest.ScramUser)
	var n int
	if err := conn.QueryRow(context.Background(), "select $1::int + 1", 41).Scan(&n); err != nil || n != 42 {
		t.Fatalf("got %d, %v", n, err)
	}
}

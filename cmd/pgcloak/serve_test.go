package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/pgcloak/pgcloak/internal/pgtest"
)

// buildPgcloak builds the binary once per test run.
func buildPgcloak(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "pgcloak")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func TestServeGracefulShutdown(t *testing.T) {
	pg, err := pgtest.Start(pgtest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Stop()
	bin := buildPgcloak(t)
	ctx := context.Background()
	connect := func(addr string) (*pgx.Conn, error) {
		host, port, _ := net.SplitHostPort(addr)
		return pgx.Connect(ctx, fmt.Sprintf("host=%s port=%s user=%s password=%s dbname=postgres sslmode=disable",
			host, port, pgtest.ScramUser, pgtest.Password))
	}

	su, err := pgx.Connect(ctx, pg.DSN(pgtest.SuperUser, pgtest.Database))
	if err != nil {
		t.Fatal(err)
	}
	defer su.Close(ctx)
	// exited waits for the process and says whether it exited 0.
	exited := func(s *served) error {
		select {
		case <-s.done:
		case <-time.After(30 * time.Second):
			return errors.New("still running after 30s")
		}
		if !s.cmd.ProcessState.Success() {
			return fmt.Errorf("%v:\n%s", s.cmd.ProcessState, s.stderr())
		}
		return nil
	}

	// SIGTERM: a running statement finishes within the grace period, new
	// connections are refused, the process exits 0.
	s := serveAdmin(t, bin, "--upstream", pg.Addr(), "--shutdown-grace", "20s")
	conn, err := connect(s.addr)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		var n int
		done <- conn.QueryRow(ctx, "select 1 from pg_sleep(1)").Scan(&n)
	}()
	pgtest.Eventually(t, 10*time.Second, "the statement running on the server", func() bool {
		var n int
		su.QueryRow(ctx, "select count(*) from pg_stat_activity where query = 'select 1 from pg_sleep(1)' and state = 'active'").Scan(&n)
		return n == 1
	})
	s.cmd.Process.Signal(syscall.SIGTERM)
	if err := <-done; err != nil {
		t.Fatalf("statement running at SIGTERM: %v", err)
	}
	conn.Close(ctx)
	if err := exited(s); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
	if c, err := connect(s.addr); err == nil {
		c.Close(ctx)
		t.Fatal("connection accepted after shutdown")
	}

	// SIGINT with an idle session past a short grace: the session is
	// terminated with 57P01 and the process exits.
	s = serveAdmin(t, bin, "--upstream", pg.Addr(), "--shutdown-grace", "300ms")
	conn, err = connect(s.addr)
	if err != nil {
		t.Fatal(err)
	}
	s.cmd.Process.Signal(syscall.SIGINT)
	if err := exited(s); err != nil {
		t.Fatalf("exit after SIGINT: %v", err)
	}
	_, err = conn.Exec(ctx, "select 1")
	var pe *pgconn.PgError
	if err == nil || (errors.As(err, &pe) && pe.Code != "57P01") {
		t.Fatalf("idle session after forced shutdown: %v", err)
	}
}

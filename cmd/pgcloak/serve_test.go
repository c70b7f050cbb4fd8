package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"regexp"
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

var listenLine = regexp.MustCompile(`msg="pgcloak listening" addr=(\S+)`)

// startServe runs `pgcloak serve` and returns the process and its address.
func startServe(t *testing.T, bin string, args ...string) (*exec.Cmd, string) {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"serve", "--listen", "127.0.0.1:0"}, args...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		if m := listenLine.FindStringSubmatch(sc.Text()); m != nil {
			go func() {
				for sc.Scan() {
				}
			}()
			return cmd, m[1]
		}
	}
	t.Fatal("pgcloak serve exited before listening")
	return nil, ""
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

	// SIGTERM: a running statement finishes within the grace period, new
	// connections are refused, the process exits 0.
	cmd, addr := startServe(t, bin, "--upstream", pg.Addr(), "--shutdown-grace", "20s")
	conn, err := connect(addr)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		var n int
		done <- conn.QueryRow(ctx, "select 1 from pg_sleep(1)").Scan(&n)
	}()
	time.Sleep(200 * time.Millisecond)
	cmd.Process.Signal(syscall.SIGTERM)
	if err := <-done; err != nil {
		t.Fatalf("statement running at SIGTERM: %v", err)
	}
	conn.Close(ctx)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
	if c, err := connect(addr); err == nil {
		c.Close(ctx)
		t.Fatal("connection accepted after shutdown")
	}

	// SIGINT with an idle session past a short grace: the session is
	// terminated with 57P01 and the process exits.
	cmd, addr = startServe(t, bin, "--upstream", pg.Addr(), "--shutdown-grace", "300ms")
	conn, err = connect(addr)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Process.Signal(syscall.SIGINT)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGINT: %v", err)
	}
	_, err = conn.Exec(ctx, "select 1")
	var pe *pgconn.PgError
	if err == nil || (errors.As(err, &pe) && pe.Code != "57P01") {
		t.Fatalf("idle session after forced shutdown: %v", err)
	}
}

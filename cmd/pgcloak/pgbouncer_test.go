//go:build pgbouncer

package main

// pgcloak in front of PgBouncer (.ci/pgbouncer.sh): pgcloak -> PgBouncer ->
// PostgreSQL, the supported way to pool for connect-per-request
// applications (docs/deploy.md, "Pooling"). Run with
//
//	go test -tags pgbouncer -run TestPgBouncer ./cmd/pgcloak/

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgcloak/pgcloak/examples/crm"
	"github.com/pgcloak/pgcloak/internal/cloaktest"
	"github.com/pgcloak/pgcloak/internal/pgtest"
)

// bouncerDB is a PostgreSQL with the sample CRM whose demo logins
// authenticate with SCRAM, so that PgBouncer must authenticate them too.
func bouncerDB() (*pgtest.Server, error) {
	return cloaktest.Start(cloaktest.Options{
		PG:  pgtest.Options{HBA: []string{"host all alice,bob,dana 127.0.0.1/32 scram-sha-256"}},
		CRM: crm.Options{Customers: 500},
	})
}

// bouncer is a running PgBouncer.
type bouncer struct {
	addr string
	mu   sync.Mutex
	out  bytes.Buffer
}

func (b *bouncer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.out.Write(p)
}

func (b *bouncer) log() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.out.String()
}

// startBouncer runs PgBouncer in front of pg with pool_mode mode and
// auth_type auth, three server connections per user and database, and its
// default server_reset_query (DISCARD ALL). Its auth_file holds the demo
// logins and the superuser with their passwords in clear, so that it can
// authenticate to PostgreSQL with SCRAM.
func startBouncer(t *testing.T, pg *pgtest.Server, mode, auth string) *bouncer {
	t.Helper()
	bin, err := exec.LookPath("pgbouncer")
	if err != nil {
		for _, p := range []string{"/usr/sbin/pgbouncer", "/usr/bin/pgbouncer"} {
			if _, e := os.Stat(p); e == nil {
				bin, err = p, nil
			}
		}
	}
	if err != nil {
		t.Fatal("pgbouncer is not installed (Debian package pgbouncer; .ci/pgbouncer.sh installs it)")
	}
	dir, err := os.MkdirTemp("", "pgcloak-pgbouncer-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	host, port, _ := net.SplitHostPort(addr)
	var users strings.Builder
	for _, u := range []string{"alice", "bob", "dana"} {
		fmt.Fprintf(&users, "%q %q\n", u, crm.DemoPassword)
	}
	// The superuser (pgcloak's catalog login) authenticates to PostgreSQL
	// by trust (pgtest's hba), to PgBouncer with its password.
	fmt.Fprintf(&users, "%q %q\n", pgtest.SuperUser, pgtest.Password)
	// Three server connections per user and database: pgcloak's check of
	// the pooling mode holds two at once.
	ini := fmt.Sprintf(`[databases]
* = host=%s port=%d

[pgbouncer]
listen_addr = %s
listen_port = %s
unix_socket_dir =
auth_type = %s
auth_file = %s
pool_mode = %s
default_pool_size = 3
max_client_conn = 100
query_wait_timeout = 20
logfile =
`, pg.Host, pg.Port, host, port, auth, filepath.Join(dir, "userlist.txt"), mode)
	for name, data := range map[string]string{"pgbouncer.ini": ini, "userlist.txt": users.String()} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b := &bouncer{addr: addr}
	cmd := exec.Command(bin, filepath.Join(dir, "pgbouncer.ini"))
	cmd.Stdout, cmd.Stderr = b, b
	if os.Geteuid() == 0 { // PgBouncer refuses to run as root
		u, err := user.Lookup("nobody")
		if err != nil {
			t.Fatal(err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return b
		}
		if time.Now().After(deadline) {
			t.Fatalf("pgbouncer does not listen on %s:\n%s", addr, b.log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// connectVia opens a session as login through addr.
func connectVia(t *testing.T, addr, login, password string, params ...string) (*pgconn.PgConn, error) {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	return pgconn.Connect(ctx, fmt.Sprintf("host=%s port=%s user=%s password=%s dbname=%s sslmode=disable %s",
		host, port, login, password, pgtest.Database, strings.Join(params, " ")))
}

// outcome runs sql and renders what the client got: the rows, or the
// error's SQLSTATE.
func outcome(c *pgconn.PgConn, sql string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	res, err := c.Exec(ctx, sql).ReadAll()
	if err != nil {
		var pe *pgconn.PgError
		if errors.As(err, &pe) {
			return "error " + pe.Code
		}
		return "error " + err.Error()
	}
	var b strings.Builder
	for _, r := range res {
		for _, row := range r.Rows {
			for i, v := range row {
				if i > 0 {
					b.WriteByte('|')
				}
				b.Write(v)
			}
			b.WriteByte('\n')
		}
		b.WriteString(r.CommandTag.String())
	}
	return b.String()
}

// firstAuthRequest sends a StartupMessage for login to addr and returns
// the authentication method of the first AuthenticationRequest it gets
// back (10 SASL, 5 MD5, 3 cleartext, 0 none).
func firstAuthRequest(t *testing.T, addr, login string) uint32 {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	var body []byte
	body = binary.BigEndian.AppendUint32(body, 196608)
	for _, kv := range []string{"user", login, "database", pgtest.Database} {
		body = append(append(body, kv...), 0)
	}
	body = append(body, 0)
	msg := binary.BigEndian.AppendUint32(nil, uint32(4+len(body)))
	if _, err := c.Write(append(msg, body...)); err != nil {
		t.Fatal(err)
	}
	hdr := make([]byte, 9)
	if _, err := io.ReadFull(c, hdr); err != nil {
		t.Fatal(err)
	}
	if hdr[0] != 'R' {
		t.Fatalf("first message %q, not an authentication request", hdr[0])
	}
	return binary.BigEndian.Uint32(hdr[5:])
}

// TestPgBouncerSessionPooling: pgcloak in front of PgBouncer in session
// pooling, for both of PgBouncer's password methods: authentication is
// relayed through PgBouncer, the rules apply, cancel reaches the query,
// the settings restricted sessions rest on behave as without PgBouncer,
// and a session's settings do not reach the next client of the same server
// connection.
func TestPgBouncerSessionPooling(t *testing.T) {
	pg, err := bouncerDB()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pg.Stop)
	bin := buildPgcloak(t)
	rulesFile := writeRules(t, crm.Rules)
	catalog := pg.DSN(pgtest.SuperUser, pgtest.Database)
	// The same pgcloak straight in front of PostgreSQL: what a session
	// gets through PgBouncer must be what it gets without.
	direct := serveAdmin(t, bin, "--upstream", pg.Addr(), "--rules", rulesFile, "--catalog-dsn", catalog)
	direct.waitStatus(t, "/readyz", 200)
	super, err := pgx.Connect(context.Background(), catalog)
	if err != nil {
		t.Fatal(err)
	}
	defer super.Close(context.Background())

	for _, auth := range []struct {
		name string
		code uint32
	}{{"scram-sha-256", 10}, {"md5", 5}} {
		t.Run(auth.name, func(t *testing.T) {
			b := startBouncer(t, pg, "session", auth.name)
			s := serveAdmin(t, bin, "--upstream", b.addr, "--rules", rulesFile, "--catalog-dsn", catalog)
			s.waitStatus(t, "/readyz", 200)
			if strings.Contains(s.stderr(), "could not check") {
				t.Fatalf("pgcloak did not check the upstream's pooling:\n%s", s.stderr())
			}

			t.Run("authentication", func(t *testing.T) {
				// PgBouncer's own method reaches the client through pgcloak.
				if got := firstAuthRequest(t, s.addr, "alice"); got != auth.code {
					t.Fatalf("first authentication request: method %d, want %d (PgBouncer's %s)", got, auth.code, auth.name)
				}
				c, err := connectVia(t, s.addr, "alice", crm.DemoPassword)
				if err != nil {
					t.Fatalf("alice through pgcloak and PgBouncer: %v\n%s", err, b.log())
				}
				c.Close(context.Background())
				_, err = connectVia(t, s.addr, "alice", "wrong-password")
				if err == nil || !strings.Contains(err.Error(), "authentication failed") {
					t.Fatalf("a wrong password: %v, want PgBouncer's refusal", err)
				}
			})

			t.Run("rules", func(t *testing.T) {
				alice, err := connectVia(t, s.addr, "alice", crm.DemoPassword)
				if err != nil {
					t.Fatal(err)
				}
				defer alice.Close(context.Background())
				if got := outcome(alice, "SELECT DISTINCT region FROM customers ORDER BY 1"); got != "north\nSELECT 1" {
					t.Fatalf("alice's regions: %q, want north only", got)
				}
				var id int
				var street string
				if err := super.QueryRow(context.Background(),
					"SELECT customer_id, street FROM customers WHERE region = 'north' AND street IS NOT NULL ORDER BY customer_id LIMIT 1").Scan(&id, &street); err != nil {
					t.Fatal(err)
				}
				got := outcome(alice, fmt.Sprintf("SELECT street FROM customers WHERE customer_id = %d", id))
				if got != "(street withheld)\nSELECT 1" {
					t.Fatalf("alice sees %q of a customer whose street is %q: want it masked", got, street)
				}
				if got := outcome(alice, "SELECT amount FROM commissions"); !strings.HasPrefix(got, "error 42501") {
					t.Fatalf("alice reading commissions: %q, want refused (42501)", got)
				}
				dana, err := connectVia(t, s.addr, "dana", crm.DemoPassword)
				if err != nil {
					t.Fatal(err)
				}
				defer dana.Close(context.Background())
				if got := outcome(dana, "SELECT count(DISTINCT region) > 1 FROM customers"); got != "t\nSELECT 1" {
					t.Fatalf("dana (unrestricted) sees %q, want every region", got)
				}
			})

			t.Run("cancel", func(t *testing.T) {
				for _, login := range []string{"alice", "dana"} {
					c, err := connectVia(t, s.addr, login, crm.DemoPassword)
					if err != nil {
						t.Fatal(err)
					}
					done := make(chan string, 1)
					began := time.Now()
					go func() { done <- outcome(c, "SELECT pg_sleep(30)") }()
					time.Sleep(300 * time.Millisecond)
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					if err := c.CancelRequest(ctx); err != nil {
						t.Fatalf("%s: cancel request: %v", login, err)
					}
					cancel()
					select {
					case got := <-done:
						if got != "error 57014" || time.Since(began) > 10*time.Second {
							t.Fatalf("%s: cancelled pg_sleep(30): %q after %v, want 57014 at once", login, got, time.Since(began))
						}
					case <-time.After(15 * time.Second):
						t.Fatalf("%s: the cancel did not reach the query through PgBouncer", login)
					}
					// The session goes on.
					if got := outcome(c, "SELECT 1"); got != "1\nSELECT 1" {
						t.Fatalf("%s after the cancel: %q", login, got)
					}
					c.Close(context.Background())
				}
			})

			t.Run("settings", func(t *testing.T) {
				alice, err := connectVia(t, s.addr, "alice", crm.DemoPassword)
				if err != nil {
					t.Fatal(err)
				}
				for name, want := range map[string]string{"standard_conforming_strings": "on", "client_encoding": "UTF8"} {
					if got := alice.ParameterStatus(name); got != want {
						t.Errorf("alice's %s through PgBouncer: %q, want %q", name, got, want)
					}
				}
				alice.Close(context.Background())
				// What restricted sessions rest on, and what they try to
				// change: each statement in a new session (some end it), the
				// same answers through PgBouncer as without.
				for _, sql := range [][]string{
					{"SHOW search_path", "SELECT current_user, session_user"},
					{"SET search_path = public, pg_catalog", "SELECT count(*) FROM customers"},
					{"SET search_path = pg_catalog, public", "SELECT count(*) FROM customers"},
					{"SET standard_conforming_strings = off", "SELECT 'a\\'"},
					{"SET client_encoding = 'SJIS'", "SELECT 1"},
					{"SELECT set_config('search_path', 'public', false)", "SELECT count(*) FROM customers"},
					{"SET ROLE dana", "SELECT count(DISTINCT region) FROM customers"},
					{"SET SESSION AUTHORIZATION dana", "SELECT 1"},
					{"SET work_mem = '7MB'", "SHOW work_mem"},
					{"SET pgcloak.end_user = 'bob'", "SELECT 1"},
					{"BEGIN", "SET LOCAL search_path = public", "SELECT count(*) FROM customers", "COMMIT"},
					{"PREPARE q AS SELECT count(*) FROM customers", "EXECUTE q", "DEALLOCATE q"},
					{"CREATE TEMP TABLE customers (x int)", "SELECT count(*) FROM customers"},
				} {
					var got, want []string
					for _, side := range []struct {
						s   *served
						out *[]string
					}{{s, &got}, {direct, &want}} {
						c, err := connectVia(t, side.s.addr, "alice", crm.DemoPassword)
						if err != nil {
							t.Fatal(err)
						}
						for _, q := range sql {
							*side.out = append(*side.out, outcome(c, q))
						}
						c.Close(context.Background())
					}
					t.Logf("%q: %q", sql, got)
					if strings.Join(got, "; ") != strings.Join(want, "; ") {
						t.Errorf("%q through PgBouncer:\n  %q\nwithout PgBouncer:\n  %q", sql, got, want)
					}
				}
				// Connection parameters the guards refuse.
				if _, err := connectVia(t, s.addr, "alice", crm.DemoPassword, "client_encoding=SJIS"); err == nil ||
					!strings.Contains(err.Error(), "client_encoding") {
					t.Errorf("alice with client_encoding SJIS through PgBouncer: %v, want refused", err)
				}
			})

			t.Run("no state left to the next client", func(t *testing.T) {
				// PgBouncer hands the server connection released last to the
				// next client (last in, first out): the next session of dana
				// gets the one the last left, reset by DISCARD ALL.
				dana, err := connectVia(t, s.addr, "dana", crm.DemoPassword)
				if err != nil {
					t.Fatal(err)
				}
				pid := outcome(dana, "SELECT pg_backend_pid()")
				for _, q := range []string{"SET search_path = pg_catalog", "SET work_mem = '7MB'", "PREPARE leftover AS SELECT 1", "CREATE TEMP TABLE leftover (x int)"} {
					if got := outcome(dana, q); strings.HasPrefix(got, "error") {
						t.Fatalf("dana: %s: %s", q, got)
					}
				}
				dana.Close(context.Background())
				next, err := connectVia(t, s.addr, "dana", crm.DemoPassword)
				if err != nil {
					t.Fatal(err)
				}
				defer next.Close(context.Background())
				if got := outcome(next, "SELECT pg_backend_pid()"); got != pid {
					t.Fatalf("the next session is on backend %q, not %q: the test needs PgBouncer to reuse it", got, pid)
				}
				for q, want := range map[string]string{
					"SHOW search_path": "\"$user\", public\nSHOW",
					"SHOW work_mem":    "4MB\nSHOW",
					"SELECT count(*) FROM pg_prepared_statements":                       "0\nSELECT 1",
					"SELECT count(*) FROM pg_class WHERE relname = 'leftover'":          "0\nSELECT 1",
					"SELECT current_setting('search_path') = '\"$user\", public'::text": "t\nSELECT 1",
				} {
					if got := outcome(next, q); got != want {
						t.Errorf("the next session: %s: %q, want %q", q, got, want)
					}
				}
			})
		})
	}
}

// TestPgBouncerTransactionPoolingRefused: pgcloak with rules does not start
// in front of a PgBouncer that pools by transaction or by statement, and
// says why; in session pooling it starts (TestPgBouncerSessionPooling).
func TestPgBouncerTransactionPoolingRefused(t *testing.T) {
	pg, err := bouncerDB()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pg.Stop)
	bin := buildPgcloak(t)
	rulesFile := writeRules(t, crm.Rules)
	for _, mode := range []string{"transaction", "statement"} {
		t.Run(mode, func(t *testing.T) {
			b := startBouncer(t, pg, mode, "scram-sha-256")
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, "serve", "--listen", "127.0.0.1:0", "--upstream", b.addr,
				"--rules", rulesFile, "--catalog-dsn", pg.DSN(pgtest.SuperUser, pgtest.Database))
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 2 {
				t.Fatalf("pgcloak serve in front of PgBouncer in %s pooling: %v, want exit status 2\n%s", mode, err, out)
			}
			if !strings.Contains(string(out), "restricted sessions need session pooling") {
				t.Fatalf("pgcloak serve did not say why it stopped:\n%s", out)
			}
			if strings.Contains(string(out), "pgcloak listening") {
				t.Fatalf("pgcloak listened before refusing:\n%s", out)
			}
		})
	}
	// Without rules there is no restricted session: a pass-through pgcloak
	// may sit in front of any pooler.
	b := startBouncer(t, pg, "transaction", "scram-sha-256")
	pass := serveAdmin(t, bin, "--upstream", b.addr)
	c, err := connectVia(t, pass.addr, "alice", crm.DemoPassword)
	if err != nil {
		t.Fatalf("alice through a pass-through pgcloak and PgBouncer in transaction pooling: %v", err)
	}
	if got := outcome(c, "SELECT count(DISTINCT region) > 1 FROM customers"); got != "t\nSELECT 1" {
		t.Fatalf("pass-through: %q", got)
	}
	c.Close(context.Background())
}

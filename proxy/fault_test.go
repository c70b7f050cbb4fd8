package proxy_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/pgcloak/pgcloak/internal/pgtest"
	"github.com/pgcloak/pgcloak/proxy"
)

// superuser is a direct connection to a server, to watch pg_stat_activity.
func superuser(t testing.TB, s *pgtest.Server) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.DSN(pgtest.SuperUser, pgtest.Database))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// activeBackend waits until a backend of application appName is running a
// query and returns its pid.
func activeBackend(t testing.TB, su *pgx.Conn, appName string) int {
	t.Helper()
	var pid int
	pgtest.Eventually(t, 10*time.Second, "backend of "+appName+" active", func() (bool, string) {
		err := su.QueryRow(context.Background(),
			"select pid from pg_stat_activity where application_name = $1 and state = 'active'", appName).Scan(&pid)
		return err == nil, fmt.Sprint(err)
	})
	return pid
}

// backendGone waits until no backend has this pid.
func backendGone(t testing.TB, su *pgx.Conn, pid int) {
	t.Helper()
	pgtest.Eventually(t, 10*time.Second, fmt.Sprintf("backend %d gone", pid), func() (bool, string) {
		var state string
		err := su.QueryRow(context.Background(),
			"select coalesce(state, '') || ': ' || query from pg_stat_activity where pid = $1", pid).Scan(&state)
		return errors.Is(err, pgx.ErrNoRows), state
	})
}

// wantCodeClass checks that err is an ErrorResponse whose SQLSTATE starts
// with one of the prefixes.
func wantCodeClass(t testing.TB, err error, prefixes ...string) *pgconn.PgError {
	t.Helper()
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		for _, p := range prefixes {
			if strings.HasPrefix(pe.Code, p) {
				return pe
			}
		}
	}
	t.Fatalf("want an error with SQLSTATE %s…, got %v", strings.Join(prefixes, "… or "), err)
	return nil
}

// The upstream restarts (or dies) under running sessions: each gets a
// FATAL ErrorResponse of class 57 or 08 and is closed, and pgcloak connects
// new sessions as soon as the server is back. The test has its own server,
// so that restarting it disturbs no other test.
func TestUpstreamRestart(t *testing.T) {
	up, err := pgtest.Start(pgtest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(up.Stop)
	_, addr := startProxy(t, proxy.Config{Upstream: up.Addr()})
	ctx := context.Background()

	// A session in the middle of a query, and an idle one.
	busy := connect(t, addr, pgtest.ScramUser)
	busyErr := make(chan error, 1)
	go func() { _, err := busy.Exec(ctx, "set application_name = 'busy'; select pg_sleep(30)"); busyErr <- err }()
	idle := dialWire(t, addr)
	idle.startup(pgtest.TrustUser)
	activeBackend(t, superuser(t, up), "busy")

	if err := up.Restart(); err != nil {
		t.Fatal(err)
	}
	wantCodeClass(t, <-busyErr, "57", "08")
	idle.expectFatal("57")
	conn := connect(t, addr, pgtest.ScramUser)
	if err := conn.Ping(ctx); err != nil {
		t.Fatalf("new session after restart: %v", err)
	}

	// While the server is down, pgcloak says it cannot connect; once it is
	// back, sessions connect again.
	up.Halt()
	_, err = pgx.Connect(ctx, dsn(addr, pgtest.TrustUser))
	if pe := wantCodeClass(t, err, pgerrcode.SQLClientUnableToEstablishSQLConnection); !strings.Contains(pe.Message, "pgcloak") {
		t.Fatalf("want pgcloak's own error, got %v", pe)
	}
	if err := up.Restart(); err != nil {
		t.Fatal(err)
	}
	connect(t, addr, pgtest.TrustUser)

	// A backend that dies without a word (SIGKILL) leaves pgcloak to tell
	// the client: 08006. The server then restarts itself (crash recovery).
	victim := connect(t, addr, pgtest.TrustUser)
	victimErr := make(chan error, 1)
	go func() {
		_, err := victim.Exec(ctx, "set application_name = 'victim'; select pg_sleep(30)")
		victimErr <- err
	}()
	su := superuser(t, up)
	pid := activeBackend(t, su, "victim")
	su.Close(ctx)
	if pid != int(victim.PgConn().PID()) {
		t.Fatalf("backend pid %d, but the client holds %d", pid, victim.PgConn().PID())
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if pe := wantCodeClass(t, <-victimErr, pgerrcode.ConnectionFailure); pe.Severity != "FATAL" {
		t.Fatalf("severity %q", pe.Severity)
	}
	pgtest.Eventually(t, 30*time.Second, "a new session after crash recovery", func() (bool, string) {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, dsn(addr, pgtest.TrustUser))
		if err == nil {
			err = c.Ping(ctx)
			c.Close(ctx)
		}
		return err == nil, fmt.Sprint(err)
	})
}

// openFDs counts this process's open file descriptors.
func openFDs(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// 200 sessions at once, each running a few queries (a quarter of them on
// TLS), then all closed: goroutines, file descriptors and server backends
// all come back to where they were. Not parallel: it counts the whole
// process.
func TestNoLeaks(t *testing.T) {
	const sessions = 200
	srv, addr := startProxy(t, proxy.Config{ClientTLS: certs.ServerConfig()})
	ctx := context.Background()
	su := superuser(t, pg)
	backends := func() int {
		var n int
		if err := su.QueryRow(ctx, "select count(*) from pg_stat_activity where application_name = 'leak-test'").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	warm := connect(t, addr, pgtest.TrustUser) // let lazily started machinery start
	warm.Close(ctx)
	pgtest.Eventually(t, 10*time.Second, "warm-up session ended", func() (bool, string) {
		return srv.ActiveSessions() == 0, fmt.Sprint(srv.ActiveSessions())
	})
	baseG, baseFD := runtime.NumGoroutine(), openFDs(t)

	var wg sync.WaitGroup
	var connected sync.WaitGroup // all sessions open at once before any closes
	connected.Add(sessions)
	release := make(chan struct{})
	errs := make(chan error, sessions)
	for i := range sessions {
		wg.Go(func() {
			cs := dsn(addr, pgtest.TrustUser)
			if i%4 == 0 {
				cs = tlsDSN(addr, pgtest.TrustUser, "")
			}
			conn, err := pgx.Connect(ctx, cs+" application_name=leak-test")
			connected.Done()
			if err != nil {
				errs <- err
				return
			}
			defer conn.Close(ctx)
			var n int
			if err := conn.QueryRow(ctx, "select $1::int * 2", i).Scan(&n); err != nil || n != 2*i {
				errs <- fmt.Errorf("session %d: %d, %v", i, n, err)
				return
			}
			if _, err := conn.Exec(ctx, "select 1; select 2"); err != nil {
				errs <- err
				return
			}
			<-release
			if err := conn.QueryRow(ctx, "select count(*) from generate_series(1, $1::int)", i).Scan(&n); err != nil || n != i {
				errs <- fmt.Errorf("session %d: %d, %v", i, n, err)
			}
		})
	}
	connected.Wait()
	if n := srv.ActiveSessions(); n != sessions {
		t.Errorf("%d sessions active, want %d", n, sessions)
	}
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	pgtest.Eventually(t, 10*time.Second, "sessions, goroutines and descriptors back to the baseline", func() (bool, string) {
		g, fd, a := runtime.NumGoroutine(), openFDs(t), srv.ActiveSessions()
		return g <= baseG && fd <= baseFD && a == 0,
			fmt.Sprintf("goroutines %d (baseline %d), fds %d (baseline %d), sessions %d", g, baseG, fd, baseFD, a)
	})
	if t.Failed() {
		var b strings.Builder
		pprof.Lookup("goroutine").WriteTo(&b, 1)
		t.Log(b.String())
	}
	pgtest.Eventually(t, 10*time.Second, "server backends gone", func() (bool, string) {
		n := backends()
		return n == 0, fmt.Sprint(n)
	})
}

// startupPacket builds a start-up packet for a protocol version.
func startupPacket(version uint32, params ...string) []byte {
	b := []byte{0, 0, 0, 0}
	b = binary.BigEndian.AppendUint32(b, version)
	for _, p := range params {
		b = append(append(b, p...), 0)
	}
	b = append(b, 0)
	binary.BigEndian.PutUint32(b, uint32(len(b)))
	return b
}

// message builds a typed message with an honest length.
func message(typ byte, body []byte) []byte {
	b := []byte{typ, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(b[1:], uint32(4+len(body)))
	return append(b, body...)
}

// header builds a message header that announces length (the int32 that
// counts itself) whatever follows.
func header(typ byte, length uint32) []byte {
	return binary.BigEndian.AppendUint32([]byte{typ}, length)
}

// Garbage from a client gets a FATAL 08P01 ErrorResponse and a closed
// connection, at any stage of the session, and another session on the same
// pgcloak never notices.
func TestGarbage(t *testing.T) {
	const maxMsg = 64 << 10
	_, addr := startProxy(t, proxy.Config{MaxMessageSize: maxMsg})
	_, policyAddr := startProxy(t, proxy.Config{MaxMessageSize: maxMsg, Policy: passPolicy{}})
	bystander := connect(t, addr, pgtest.ScramUser)
	policyBystander := connect(t, policyAddr, pgtest.ScramUser)
	ctx := context.Background()

	rng := rand.New(rand.NewPCG(1, 2))
	random := make([]byte, 256)
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	random[0] = 0xde // an absurd start-up length, whatever the seed

	cases := []struct {
		name      string
		stage     string // "connect", "auth" (SCRAM, after AuthenticationSASL) or "ready" (trust, after ReadyForQuery)
		policy    bool   // through the pgcloak whose policy decodes SQL messages
		bytes     []byte
		halfClose bool   // the client stops sending after the bytes
		want      string // in the error message
	}{
		{"random bytes", "connect", false, random, false, "invalid length of startup packet"},
		{"HTTP request", "connect", false, []byte("GET / HTTP/1.1\r\nHost: db\r\n\r\n"), false, "invalid length of startup packet"},
		{"TLS ClientHello without SSLRequest", "connect", false, []byte{0x16, 3, 1, 0, 0xa5, 1, 0, 0, 0xa1, 3, 3}, false, "invalid length of startup packet"},
		{"protocol 2.0", "connect", false, startupPacket(2<<16, "user", pgtest.TrustUser), false, "unsupported frontend protocol 2.0"},
		{"protocol 4.0", "connect", false, startupPacket(4<<16, "user", pgtest.TrustUser), false, "unsupported frontend protocol 4.0"},
		{"length below minimum", "connect", false, []byte{0, 0, 0, 4}, false, "invalid length of startup packet"},
		{"absurd start-up length", "connect", false, []byte{0xff, 0xff, 0xff, 0xff, 0, 3, 0, 0}, false, "invalid length of startup packet"},
		{"truncated start-up", "connect", false, startupPacket(3<<16, "user", pgtest.TrustUser)[:12], true, "incomplete startup packet"},
		{"unterminated parameters", "connect", false, func() []byte {
			b := startupPacket(3<<16, "user", pgtest.TrustUser)
			b = b[:len(b)-2] // no terminators
			binary.BigEndian.PutUint32(b, uint32(len(b)))
			return b
		}(), false, "invalid startup packet"},
		{"query instead of password", "auth", false, message('Q', []byte("select 1\x00")), false, "expected an authentication response"},
		{"absurd length in authentication", "auth", false, header('p', 0x7fffffff), false, "over the limit"},
		{"absurd message length", "ready", false, header('Q', 0x7fffffff), false, "over the limit"},
		{"negative message length", "ready", false, header('Q', 0xffffffff), false, "over the limit"},
		{"message length below 4", "ready", false, header('Q', 2), false, "invalid message length"},
		{"message over MaxMessageSize", "ready", false, append(header('Q', maxMsg+4+1), "select 1 -- "...), false, "over the limit"},
		{"unknown message type", "ready", false, message('z', nil), false, "invalid frontend message type"},
		{"malformed Parse, decoded by pgcloak", "ready", true, message('P', []byte("no terminators")), false, "invalid Parse message"},
		{"malformed FunctionCall, decoded by pgcloak", "ready", true, message('F', []byte{0, 0}), false, "invalid FunctionCall message"},
		{"message over MaxMessageSize, policy", "ready", true, append(header('P', maxMsg+4+1), 0, 's'), false, "over the limit"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			target := addr
			if c.policy {
				target = policyAddr
			}
			w := dialWire(t, target)
			switch c.stage {
			case "auth":
				w.send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersion30,
					Parameters: map[string]string{"user": pgtest.ScramUser, "database": pgtest.Database}})
				if _, err := w.readUntil('R', 1); err != nil {
					t.Fatal(err)
				}
			case "ready":
				w.startup(pgtest.TrustUser)
			}
			w.sendRaw(c.bytes)
			if c.halfClose {
				w.c.(*net.TCPConn).CloseWrite()
			}
			e := w.expectFatal(pgerrcode.ProtocolViolation)
			if !strings.Contains(e.Message, c.want) {
				t.Fatalf("message %q lacks %q", e.Message, c.want)
			}
			t.Logf("%s: %s", e.Code, e.Message)
		})
	}
	t.Cleanup(func() { // after the parallel cases
		for _, c := range []*pgx.Conn{bystander, policyBystander} {
			var n int
			if err := c.QueryRow(ctx, "select 1 + 1").Scan(&n); err != nil || n != 2 {
				t.Errorf("bystander session: %d, %v", n, err)
			}
		}
		if err := connect(t, addr, pgtest.MD5User).Ping(ctx); err != nil {
			t.Errorf("new session: %v", err)
		}
	})
}

// A client that goes away in the middle of a query gets its query
// cancelled and its backend closed; so does one idle in a transaction.
// Without the cancel, pg_sleep(30) would hold its backend for 30 seconds.
func TestClientDisconnect(t *testing.T) {
	_, addr := startProxy(t, proxy.Config{})
	cases := []struct {
		name   string
		script []pgproto3.FrontendMessage
		active bool // the backend is running a query when the client leaves
	}{
		{"simple query", []pgproto3.FrontendMessage{&pgproto3.Query{String: "select pg_sleep(30)"}}, true},
		{"extended query without Sync", []pgproto3.FrontendMessage{
			&pgproto3.Parse{Query: "select pg_sleep(30)"}, &pgproto3.Bind{},
			&pgproto3.Execute{}, &pgproto3.Flush{},
		}, true},
		{"idle in transaction", []pgproto3.FrontendMessage{&pgproto3.Query{String: "begin"}}, false},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			app := fmt.Sprintf("disconnect-%d", i)
			su := superuser(t, pg)
			w := dialWire(t, addr)
			w.startup(pgtest.TrustUser, "application_name", app)
			w.send(c.script...)
			var pid int
			if c.active {
				pid = activeBackend(t, su, app)
			} else {
				if _, err := w.readUntil('Z', 1); err != nil {
					t.Fatal(err)
				}
				if err := su.QueryRow(context.Background(),
					"select pid from pg_stat_activity where application_name = $1", app).Scan(&pid); err != nil {
					t.Fatal(err)
				}
			}
			w.c.Close()
			backendGone(t, su, pid)
		})
	}
}

// With MaxClientConns=2 the third session is refused with 53300, and is
// accepted once a session has ended.
func TestMaxClientConns(t *testing.T) {
	srv, addr := startProxy(t, proxy.Config{MaxClientConns: 2})
	ctx := context.Background()
	first := connect(t, addr, pgtest.ScramUser)
	connect(t, addr, pgtest.TrustUser)
	_, err := pgx.Connect(ctx, dsn(addr, pgtest.MD5User))
	if pe := wantCodeClass(t, err, pgerrcode.TooManyConnections); pe.Severity != "FATAL" {
		t.Fatalf("severity %q", pe.Severity)
	}
	first.Close(ctx)
	pgtest.Eventually(t, 10*time.Second, "first session ended", func() (bool, string) {
		return srv.ActiveSessions() == 1, fmt.Sprint(srv.ActiveSessions())
	})
	connect(t, addr, pgtest.MD5User)
}

// Shutdown stops accepting at once, lets open sessions work during the
// grace period, then ends them with FATAL 57P01 (cancelling a running
// query first).
func TestShutdownGrace(t *testing.T) {
	srv, addr := startProxy(t, proxy.Config{})
	su := superuser(t, pg)
	idle := dialWire(t, addr)
	idle.startup(pgtest.TrustUser)
	inTx := dialWire(t, addr)
	inTx.startup(pgtest.TrustUser)
	inTx.send(&pgproto3.Query{String: "begin"})
	if _, err := inTx.readUntil('Z', 1); err != nil {
		t.Fatal(err)
	}
	running := dialWire(t, addr)
	running.startup(pgtest.TrustUser, "application_name", "shutdown-running")
	running.send(&pgproto3.Query{String: "select pg_sleep(30)"})
	pid := activeBackend(t, su, "shutdown-running")
	leaving := dialWire(t, addr)
	leaving.startup(pgtest.TrustUser)

	grace, endGrace := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Shutdown(grace) }()

	pgtest.Eventually(t, 10*time.Second, "listener closed", func() (bool, string) {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err != nil, "still accepting"
	})
	// During the grace period sessions work, and one that ends lets go.
	inTx.send(&pgproto3.Query{String: "select 1"})
	if _, err := inTx.readUntil('Z', 1); err != nil {
		t.Fatalf("query during the grace period: %v", err)
	}
	leaving.send(&pgproto3.Terminate{})
	leaving.expectClosed()
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned during the grace period: %v", err)
	default:
	}

	endGrace()
	for _, w := range []*wireConn{idle, inTx, running} {
		if e := w.expectFatal(pgerrcode.AdminShutdown); !strings.Contains(e.Message, "terminating connection") {
			t.Fatalf("message %q", e.Message)
		}
	}
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Shutdown: %v", err)
	}
	if n := srv.ActiveSessions(); n != 0 {
		t.Fatalf("%d sessions after Shutdown", n)
	}
	backendGone(t, su, pid)
}

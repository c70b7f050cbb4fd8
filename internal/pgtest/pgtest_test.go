package pgtest

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

var pg *Server

func TestMain(m *testing.M) { Main(m, Options{}, &pg) }

// Every role authenticates with the method pg_hba.conf gives it, and a wrong
// password is refused by the server itself.
func TestRolesAuthenticate(t *testing.T) {
	ctx := context.Background()
	for _, role := range []string{SuperUser, ScramUser, MD5User, PasswordUser, TrustUser} {
		conn, err := pgx.Connect(ctx, pg.DSN(role, Database))
		if err != nil {
			t.Fatalf("%s: %v", role, err)
		}
		var who string
		if err := conn.QueryRow(ctx, "select current_user").Scan(&who); err != nil || who != role {
			t.Fatalf("%s: current_user = %q, %v", role, who, err)
		}
		conn.Close(ctx)
	}
	for _, role := range []string{ScramUser, MD5User, PasswordUser} {
		cfg, _ := pgx.ParseConfig(pg.DSN(role, Database))
		cfg.Password = "wrong"
		if _, err := pgx.ConnectConfig(ctx, cfg); err == nil {
			t.Fatalf("%s: wrong password accepted", role)
		}
	}
}

// Eventually returns once the condition holds.
func TestEventually(t *testing.T) {
	n := 0
	Eventually(t, 10*time.Second, "third call", func() bool { n++; return n == 3 })
	if n != 3 {
		t.Fatalf("%d calls", n)
	}
	Eventually(t, 10*time.Second, "fifth call", func() (bool, string) { n++; return n == 5, "" })
	if n != 5 {
		t.Fatalf("%d calls", n)
	}
}

// fatalRecorder keeps what Fatalf says and ends the goroutine, as
// testing.T does.
type fatalRecorder struct{ msg string }

func (f *fatalRecorder) Helper() {}

func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// A condition that never holds fails the test, naming what was awaited
// and what was seen.
func TestEventuallyFails(t *testing.T) {
	f := &fatalRecorder{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		Eventually(f, 50*time.Millisecond, "the moon", func() (bool, string) { return false, "cheese" })
	}()
	<-done
	if f.msg != "the moon: not after 50ms (cheese)" {
		t.Fatalf("message %q", f.msg)
	}
}

package proxy_test

import (
	"context"
	"crypto/md5"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/pgcloak/pgcloak/internal/pgtest"
	"github.com/pgcloak/pgcloak/proxy"
)

var authUsers = []string{pgtest.ScramUser, pgtest.MD5User, pgtest.PasswordUser, pgtest.TrustUser}

// Every pgx feature a CRM application leans on works through pgcloak, for
// each authentication method.
func TestPgxThroughProxy(t *testing.T) {
	_, addr := startProxy(t, proxy.Config{})
	for _, user := range authUsers {
		t.Run(user, func(t *testing.T) {
			conn := connect(t, addr, user)
			ctx := context.Background()
			var who string
			if err := conn.QueryRow(ctx, "select current_user").Scan(&who); err != nil || who != user {
				t.Fatalf("current_user = %q, %v", who, err)
			}
			t.Run("simple", func(t *testing.T) {
				var n int64
				err := conn.QueryRow(ctx, "select count(*) from generate_series(1, 1000)", pgx.QueryExecModeSimpleProtocol).Scan(&n)
				if err != nil || n != 1000 {
					t.Fatalf("got %d, %v", n, err)
				}
			})
			t.Run("several statements in one Query", func(t *testing.T) {
				res, err := conn.PgConn().Exec(ctx, "select 1; select 2, 3; select 'x'").ReadAll()
				if err != nil || len(res) != 3 || string(res[2].Rows[0][0]) != "x" || len(res[1].Rows[0]) != 2 {
					t.Fatalf("results %v, %v", res, err)
				}
			})
			t.Run("extended with NULLs and binary", func(t *testing.T) {
				var (
					s  *string
					i  int64
					f  float64
					b  []byte
					ts time.Time
				)
				err := conn.QueryRow(ctx, "select null::text, $1::int8, $2::float8, $3::bytea, '2026-11-30 12:00:00+00'::timestamptz",
					int64(1)<<40, 2.5, []byte{0, 1, 2, 255}).Scan(&s, &i, &f, &b, &ts)
				if err != nil || s != nil || i != 1<<40 || f != 2.5 || string(b) != "\x00\x01\x02\xff" || ts.Year() != 2026 {
					t.Fatalf("got %v %d %v %v %v, %v", s, i, f, b, ts, err)
				}
			})
			t.Run("prepared reused", func(t *testing.T) {
				if _, err := conn.Prepare(ctx, "sq", "select $1::int * $1::int"); err != nil {
					t.Fatal(err)
				}
				for k := range 20 {
					var n int
					if err := conn.QueryRow(ctx, "sq", k).Scan(&n); err != nil || n != k*k {
						t.Fatalf("%d: got %d, %v", k, n, err)
					}
				}
				if err := conn.Deallocate(ctx, "sq"); err != nil {
					t.Fatal(err)
				}
			})
			t.Run("batch of 100", func(t *testing.T) {
				b := &pgx.Batch{}
				for k := range 100 {
					b.Queue("select $1::int + 1", k)
				}
				br := conn.SendBatch(ctx, b)
				for k := range 100 {
					var n int
					if err := br.QueryRow().Scan(&n); err != nil || n != k+1 {
						t.Fatalf("%d: got %d, %v", k, n, err)
					}
				}
				if err := br.Close(); err != nil {
					t.Fatal(err)
				}
			})
			t.Run("error then recover", func(t *testing.T) {
				_, err := conn.Exec(ctx, "select 1/0")
				var pe *pgconn.PgError
				if !errors.As(err, &pe) || pe.Code != pgerrcode.DivisionByZero {
					t.Fatalf("want 22012, got %v", err)
				}
				var n int
				if err := conn.QueryRow(ctx, "select 7").Scan(&n); err != nil || n != 7 {
					t.Fatalf("after error: %d, %v", n, err)
				}
			})
			t.Run("transaction", func(t *testing.T) {
				tx, err := conn.Begin(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := tx.Exec(ctx, "create temp table tt(x int)"); err != nil {
					t.Fatal(err)
				}
				if _, err := tx.Exec(ctx, "insert into nosuchtable values (1)"); err == nil {
					t.Fatal("insert into a missing table succeeded")
				}
				if _, err := tx.Exec(ctx, "select 1"); err == nil || !strings.Contains(err.Error(), pgerrcode.InFailedSQLTransaction) {
					t.Fatalf("statement in aborted transaction: %v", err)
				}
				if err := tx.Rollback(ctx); err != nil {
					t.Fatal(err)
				}
			})
		})
	}
}

func TestWrongPassword(t *testing.T) {
	_, addr := startProxy(t, proxy.Config{})
	for _, user := range []string{pgtest.ScramUser, pgtest.MD5User, pgtest.PasswordUser} {
		cfg, err := pgx.ParseConfig(dsn(addr, user))
		if err != nil {
			t.Fatal(err)
		}
		cfg.Password = "not-the-password"
		_, err = pgx.ConnectConfig(context.Background(), cfg)
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != pgerrcode.InvalidPassword {
			t.Errorf("%s: want the server's 28P01, got %v", user, err)
		}
	}
}

// COPY of 100k rows each way keeps every byte.
func TestCopyRoundTrip(t *testing.T) {
	_, addr := startProxy(t, proxy.Config{})
	ctx := context.Background()
	conn := connect(t, addr, pgtest.ScramUser)
	if _, err := conn.Exec(ctx, "create temp table c (id int, name text, note text)"); err != nil {
		t.Fatal(err)
	}
	const n = 100_000
	rows := make([][]any, n)
	for i := range rows {
		var note any
		if i%7 != 0 {
			note = fmt.Sprintf("note\t%d \\ \"é\"", i)
		}
		rows[i] = []any{i, fmt.Sprintf("name-%d", i), note}
	}
	copied, err := conn.CopyFrom(ctx, pgx.Identifier{"c"}, []string{"id", "name", "note"}, pgx.CopyFromRows(rows))
	if err != nil || copied != n {
		t.Fatalf("copy from: %d rows, %v", copied, err)
	}
	// COPY TO through pgcloak must equal COPY TO directly.
	var viaProxy, direct strings.Builder
	if _, err := conn.PgConn().CopyTo(ctx, &viaProxy, "copy (select * from c order by id) to stdout"); err != nil {
		t.Fatal(err)
	}
	// The server's digest of what arrived equals the client's of what was sent.
	var sum string
	if err := conn.QueryRow(ctx, "select md5(string_agg(id || '|' || name || '|' || coalesce(note, 'NULL'), ',' order by id)) from c").Scan(&sum); err != nil {
		t.Fatal(err)
	}
	var expect strings.Builder
	for i, r := range rows {
		if i > 0 {
			expect.WriteString(",")
		}
		note := "NULL"
		if r[2] != nil {
			note = r[2].(string)
		}
		fmt.Fprintf(&expect, "%d|%s|%s", r[0], r[1], note)
	}
	if got := fmt.Sprintf("%x", md5sum(expect.String())); got != sum {
		t.Fatalf("data changed on the way in: server md5 %s, client md5 %s", sum, got)
	}
	// COPY FROM STDIN of the text we got out, then compare both tables.
	if _, err := conn.Exec(ctx, "create temp table c2 (like c)"); err != nil {
		t.Fatal(err)
	}
	tag, err := conn.PgConn().CopyFrom(ctx, strings.NewReader(viaProxy.String()), "copy c2 from stdin")
	if err != nil || tag.RowsAffected() != n {
		t.Fatalf("copy from stdin: %v, %v", tag, err)
	}
	if _, err := conn.PgConn().CopyTo(ctx, &direct, "copy (select * from c2 order by id) to stdout"); err != nil {
		t.Fatal(err)
	}
	if sha256.Sum256([]byte(direct.String())) != sha256.Sum256([]byte(viaProxy.String())) {
		t.Fatal("COPY out, in and out again differs")
	}
	// A COPY FROM that fails mid-stream leaves the session usable.
	_, err = conn.PgConn().CopyFrom(ctx, io.MultiReader(strings.NewReader("1\tx\ty\n"), strings.NewReader("oops\n")), "copy c2 from stdin")
	if err == nil {
		t.Fatal("bad COPY data accepted")
	}
	var one int
	if err := conn.QueryRow(ctx, "select 1").Scan(&one); err != nil {
		t.Fatal(err)
	}
}

func TestListenNotify(t *testing.T) {
	_, addr := startProxy(t, proxy.Config{})
	ctx := context.Background()
	listener := connect(t, addr, pgtest.ScramUser)
	notifier := connect(t, addr, pgtest.MD5User)
	if _, err := listener.Exec(ctx, "listen crm_events"); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := notifier.Exec(ctx, "select pg_notify('crm_events', $1)", fmt.Sprint("payload-", i)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		n, err := listener.WaitForNotification(wctx)
		cancel()
		if err != nil || n.Channel != "crm_events" || n.Payload != fmt.Sprint("payload-", i) {
			t.Fatalf("notification %d: %+v, %v", i, n, err)
		}
	}
}

// A context cancel through pgcloak stops the server-side query.
func TestCancel(t *testing.T) {
	_, addr := startProxy(t, proxy.Config{})
	conn := connect(t, addr, pgtest.ScramUser)
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := conn.Exec(ctx, "select pg_sleep(30)")
	if err == nil {
		t.Fatal("pg_sleep(30) finished despite the cancel")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("cancel took %v", d)
	}
	// pgx closes a connection whose query was interrupted by its context;
	// the server side must be gone or idle, not still sleeping.
	su := superuser(t, pg)
	sleeping := func() int {
		var n int
		su.QueryRow(context.Background(), "select count(*) from pg_stat_activity where query = 'select pg_sleep(30)' and state = 'active'").Scan(&n)
		return n
	}
	pgtest.Eventually(t, 5*time.Second, "pg_sleep(30) no longer running on the server after the cancel",
		func() bool { return sleeping() == 0 })
	// A cancel via the protocol, with the connection kept: CancelRequest,
	// once the query runs on the server.
	conn2 := connect(t, addr, pgtest.MD5User)
	done := make(chan error, 1)
	go func() {
		_, err := conn2.PgConn().Exec(context.Background(), "select pg_sleep(30)").ReadAll()
		done <- err
	}()
	pgtest.Eventually(t, 5*time.Second, "pg_sleep(30) running on the server", func() bool { return sleeping() == 1 })
	if err := conn2.PgConn().CancelRequest(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != pgerrcode.QueryCanceled {
			t.Fatalf("want 57014 query_canceled, got %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("CancelRequest did not stop the query")
	}
	var one int
	if err := conn2.QueryRow(context.Background(), "select 1").Scan(&one); err != nil {
		t.Fatalf("session unusable after cancel: %v", err)
	}
}

// ParameterStatus changes mid-session reach the client.
func TestParameterStatus(t *testing.T) {
	_, addr := startProxy(t, proxy.Config{})
	conn := connect(t, addr, pgtest.TrustUser)
	ctx := context.Background()
	if _, err := conn.Exec(ctx, "set application_name = 'crm-screen'"); err != nil {
		t.Fatal(err)
	}
	if got := conn.PgConn().ParameterStatus("application_name"); got != "crm-screen" {
		t.Fatalf("application_name = %q", got)
	}
	if _, err := conn.Exec(ctx, "set timezone = 'Europe/Paris'"); err != nil {
		t.Fatal(err)
	}
	if got := conn.PgConn().ParameterStatus("TimeZone"); got != "Europe/Paris" {
		t.Fatalf("TimeZone = %q", got)
	}
}

// Large values in both directions cross intact (they exceed the relay's
// read buffer, so they are grown into on the way in and streamed on the
// way out).
func TestLargeValues(t *testing.T) {
	_, addr := startProxy(t, proxy.Config{MaxMessageSize: 32 << 20})
	conn := connect(t, addr, pgtest.ScramUser)
	big := strings.Repeat("0123456789abcdef", 1<<20) // 16 MiB
	var n int
	var sum string
	err := conn.QueryRow(context.Background(), "select length($1::text), md5($1::text)", big).Scan(&n, &sum)
	if err != nil || n != len(big) || sum != fmt.Sprintf("%x", md5sum(big)) {
		t.Fatalf("in: %d, %v", n, err)
	}
	var back string
	if err := conn.QueryRow(context.Background(), "select repeat('0123456789abcdef', 1048576)").Scan(&back); err != nil || back != big {
		t.Fatalf("out: %d bytes, %v", len(back), err)
	}
}

func md5sum(s string) [16]byte { return md5.Sum([]byte(s)) }

package proxy_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/pgcloak/pgcloak/internal/pgtest"
	"github.com/pgcloak/pgcloak/proxy"
)

// A pass-through session stays on the event loop through pipelines and
// transfers larger than the sockets' buffers in both directions (the
// loop's back pressure) and errors, leaves it for a message larger than its
// buffer, and goes on working on the goroutine relay. With GoroutineRelay no session enters a loop.
func TestEventLoop(t *testing.T) {
	srv, addr := startProxy(t, proxy.Config{})
	ctx := context.Background()
	conn := connect(t, addr, pgtest.TrustUser)
	onLoop := func(want int64) {
		t.Helper()
		pgtest.Eventually(t, 10*time.Second, fmt.Sprintf("%d session(s) on the event loop", want), func() (bool, string) {
			n := srv.OnEventLoop()
			return n == want, fmt.Sprint(n)
		})
	}
	onLoop(1)

	// A pipeline of many statements, answered in one stream.
	batch := &pgx.Batch{}
	for i := range 2000 {
		batch.Queue("select $1::int + 1", i)
	}
	br := conn.SendBatch(ctx, batch)
	for i := range 2000 {
		var n int
		if err := br.QueryRow().Scan(&n); err != nil || n != i+1 {
			t.Fatalf("batch %d: %d, %v", i, n, err)
		}
	}
	if err := br.Close(); err != nil {
		t.Fatal(err)
	}

	// Server to client: 64 MiB of rows, each smaller than the relay's
	// buffer, read as they come.
	const rows, width = 1 << 16, 1 << 10
	h := sha256.New()
	var got int
	rs, err := conn.Query(ctx, "select repeat(md5(g::text), $2::int / 32) from generate_series(1, $1::int) g", rows, width)
	if err != nil {
		t.Fatal(err)
	}
	for rs.Next() {
		var s string
		if err := rs.Scan(&s); err != nil {
			t.Fatal(err)
		}
		io.WriteString(h, s)
		got++
	}
	if rs.Err() != nil || got != rows {
		t.Fatalf("%d rows, %v", got, rs.Err())
	}
	var want string
	if err := conn.QueryRow(ctx, "select encode(sha256(string_agg(repeat(md5(g::text), $2::int / 32), '' order by g)::bytea), 'hex') from generate_series(1, $1::int) g",
		rows, width).Scan(&want); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprintf("%x", h.Sum(nil)) != want {
		t.Fatal("rows changed on the way out")
	}

	// Client to server: 64 MiB of COPY data.
	if _, err := conn.Exec(ctx, "create temp table loop_copy (line text)"); err != nil {
		t.Fatal(err)
	}
	line := strings.Repeat("x", width-1) + "\n"
	tag, err := conn.PgConn().CopyFrom(ctx, strings.NewReader(strings.Repeat(line, rows)), "copy loop_copy from stdin")
	if err != nil || tag.RowsAffected() != rows {
		t.Fatalf("copy: %v, %v", tag, err)
	}
	var total int64
	if err := conn.QueryRow(ctx, "select sum(length(line) + 1) from loop_copy").Scan(&total); err != nil || total != rows*width {
		t.Fatalf("copied %d bytes, %v", total, err)
	}
	onLoop(1)

	// A server error stays on the loop.
	if _, err := conn.Exec(ctx, "select 1/0"); err == nil {
		t.Fatal("division by zero succeeded")
	}
	var n int
	if err := conn.QueryRow(ctx, "select 41 + 1").Scan(&n); err != nil || n != 42 {
		t.Fatalf("after the error: %d, %v", n, err)
	}
	onLoop(1)

	// A row larger than the buffer leaves the loop (it is streamed by the
	// goroutine relay); the session goes on.
	var big string
	if err := conn.QueryRow(ctx, "select repeat('ab', 1 << 20)").Scan(&big); err != nil || big != strings.Repeat("ab", 1<<20) {
		t.Fatalf("large row: %d bytes, %v", len(big), err)
	}
	onLoop(0)
	if err := conn.QueryRow(ctx, "select 41 + 1").Scan(&n); err != nil || n != 42 {
		t.Fatalf("after the large row: %d, %v", n, err)
	}
	conn.Close(ctx)

	gsrv, gaddr := startProxy(t, proxy.Config{GoroutineRelay: true})
	g := connect(t, gaddr, pgtest.TrustUser)
	if err := g.QueryRow(ctx, "select 1").Scan(&n); err != nil || n != 1 {
		t.Fatalf("goroutine relay: %d, %v", n, err)
	}
	if k := gsrv.OnEventLoop(); k != 0 {
		t.Fatalf("GoroutineRelay: %d session(s) on the event loop", k)
	}
}

// BenchmarkRoundTrip is one simple-protocol "select 1" and its answer,
// directly and through a pass-through pgcloak on each relay, from
// GOMAXPROCS clients at once (go test -run - -bench RoundTrip -cpu 1,8).
// The clients run in the same process as the relays: compare the relays
// with each other, interleaved (-count), more than with direct.
func BenchmarkRoundTrip(b *testing.B) {
	_, loop := startProxy(b, proxy.Config{})
	_, goroutines := startProxy(b, proxy.Config{GoroutineRelay: true})
	for _, target := range []struct{ name, addr string }{
		{"direct", pg.Addr()}, {"event-loop", loop}, {"goroutines", goroutines},
	} {
		b.Run(target.name, func(b *testing.B) {
			ctx := context.Background()
			b.RunParallel(func(pb *testing.PB) {
				c, err := pgconn.Connect(ctx, dsn(target.addr, pgtest.TrustUser))
				if err != nil {
					b.Error(err)
					return
				}
				defer c.Close(ctx)
				for pb.Next() {
					if _, err := c.Exec(ctx, "select 1").ReadAll(); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

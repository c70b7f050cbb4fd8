package proxy_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgcloak/pgcloak/audit"
	"github.com/pgcloak/pgcloak/internal/pgtest"
	"github.com/pgcloak/pgcloak/proxy"
)

// wirePolicy forwards everything and masks one column of one table on the
// wire, as the rewrite engine does for a protected column that reaches a
// result raw.
type wirePolicy struct {
	table     uint32
	incidents atomic.Int32
}

func (p *wirePolicy) Open(context.Context, proxy.SessionInfo) (proxy.SessionPolicy, error) {
	return &wireSession{p}, nil
}

type wireSession struct{ p *wirePolicy }

func (s *wireSession) Query(string) proxy.Decision                  { return proxy.Decision{} }
func (s *wireSession) Parse(_, _ string, _ []uint32) proxy.Decision { return proxy.Decision{} }
func (s *wireSession) FunctionCall(uint32) proxy.Decision           { return proxy.Decision{} }
func (s *wireSession) Close()                                       {}

func (s *wireSession) MaskColumns(fields []proxy.Column) []bool {
	var mask []bool
	for i, f := range fields {
		if f.TableOID == s.p.table && f.Attribute == 2 {
			if mask == nil {
				mask = make([]bool, len(fields))
			}
			mask[i] = true
			s.p.incidents.Add(1)
		}
	}
	return mask
}

func TestWireCheckMasksInEveryProtocol(t *testing.T) {
	ctx := context.Background()
	if err := pg.Exec(ctx,
		"drop table if exists wc_secret",
		"create table wc_secret (id int, secret text, note text)",
		"insert into wc_secret select i, 'SECRET-' || i, repeat('n', 20000) from generate_series(1, 50) i",
		"grant select on wc_secret to "+pgtest.ScramUser); err != nil {
		t.Fatal(err)
	}
	dconn := connectDirect(t)
	var oid uint32
	if err := dconn.QueryRow(ctx, "select 'wc_secret'::regclass::oid").Scan(&oid); err != nil {
		t.Fatal(err)
	}
	pol := &wirePolicy{table: oid}
	_, addr := startProxy(t, proxy.Config{Policy: pol})
	conn := connect(t, addr, pgtest.ScramUser)

	check := func(t *testing.T, rows pgx.Rows, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for rows.Next() {
			var id int
			var secret, note *string
			if err := rows.Scan(&id, &secret, &note); err != nil {
				t.Fatal(err)
			}
			if secret != nil {
				t.Fatalf("row %d: secret %q reached the client", id, *secret)
			}
			if note == nil || len(*note) != 20000 {
				t.Fatalf("row %d: an unmasked column changed", id)
			}
			n++
		}
		if rows.Err() != nil || n != 50 {
			t.Fatalf("%d rows, %v", n, rows.Err())
		}
	}
	const q = "select id, secret, note from wc_secret order by id"
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeExec,
		pgx.QueryExecModeDescribeExec, pgx.QueryExecModeCacheStatement, pgx.QueryExecModeCacheDescribe} {
		t.Run(mode.String(), func(t *testing.T) {
			for range 3 { // cached modes describe once, then only bind and execute
				rows, err := conn.Query(ctx, q, mode)
				check(t, rows, err)
			}
		})
	}
	t.Run("batch", func(t *testing.T) {
		b := &pgx.Batch{}
		b.Queue("select 1")
		b.Queue(q)
		b.Queue("select id, secret from wc_secret where id = $1", 7)
		br := conn.SendBatch(ctx, b)
		var one int
		if err := br.QueryRow().Scan(&one); err != nil {
			t.Fatal(err)
		}
		rows, err := br.Query()
		check(t, rows, err)
		var id int
		var secret *string
		if err := br.QueryRow().Scan(&id, &secret); err != nil || secret != nil {
			t.Fatalf("batch: %v %v", secret, err)
		}
		br.Close()
	})
	t.Run("psql", func(t *testing.T) {
		out := runTool(t, addr, pgtest.ScramUser, "psql", "-X", "-At", "-c", "select secret from wc_secret where id = 3")
		if strings.Contains(out, "SECRET") {
			t.Fatalf("psql got %q", out)
		}
	})
	if pol.incidents.Load() == 0 {
		t.Fatal("no incident counted")
	}
	// A result without the column is untouched.
	var s string
	if err := conn.QueryRow(ctx, "select 'SECRET-x'::text").Scan(&s); err != nil || s != "SECRET-x" {
		t.Fatalf("unrelated result changed: %q %v", s, err)
	}
}

func connectDirect(t *testing.T) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), pg.DSN(pgtest.SuperUser, pgtest.Database))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// TestWireCheckInAccessLog: each execution whose result had columns sent
// as NULL by the wire check says how many in its access record, in both
// protocols; other executions say nothing.
func TestWireCheckInAccessLog(t *testing.T) {
	ctx := context.Background()
	if err := pg.Exec(ctx,
		"drop table if exists wc_logged",
		"create table wc_logged (id int, secret text)",
		"insert into wc_logged values (1, 'SECRET-1'), (2, 'SECRET-2')",
		"grant select on wc_logged to "+pgtest.ScramUser); err != nil {
		t.Fatal(err)
	}
	var oid uint32
	if err := connectDirect(t).QueryRow(ctx, "select 'wc_logged'::regclass::oid").Scan(&oid); err != nil {
		t.Fatal(err)
	}
	log := &memLog{}
	_, addr := startProxy(t, proxy.Config{Policy: &wirePolicy{table: oid}, AccessLog: log})
	conn := connect(t, addr, pgtest.ScramUser)
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeCacheStatement} {
		for _, q := range []string{"select id, secret from wc_logged", "select id from wc_logged", "select secret, secret from wc_logged"} {
			rows, err := conn.Query(ctx, q, mode)
			if err != nil {
				t.Fatal(err)
			}
			rows.Close()
		}
	}
	conn.Close(ctx)
	want := []int{1, 0, 2, 1, 0, 2}
	pgtest.Eventually(t, 5*time.Second, fmt.Sprintf("wire_check of the executions %v", want), func() (bool, string) {
		var got []int
		log.mu.Lock()
		for _, r := range log.recs {
			if r.Type == audit.TypeStatement && r.Rows != nil && *r.Rows == 2 {
				got = append(got, r.WireCheck)
			}
		}
		log.mu.Unlock()
		return slices.Equal(got, want), fmt.Sprintf("got %v", got)
	})
}

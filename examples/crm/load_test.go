package crm

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/pgcloak/pgcloak/internal/pgtest"
)

var pg *pgtest.Server

func TestMain(m *testing.M) { pgtest.Main(m, pgtest.Options{}, &pg) }

func connect(t *testing.T) *pgx.Conn {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pg.DSN(pgtest.SuperUser, pgtest.Database))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(ctx) })
	return conn
}

func digest(t *testing.T, conn *pgx.Conn) string {
	t.Helper()
	var s string
	err := conn.QueryRow(context.Background(), `SELECT md5(string_agg(c::text, '|' ORDER BY customer_id)) ||
		(SELECT md5(string_agg(o::text, '|' ORDER BY order_id)) FROM orders o) ||
		(SELECT md5(string_agg(x::text, '|' ORDER BY customer_id, purpose)) FROM customer_opt_outs x)
		FROM customers c`).Scan(&s)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestLoadIsDeterministicAndRealistic(t *testing.T) {
	ctx := context.Background()
	conn := connect(t)
	const n = 2000
	st, err := Load(ctx, conn, Options{Customers: n, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	first := digest(t, conn)
	if _, err := Load(ctx, conn, Options{Customers: n, Seed: 7}); err != nil {
		t.Fatal("a second load (roles exist already) failed:", err)
	}
	if got := digest(t, conn); got != first {
		t.Fatal("same seed, different data")
	}
	if _, err := Load(ctx, conn, Options{Customers: n, Seed: 8}); err != nil {
		t.Fatal(err)
	}
	if digest(t, conn) == first {
		t.Fatal("another seed gave the same data")
	}

	var count int
	conn.QueryRow(ctx, "SELECT count(*) FROM customers").Scan(&count)
	if count != n || st.Customers != n {
		t.Fatalf("%d customers", count)
	}
	rows, _ := conn.Query(ctx, "SELECT region, count(*) FROM customers GROUP BY region")
	regions := map[string]int{}
	for rows.Next() {
		var r string
		var c int
		rows.Scan(&r, &c)
		regions[r] = c
	}
	if len(regions) < 4 {
		t.Fatalf("regions %v", regions)
	}
	for r, c := range regions {
		if c < n/10 {
			t.Errorf("region %s has only %d customers", r, c)
		}
	}
	for p, share := range OptOutShare {
		var c int
		conn.QueryRow(ctx, "SELECT count(*) FROM customer_opt_outs WHERE purpose = $1", p).Scan(&c)
		if got := float64(c) / n; got < share*0.7 || got > share*1.3 {
			t.Errorf("opt-outs of %s: %.3f, want about %.2f", p, got, share)
		}
	}
	for _, tab := range []string{"orders", "order_lines", "support_tickets", "accounts", "contacts", "commissions", "sales_targets", "campaigns", "campaign_members"} {
		var c int
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM "+tab).Scan(&c); err != nil || c == 0 {
			t.Errorf("%s: %d rows, %v", tab, c, err)
		}
	}
}

// The sample principals log in with the demo password, over SCRAM.
func TestLoginsExist(t *testing.T) {
	ctx := context.Background()
	conn := connect(t)
	if _, err := Load(ctx, conn, Options{Customers: 50}); err != nil {
		t.Fatal(err)
	}
	for _, login := range Logins {
		var n int
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_roles WHERE rolname = $1 AND rolcanlogin", login).Scan(&n); err != nil || n != 1 {
			t.Errorf("login %s: %d, %v", login, n, err)
		}
	}
	var region string
	if err := conn.QueryRow(ctx, "SELECT region FROM sales_reps WHERE login = 'erin'").Scan(&region); err != nil || region != "east" {
		t.Errorf("erin's region %q, %v", region, err)
	}
}

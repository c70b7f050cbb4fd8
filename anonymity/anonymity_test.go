package anonymity_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/pgcloak/pgcloak/anonymity"
	"github.com/pgcloak/pgcloak/examples/crm"
	"github.com/pgcloak/pgcloak/internal/pgtest"
	"github.com/pgcloak/pgcloak/rewrite"
	"github.com/pgcloak/pgcloak/rules"
)

var pg *pgtest.Server

func TestMain(m *testing.M) { pgtest.Main(m, pgtest.Options{}, &pg) }

const testCustomers = 2000

var loaded bool

func crmConn(t *testing.T) *pgx.Conn {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pg.DSN(pgtest.SuperUser, pgtest.Database))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(ctx) })
	if !loaded {
		if _, err := crm.Load(ctx, conn, crm.Options{Customers: testCustomers, Seed: 5}); err != nil {
			t.Fatal(err)
		}
		if err := rewrite.Setup(ctx, conn); err != nil {
			t.Fatal(err)
		}
		loaded = true
	}
	return conn
}

func crmPolicy(t *testing.T) *rules.Policy {
	t.Helper()
	p, err := rules.Parse("rules.yaml", crm.Rules)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestMeasureSample(t *testing.T) {
	conn := crmConn(t)
	pol := crmPolicy(t)
	res, err := anonymity.MeasureAll(context.Background(), conn, pol)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		b, _ := json.MarshalIndent(r, "", " ")
		t.Logf("%s", b)
	}
}

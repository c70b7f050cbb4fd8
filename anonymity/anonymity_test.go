package anonymity_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/pgcloak/pgcloak/anonymity"
	"github.com/pgcloak/pgcloak/examples/crm"
	"github.com/pgcloak/pgcloak/internal/pgtest"
	"github.com/pgcloak/pgcloak/rules"
	"github.com/pgcloak/pgcloak/schema"
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
		if err := schema.Setup(ctx, conn.Exec); err != nil {
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

// The sample's anonymizing roles meet anonymity.min_k; their only key is
// pseudonymized and left out.
func TestMeasureSample(t *testing.T) {
	conn := crmConn(t)
	pol := crmPolicy(t)
	if got := anonymity.Roles(pol); len(got) != 2 || got[0] != "analyst" || got[1] != "disclosure_export" {
		t.Fatalf("roles %v", got)
	}
	res, err := anonymity.MeasureAll(context.Background(), conn, pol)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		b, _ := json.Marshal(r)
		t.Logf("%s", b)
		if !r.OK || r.K < 5 || r.MinK != 5 || r.BelowMinK != 0 || r.Subjects < testCustomers/2 || len(r.RawKeys) != 0 ||
			len(r.PseudonymizedKeys) != 1 || r.PseudonymizedKeys[0] != "customer_id" || len(r.QuasiIdentifiers) == 0 {
			t.Errorf("%s: %+v", r.Role, r)
		}
		for _, q := range r.QuasiIdentifiers {
			if q.KWithout < r.K {
				t.Errorf("%s: removing %s lowers k: %+v", r.Role, q.Name, q)
			}
		}
	}
}

// A view that shows the raw key, a birth date to the day or the creation
// time is k = 1, and Measure says which columns drive it.
func TestMeasureReidentifyingView(t *testing.T) {
	conn := crmConn(t)
	src := strings.Replace(string(crm.Rules), "        created_at: hide\n      orders: {shipping_street: hide, shipping_city: hide}\n\n  disclosure_export:",
		"        created_at: show\n      orders: {shipping_street: hide, shipping_city: hide}\n\n  disclosure_export:", 1)
	src = strings.Replace(src, "  analyst:                      # anonymized view, automated decisions\n    profile: anonymized\n", "  analyst:                      # anonymized view, automated decisions\n    profile: anonymized\n", 1)
	pol, err := rules.Parse("rules.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	r, err := anonymity.Measure(context.Background(), conn, pol, "analyst")
	if err != nil {
		t.Fatal(err)
	}
	if r.K != 1 || r.OK || r.BelowMinK == 0 || len(r.Drivers) == 0 || r.Drivers[0] != "created_at" {
		t.Fatalf("created_at shown: %+v", r)
	}
	// A raw key counts, and is reported.
	src = strings.Replace(string(crm.Rules), "    columns:                    # the model's features, generalized; nothing finer\n      customers:\n",
		"    columns:                    # the model's features, generalized; nothing finer\n      customers:\n        customer_id: show\n", 1)
	if pol, err = rules.Parse("rules.yaml", []byte(src)); err != nil {
		t.Fatal(err)
	}
	if r, err = anonymity.Measure(context.Background(), conn, pol, "analyst"); err != nil {
		t.Fatal(err)
	}
	if r.K != 1 || len(r.RawKeys) != 1 || r.RawKeys[0] != "customer_id" || r.OK {
		t.Fatalf("raw key: %+v", r)
	}
	if _, err := anonymity.Measure(context.Background(), conn, pol, "dba"); err == nil {
		t.Fatal("measured an unrestricted role")
	}
}

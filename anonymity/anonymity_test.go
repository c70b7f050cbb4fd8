package anonymity_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/pgcloak/pgcloak/anonymity"
	"github.com/pgcloak/pgcloak/examples/crm"
	"github.com/pgcloak/pgcloak/internal/cloaktest"
	"github.com/pgcloak/pgcloak/internal/pgtest"
)

var pg *pgtest.Server

const testCustomers = 2000

func TestMain(m *testing.M) {
	cloaktest.Main(m, cloaktest.Options{CRM: crm.Options{Customers: testCustomers, Seed: 5}}, &pg)
}

// The sample's anonymizing roles meet anonymity.min_k; their only key is
// pseudonymized and left out.
func TestMeasureSample(t *testing.T) {
	conn := cloaktest.Admin(t, pg)
	pol := cloaktest.Rules(t)
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
	conn := cloaktest.Admin(t, pg)
	src := strings.Replace(string(crm.Rules), "        created_at: hide\n      orders: {shipping_street: hide, shipping_city: hide}\n\n  disclosure_export:",
		"        created_at: show\n      orders: {shipping_street: hide, shipping_city: hide}\n\n  disclosure_export:", 1)
	src = strings.Replace(src, "  analyst:                      # anonymized view, automated decisions\n    profile: anonymized\n", "  analyst:                      # anonymized view, automated decisions\n    profile: anonymized\n", 1)
	pol := cloaktest.Rules(t, []byte(src))
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
	pol = cloaktest.Rules(t, []byte(src))
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

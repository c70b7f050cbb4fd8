package engine_test

// Fourth independent review: session state pgcloak changes on its own
// decision rather than on the server's answer. Each test reproduces a
// finding of the report of branch review-fixes.

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgcloak/pgcloak/internal/cloaktest"
)

// rv4Regions runs a query over customers and returns its answer.
func rv4Regions(t *testing.T, r *cloaktest.Raw) string {
	t.Helper()
	return r.RoundTrip(t, 1, &pgproto3.Query{String: "SELECT DISTINCT region FROM customers ORDER BY region"})
}

func rv4Query(t *testing.T, r *cloaktest.Raw, q string) {
	t.Helper()
	if got := r.RoundTrip(t, 1, &pgproto3.Query{String: q}); strings.Contains(got, "ErrorResponse") {
		t.Fatalf("%s: %s", q, got)
	}
}

// Class stale_switch (prepared in one round trip, run in another): the
// end-user switch is pending from the decision on its Parse and dropped
// at the next ReadyForQuery. A SET pgcloak.end_user prepared with a
// Parse and a Sync of its own (a driver's prepare round trip) and run
// later by Bind and Execute gets its "SET" tag, but the acknowledgement
// reaches a switch no longer pending: the client is told the end user
// changed, and pgcloak keeps deciding for the previous one.
func TestReview4SwitchPreparedThenRun(t *testing.T) {
	r := cloaktest.DialRaw(t, proxyAddr, "crm_app")
	rv4Query(t, r, "SET pgcloak.end_user = 'bob'")
	t.Logf("Parse:\n%s", r.RoundTrip(t, 1, &pgproto3.Parse{Name: "rv4sw", Query: "SET pgcloak.end_user = 'alice'"}, &pgproto3.Sync{}))
	got := r.RoundTrip(t, 1, &pgproto3.Bind{PreparedStatement: "rv4sw"}, &pgproto3.Execute{}, &pgproto3.Sync{})
	t.Logf("Bind+Execute:\n%s", got)
	regions := rv4Regions(t, r)
	t.Logf("as alice?\n%s", regions)
	if strings.Contains(got, "CommandComplete SET") && strings.Contains(regions, "DataRow south") {
		t.Errorf("the server said SET to the switch to alice (north), yet the session still reads bob's south customers")
	}
}

// Class stale_switch (re-prepared): a protocol-level statement is
// prepared again after the end user changed (proxy/reprepare.go), and
// the decision on it carries a new acknowledgement callback that the
// proxy drops: the portal keeps the callback of the first Parse. A
// prepared SET pgcloak.end_user run again after another switch is
// answered "SET" and switches nothing.
func TestReview4SwitchReprepared(t *testing.T) {
	r := cloaktest.DialRaw(t, proxyAddr, "crm_app")
	sw := func() string {
		return r.RoundTrip(t, 1, &pgproto3.Bind{PreparedStatement: "rv4sw2"}, &pgproto3.Execute{}, &pgproto3.Sync{})
	}
	got := r.RoundTrip(t, 1, &pgproto3.Parse{Name: "rv4sw2", Query: "SET pgcloak.end_user = 'alice'"},
		&pgproto3.Bind{PreparedStatement: "rv4sw2"}, &pgproto3.Execute{}, &pgproto3.Sync{})
	if !strings.Contains(got, "CommandComplete SET") {
		t.Fatalf("first switch to alice: %s", got)
	}
	if regions := rv4Regions(t, r); strings.Contains(regions, "south") || !strings.Contains(regions, "north") {
		t.Fatalf("after the first switch to alice: %s", regions)
	}
	rv4Query(t, r, "SET pgcloak.end_user = 'bob'")
	if regions := rv4Regions(t, r); !strings.Contains(regions, "south") {
		t.Fatalf("after the switch to bob: %s", regions)
	}
	got = sw()
	t.Logf("second run of the prepared switch to alice:\n%s", got)
	regions := rv4Regions(t, r)
	t.Logf("as alice?\n%s", regions)
	if strings.Contains(got, "CommandComplete SET") && strings.Contains(regions, "DataRow south") {
		t.Errorf("the server said SET to the switch to alice (north), yet the session still reads bob's south customers")
	}
}

// Class stale_switch (pipelined): while an end-user switch waits for the
// server's answer, the session refuses every statement it is asked to
// decide (errPending), but a Bind and Execute of a statement prepared
// for the previous end user is not decided: pipelined after the switch,
// it runs after it with the previous end user's rewrite, and its rows
// reach a client that was told the end user changed.
func TestReview4SwitchPipelinedBind(t *testing.T) {
	r := cloaktest.DialRaw(t, proxyAddr, "crm_app")
	rv4Query(t, r, "SET pgcloak.end_user = 'bob'")
	if got := r.RoundTrip(t, 1, &pgproto3.Parse{Name: "rv4old", Query: "SELECT DISTINCT region FROM customers ORDER BY region"}, &pgproto3.Sync{}); strings.Contains(got, "Error") {
		t.Fatal(got)
	}
	got := r.RoundTrip(t, 2, &pgproto3.Query{String: "SET pgcloak.end_user = 'alice'"},
		&pgproto3.Bind{PreparedStatement: "rv4old"}, &pgproto3.Execute{}, &pgproto3.Sync{})
	t.Logf("switch to alice, then bob's statement:\n%s", got)
	if strings.Contains(got, "CommandComplete SET") && strings.Contains(got, "DataRow south") {
		t.Errorf("a statement prepared for bob (south) ran after the switch to alice (north) with bob's rewrite")
	}
	// The same in one batch of the extended protocol (a driver's batch
	// or pipeline: the switch, then a cached statement).
	rv4Query(t, r, "SET pgcloak.end_user = 'bob'")
	if got := r.RoundTrip(t, 1, &pgproto3.Parse{Name: "rv4old2", Query: "SELECT DISTINCT region FROM customers ORDER BY region"}, &pgproto3.Sync{}); strings.Contains(got, "Error") {
		t.Fatal(got)
	}
	got = r.RoundTrip(t, 1, &pgproto3.Parse{Query: "SET pgcloak.end_user = 'alice'"}, &pgproto3.Bind{}, &pgproto3.Execute{},
		&pgproto3.Bind{PreparedStatement: "rv4old2"}, &pgproto3.Execute{}, &pgproto3.Sync{})
	t.Logf("one batch: switch to alice, then bob's statement:\n%s", got)
	if strings.Contains(got, "CommandComplete SET") && strings.Contains(got, "DataRow south") {
		t.Errorf("a statement prepared for bob (south) ran in the batch of the switch to alice (north) with bob's rewrite")
	}
}

// Over-refusal checks of the fixes, with the messages mainstream drivers
// send: pgJDBC with a fetch size (a named portal executed again after a
// Sync, in a transaction block), psycopg2's named cursor (DECLARE, then
// FETCH in another execute()), and a pool's DEALLOCATE ALL followed by
// the driver preparing its statements again under the same names.
func TestReview4DriversNotRefused(t *testing.T) {
	r := cloaktest.DialRaw(t, proxyAddr, "crm_app")
	rv4Query(t, r, "SET pgcloak.end_user = 'alice'")
	rv4Query(t, r, "BEGIN")
	got := r.RoundTrip(t, 1, &pgproto3.Parse{Query: "SELECT customer_id, region FROM customers ORDER BY customer_id"},
		&pgproto3.Bind{DestinationPortal: "C_1"}, &pgproto3.Describe{ObjectType: 'P', Name: "C_1"},
		&pgproto3.Execute{Portal: "C_1", MaxRows: 2}, &pgproto3.Sync{})
	if !strings.Contains(got, "PortalSuspended") {
		t.Fatalf("JDBC fetch size, first rows: %s", got)
	}
	got = r.RoundTrip(t, 1, &pgproto3.Execute{Portal: "C_1", MaxRows: 2}, &pgproto3.Sync{})
	if strings.Contains(got, "ErrorResponse") || !strings.Contains(got, "DataRow") {
		t.Errorf("JDBC fetch size, next rows after a Sync: %s", got)
	}
	rv4Query(t, r, "COMMIT")

	// psycopg2's named cursor.
	rv4Query(t, r, "BEGIN")
	rv4Query(t, r, `DECLARE "rv4 cur" CURSOR WITHOUT HOLD FOR SELECT customer_id FROM customers`)
	if got := r.RoundTrip(t, 1, &pgproto3.Query{String: `FETCH FORWARD 2 FROM "rv4 cur"`}); strings.Contains(got, "ErrorResponse") {
		t.Errorf("psycopg2 named cursor FETCH: %s", got)
	}
	rv4Query(t, r, "COMMIT")

	// A pool's DEALLOCATE ALL, then the driver's statement again.
	if got := r.RoundTrip(t, 1, &pgproto3.Parse{Name: "rv4s1", Query: "SELECT count(*) FROM customers"}, &pgproto3.Bind{PreparedStatement: "rv4s1"},
		&pgproto3.Execute{}, &pgproto3.Sync{}); strings.Contains(got, "ErrorResponse") {
		t.Fatalf("prepare: %s", got)
	}
	rv4Query(t, r, "DEALLOCATE ALL")
	if got := r.RoundTrip(t, 1, &pgproto3.Parse{Name: "rv4s1", Query: "SELECT count(*) FROM customers"}, &pgproto3.Bind{PreparedStatement: "rv4s1"},
		&pgproto3.Execute{}, &pgproto3.Sync{}); strings.Contains(got, "ErrorResponse") {
		t.Errorf("prepare again after DEALLOCATE ALL: %s", got)
	}
	if got := r.RoundTrip(t, 1, &pgproto3.Bind{PreparedStatement: "rv4s1"}, &pgproto3.Execute{}, &pgproto3.Sync{}); strings.Contains(got, "ErrorResponse") {
		t.Errorf("run again after DEALLOCATE ALL: %s", got)
	}
}

// The coerced left operand of TestReview4CoercedOperator (package
// rewrite), with the right operand a parameter the Parse declares as oid:
// bigint = oid converts order_id row by row, so the policy subquery must
// be fenced; the planted south order's id is out of oid's range.
func TestCoercedOperatorDeclaredParam(t *testing.T) {
	plantSouthOrder(t, -739498)
	r := cloaktest.DialRaw(t, front.Addr, "alice")
	for _, oid := range []uint32{26, 0} {
		got := r.RoundTrip(t, 1, &pgproto3.Parse{Query: "SELECT count(*) FROM orders o WHERE o.order_id = $1", ParameterOIDs: []uint32{oid}},
			&pgproto3.Bind{Parameters: [][]byte{[]byte("1")}}, &pgproto3.Execute{}, &pgproto3.Sync{})
		if strings.Contains(got, "ErrorResponse") {
			t.Fatalf("$1 declared %d: alice hears of a row outside her region:\n%s", oid, got)
		}
	}
}

// plantSouthOrder adds an order of a customer outside alice's region
// (north) with id, removed when the test ends: a negative id is out of
// oid's range, so a conversion of order_id to oid raises on it.
func plantSouthOrder(t *testing.T, id int64) {
	t.Helper()
	ctx := context.Background()
	if _, err := cloaktest.Admin(t, pg).Exec(ctx, `INSERT INTO orders (order_id, customer_id, ordered_at, status, total_amount,
		shipping_name, shipping_street, shipping_city, shipping_postal_code, shipping_region)
		SELECT $1, customer_id, now(), 'x', 1, 'x', 'x', 'x', 'x', 'x' FROM customers WHERE region <> 'north' LIMIT 1`, id); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cloaktest.Admin(t, pg).Exec(context.Background(), `DELETE FROM orders WHERE order_id = $1`, id)
	})
}

package engine_test

// Third independent review (pgcloak as an attacker with a protocol
// client). Each test is a reproducer of a bypass found on main at the
// time of the review; see the report of branch review-bypass.

import (
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgcloak/pgcloak/internal/cloaktest"
)

// Class stale_portal: a portal may be executed only if it was bound under
// the rules and end user in force (proxy/reprepare.go, checkPortal). The
// proxy records the generation of a portal when the client sends its
// Bind, not when the server accepts it. A Bind whose portal name is that
// of a SQL cursor declared for an earlier end user fails on the server
// ("cursor already exists") but leaves the name recorded as bound under
// the current end user, and an Execute of the name then reads the
// earlier end user's cursor.
//
// Here crm_app opens a WITH HOLD cursor for alice (north) and switches
// its end user to bob (south): the direct FETCH is refused, but Bind +
// Execute of the cursor's name hands bob north customers.
func TestReview3StalePortalAfterFailedBind(t *testing.T) {
	r := cloaktest.DialRaw(t, proxyAddr, "crm_app")
	for _, q := range []string{
		"SET pgcloak.end_user = 'alice'",
		"DECLARE rv3c CURSOR WITH HOLD FOR SELECT customer_id, region FROM customers ORDER BY customer_id",
		"SET pgcloak.end_user = 'bob'",
	} {
		if got := r.RoundTrip(t, 1, &pgproto3.Query{String: q}); strings.Contains(got, "ErrorResponse") {
			t.Fatalf("%s: %s", q, got)
		}
	}
	// The guard that should hold.
	if got := r.RoundTrip(t, 1, &pgproto3.Query{String: "FETCH 3 FROM rv3c"}); !strings.Contains(got, "ErrorResponse 42501") {
		t.Fatalf("FETCH of alice's cursor as bob was not refused:\n%s", got)
	}
	// A Bind of a portal named like the cursor: the server refuses it
	// (42P03, cursor already exists).
	got := r.RoundTrip(t, 1,
		&pgproto3.Parse{Name: "rv3s", Query: "SELECT 1"},
		&pgproto3.Bind{PreparedStatement: "rv3s", DestinationPortal: "rv3c"},
		&pgproto3.Sync{})
	t.Logf("failed Bind:\n%s", got)
	// An Execute of the cursor's name as bob.
	got = r.RoundTrip(t, 1, &pgproto3.Execute{Portal: "rv3c", MaxRows: 3}, &pgproto3.Sync{})
	t.Logf("Execute of alice's cursor as bob:\n%s", got)
	if strings.Contains(got, "DataRow") {
		t.Errorf("bob (south) read rows of the cursor crm_app opened for alice (north):\n%s", got)
	}
	if strings.Contains(got, " north") {
		t.Errorf("bob (south) was shown north customers")
	}
}

// Class stale_cursor: the same in SQL. The session counts a cursor from
// its DECLARE, under the generation the DECLARE was decided in
// (engine/follow.go, follow: case 'D'), whether or not the server
// declared it. A DECLARE of the name of a cursor opened for an earlier
// end user fails on the server ("cursor already exists") yet marks the
// name as opened for the current one, and FETCH then reads the earlier
// end user's cursor: from psql, no protocol tricks.
func TestReview3StaleCursorAfterFailedDeclare(t *testing.T) {
	r := cloaktest.DialRaw(t, proxyAddr, "crm_app")
	for _, q := range []string{
		"SET pgcloak.end_user = 'alice'",
		"DECLARE rv3d CURSOR WITH HOLD FOR SELECT customer_id, region FROM customers ORDER BY customer_id",
		"SET pgcloak.end_user = 'bob'",
	} {
		if got := r.RoundTrip(t, 1, &pgproto3.Query{String: q}); strings.Contains(got, "ErrorResponse") {
			t.Fatalf("%s: %s", q, got)
		}
	}
	if got := r.RoundTrip(t, 1, &pgproto3.Query{String: "FETCH 3 FROM rv3d"}); !strings.Contains(got, "ErrorResponse 42501") {
		t.Fatalf("FETCH of alice's cursor as bob was not refused:\n%s", got)
	}
	got := r.RoundTrip(t, 1, &pgproto3.Query{String: "DECLARE rv3d CURSOR WITH HOLD FOR SELECT 1"})
	t.Logf("failed DECLARE:\n%s", got)
	got = r.RoundTrip(t, 1, &pgproto3.Query{String: "FETCH 3 FROM rv3d"})
	t.Logf("FETCH of alice's cursor as bob:\n%s", got)
	if strings.Contains(got, "DataRow") {
		t.Errorf("bob (south) read rows of the cursor crm_app opened for alice (north):\n%s", got)
	}
}

// Class stale_prepared: EXECUTE of a SQL-level statement is allowed while
// a PREPARE of the name is in flight under the current generation and
// the name is not known from an older one (engine/follow.go, follow: case
// 'X', "prepared in flight; if it fails, so does this"). Both halves
// fail: a DEALLOCATE is forgotten when decided (case 'A'), also when the
// server never runs it (after an error earlier in the same Query), and a
// PREPARE that fails stays pending. So: forget alice's statement with a
// DEALLOCATE that never runs, switch to bob, PREPARE the name again
// (which fails: it exists), and EXECUTE runs alice's statement.
func TestReview3StalePreparedAfterFailedPrepare(t *testing.T) {
	r := cloaktest.DialRaw(t, proxyAddr, "crm_app")
	for _, q := range []string{
		"SET pgcloak.end_user = 'alice'",
		"PREPARE rv3p AS SELECT customer_id, region FROM customers ORDER BY customer_id LIMIT 3",
		"SELECT 1/0; DEALLOCATE rv3p", // the DEALLOCATE never runs
		"SET pgcloak.end_user = 'bob'",
		"PREPARE rv3p AS SELECT 1", // fails: rv3p exists
	} {
		t.Logf("%s:\n%s", q, r.RoundTrip(t, 1, &pgproto3.Query{String: q}))
	}
	got := r.RoundTrip(t, 1, &pgproto3.Query{String: "EXECUTE rv3p"})
	t.Logf("EXECUTE of alice's statement as bob:\n%s", got)
	if strings.Contains(got, "DataRow") {
		t.Errorf("bob (south) ran the statement crm_app prepared for alice (north):\n%s", got)
	}
}

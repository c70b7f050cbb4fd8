package engine_test

import (
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgcloak/pgcloak/internal/cloaktest"
)

// DEALLOCATE ALL drops the session's named prepared statements and
// nothing else: an open portal of a transaction block goes on, and so
// does the unnamed statement (PostgreSQL keeps it apart from the named
// ones). pgcloak follows the server: it forgets the named statements, so
// that a Bind of one is refused, and keeps the portals with their masks.
func TestDeallocateAllKeepsPortals(t *testing.T) {
	r := cloaktest.DialRaw(t, front.Addr, "alice")
	step := func(want string, msgs ...pgproto3.FrontendMessage) string {
		t.Helper()
		got := r.RoundTrip(t, 1, msgs...)
		if !strings.Contains(got, want) {
			t.Fatalf("want %q, got\n%s", want, got)
		}
		return got
	}
	step("ReadyForQuery T", &pgproto3.Query{String: "BEGIN"})
	first := step("PortalSuspended", &pgproto3.Parse{Name: "s", Query: "SELECT customer_id, national_id FROM customers ORDER BY customer_id"},
		&pgproto3.Bind{PreparedStatement: "s", DestinationPortal: "p"}, &pgproto3.Describe{ObjectType: 'P', Name: "p"},
		&pgproto3.Execute{Portal: "p", MaxRows: 1}, &pgproto3.Sync{})
	step("CommandComplete DEALLOCATE ALL", &pgproto3.Query{String: "DEALLOCATE ALL"})
	next := step("PortalSuspended", &pgproto3.Execute{Portal: "p", MaxRows: 1}, &pgproto3.Sync{})
	if strings.Contains(next, "ErrorResponse") {
		t.Fatalf("the portal after DEALLOCATE ALL:\n%s", next)
	}
	// alice may not see national_id: both rows come masked alike.
	masked := func(out string) string {
		for _, l := range strings.Split(out, "\n") {
			if f := strings.Fields(l); len(f) > 0 && f[0] == "DataRow" {
				return strings.Join(f[2:], " ")
			}
		}
		t.Fatalf("no row in\n%s", out)
		return ""
	}
	if a, b := masked(first), masked(next); a != b || strings.ContainsAny(a, "0123456789") {
		t.Fatalf("national_id as alice: %q before DEALLOCATE ALL, %q after", a, b)
	}
	// The named statement is gone on the server, and for pgcloak.
	step("ErrorResponse", &pgproto3.Bind{PreparedStatement: "s", DestinationPortal: "q"}, &pgproto3.Execute{Portal: "q"}, &pgproto3.Sync{})
	step("ReadyForQuery I", &pgproto3.Query{String: "ROLLBACK"})

	// The unnamed statement outlives a DEALLOCATE ALL run from it.
	step("CommandComplete DEALLOCATE ALL", &pgproto3.Parse{Query: "DEALLOCATE ALL"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{})
	if got := step("CommandComplete DEALLOCATE ALL", &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{}); strings.Contains(got, "ErrorResponse") {
		t.Fatalf("the unnamed statement after DEALLOCATE ALL:\n%s", got)
	}
}

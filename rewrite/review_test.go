package rewrite_test

import (
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/pgcloak/pgcloak/schema"
)

var requestNotice = regexp.MustCompile(`change request (\d+) recorded`)

// connectNotices connects as login and collects the notices it receives.
func connectNotices(t *testing.T, login string) (*pgx.Conn, *[]string) {
	t.Helper()
	var notices []string
	cfg, err := pgx.ParseConfig(as(t, login).Config().ConnString())
	if err != nil {
		t.Fatal(err)
	}
	cfg.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) { notices = append(notices, n.Message) }
	conn, err := pgx.ConnectConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn, &notices
}

// Support's changes to personal data wait for an approver.
func TestReviewOfPersonalChanges(t *testing.T) {
	ctx := context.Background()
	db := direct(t)
	var id int64
	var phone, segment string
	if err := db.QueryRow(ctx, "SELECT customer_id, coalesce(phone, ''), segment FROM customers WHERE region = 'west' AND customer_id < 900000 ORDER BY customer_id LIMIT 1").
		Scan(&id, &phone, &segment); err != nil {
		t.Fatal(err)
	}
	current := func() (string, string) {
		var p, s string
		if err := db.QueryRow(ctx, "SELECT coalesce(phone, ''), segment FROM customers WHERE customer_id = $1", id).Scan(&p, &s); err != nil {
			t.Fatal(err)
		}
		return p, s
	}
	requestID := func(notices []string) int64 {
		t.Helper()
		for _, n := range notices {
			if m := requestNotice.FindStringSubmatch(n); m != nil {
				v, _ := strconv.ParseInt(m[1], 10, 64)
				return v
			}
		}
		t.Fatalf("no change request notice in %q", notices)
		return 0
	}

	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeExec} {
		sam, notices := connectNotices(t, "sam")
		*notices = nil
		tag, err := sam.Exec(ctx, "UPDATE customers SET phone = $1 WHERE customer_id = $2", mode, "+1 555 0199", id)
		if err != nil || tag.String() != "UPDATE 0" {
			t.Fatalf("%s: held update: %v %v", mode, tag, err)
		}
		req := requestID(*notices)
		if p, _ := current(); p != phone {
			t.Fatalf("%s: the held change was applied: %q", mode, p)
		}
		c, err := schema.GetChange(ctx, db.Query, req)
		if err != nil || c.Requester != "sam" || c.Status != "pending" || c.NewValues["phone"] != "+1 555 0199" ||
			strings.Contains(c.Statement, "555") {
			t.Fatalf("%s: request %+v, %v", mode, c, err)
		}
		// The requester may not approve their own request.
		if err := eng.ApplyChange(ctx, db, req, "sam"); err == nil {
			t.Fatal("the requester approved their own request")
		}
		if mode == pgx.QueryExecModeSimpleProtocol {
			if err := eng.RejectChange(ctx, db, req, "petra", "wrong number"); err != nil {
				t.Fatal(err)
			}
			if p, _ := current(); p != phone {
				t.Fatalf("rejected change applied: %q", p)
			}
		} else {
			if err := eng.ApplyChange(ctx, db, req, "petra"); err != nil {
				t.Fatal(err)
			}
			if p, _ := current(); p != "+1 555 0199" {
				t.Fatalf("approved change not applied: %q", p)
			}
		}
	}

	// Public columns of a person's record are held too: the segment says
	// who sees the customer.
	sam, notices := connectNotices(t, "sam")
	tag, err := sam.Exec(ctx, "UPDATE customers SET phone = '+1 555 0142', segment = 'premium' WHERE customer_id = $1", id)
	if err != nil || tag.String() != "UPDATE 0" {
		t.Fatalf("mixed update: %v %v", tag, err)
	}
	requestID(*notices)
	if p, s := current(); p != "+1 555 0199" || s != segment {
		t.Fatalf("after mixed update: %q %q", p, s)
	}

	// A request whose row left the requester's region fails to apply.
	var north int64
	if err := db.QueryRow(ctx, "SELECT min(customer_id) FROM customers WHERE region = 'north' AND customer_id < 900000").Scan(&north); err != nil {
		t.Fatal(err)
	}
	var req int64
	if _, err := db.Exec(ctx, `SELECT pgcloak.request_change('alice', 'sales_rep', 'public.customers', jsonb_build_object('customer_id', $1::bigint),
		'{"first_name": "Moved"}', 'UPDATE customers SET first_name = $1 WHERE customer_id = $2')`, north); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow(ctx, "SELECT max(id) FROM pgcloak.change_requests").Scan(&req); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(ctx, "UPDATE customers SET region = 'south' WHERE customer_id = $1", north); err != nil {
		t.Fatal(err)
	}
	defer db.Exec(ctx, "UPDATE customers SET region = 'north' WHERE customer_id = $1", north)
	if err := eng.ApplyChange(ctx, db, req, "petra"); err == nil || !strings.Contains(err.Error(), "no longer within the row filter") {
		t.Fatalf("apply after the row left the region: %v", err)
	}
	var first, status string
	if err := db.QueryRow(ctx, "SELECT c.first_name, r.status FROM customers c, pgcloak.change_requests r WHERE c.customer_id = $1 AND r.id = $2", north, req).Scan(&first, &status); err != nil {
		t.Fatal(err)
	}
	if first == "Moved" || status != "pending" {
		t.Fatalf("after a failed apply: %q %q", first, status)
	}
}

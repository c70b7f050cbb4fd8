package portal

import (
	"context"
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/pgcloak/pgcloak/engine"
	"github.com/pgcloak/pgcloak/rules"
)

// A customer opens their link, sees their own data unmasked and nobody
// else's, downloads it, opts out and back in (the opt-out is in the table
// the rules read at once, in the history and in the access log), and
// corrects their e-mail address; pgcloak review's code applies it.
func TestPortalWalk(t *testing.T) {
	e := newEnv(t, false)
	ctx := context.Background()
	me, myEmail := e.customer(0)
	_, otherEmail := e.customer(1)
	v := e.visitor()
	body := v.enter(e.link(me, time.Hour))
	if !strings.Contains(body, myEmail) {
		t.Fatalf("the page lacks the customer's own e-mail %s", myEmail)
	}
	if strings.Contains(body, otherEmail) {
		t.Fatal("the page shows another customer's e-mail")
	}
	var nid string
	if err := e.owner.QueryRow(ctx, "SELECT coalesce(national_id, '') FROM customers WHERE customer_id = $1::bigint", me).Scan(&nid); err != nil {
		t.Fatal(err)
	}
	if nid != "" && !strings.Contains(body, nid) {
		t.Fatal("the page masks the customer's own national id")
	}

	// The download: the subject row and the linked rows, all of them the
	// customer's own.
	resp, js := v.get("/data.json")
	if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Content-Disposition"), "attachment") {
		t.Fatalf("download: %s %v", resp.Status, resp.Header)
	}
	var x struct {
		Subject string `json:"subject"`
		Tables  []struct {
			Table string           `json:"table"`
			Rows  []map[string]any `json:"rows"`
		} `json:"tables"`
		OptOuts []struct {
			Purpose  string `json:"purpose"`
			OptedOut bool   `json:"opted_out"`
		} `json:"opt_outs"`
	}
	if err := json.Unmarshal([]byte(js), &x); err != nil {
		t.Fatalf("download is not JSON: %v", err)
	}
	var orders int
	if err := e.owner.QueryRow(ctx, "SELECT count(*) FROM orders WHERE customer_id = $1::bigint", me).Scan(&orders); err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, tab := range x.Tables {
		seen[tab.Table] = len(tab.Rows)
		for _, r := range tab.Rows {
			if id, ok := r["customer_id"]; ok && id != me {
				t.Fatalf("%s row of customer %v in %s's download", tab.Table, id, me)
			}
		}
	}
	if seen["public.customers"] != 1 || seen["public.orders"] != orders || orders == 0 {
		t.Fatalf("download has %v; %d orders in the database", seen, orders)
	}
	if _, ok := seen["public.order_lines"]; !ok {
		t.Fatal("order lines (linked through orders) are missing from the download")
	}
	if _, ok := seen["public.commissions"]; ok {
		t.Fatal("a table without a link to the subject is in the download")
	}
	if len(x.OptOuts) != 4 {
		t.Fatalf("opt-outs: %+v", x.OptOuts)
	}

	// Opt out of direct marketing, then back in.
	optedOut := func() bool {
		var b bool
		if err := e.owner.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM customer_opt_outs WHERE customer_id = $1::bigint AND purpose = 'direct_marketing')", me).Scan(&b); err != nil {
			t.Fatal(err)
		}
		return b
	}
	if _, err := e.owner.Exec(ctx, "DELETE FROM customer_opt_outs WHERE customer_id = $1::bigint AND purpose = 'direct_marketing'", me); err != nil {
		t.Fatal(err)
	}
	for _, choice := range []string{"out", "in"} {
		resp, _ := v.post("/opt-out", url.Values{"csrf": {v.token()}, "purpose": {"direct_marketing"}, "choice": {choice}})
		if resp.StatusCode != 303 {
			t.Fatalf("opt %s: %s", choice, resp.Status)
		}
		if got := optedOut(); got != (choice == "out") {
			t.Fatalf("after opting %s the opt-out row is there: %v", choice, got)
		}
		if choice == "out" {
			// The rules read the opt-out table: mia (direct marketing)
			// no longer sees the customer, at once.
			var n int
			if err := e.owner.QueryRow(ctx, "SELECT count(*) FROM customers c WHERE c.customer_id = $1::bigint AND NOT "+
				e.pol.Subject().OptedOut(rules.DirectMarketing, "c"), me).Scan(&n); err != nil || n != 0 {
				t.Fatalf("the opt-out is not in force: %d %v", n, err)
			}
			_, page := v.get("/")
			if !strings.Contains(page, `id="opt-in-direct_marketing"`) || !strings.Contains(page, "You opted out of") {
				t.Fatal("the page does not show the opt-out")
			}
		}
	}
	var hist []bool
	rows, _ := e.owner.Query(ctx, "SELECT opted_out FROM pgcloak.opt_out_history WHERE subject = $1 AND purpose = 'direct_marketing' ORDER BY id", me)
	for rows.Next() {
		var b bool
		rows.Scan(&b)
		hist = append(hist, b)
	}
	if len(hist) != 2 || !hist[0] || hist[1] {
		t.Fatalf("history: %v", hist)
	}

	// A correction becomes a pending change request; the data is unchanged
	// until an approver applies it.
	newEmail := "corrected." + me + "@example.org"
	resp, _ = v.post("/correct", url.Values{"csrf": {v.token()}, "column": {"email"}, "value": {newEmail}})
	if resp.StatusCode != 303 {
		t.Fatalf("correct: %s", resp.Status)
	}
	var id int64
	var status, requester string
	if err := e.owner.QueryRow(ctx, `SELECT id, status, requester FROM pgcloak.change_requests
		WHERE row_key = jsonb_build_object('customer_id', $1::bigint) ORDER BY id DESC LIMIT 1`, me).Scan(&id, &status, &requester); err != nil {
		t.Fatal(err)
	}
	if status != "pending" || requester != portalLogin {
		t.Fatalf("request %d: %s by %s", id, status, requester)
	}
	_, page := v.get("/")
	if !strings.Contains(page, `class="status-pending"`) || !strings.Contains(page, myEmail) {
		t.Fatal("the page does not show the pending correction and the old value")
	}
	eng := engine.NewEngine(func() *rules.Policy { return e.pol }, ownerDSN(), nil)
	if err := eng.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if err := eng.ApplyChange(ctx, e.owner, id, "petra"); err != nil {
		t.Fatalf("approve: %v", err)
	}
	_, page = v.get("/")
	if !strings.Contains(page, newEmail) || !strings.Contains(page, `class="status-applied"`) {
		t.Fatal("after approval the page does not show the new value as applied")
	}

	// The access log: every visit and change, hash-chained, naming the
	// subject only by a keyed reference, never a value.
	log := e.records()
	for _, want := range []string{`"kind":"portal_enter"`, `"kind":"portal_view"`, `"kind":"portal_export"`,
		`"kind":"portal_opt_out"`, `"kind":"portal_opt_in"`, `"purpose":"direct_marketing"`, `"kind":"portal_correction"`,
		`"relation":"public.customer_opt_outs"`, e.srv.subjectRef(me)} {
		if !strings.Contains(log, want) {
			t.Errorf("access log lacks %s", want)
		}
	}
	for _, leak := range []string{myEmail, newEmail, `"` + me + `"`} {
		if strings.Contains(log, leak) {
			t.Errorf("access log contains %s", leak)
		}
	}
}

// Over TLS the cookie is Secure; it is always HttpOnly and SameSite=Strict.
func TestPortalCookie(t *testing.T) {
	e := newEnv(t, true)
	me, _ := e.customer(2)
	v := e.visitor()
	resp, _ := v.get(e.link(me, time.Hour))
	if resp.StatusCode != 200 {
		t.Fatalf("enter: %s", resp.Status)
	}
	c := resp.Header.Get("Set-Cookie")
	for _, want := range []string{cookieName + "=", "HttpOnly", "Secure", "SameSite=Strict", "Path=/"} {
		if !strings.Contains(c, want) {
			t.Errorf("cookie %q lacks %s", c, want)
		}
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("CSP %q", csp)
	}
	// The session ends with the link.
	e.srv.cfg.Now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	if resp, _ := v.get("/"); resp.StatusCode != 403 {
		t.Fatalf("a session past its link's expiry: %s", resp.Status)
	}
}

package portal

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// Tampered, expired, foreign and unknown links get 403, no session and no
// data; nothing in the database changes.
func TestHostileLinks(t *testing.T) {
	e := newEnv(t, false)
	me, myEmail := e.customer(3)
	other, otherEmail := e.customer(4)
	before := e.state()
	good, _ := url.Parse(e.link(me, time.Hour))
	q := good.Query()
	variants := map[string]string{}
	set := func(name, key, val string) {
		q2 := url.Values{}
		for k, v := range q {
			q2[k] = append([]string(nil), v...)
		}
		if val == "" {
			q2.Del(key)
		} else {
			q2.Set(key, val)
		}
		variants[name] = e.http.URL + "/enter?" + q2.Encode()
	}
	set("another subject, same signature", "subject", other)
	set("longer expiry", "expires", "9999999999")
	set("signature of another subject", "sig", Signature(testKey, other, time.Now().Add(time.Hour).Unix()))
	set("no signature", "sig", "")
	set("zero signature", "sig", strings.Repeat("0", 64))
	variants["expired"] = Link(e.http.URL, testKey, me, time.Now().Add(-time.Second))
	variants["another key"] = Link(e.http.URL, []byte(strings.Repeat("z", 40)), me, time.Now().Add(time.Hour))
	variants["unknown subject"] = Link(e.http.URL, testKey, "999999999", time.Now().Add(time.Hour))
	variants["subject not of the key's type"] = Link(e.http.URL, testKey, "1 OR true", time.Now().Add(time.Hour))
	variants["SQL in the subject"] = Link(e.http.URL, testKey, "1'; DROP TABLE customers; --", time.Now().Add(time.Hour))
	variants["extra parameter"] = good.String() + "&customer_id=" + other
	variants["doubled subject"] = good.String() + "&subject=" + other
	variants["huge query"] = good.String() + "&x=" + strings.Repeat("a", 5000)
	for name, link := range variants {
		v := e.visitor()
		resp, body := v.get(link)
		if resp.StatusCode != http.StatusForbidden && resp.StatusCode != http.StatusRequestURITooLong {
			t.Errorf("%s: %s", name, resp.Status)
		}
		if resp.Header.Get("Set-Cookie") != "" {
			t.Errorf("%s: a cookie was set", name)
		}
		if strings.Contains(body, myEmail) || strings.Contains(body, otherEmail) {
			t.Errorf("%s: data in the answer", name)
		}
		if resp, _ := v.get("/"); resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s: the page after it: %s", name, resp.Status)
		}
	}
	// No link at all, a made-up cookie.
	v := e.visitor()
	for _, p := range []string{"/", "/data.json", "/?subject=" + me} {
		if resp, _ := v.get(p); resp.StatusCode != http.StatusForbidden {
			t.Errorf("GET %s without a session: %s", p, resp.Status)
		}
	}
	u, _ := url.Parse(e.http.URL)
	v.c.Jar.SetCookies(u, []*http.Cookie{{Name: cookieName, Value: strings.Repeat("ab", sessionIDBytes)}})
	if resp, _ := v.get("/"); resp.StatusCode != http.StatusForbidden {
		t.Errorf("made-up session id: %s", resp.Status)
	}
	if resp, _ := v.post("/opt-out", url.Values{"csrf": {"00"}, "purpose": {"direct_marketing"}, "choice": {"out"}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("post with a made-up session id: %s", resp.Status)
	}
	if after := e.state(); after != before {
		t.Fatal("the database changed")
	}
	log := e.records()
	for _, want := range []string{`"reason":"portal.link_signature"`, `"reason":"portal.link_expired"`,
		`"reason":"portal.unknown_subject"`, `"reason":"portal.link_malformed"`} {
		if !strings.Contains(log, want) {
			t.Errorf("access log lacks %s", want)
		}
	}
}

// With a session for one customer, every form field and parameter is
// tampered with in turn: each post is refused, and neither this customer's
// nor another's data changes; the other's data is never in an answer.
func TestHostileForms(t *testing.T) {
	e := newEnv(t, false)
	ctx := context.Background()
	me, _ := e.customer(5)
	other, otherEmail := e.customer(6)
	v := e.visitor()
	v.enter(e.link(me, time.Hour))
	otherV := e.visitor()
	otherV.enter(e.link(other, time.Hour))
	before := e.state()

	// Parameters naming the other customer change nothing about whose
	// data is shown.
	for _, p := range []string{"/?subject=" + other, "/?customer_id=" + other, "/data.json?subject=" + other,
		"/data.json?customer_id=" + other + "&sig=x", "/enter/../?subject=" + other} {
		_, body := v.get(p)
		if strings.Contains(body, otherEmail) {
			t.Errorf("GET %s shows the other customer's e-mail", p)
		}
	}

	type attempt struct {
		name, path string
		form       func(tok string) url.Values
		want       int
	}
	optOut := func(tok string) url.Values {
		return url.Values{"csrf": {tok}, "purpose": {"direct_marketing"}, "choice": {"out"}}
	}
	with := func(f func(string) url.Values, k, val string) func(string) url.Values {
		return func(tok string) url.Values {
			u := f(tok)
			if val == "" {
				u.Del(k)
			} else {
				u.Set(k, val)
			}
			return u
		}
	}
	add := func(f func(string) url.Values, k, val string) func(string) url.Values {
		return func(tok string) url.Values {
			u := f(tok)
			u.Add(k, val)
			return u
		}
	}
	correct := func(tok string) url.Values {
		return url.Values{"csrf": {tok}, "column": {"email"}, "value": {"x@example.org"}}
	}
	attempts := []attempt{
		{"opt-out: unknown purpose", "/opt-out", with(optOut, "purpose", "everything"), 400},
		{"opt-out: purpose with SQL", "/opt-out", with(optOut, "purpose", "direct_marketing' OR '1'='1"), 400},
		{"opt-out: choice not out or in", "/opt-out", with(optOut, "choice", "yes"), 400},
		{"opt-out: no purpose", "/opt-out", with(optOut, "purpose", ""), 400},
		{"opt-out: two purposes", "/opt-out", add(optOut, "purpose", "sensitive_data"), 400},
		{"opt-out: the other's key as subject", "/opt-out", add(optOut, "subject", other), 400},
		{"opt-out: the other's key as customer_id", "/opt-out", add(optOut, "customer_id", other), 400},
		{"opt-out: no CSRF token", "/opt-out", with(optOut, "csrf", ""), 400},
		{"opt-out: made-up CSRF token", "/opt-out", with(optOut, "csrf", strings.Repeat("ab", 32)), 403},
		{"correct: a column the rules class public", "/correct", with(correct, "column", "region"), 400},
		{"correct: the key", "/correct", with(correct, "column", "customer_id"), 400},
		{"correct: a column of another table", "/correct", with(correct, "column", "shipping_street"), 400},
		{"correct: a quoted column name", "/correct", with(correct, "column", `email" = 'x', "region`), 400},
		{"correct: oversized value", "/correct", with(correct, "value", strings.Repeat("a", maxValueLen+1)), 413},
		{"correct: the other's key", "/correct", add(correct, "customer_id", other), 400},
		{"correct: two values", "/correct", add(correct, "value", "y@example.org"), 400},
		{"correct: no CSRF token", "/correct", with(correct, "csrf", ""), 400},
	}
	for _, a := range attempts {
		tok := v.token()
		resp, body := v.post(a.path, a.form(tok))
		if resp.StatusCode != a.want {
			t.Errorf("%s: %s, want %d", a.name, resp.Status, a.want)
		}
		if strings.Contains(body, otherEmail) {
			t.Errorf("%s: the other's e-mail in the answer", a.name)
		}
	}

	// Query parameters on a post.
	tok := v.token()
	req, _ := http.NewRequest("POST", e.http.URL+"/opt-out?subject="+other, strings.NewReader(optOut(tok).Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if resp, _ := v.do(req); resp.StatusCode != 400 {
		t.Errorf("post with a query: %s", resp.Status)
	}
	// Another origin.
	tok = v.token()
	req, _ = http.NewRequest("POST", e.http.URL+"/opt-out", strings.NewReader(optOut(tok).Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "https://evil.example")
	if resp, _ := v.do(req); resp.StatusCode != 403 {
		t.Errorf("post from another origin: %s", resp.Status)
	}
	// An oversized body.
	if resp, _ := v.postRaw("/correct", "csrf="+v.token()+"&column=email&value="+strings.Repeat("a", maxBody)); resp.StatusCode != 413 {
		t.Errorf("oversized body: %s", resp.Status)
	}
	// The other customer's CSRF token in this session.
	if resp, _ := v.post("/opt-out", optOut(otherV.token())); resp.StatusCode != 403 {
		t.Errorf("the other session's CSRF token: %s", resp.Status)
	}
	// This session's token in the other's session.
	if resp, _ := otherV.post("/opt-out", optOut(v.token())); resp.StatusCode != 403 {
		t.Errorf("a CSRF token used in another session: %s", resp.Status)
	}
	// GET does not change anything.
	if resp, _ := v.get("/opt-out?" + optOut(v.token()).Encode()); resp.StatusCode != 405 {
		t.Errorf("GET /opt-out: %s", resp.Status)
	}
	if after := e.state(); after != before {
		t.Fatal("the database changed")
	}

	// A replayed CSRF token: the first post counts, the replay is refused.
	if _, err := e.owner.Exec(ctx, "DELETE FROM customer_opt_outs WHERE customer_id = $1::bigint AND purpose = 'sensitive_data'", me); err != nil {
		t.Fatal(err)
	}
	tok = v.token()
	form := url.Values{"csrf": {tok}, "purpose": {"sensitive_data"}, "choice": {"out"}}
	if resp, _ := v.post("/opt-out", form); resp.StatusCode != 303 {
		t.Fatalf("first post: %s", resp.Status)
	}
	mid := e.state()
	form.Set("choice", "in")
	if resp, _ := v.post("/opt-out", form); resp.StatusCode != 403 {
		t.Errorf("replayed CSRF token: %s", resp.Status)
	}
	if e.state() != mid {
		t.Error("the replayed post changed the database")
	}
	ctoken := v.token()
	cf := url.Values{"csrf": {ctoken}, "column": {"city"}, "value": {"Replayville"}}
	if resp, _ := v.post("/correct", cf); resp.StatusCode != 303 {
		t.Fatalf("correction: %s", resp.Status)
	}
	var n int
	e.owner.QueryRow(ctx, "SELECT count(*) FROM pgcloak.change_requests WHERE new_values->>'city' = 'Replayville'").Scan(&n)
	if resp, _ := v.post("/correct", cf); resp.StatusCode != 403 {
		t.Errorf("replayed correction: %s", resp.Status)
	}
	var n2 int
	e.owner.QueryRow(ctx, "SELECT count(*) FROM pgcloak.change_requests WHERE new_values->>'city' = 'Replayville'").Scan(&n2)
	if n != 1 || n2 != 1 {
		t.Errorf("correction requests before and after the replay: %d %d", n, n2)
	}

	// A value not of the column's type is not recorded.
	var before2 int
	e.owner.QueryRow(ctx, "SELECT count(*) FROM pgcloak.change_requests").Scan(&before2)
	if resp, _ := v.post("/correct", url.Values{"csrf": {v.token()}, "column": {"birth_date"}, "value": {"not a date"}}); resp.StatusCode != 303 {
		t.Errorf("bad date: %s", resp.Status)
	}
	if _, page := v.get("/"); !strings.Contains(page, "not a valid value") {
		t.Error("bad date: no message")
	}
	// At most maxPending corrections wait at once.
	for i := 0; i < maxPending+2; i++ {
		v.post("/correct", url.Values{"csrf": {v.token()}, "column": {"city"}, "value": {"Flood"}})
	}
	var pending int
	e.owner.QueryRow(ctx, `SELECT count(*) FROM pgcloak.change_requests WHERE status = 'pending'
		AND row_key = jsonb_build_object('customer_id', $1::bigint)`, me).Scan(&pending)
	if pending != maxPending {
		t.Errorf("pending corrections after a flood: %d, want %d", pending, maxPending)
	}
	// The other customer's data did not change at any point.
	var hist, reqs int
	e.owner.QueryRow(ctx, `SELECT (SELECT count(*) FROM pgcloak.opt_out_history WHERE subject = $1),
		(SELECT count(*) FROM pgcloak.change_requests WHERE row_key = jsonb_build_object('customer_id', $1::bigint))`, other).Scan(&hist, &reqs)
	if hist != 0 || reqs != 0 {
		t.Errorf("the other customer has %d history rows and %d requests", hist, reqs)
	}
}

// The portal's login has only its grants: it cannot change personal data
// itself, nor read what is not linked to a subject, nor pgcloak's key.
func TestPortalLoginLeastPrivilege(t *testing.T) {
	e := newEnv(t, false)
	ctx := context.Background()
	db := e.srv.cfg.DB
	for _, sql := range []string{
		"UPDATE customers SET email = 'x' WHERE false",
		"DELETE FROM customers WHERE false",
		"INSERT INTO pgcloak.change_requests (requester, requester_role, table_name, row_key, new_values, statement) VALUES ('a','b','c','{}','{}','d')",
		"UPDATE pgcloak.change_requests SET status = 'applied' WHERE false",
		"UPDATE pgcloak.opt_out_history SET opted_out = false WHERE false",
		"DELETE FROM pgcloak.opt_out_history WHERE false",
		"SELECT * FROM commissions",
		"SELECT * FROM sales_reps",
		"SELECT * FROM pgcloak.pseudonym_key",
	} {
		if _, err := db.Exec(ctx, sql); err == nil || !strings.Contains(err.Error(), "42501") {
			t.Errorf("%s as the portal's login: %v, want permission denied", sql, err)
		}
	}
}

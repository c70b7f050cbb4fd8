package portal

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgcloak/pgcloak/audit"
	"github.com/pgcloak/pgcloak/examples/crm"
	"github.com/pgcloak/pgcloak/internal/cloaktest"
	"github.com/pgcloak/pgcloak/internal/pgtest"
	"github.com/pgcloak/pgcloak/rules"
	"github.com/pgcloak/pgcloak/schema"
)

// The portal tests share one PostgreSQL with the sample CRM; the portal
// connects as its own login (pgcloak_portal, from the sample schema) with
// exactly the grants Grants gives it.
var pg *pgtest.Server

const portalLogin = "pgcloak_portal"

var testKey = []byte("0123456789abcdef0123456789abcdef-test-key")

func TestMain(m *testing.M) {
	cloaktest.Main(m, cloaktest.Options{CRM: crm.Options{Customers: 300}}, &pg, setupAgain, grant)
}

// setupAgain: Setup is idempotent, the second run keeps the history table.
func setupAgain(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, ownerDSN())
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	if err := schema.Setup(ctx, conn.Exec); err != nil {
		return fmt.Errorf("setup again: %w", err)
	}
	return nil
}

// grant gives the portal's login what Grants says.
func grant(ctx context.Context) error {
	pol, err := rules.Parse("rules.yaml", crm.Rules)
	if err != nil {
		return err
	}
	return pg.Exec(ctx, Grants(pol, portalLogin)...)
}

func ownerDSN() string { return cloaktest.AdminDSN(pg) }

// env is one portal under test.
type env struct {
	t     testing.TB
	srv   *Server
	http  *httptest.Server
	owner *pgx.Conn
	log   string
	audit *audit.Log
	pol   *rules.Policy
}

func newEnv(t testing.TB, tlsOn bool) *env {
	t.Helper()
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, pg.DSN(portalLogin, pgtest.Database))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	e := &env{t: t, pol: cloaktest.Rules(t), log: filepath.Join(t.TempDir(), "portal-access.log")}
	e.audit, err = audit.Open(audit.Options{File: e.log, OnFailure: audit.FailClosed})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.audit.Close() })
	e.srv, err = New(ctx, Config{Policy: e.pol, DB: pool, Key: testKey, TLS: tlsOn, Audit: e.audit})
	if err != nil {
		t.Fatal(err)
	}
	if tlsOn {
		e.http = httptest.NewTLSServer(e.srv)
	} else {
		e.http = httptest.NewServer(e.srv)
	}
	t.Cleanup(e.http.Close)
	e.owner, err = pgx.Connect(ctx, ownerDSN())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.owner.Close(context.Background()) })
	return e
}

// customer picks a customer of the sample CRM with orders and an e-mail
// address: its key and e-mail.
func (e *env) customer(n int) (string, string) {
	e.t.Helper()
	var id, email string
	if err := e.owner.QueryRow(context.Background(), `SELECT c.customer_id::text, c.email FROM customers c
		WHERE c.email IS NOT NULL AND EXISTS (SELECT 1 FROM orders o WHERE o.customer_id = c.customer_id)
		ORDER BY c.customer_id OFFSET $1 LIMIT 1`, n).Scan(&id, &email); err != nil {
		e.t.Fatal(err)
	}
	return id, email
}

func (e *env) link(subject string, ttl time.Duration) string {
	return Link(e.http.URL, testKey, subject, time.Now().Add(ttl))
}

// visitor is one browser: its own cookie jar, redirects not followed.
type visitor struct {
	t testing.TB
	e *env
	c *http.Client
}

func (e *env) visitor() *visitor {
	jar, _ := cookiejar.New(nil)
	c := *e.http.Client() // a copy: the server's client is shared
	c.Jar = jar
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &visitor{t: e.t, e: e, c: &c}
}

func (v *visitor) do(req *http.Request) (*http.Response, string) {
	v.t.Helper()
	resp, err := v.c.Do(req)
	if err != nil {
		v.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func (v *visitor) get(u string) (*http.Response, string) {
	v.t.Helper()
	if strings.HasPrefix(u, "/") {
		u = v.e.http.URL + u
	}
	req, err := http.NewRequest("GET", u, nil)
	if err != nil {
		v.t.Fatal(err)
	}
	return v.do(req)
}

func (v *visitor) post(path string, form url.Values) (*http.Response, string) {
	v.t.Helper()
	return v.postRaw(path, form.Encode())
}

func (v *visitor) postRaw(path, body string) (*http.Response, string) {
	v.t.Helper()
	req, err := http.NewRequest("POST", v.e.http.URL+path, strings.NewReader(body))
	if err != nil {
		v.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return v.do(req)
}

// enter opens link and the page it leads to; it fails the test unless
// both succeed.
func (v *visitor) enter(link string) string {
	v.t.Helper()
	resp, _ := v.get(link)
	if resp.StatusCode != 200 {
		v.t.Fatalf("enter: %s", resp.Status)
	}
	resp, body := v.get("/")
	if resp.StatusCode != 200 {
		v.t.Fatalf("page: %s", resp.Status)
	}
	return body
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`)

// token loads the page and returns the CSRF token its forms carry.
func (v *visitor) token() string {
	v.t.Helper()
	_, body := v.get("/")
	m := csrfRE.FindStringSubmatch(body)
	if m == nil {
		v.t.Fatalf("no CSRF token on the page:\n%s", body)
	}
	return m[1]
}

// state is a digest of everything the portal could change, read as the
// owner: compare it before and after to show nothing changed.
func (e *env) state() string {
	e.t.Helper()
	var s string
	if err := e.owner.QueryRow(context.Background(), `SELECT md5(concat_ws('|',
		(SELECT string_agg(c::text, ',' ORDER BY customer_id) FROM customers c),
		(SELECT string_agg(o::text, ',' ORDER BY customer_id, purpose) FROM customer_opt_outs o),
		(SELECT string_agg(h::text, ',' ORDER BY id) FROM pgcloak.opt_out_history h),
		(SELECT string_agg(r::text, ',' ORDER BY id) FROM pgcloak.change_requests r)))`).Scan(&s); err != nil {
		e.t.Fatal(err)
	}
	return s
}

// records reads the access log written so far (the log is closed first).
func (e *env) records() string {
	e.t.Helper()
	if err := e.audit.Close(); err != nil {
		e.t.Fatal(err)
	}
	if _, err := audit.Verify([]string{e.log}, audit.VerifyOptions{}); err != nil {
		e.t.Fatalf("verify: %v", err)
	}
	b, err := os.ReadFile(e.log)
	if err != nil {
		e.t.Fatal(err)
	}
	return string(b)
}

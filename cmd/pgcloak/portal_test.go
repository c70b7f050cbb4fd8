package main

import (
	"bytes"
	"io"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pgcloak/pgcloak/examples/crm"
	"github.com/pgcloak/pgcloak/portal"
)

// captureStdout runs f and returns what it printed.
func captureStdout(t *testing.T, f func() int) (int, string) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stdout
	os.Stdout = w
	code := f()
	os.Stdout = old
	w.Close()
	var b bytes.Buffer
	io.Copy(&b, r)
	return code, b.String()
}

// pgcloak portal link makes a link the portal accepts, for the subject
// and the time asked; without a key it makes none.
func TestPortalLinkCommand(t *testing.T) {
	t.Setenv(portal.KeyEnv, strings.Repeat("k", 40))
	code, out := captureStdout(t, func() int {
		return runPortal([]string{"link", "--subject", "1042", "--ttl", "2h", "--base-url", "https://portal.example.com"})
	})
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	u, err := url.Parse(strings.TrimSpace(out))
	if err != nil || u.Host != "portal.example.com" || u.Path != "/enter" {
		t.Fatalf("link %q: %v", out, err)
	}
	subject, err := portal.VerifyLink([]byte(strings.Repeat("k", 40)), u.Query(), time.Now())
	if err != nil || subject != "1042" {
		t.Fatalf("verify: %q %v", subject, err)
	}
	if _, err := portal.VerifyLink([]byte(strings.Repeat("k", 40)), u.Query(), time.Now().Add(2*time.Hour+time.Minute)); err == nil {
		t.Fatal("the link is still valid after its TTL")
	}
	if code := runPortal([]string{"link", "--subject", "1", "--ttl", "800h"}); code != 2 {
		t.Fatalf("TTL over the maximum: exit %d", code)
	}
	t.Setenv(portal.KeyEnv, "")
	if code := runPortal([]string{"link", "--subject", "1"}); code != 1 {
		t.Fatalf("no key: exit %d", code)
	}
}

func TestPortalGrantsCommand(t *testing.T) {
	path := writeRules(t, crm.Rules)
	code, out := captureStdout(t, func() int { return runPortal([]string{"grants", "--rules", path, "--login", "pgcloak_portal"}) })
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{`GRANT SELECT ON "public"."orders" TO "pgcloak_portal";`,
		`GRANT SELECT, INSERT, DELETE ON "public"."customer_opt_outs"`,
		`GRANT EXECUTE ON FUNCTION pgcloak.request_change`} {
		if !strings.Contains(out, want) {
			t.Errorf("grants lack %s:\n%s", want, out)
		}
	}
	for _, not := range []string{"commissions", "accounts", "UPDATE", "pseudonym_key"} {
		if strings.Contains(out, not) {
			t.Errorf("grants mention %s:\n%s", not, out)
		}
	}
}

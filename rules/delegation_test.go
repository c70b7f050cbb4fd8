package rules

import (
	"encoding/hex"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pgcloak/pgcloak/examples/crm"
)

// A delegating application names only end users of the roles the rules
// list for it, and delegation is signed unless the rules say unsigned.
func TestDelegationRoles(t *testing.T) {
	p := crmPolicy(t)
	app, _ := p.Principal("crm_app")
	for _, who := range []string{"alice", "erin", "sam", "walt"} {
		if _, err := p.EndUser(app, who); err != nil {
			t.Errorf("%s: %v", who, err)
		}
	}
	for _, who := range []string{"petra", "victor", "connie", "mia", "dana", "crm_app"} {
		if _, err := p.EndUser(app, who); err == nil {
			t.Errorf("the application named %s", who)
		}
	}
	for _, c := range []struct{ from, to, want string }{
		{"      end_user_roles: [sales_rep, support, warehouse]\n", "", "must list the roles"},
		{"  delegation:\n    unsigned: true", "", "need delegation.key_env"},
		{"[sales_rep, support, warehouse]", "[sales_rep, dba]", "unrestricted role"},
		{"[sales_rep, support, warehouse]", "[sales_rep, nobody]", "unknown role"},
		{"    walt: {role: warehouse}", "    walt: {role: warehouse, end_user_roles: [support]}", "not delegating"},
	} {
		src := strings.Replace(string(crm.Rules), c.from, c.to, 1)
		if src == string(crm.Rules) {
			t.Fatalf("%q not in the sample rules", c.from)
		}
		if _, err := Parse("rules.yaml", []byte(src)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: want %q, got %v", c.to, c.want, err)
		}
	}
}

// A signed end-user name covers the login, an expiry and the session.
func TestSignedEndUser(t *testing.T) {
	t.Setenv("PGCLOAK_TEST_KEY", "a-key-of-sixteen-bytes")
	p, err := Parse("rules.yaml", []byte(strings.Replace(string(crm.Rules), "    unsigned: true", "    key_env: PGCLOAK_TEST_KEY", 1)))
	if err != nil {
		t.Fatal(err)
	}
	app, _ := p.Principal("crm_app")
	now := time.Unix(1_800_000_000, 0)
	sign := func(login string, exp int64, session string) string {
		e := strconv.FormatInt(exp, 10)
		return login + ":" + e + ":" + hex.EncodeToString(SignEndUser([]byte("a-key-of-sixteen-bytes"), login, e, session))
	}
	if pr, err := p.EndUserFor(app, sign("alice", now.Unix()+60, "4711"), "4711", now); err != nil || pr.Login != "alice" {
		t.Fatalf("%v %v", pr, err)
	}
	for why, v := range map[string]string{
		"unsigned":        "alice",
		"old format":      "alice:" + hex.EncodeToString(SignEndUser([]byte("a-key-of-sixteen-bytes"), "alice", "", "")),
		"another session": sign("alice", now.Unix()+60, "4712"),
		"expired":         sign("alice", now.Unix()-1, "4711"),
		"login changed":   strings.Replace(sign("alice", now.Unix()+60, "4711"), "alice", "bob", 1),
		"expiry changed":  strings.Replace(sign("alice", now.Unix()+60, "4711"), strconv.FormatInt(now.Unix()+60, 10), strconv.FormatInt(now.Unix()+6000, 10), 1),
		"role not listed": sign("petra", now.Unix()+60, "4711"),
		"unbound EndUser": "",
	} {
		if why == "unbound EndUser" {
			if _, err := p.EndUser(app, sign("alice", now.Unix()+1e9, "4711")); err == nil {
				t.Errorf("%s accepted", why)
			}
			continue
		}
		if _, err := p.EndUserFor(app, v, "4711", now); err == nil {
			t.Errorf("%s accepted", why)
		}
	}
}

package main

import (
	"context"
	"encoding/json"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/pgcloak/pgcloak/examples/crm"
	"github.com/pgcloak/pgcloak/internal/cloaktest"
	"github.com/pgcloak/pgcloak/internal/pgtest"
)

func TestCoveredBy(t *testing.T) {
	pfx := func(ss ...string) []netip.Prefix {
		var out []netip.Prefix
		for _, s := range ss {
			out = append(out, netip.MustParsePrefix(s))
		}
		return out
	}
	cases := []struct {
		p    string
		set  []netip.Prefix
		want bool
	}{
		{"10.1.2.0/24", pfx("10.0.0.0/8"), true},
		{"10.0.0.0/8", pfx("10.1.0.0/16"), false},
		{"10.0.0.0/23", pfx("10.0.0.0/24", "10.0.1.0/24"), true},
		{"10.0.0.0/22", pfx("10.0.0.0/24", "10.0.1.0/24", "10.0.3.0/24"), false},
		{"0.0.0.0/0", pfx("0.0.0.0/1", "128.0.0.0/1"), true},
		{"0.0.0.0/0", pfx("::/0"), false},
		{"::/0", pfx("::/1", "8000::/1"), true},
		{"192.168.1.7/32", pfx("192.168.1.7/32"), true},
		{"192.168.1.7/32", nil, false},
	}
	for _, c := range cases {
		if got := coveredBy(netip.MustParsePrefix(c.p), c.set); got != c.want {
			t.Errorf("coveredBy(%s, %v) = %v", c.p, c.set, got)
		}
	}
}

// TestCheckAccess runs pgcloak check --proxy-addresses against a PostgreSQL
// whose pg_hba.conf and roles let restricted logins around pgcloak in
// every way the check knows, and some ways that are safe.
func TestCheckAccess(t *testing.T) {
	pg, err := cloaktest.Start(cloaktest.Options{NoSchema: true, CRM: crm.Options{Customers: 50}, PG: pgtest.Options{HBA: []string{
		"host all +field_sales 10.1.0.0/16 scram-sha-256", // alice, through a group
		"host otherdb,postgres bob 172.16.0.0/12 md5",     // bob, database listed
		"host otherdb erin 0.0.0.0/0 md5",                 // another database: safe
		"host all sam 0.0.0.0/0 md5",                      // sam from anywhere
		"host all mia 10.9.0.0/16 reject",                 // mia: rejected ...
		"host all mia 10.9.1.0/24 md5",                    // ... so this line is never reached
		"hostnossl all victor 10.8.0.0/16 reject",         // only plain connections are rejected ...
		"host all victor 10.8.0.0/16 md5",                 // ... TLS ones get here
		"host all connie 10.20.0.0/24 scram-sha-256",      // pgcloak's own addresses: safe
		"host all dana 0.0.0.0/0 md5",                     // unrestricted: not the check's business
	}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pg.Stop)
	ctx := context.Background()
	dsn := pg.DSN(pgtest.SuperUser, pgtest.Database)
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, q := range []string{"CREATE ROLE field_sales NOLOGIN", "GRANT field_sales TO alice"} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	rulesFile := writeRules(t, crm.Rules)
	run := func(proxies string) (int, checkReport) {
		code, out := runCheckArgs(t, "--rules", rulesFile, "--database", dsn, "--proxy-addresses", proxies, "--format", "json")
		var rep checkReport
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		return code, rep
	}

	// The hba lines alone: the roles are clean.
	code, rep := run("127.0.0.1/32,10.20.0.0/24")
	got := accessFindings(rep)
	want := []string{
		`hba-bypass alice pg_hba.conf line 1`,
		`hba-bypass bob pg_hba.conf line 2`,
		`hba-bypass sam pg_hba.conf line 4`,
		`hba-bypass victor pg_hba.conf line 8`,
	}
	if code != 1 || !slices.Equal(got, want) {
		t.Fatalf("exit %d, findings:\n%s\nwant:\n%s", code, strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, f := range rep.Findings {
		if f.Code == "hba-bypass" && !strings.Contains(f.Message, "not through pgcloak") {
			t.Errorf("message: %s", f.Message)
		}
	}

	// Without 10.20.0.0/24 as pgcloak's, connie's line is a way around too.
	_, rep = run("127.0.0.1")
	if got := accessFindings(rep); !slices.Contains(got, "hba-bypass connie pg_hba.conf line 9") {
		t.Errorf("connie from 10.20.0.0/24 not reported: %v", got)
	}

	// Attributes that defeat the rules.
	for _, q := range []string{
		"ALTER ROLE bob BYPASSRLS", "ALTER ROLE connie SUPERUSER", "ALTER ROLE ana REPLICATION",
		"CREATE ROLE crm_owner NOLOGIN", "ALTER TABLE customers OWNER TO crm_owner", "GRANT crm_owner TO walt",
		"ALTER TABLE orders OWNER TO petra",
		"ALTER ROLE dana SUPERUSER", // unrestricted: fine
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	code, rep = run("127.0.0.1/32, 10.20.0.0/24")
	got = accessFindings(rep)
	for _, w := range []string{
		"login-attribute bob BYPASSRLS",
		"login-attribute connie superuser",
		"login-attribute ana REPLICATION",
		`login-attribute walt member of "crm_owner"`,
		"login-attribute petra owns the protected table(s) public.orders",
	} {
		found := false
		for _, g := range got {
			parts := strings.SplitN(w, " ", 3)
			found = found || (strings.HasPrefix(g, parts[0]+" "+parts[1]+" ") && strings.Contains(g, parts[2]))
		}
		if !found {
			t.Errorf("no finding %q in:\n%s", w, strings.Join(got, "\n"))
		}
	}
	for _, g := range got {
		if strings.Contains(g, " dana ") || strings.Contains(g, " mia ") || strings.Contains(g, " erin ") {
			t.Errorf("finding for a safe login: %s", g)
		}
	}
	if code != 1 {
		t.Errorf("exit %d", code)
	}
}

// TestCheckAccessClean: the test harness's own pg_hba.conf admits logins
// from the loopback only, which is where pgcloak runs in the tests.
func TestCheckAccessClean(t *testing.T) {
	pg := crmDB(t)
	code, out := runCheckArgs(t, "--rules", writeRules(t, crm.Rules), "--database", pg.DSN(pgtest.SuperUser, pgtest.Database),
		"--proxy-addresses", "127.0.0.1/32")
	if code != 0 || strings.Contains(out, "error ") || !strings.Contains(out, "0 error(s)") {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	code, out = runCheckArgs(t, "--rules", writeRules(t, crm.Rules), "--database", pg.DSN(pgtest.SuperUser, pgtest.Database),
		"--proxy-addresses", "10.0.0.1")
	if code != 1 || !strings.Contains(out, `restricted login "alice"`) {
		t.Fatalf("with pgcloak elsewhere, exit %d:\n%s", code, out)
	}
	if code, _ := runCheckArgs(t, "--rules", writeRules(t, crm.Rules), "--proxy-addresses", "10.0.0.1"); code != 2 {
		t.Errorf("--proxy-addresses without --database: exit %d", code)
	}
	if code, _ := runCheckArgs(t, "--rules", writeRules(t, crm.Rules), "--database", "x", "--proxy-addresses", "10.0.0.0/33"); code != 2 {
		t.Errorf("a bad CIDR: exit %d", code)
	}
}

// accessFindings summarizes the access check's findings as
// "code login message".
func accessFindings(rep checkReport) []string {
	var out []string
	for _, f := range rep.Findings {
		if f.Code != "hba-bypass" && f.Code != "login-attribute" && f.Code != "hba-error" {
			continue
		}
		if !strings.Contains(f.Message, `"`) {
			out = append(out, f.Code+" "+f.Message)
			continue
		}
		login := strings.SplitN(f.Message, `"`, 3)[1]
		what := f.Message
		if f.Code == "hba-bypass" { // the pg_hba.conf line
			what = strings.SplitN(strings.SplitN(what, ": ", 2)[1], " (", 2)[0]
		}
		out = append(out, f.Code+" "+login+" "+what)
	}
	slices.Sort(out)
	return out
}

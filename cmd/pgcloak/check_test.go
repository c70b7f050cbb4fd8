package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgcloak/pgcloak/examples/crm"
	"github.com/pgcloak/pgcloak/internal/cloaktest"
	"github.com/pgcloak/pgcloak/internal/pgtest"
	"github.com/pgcloak/pgcloak/rules"
)

// crmServer is one PostgreSQL with the sample CRM for the package's tests,
// started by the first that needs it. Enough customers for the anonymized
// views to reach anonymity.min_k (the shipped rules are clean on the
// sample CRM).
var crmServer = cloaktest.NewShared(cloaktest.Options{CRM: crm.Options{Customers: 2000}})

func crmDB(t *testing.T) *pgtest.Server {
	t.Helper()
	return crmServer.Get(t)
}

func TestMain(m *testing.M) {
	code := m.Run()
	crmServer.Stop()
	stopAccess()
	accessDB.Stop()
	os.Exit(code)
}

func writeRules(t *testing.T, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func runCheckArgs(t *testing.T, args ...string) (int, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := check(args, &out, &errOut)
	if errOut.Len() > 0 {
		t.Logf("stderr: %s", errOut.String())
	}
	return code, out.String()
}

func TestCheckShippedRulesClean(t *testing.T) {
	pg := crmDB(t)
	path := writeRules(t, crm.Rules)
	dsn := pg.DSN(pgtest.SuperUser, pgtest.Database)

	// Without pgcloak setup, check says so; after it, the rules are clean.
	if err := pg.Exec(context.Background(), "DROP SCHEMA pgcloak CASCADE"); err != nil {
		t.Fatal(err)
	}
	code, out := runCheckArgs(t, "--rules", path, "--database", dsn, "--strict")
	if code != 1 || !strings.Contains(out, "run pgcloak setup") {
		t.Fatalf("without setup: exit %d:\n%s", code, out)
	}
	if code := runSetup([]string{"--database", dsn}); code != 0 {
		t.Fatalf("pgcloak setup: exit %d", code)
	}
	if code := runSetup([]string{"--database", dsn}); code != 0 {
		t.Fatalf("pgcloak setup, again: exit %d", code)
	}
	// Clean but for one warning: the demo names its end users unsigned.
	code, out = runCheckArgs(t, "--rules", path, "--database", dsn, "--strict")
	if code != 1 || !strings.Contains(out, `delegating login "crm_app" names end users unsigned`) || !strings.Contains(out, "0 error(s), 1 warning(s)") {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	t.Setenv("PGCLOAK_TEST_DELEGATION_KEY", "a-key-of-sixteen-bytes")
	signed := writeRules(t, []byte(strings.Replace(string(crm.Rules), "    unsigned: true", "    key_env: PGCLOAK_TEST_DELEGATION_KEY", 1)))
	code, out = runCheckArgs(t, "--rules", signed, "--database", dsn, "--strict")
	if code != 0 || !strings.HasSuffix(out, "ok\n") {
		t.Fatalf("exit %d:\n%s", code, out)
	}
}

func TestCheckFileOnly(t *testing.T) {
	code, out := runCheckArgs(t, "--rules", writeRules(t, crm.Rules))
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	bad := writeRules(t, []byte("version: 1\nroles:\n  x: {profile: nope}\n"))
	code, out = runCheckArgs(t, "--rules", bad, "--format", "json")
	var rep checkReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err, out)
	}
	if code != 1 || rep.OK || rep.Errors != 1 || rep.Findings[0].Line != 3 || rep.Findings[0].Col != 16 ||
		rep.Findings[0].Message != `unknown profile "nope" in role "x"` {
		t.Fatalf("exit %d: %+v", code, rep)
	}
	if code, _ := runCheckArgs(t, "--format", "yaml"); code != 2 {
		t.Error("bad usage must exit 2")
	}
}

// A column added to customers without classing it is reported, by name and
// by its values; a table outside the rules holding emails is reported too.
func TestCheckReportsUnclassedPersonalColumns(t *testing.T) {
	pg := crmDB(t)
	ctx := context.Background()
	if err := pg.Exec(ctx,
		"ALTER TABLE customers ADD COLUMN mobile_phone text",
		"UPDATE customers SET mobile_phone = '+44 7700 ' || lpad((customer_id * 7919 % 1000000)::text, 6, '0')",
		"ALTER TABLE orders ADD COLUMN notes text",
		"UPDATE orders SET notes = 'x' || order_id || '@example.org'",
		"CREATE TABLE newsletter_signups (id serial PRIMARY KEY, contact text, signed_up date)",
		"INSERT INTO newsletter_signups (contact, signed_up) SELECT 'reader' || g || '@example.net', '2024-01-01' FROM generate_series(1, 20) g",
	); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		pg.Exec(ctx, "ALTER TABLE customers DROP COLUMN mobile_phone", "ALTER TABLE orders DROP COLUMN notes", "DROP TABLE newsletter_signups")
	})
	dsn := pg.DSN(pgtest.SuperUser, pgtest.Database)
	path := writeRules(t, crm.Rules)

	code, out := runCheckArgs(t, "--rules", path, "--database", dsn)
	if code != 0 {
		t.Errorf("warnings alone must not fail without --strict: exit %d", code)
	}
	for _, want := range []string{
		"warning public.customers.mobile_phone: column public.customers.mobile_phone of a protected table is not classed; it is treated as personal; its name suggests phone and its values look like phone numbers",
		"warning public.orders.notes: column public.orders.notes of a protected table is not classed; it is treated as personal; its values look like email addresses",
		"warning public.newsletter_signups.contact: column public.newsletter_signups.contact looks personal (its values look like email addresses), but table public.newsletter_signups is not in the rules (restricted roles cannot read it)",
		"0 error(s), 4 warning(s)", // and the unsigned delegation
	} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
	if code, _ := runCheckArgs(t, "--rules", path, "--database", dsn, "--strict"); code != 1 {
		t.Errorf("--strict: exit %d", code)
	}

	// With unlisted tables allowed, the newsletter emails are readable
	// unmasked: an error.
	open := strings.Replace(string(crm.Rules), "unlisted_tables: deny", "unlisted_tables: allow", 1)
	code, out = runCheckArgs(t, "--rules", writeRules(t, []byte(open)), "--database", dsn, "--format", "json")
	var rep checkReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	if code != 1 || rep.Errors != 1 {
		t.Fatalf("exit %d: %+v", code, rep)
	}
	for _, f := range rep.Findings {
		if f.Severity == rules.SevError && (f.Code != "looks-personal" || f.Table != "public.newsletter_signups" || f.Column != "contact") {
			t.Errorf("unexpected error %+v", f)
		}
	}
}

// Mistakes that only the database shows: a missing column, a mask of the
// wrong type, a custom mask that does not type, a filter over a missing
// column, an attribute query over a missing table.
func TestCheckSchemaMistakes(t *testing.T) {
	pg := crmDB(t)
	dsn := pg.DSN(pgtest.SuperUser, pgtest.Database)
	r := string(crm.Rules)
	// want is "COL: message"; the line is that of mark in the edited file.
	for _, c := range []struct{ old, new, mark, want string }{
		{"      gender: personal\n", "      gender: personal\n      shoe_size: personal\n", "shoe_size",
			`7: column "shoe_size" of table public.customers does not exist in the database`},
		{"      segment: public\n", "      segment: {class: personal, mask: birth_year}\n", "segment:",
			`7: column public.customers.segment: mask birth_year (generalize) cannot produce type text; it needs a date or timestamp column`},
		{`ticket_text: {sql: "left(:value, 20) || ' […]'"}`, `ticket_text: {sql: "length(:value)"}`, "      body:",
			`7: mask ticket_text of column public.support_tickets.body produces integer, but the column is text`},
		{`customers: "region = :region"`, `customers: "area = :region"`, "area = :region",
			`18: row filter of table public.customers in role sales_rep does not work on this database: column "area" does not exist (SQLSTATE 42703)`},
		{"FROM sales_reps WHERE login", "FROM reps WHERE login", "    erin:",
			`5: attribute_query of login "erin" does not work on this database: relation "reps" does not exist (SQLSTATE 42P01)`},
	} {
		if !strings.Contains(r, c.old) {
			t.Fatalf("rules.yaml has no %q", c.old)
		}
		edited := strings.Replace(r, c.old, c.new, 1)
		line := 1 + strings.Count(edited[:strings.Index(edited, c.mark)], "\n")
		path := writeRules(t, []byte(edited))
		code, out := runCheckArgs(t, "--rules", path, "--database", dsn)
		want := fmt.Sprintf("error   %s:%d:%s\n", path, line, c.want)
		if code != 1 || !strings.Contains(out, want) {
			t.Errorf("exit %d, want %q in:\n%s", code, want, out)
		}
	}
}

// check --database measures k for each anonymizing role: the shipped rules
// meet min_k; showing the analyst the creation time (to the second) does
// not, which fails --strict and names the column.
func TestCheckAnonymity(t *testing.T) {
	pg := crmDB(t)
	dsn := pg.DSN(pgtest.SuperUser, pgtest.Database)
	if code := runSetup([]string{"--database", dsn}); code != 0 {
		t.Fatalf("pgcloak setup: exit %d", code)
	}
	code, out := runCheckArgs(t, "--rules", writeRules(t, crm.Rules), "--database", dsn, "--format", "json")
	var rep struct {
		Anonymity []struct {
			Role string `json:"role"`
			K    int64  `json:"k"`
			MinK int    `json:"min_k"`
			OK   bool   `json:"ok"`
		} `json:"anonymity"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != 0 || len(rep.Anonymity) != 2 {
		t.Fatalf("exit %d, %v:\n%s", code, err, out)
	}
	for _, a := range rep.Anonymity {
		if !a.OK || a.K < int64(a.MinK) || a.MinK != 5 {
			t.Errorf("%+v", a)
		}
	}
	bad := strings.Replace(string(crm.Rules), "        created_at: hide\n      orders: {shipping_street: hide, shipping_city: hide}\n\n  disclosure_export:",
		"        created_at: show\n      orders: {shipping_street: hide, shipping_city: hide}\n\n  disclosure_export:", 1)
	if bad == string(crm.Rules) {
		t.Fatal("the analyst's created_at override is not where the test expects it")
	}
	path := writeRules(t, []byte(bad))
	if code, out := runCheckArgs(t, "--rules", path, "--database", dsn); code != 0 || !strings.Contains(out, "role analyst sees") {
		t.Fatalf("without --strict: exit %d:\n%s", code, out)
	}
	code, out = runCheckArgs(t, "--rules", path, "--database", dsn, "--strict")
	if code != 1 || !strings.Contains(out, "anonymity.min_k 5 (k = 1)") || !strings.Contains(out, "created_at") {
		t.Fatalf("--strict: exit %d:\n%s", code, out)
	}
}

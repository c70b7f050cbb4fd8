package rules

import (
	"strings"
	"testing"

	"github.com/pgcloak/pgcloak/examples/crm"
)

// A role that may write the table its own principals' attribute queries
// read lets its users choose their attributes: reported; the sample rules
// give sales_rep the sales_reps table erin's region comes from read-only.
func TestCheckSelfService(t *testing.T) {
	if f := crmPolicy(t).CheckRules(); len(f) != 1 || f[0].Code != "delegation" {
		t.Fatalf("the sample rules: want only the unsigned delegation warning, got %v", f)
	}
	old := strings.Replace(string(crm.Rules), "      - sales_reps: [read]", "      - sales_reps: [read, update]", 1)
	if old == string(crm.Rules) {
		t.Fatal("the sample rules no longer give sales_rep the sales_reps table read-only")
	}
	p, err := Parse("rules.yaml", []byte(old))
	if err != nil {
		t.Fatal(err)
	}
	f := p.CheckRules()[1:]
	if len(f) != 1 || f[0].Code != "self-service" || f[0].Severity != SevWarning || f[0].Table != "public.sales_reps" ||
		!strings.Contains(f[0].Message, `role "sales_rep"`) || !strings.Contains(f[0].Message, `login "erin"`) {
		t.Fatalf("findings: %v", f)
	}
	// A role that only reads is fine; a default principal is checked too.
	ro := strings.Replace(old, "statements: [select, insert, update, delete, copy_from]\n", "statements: [select]\n", 1)
	if p, err := Parse("rules.yaml", []byte(ro)); err != nil || len(p.CheckRules()) != 1 {
		t.Fatalf("read-only role: %v %v", p.CheckRules(), err)
	}
	def := strings.Replace(old, "  # No default: a login not named above is refused.",
		"  default: {role: support, attribute_query: \"SELECT region FROM customers WHERE email = $1\"}", 1)
	p, err = Parse("rules.yaml", []byte(def))
	if err != nil {
		t.Fatal(err)
	}
	if f := p.CheckRules(); len(f) != 3 || !strings.Contains(f[2].Message, "principals.default") {
		t.Fatalf("default principal: %v", f)
	}
}

package audit_test

import (
	"testing"

	"github.com/pgcloak/pgcloak/audit"
)

// Every reason code names itself and the rules under it; a rule of no
// known family is "other".
func TestReasonOf(t *testing.T) {
	seen := map[audit.ReasonCode]bool{}
	for _, c := range audit.ReasonCodes {
		if seen[c] {
			t.Errorf("%s is listed twice", c)
		}
		seen[c] = true
		if got := audit.ReasonOf(audit.Rule(c)); got != c {
			t.Errorf("ReasonOf(%q) = %q", audit.Rule(c), got)
		}
		if got := audit.ReasonOf(audit.Rule(c, "sales_rep", "statements")); got != c {
			t.Errorf("ReasonOf(%q) = %q", audit.Rule(c, "sales_rep", "statements"), got)
		}
	}
	for _, rule := range []string{"", "table.customers", "rolesx.a", ".roles"} {
		if got := audit.ReasonOf(rule); got != audit.ReasonOther {
			t.Errorf("ReasonOf(%q) = %q, want other", rule, got)
		}
	}
	if got := audit.Rule(audit.ReasonRoles, "sales_rep", "filters", "orders"); got != "roles.sales_rep.filters.orders" {
		t.Errorf("Rule = %q", got)
	}
}

package rules

import (
	"testing"

	"github.com/pgcloak/pgcloak/examples/crm"
)

func TestCRMRulesCompile(t *testing.T) {
	p, err := Parse("examples/crm/rules.yaml", crm.Rules)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Version()) != 12 {
		t.Errorf("version %q", p.Version())
	}
}

package rewrite

import (
	"fmt"
	"strings"
	"testing"

	"github.com/pgcloak/pgcloak/examples/crm"
	"github.com/pgcloak/pgcloak/rules"
)

// describeSteps describes a statement naming n aliases of a protected
// table and n distinct columns (qualified and not), and returns the steps
// of matching them.
func describeSteps(t *testing.T, pol *rules.Policy, n int) int64 {
	var b strings.Builder
	b.WriteString("SELECT ")
	for i := range n {
		fmt.Fprintf(&b, "a%d.email, col%d, a%d.x%d, ", i, i, i, i)
	}
	b.WriteString("1 FROM ")
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "customers a%d", i)
	}
	d := &Describer{Policy: pol}
	before := describeWork.Load()
	st := d.describe(b.String(), "bounds", nil)
	if len(st) != 1 || len(st[0].Objects) != 1 || st[0].Objects[0].Columns["email"] == "" {
		t.Fatalf("description: %+v", st)
	}
	return describeWork.Load() - before
}

// The access-log description of a statement is linear in its size: eight
// times the relations and columns, about eight times the steps (the
// quadratic matching it replaced took 64 times).
func TestDescribeLinear(t *testing.T) {
	pol, err := rules.Parse("rules.yaml", crm.Rules)
	if err != nil {
		t.Fatal(err)
	}
	small := describeSteps(t, pol, 200)
	large := describeSteps(t, pol, 1600)
	if small == 0 || large > 10*small {
		t.Fatalf("steps: %d for 200 relations and columns, %d for 1600", small, large)
	}
}

package engine_test

import (
	"context"
	"testing"

	"github.com/pgcloak/pgcloak/proxy"
	"github.com/pgcloak/pgcloak/rules"
)

// The wire check finds a result column's table and column by the OID and
// attribute number the proxy passes (proxy.Column), and masks exactly the
// columns of protected tables that the principal may not see raw.
func TestWireCheckByTableAndAttribute(t *testing.T) {
	s, err := eng.NewBenchSession(context.Background(), "alice", []string{"public"})
	if err != nil {
		t.Fatal(err)
	}
	rel := s.Catalog().Relation("public", "customers")
	if rel == nil {
		t.Fatal("no customers in the catalog")
	}
	pr, err := policy.Principal("alice")
	if err != nil {
		t.Fatal(err)
	}
	tn := rules.TableName{Schema: "public", Name: "customers"}
	cols := []proxy.Column{{Name: "computed"}, {Name: "elsewhere", TableOID: 1, Attribute: 1}}
	want := []bool{false, false}
	masked := map[string]bool{}
	for _, c := range rel.Columns {
		cols = append(cols, proxy.Column{Name: "alias_" + c.Name, TableOID: rel.OID, Attribute: uint16(c.Num)})
		v := pr.Column(tn, c.Name)
		raw := v.Action == rules.Show && !v.HideIfOptedOut
		want = append(want, !raw)
		masked[c.Name] = !raw
	}
	if !masked["national_id"] || masked["customer_id"] {
		t.Fatalf("alice's view of customers is not what this test assumes: masked %v", masked)
	}
	before := eng.Incidents()
	got := s.MaskColumns(cols)
	n := int64(0)
	for i, c := range cols {
		if got[i] != want[i] {
			t.Errorf("column %s (table %d, attribute %d): masked %v, want %v", c.Name, c.TableOID, c.Attribute, got[i], want[i])
		}
		if got[i] {
			n++
		}
	}
	if d := eng.Incidents() - before; d != n {
		t.Errorf("%d incidents counted for %d masked columns", d, n)
	}
	if m := s.MaskColumns(cols[:2]); m != nil {
		t.Errorf("columns of no protected table masked: %v", m)
	}
}

// The error filter withholds the DETAIL of integrity violations and of
// any error that shows a failing row, and leaves every other field and
// every other error alone.
func TestErrorFilterWithholdsRowDetail(t *testing.T) {
	s, err := eng.NewBenchSession(context.Background(), "alice", []string{"public"})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		code, detail string
		withheld     bool
	}{
		{"23505", "Key (customer_number)=(C-000042) already exists.", true},
		{"23502", `Failing row contains (42, C-000042, Nora, null).`, true},
		{"22P02", "Failing row contains (42, secret).", true},
		{"23514", "", false},
		{"42501", "permission denied for table customers", false},
	} {
		e := &proxy.ServerError{Severity: "ERROR", Code: c.code, Message: "message " + c.code, Detail: c.detail, Hint: "hint"}
		changed := s.FilterError(e)
		if changed != c.withheld || (e.Detail == c.detail) == c.withheld {
			t.Errorf("%s %q: changed %v, detail now %q", c.code, c.detail, changed, e.Detail)
		}
		if e.Code != c.code || e.Message != "message "+c.code || e.Hint != "hint" || e.Severity != "ERROR" {
			t.Errorf("%s: other fields changed: %+v", c.code, e)
		}
	}
}

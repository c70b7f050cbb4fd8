package rewrite

import (
	"strings"
	"testing"

	"github.com/pgcloak/pgcloak/examples/crm"
	"github.com/pgcloak/pgcloak/rules"
)

// TestSettingAllowed: the one decision for SET, RESET, set_config and
// start-up options, for a role without and with the statement kind set.
func TestSettingAllowed(t *testing.T) {
	yaml := strings.Replace(string(crm.Rules), "statements: [select, copy_to]", "statements: [select, copy_to, set]", 1)
	pol, err := rules.Parse("rules.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	alice, err := pol.Principal("alice")
	if err != nil {
		t.Fatal(err)
	}
	dex, err := pol.Principal("dex")
	if err != nil {
		t.Fatal(err)
	}
	if alice.Allows(rules.StmtSet) || !dex.Allows(rules.StmtSet) {
		t.Fatal("the test needs alice without set and dex with it")
	}
	cases := []struct {
		name       string
		values     []string
		alice, dex bool
	}{
		{"TimeZone", []string{"UTC"}, true, true},
		{"timezone", nil, true, true},
		{"DateStyle", []string{"ISO", "MDY"}, true, true},
		{"extra_float_digits", []string{"3"}, true, true},
		{"client_min_messages", []string{"WARNING"}, true, true},
		{"client_min_messages", []string{"debug1"}, false, true},
		{"application_name", []string{"x'; SELECT 1"}, true, true},
		{"bytea_output", []string{"hex"}, true, true},
		{"standard_conforming_strings", []string{"on"}, true, true},
		{"standard_conforming_strings", []string{"off"}, false, false},
		{"standard_conforming_strings", []string{"o"}, false, false},
		{"client_encoding", []string{"UTF8"}, true, true},
		{"client_encoding", []string{"u-t-f-8"}, true, true},
		{"client_encoding", []string{"LATIN1"}, true, true},
		{"client_encoding", []string{"SJIS"}, false, false},
		{"client_encoding", []string{"big5"}, false, false},
		{"client_encoding", []string{"win936"}, false, false},
		{"client_encoding", []string{"latin11"}, false, false},
		{"client_encoding", nil, true, true},
		{"search_path", []string{"public"}, false, false},
		{"search_path", nil, true, true},
		{"role", []string{"dana"}, false, false},
		{"row_security", []string{"off"}, false, false},
		{"work_mem", []string{"1GB"}, false, true},
		{"work_mem", nil, false, true},
		{"pgcloak.end_user", []string{"petra"}, false, false},
		{"PGCLOAK.purpose", nil, false, false},
	}
	for _, c := range cases {
		if got := SettingAllowed(alice, c.name, c.values...) == nil; got != c.alice {
			t.Errorf("alice: %s = %q: allowed %v, want %v", c.name, c.values, got, c.alice)
		}
		if got := SettingAllowed(dex, c.name, c.values...) == nil; got != c.dex {
			t.Errorf("dex (with set): %s = %q: allowed %v, want %v", c.name, c.values, got, c.dex)
		}
	}
}

package rules

import (
	"context"
	"strings"
	"testing"

	"github.com/pgcloak/pgcloak/examples/crm"
)

// TestCheckSettingsTriggers: a trigger whose function changes a setting
// pgcloak follows is reported; the sample CRM has none.
func TestCheckSettingsTriggers(t *testing.T) {
	ctx := context.Background()
	conn := loadCRM(t)
	p, err := Parse("rules.yaml", crm.Rules)
	if err != nil {
		t.Fatal(err)
	}
	count := func() int {
		fs, err := checkDatabase(ctx, p, conn)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, f := range fs {
			if f.Code == "settings-trigger" {
				n++
				if !strings.Contains(f.Message, "campaigns_touch") || f.Table != "public.campaigns" {
					t.Errorf("finding: %+v", f)
				}
			}
		}
		return n
	}
	if n := count(); n != 0 {
		t.Fatalf("%d settings-trigger findings on the sample CRM", n)
	}
	for _, ddl := range []string{
		`CREATE FUNCTION public.campaigns_touch() RETURNS trigger LANGUAGE plpgsql AS $$
		 BEGIN PERFORM pg_catalog.set_config('standard_conforming_strings', 'off', false); RETURN NULL; END $$`,
		`CREATE TRIGGER campaigns_touch AFTER UPDATE ON public.campaigns FOR EACH STATEMENT EXECUTE FUNCTION public.campaigns_touch()`,
	} {
		if _, err := conn.Exec(ctx, ddl); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		conn.Exec(ctx, `DROP TRIGGER campaigns_touch ON public.campaigns; DROP FUNCTION public.campaigns_touch()`)
	})
	if n := count(); n != 1 {
		t.Fatalf("%d settings-trigger findings, want 1", n)
	}
}

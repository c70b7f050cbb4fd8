package engine_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pgcloak/pgcloak/engine"
	"github.com/pgcloak/pgcloak/examples/crm"
	"github.com/pgcloak/pgcloak/internal/pgtest"
	"github.com/pgcloak/pgcloak/rules"
)

// The rewrite of a reviewed role's UPDATE names the requester (the login)
// in the change request it records. Two logins of the same role and
// attributes (two support agents, or two end users an application names)
// must each get their own rewrite, never the other's from a cache: the
// request would be recorded in the wrong name, and the rule that an
// approver is not the requester would check the wrong person.
func TestCachedRewriteNamesItsOwnRequester(t *testing.T) {
	ctx := context.Background()
	yaml := bytes.Replace(crm.Rules, []byte("    sam: {role: support}\n"),
		[]byte("    sam: {role: support}\n    sue: {role: support}\n"), 1)
	if bytes.Equal(yaml, crm.Rules) {
		t.Fatal("the sample rules no longer name sam as support")
	}
	pol, err := rules.Parse("rules.yaml", yaml)
	if err != nil {
		t.Fatal(err)
	}
	e := engine.NewEngine(func() *rules.Policy { return pol }, pg.DSN(pgtest.SuperUser, pgtest.Database), nil)
	sctx, cancel := context.WithCancel(ctx)
	t.Cleanup(cancel)
	if err := e.Start(sctx, time.Minute); err != nil {
		t.Fatal(err)
	}
	sam, err := e.NewBenchSession(ctx, "sam", []string{"public"})
	if err != nil {
		t.Fatal(err)
	}
	sue, err := e.NewBenchSession(ctx, "sue", []string{"public"})
	if err != nil {
		t.Fatal(err)
	}
	stmt := func(n int) string {
		return fmt.Sprintf("UPDATE customers SET phone = '+1 555 %d' WHERE customer_id = %d", n, n+1)
	}
	for _, n := range []int{10, 20} { // twice: a shape is shared from its second statement
		if d := sam.Decide(stmt(n)); !strings.Contains(d.SQL, "'sam'") {
			t.Fatalf("sam's rewrite does not name sam: %s", d.SQL)
		}
	}
	for _, n := range []int{20, 30} { // the same text, then the same shape
		d := sue.Decide(stmt(n))
		if d.Err != nil {
			t.Fatalf("sue: %v", d.Err)
		}
		if strings.Contains(d.SQL, "'sam'") || !strings.Contains(d.SQL, "'sue'") {
			t.Errorf("sue's change request is recorded as sam's (%s): %s", stmt(n), d.SQL)
		}
	}
}

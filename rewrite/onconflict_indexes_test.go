package rewrite_test

import (
	"context"
	"testing"
)

// TestOnConflictAnyIndexes: DO NOTHING without a target into a table with
// a unique index `=` on columns cannot judge (partial, on an expression)
// is refused, naming the index, in both protocols; with a target it runs.
// The indexes go on campaigns, which no other test inserts into without a
// target, and the engine is a fresh one that reads them.
func TestOnConflictAnyIndexes(t *testing.T) {
	ctx := context.Background()
	db := direct(t)
	const id = 950600
	for _, idx := range []string{
		"CREATE UNIQUE INDEX test_campaigns_partial ON campaigns (name) WHERE budget > 1000000000",
		"CREATE UNIQUE INDEX test_campaigns_expr ON campaigns (lower(channel), starts_on) WHERE false",
	} {
		if _, err := db.Exec(ctx, idx); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		db := direct(t)
		db.Exec(context.Background(), "DROP INDEX IF EXISTS test_campaigns_partial, test_campaigns_expr")
		db.Exec(context.Background(), "DELETE FROM campaigns WHERE campaign_id = $1", id)
	})
	login := cloakWith(t, policy)
	alice := login("alice")
	const ins = `INSERT INTO campaigns (campaign_id, name, channel, starts_on, budget, manager) VALUES ($1, 'Idx', 'email', '2026-01-01', 1, 'x') `
	for _, m := range modes {
		_, err := alice.Exec(ctx, ins+"ON CONFLICT DO NOTHING", m.mode, id)
		wantRefused(t, err, "0A000", "test_campaigns_")
		for range 2 {
			if _, err := alice.Exec(ctx, ins+"ON CONFLICT (campaign_id) DO NOTHING", m.mode, id); err != nil {
				t.Fatalf("[%s] with a target: %v", m.name, err)
			}
		}
	}
}

package engine_test

// The statement-shape cache (rewrite/shapecache.go) in the engine: its
// counts, a rules reload and a catalog change starting it afresh, sessions
// sharing shapes, and, end to end through pgcloak, the sample sales rep
// getting each constant's own answer. The rewriter's own shape tests are
// in rewrite/shapecache_test.go.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgcloak/pgcloak/engine"
	"github.com/pgcloak/pgcloak/examples/crm"
	"github.com/pgcloak/pgcloak/internal/cloaktest"
	"github.com/pgcloak/pgcloak/internal/pgtest"
	"github.com/pgcloak/pgcloak/rules"
)

func shapeSession(t *testing.T, eng *engine.Engine, login string) *engine.BenchSession {
	t.Helper()
	s, err := eng.NewBenchSession(context.Background(), login, []string{"public"})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// A reload of the rules and a new catalog snapshot each start the shape
// cache afresh: no template of the old rules or catalog answers.
func TestShapeInvalidation(t *testing.T) {
	ctx := context.Background()
	north, err := rules.Parse("rules.yaml", crm.Rules)
	if err != nil {
		t.Fatal(err)
	}
	changed := strings.Replace(string(crm.Rules), `customers: "region = :region"`, `customers: "region = :region AND segment IS NOT NULL"`, 1)
	if changed == string(crm.Rules) {
		t.Fatal("the sample rules changed; update the test")
	}
	path := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(path, []byte(changed), 0o644); err != nil {
		t.Fatal(err)
	}
	reloaded, err := rules.Parse(path, []byte(changed))
	if err != nil {
		t.Fatal(err)
	}
	var current atomic.Pointer[rules.Policy]
	current.Store(north)
	own := engine.NewEngine(current.Load, pg.DSN(pgtest.SuperUser, pgtest.Database), nil)
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := own.Start(cctx, time.Hour); err != nil {
		t.Fatal(err)
	}
	s := shapeSession(t, own, "alice")
	decide := func(id int) string {
		t.Helper()
		d := s.Decide(fmt.Sprintf("SELECT first_name, city FROM customers WHERE customer_id = %d", id))
		if d.SQL == "" {
			t.Fatalf("not rewritten: %+v", d)
		}
		return d.SQL
	}
	stats := func() [3]int64 { h, m, u := own.SnapshotShapeStats(); return [3]int64{h, m, u} }

	decide(1)
	decide(2)
	decide(3)
	if got := stats(); got != [3]int64{1, 2, 0} {
		t.Fatalf("shape stats %v, want two misses then one hit", got)
	}
	// The rules reload: the next statement of the shape is rewritten under
	// the new rules, not answered from the old template.
	current.Store(reloaded)
	if sql := decide(4); !strings.Contains(sql, "segment IS NOT NULL") {
		t.Fatalf("after the reload, the old template answered:\n%s", sql)
	}
	if got := stats(); got != [3]int64{1, 3, 0} {
		t.Fatalf("shape stats %v after the reload, want a miss", got)
	}
	decide(5)
	if sql := decide(6); !strings.Contains(sql, "segment IS NOT NULL") || stats()[0] != 2 {
		t.Fatalf("no hit under the new rules (%v):\n%s", stats(), sql)
	}

	// A refresh that finds nothing changed keeps the snapshot's caches:
	// the next statement of the shape still hits.
	before := stats()
	if err := own.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if decide(7); stats() != [3]int64{before[0] + 1, before[1], 0} {
		t.Fatalf("shape stats %v after a refresh that changed nothing (%v before), want a hit", stats(), before)
	}

	// A catalog change: a new column of customers must be in the policy
	// subquery of the next statement of the shape.
	su := cloaktest.Admin(t, pg)
	if _, err := su.Exec(ctx, "ALTER TABLE customers ADD COLUMN shape_probe text"); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if _, err := su.Exec(ctx, "ALTER TABLE customers DROP COLUMN shape_probe"); err != nil {
			t.Error(err)
		}
		if err := own.Refresh(ctx); err != nil {
			t.Error(err)
		}
		if err := eng.Refresh(ctx); err != nil { // the shared engine may have looked meanwhile
			t.Error(err)
		}
	}()
	if err := own.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if sql := decide(8); !strings.Contains(sql, "shape_probe") {
		t.Fatalf("after the catalog change, the old template answered:\n%s", sql)
	}
	if got := stats(); got != [3]int64{0, 1, 0} {
		t.Fatalf("shape stats %v of the new snapshot, want one miss", got)
	}
}

// End to end through pgcloak as the north sales rep alice, in the simple
// protocol with the constants inline: customers inside and outside her
// region, each its own answer, masked as the rules say, while the shape
// cache answers.
func TestShapeEndToEnd(t *testing.T) {
	ctx := context.Background()
	su := cloaktest.Admin(t, pg)
	ids := func(q string) []int {
		rows, err := su.Query(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		out, err := pgx.CollectRows(rows, pgx.RowTo[int])
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	inside := ids("SELECT customer_id FROM customers WHERE region = 'north' ORDER BY customer_id LIMIT 8")
	outside := ids("SELECT customer_id FROM customers WHERE region <> 'north' ORDER BY customer_id LIMIT 8")
	if len(inside) < 8 || len(outside) < 8 {
		t.Fatalf("sample too small: %v %v", inside, outside)
	}
	alice := as(t, "alice")
	h0, _, _ := eng.ShapeStats()
	const lookup = "SELECT first_name, city, birth_date::text, national_id FROM customers WHERE customer_id = %d"
	for round := range 2 {
		for i := range inside {
			for _, id := range []int{inside[i], outside[i]} {
				type row struct{ first, city, birth, nid *string }
				var got []row
				rows, err := alice.Query(ctx, fmt.Sprintf(lookup, id), pgx.QueryExecModeSimpleProtocol)
				if err != nil {
					t.Fatal(err)
				}
				for rows.Next() {
					var r row
					if err := rows.Scan(&r.first, &r.city, &r.birth, &r.nid); err != nil {
						t.Fatal(err)
					}
					got = append(got, r)
				}
				if err := rows.Err(); err != nil {
					t.Fatal(err)
				}
				var want []row
				rows, err = su.Query(ctx, `SELECT first_name, CASE WHEN city IS NULL THEN NULL ELSE '***' END,
					date_trunc('year', birth_date)::date::text, NULL::text
					FROM customers WHERE region = 'north' AND customer_id = $1`, id)
				if err != nil {
					t.Fatal(err)
				}
				for rows.Next() {
					var r row
					if err := rows.Scan(&r.first, &r.city, &r.birth, &r.nid); err != nil {
						t.Fatal(err)
					}
					want = append(want, r)
				}
				if len(got) != len(want) {
					t.Fatalf("round %d, customer %d: %d rows, want %d", round, id, len(got), len(want))
				}
				for j := range got {
					if deref(got[j].first) != deref(want[j].first) || deref(got[j].city) != deref(want[j].city) ||
						deref(got[j].birth) != deref(want[j].birth) || got[j].nid != nil {
						t.Fatalf("customer %d: got %s %s %s %s, want %s %s %s NULL", id, deref(got[j].first), deref(got[j].city),
							deref(got[j].birth), deref(got[j].nid), deref(want[j].first), deref(want[j].city), deref(want[j].birth))
					}
				}
			}
		}
	}
	// Every statement but the first two hits; those two are answered by
	// the result cache in the second round.
	if h1, _, _ := eng.ShapeStats(); h1-h0 != int64(4*len(inside)-4) {
		t.Fatalf("%d shape hits for %d statements of one shape", h1-h0, 4*len(inside))
	}
}

// Sessions of one context share shapes: concurrent statements each get
// their own constants back.
func TestShapeConcurrent(t *testing.T) {
	const format = "/* concurrent */ SELECT first_name, city FROM customers WHERE customer_id = %d AND last_name <> %s"
	errs := make(chan error, 4)
	for g := range 4 {
		s := shapeSession(t, eng, "alice")
		go func() {
			for i := range 100 {
				id := g*1000 + i
				name := fmt.Sprintf("'n%d''%d'", g, i)
				d := s.Decide(fmt.Sprintf(format, id, name))
				if !strings.Contains(d.SQL, fmt.Sprintf("customer_id = %d ", id)) && !strings.Contains(d.SQL, fmt.Sprintf("customer_id =  %d ", id)) ||
					!strings.Contains(d.SQL, name) {
					errs <- fmt.Errorf("statement %d of goroutine %d lost its constants:\n%s", i, g, d.SQL)
					return
				}
			}
			errs <- nil
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if h, _, _ := eng.ShapeStats(); h == 0 {
		t.Fatal("no shape hits")
	}
}

// deref prints a nullable text, NULL for none.
func deref(s *string) string {
	if s == nil {
		return "NULL"
	}
	return *s
}

package engine_test

import (
	"context"
	"syscall"
	"testing"
	"time"

	pg_query "github.com/pganalyze/pg_query_go/v6"

	"github.com/pgcloak/pgcloak/engine"
	"github.com/pgcloak/pgcloak/proxy"
)

// Rewrite benchmarks (figures, not asserted; see docs/benchmarks.md):
//
//	go test -run XXX -bench . -benchmem -count 5 ./engine/
//
// They run against the catalog of the test server that TestMain starts,
// with the sample CRM and its rules, as the north sales rep alice.

var benchQueries = []struct{ name, sql string }{
	// A customer's detail page: a point lookup.
	{"lookup", `SELECT customer_id, first_name, last_name, email, phone, city FROM customers WHERE customer_id = $1`},
	// A customer's last orders: a short join.
	{"join", `SELECT o.order_id, o.ordered_at, o.status, o.total_amount FROM orders o JOIN customers c ON c.customer_id = o.customer_id WHERE c.customer_id = $1 ORDER BY o.ordered_at DESC LIMIT 10`},
	// The customer list screen: a join, grouping and a leaky predicate.
	{"list", `SELECT c.customer_id, c.customer_number, c.first_name, c.last_name, c.email, c.phone, c.city, c.region, c.segment, count(o.order_id) AS orders, coalesce(sum(o.total_amount), 0) AS revenue, max(o.ordered_at) AS last_order FROM customers c LEFT JOIN orders o ON o.customer_id = c.customer_id WHERE lower(c.last_name) LIKE lower($1) || '%' GROUP BY c.customer_id, c.customer_number, c.first_name, c.last_name, c.email, c.phone, c.city, c.region, c.segment ORDER BY c.last_name, c.customer_id LIMIT 50 OFFSET $2`},
}

// loop runs f b.N times and reports, besides the wall-clock ns/op, the
// CPU time the process spent per op (user and system, all threads): on a
// machine shared with other work the wall clock also counts the time the
// benchmark waited for a core, the CPU time does not.
func loop(b *testing.B, f func()) {
	b.Helper()
	b.ReportAllocs()
	c0 := cpuTime()
	n := 0
	for b.Loop() {
		f()
		n++
	}
	b.ReportMetric(float64(cpuTime()-c0)/float64(n), "cpu-ns/op")
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func benchSession(b *testing.B) *engine.BenchSession {
	b.Helper()
	s, err := eng.NewBenchSession(context.Background(), "alice", []string{"public"})
	if err != nil {
		b.Fatal(err)
	}
	return s
}

// BenchmarkCacheHit is the cost of a statement seen before: the session's
// decision as the proxy asks for it, answered from the result cache.
func BenchmarkCacheHit(b *testing.B) {
	s := benchSession(b)
	for _, q := range benchQueries {
		b.Run(q.name, func(b *testing.B) {
			if d := s.Decide(q.sql); d.Action != proxy.Rewrite {
				b.Fatalf("not rewritten: %+v", d)
			}
			loop(b, func() {
				s.Decide(q.sql)
			})
		})
	}
}

// BenchmarkCacheHitParallel is the cache hit from every core at once, as
// when many sessions run the same screens.
func BenchmarkCacheHitParallel(b *testing.B) {
	s := benchSession(b)
	q := benchQueries[0]
	s.Decide(q.sql)
	b.ReportAllocs()
	c0 := cpuTime()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			s.Decide(q.sql)
		}
	})
	b.ReportMetric(float64(cpuTime()-c0)/float64(b.N), "cpu-ns/op")
}

// BenchmarkCacheLookup is the result cache alone.
func BenchmarkCacheLookup(b *testing.B) {
	s := benchSession(b)
	for _, q := range benchQueries {
		b.Run(q.name, func(b *testing.B) {
			s.Cached(q.sql)
			loop(b, func() {
				s.Cached(q.sql)
			})
		})
	}
}

// BenchmarkColdRewrite is a statement not seen before: parse, resolve,
// substitute the (cached) policy subqueries, decide the fence, deparse.
func BenchmarkColdRewrite(b *testing.B) {
	s := benchSession(b)
	for _, q := range benchQueries {
		b.Run(q.name, func(b *testing.B) {
			if r := s.Cold(q.sql); len(r.Refused) > 0 || r.Unchanged {
				b.Fatalf("not rewritten: %+v", r)
			}
			loop(b, func() {
				s.Cold(q.sql)
			})
		})
	}
}

// BenchmarkColdestRewrite also builds the policy subqueries (rendered and
// parsed) anew, as for the first statement after a catalog refresh.
func BenchmarkColdestRewrite(b *testing.B) {
	s := benchSession(b)
	for _, q := range benchQueries {
		b.Run(q.name, func(b *testing.B) {
			loop(b, func() {
				s.Coldest(q.sql)
			})
		})
	}
}

// BenchmarkParseDeparse is pg_query's own Parse plus Deparse of the same
// statements: the yardstick of the cold rewrite.
func BenchmarkParseDeparse(b *testing.B) {
	for _, q := range benchQueries {
		b.Run(q.name, func(b *testing.B) {
			loop(b, func() {
				tree, err := pg_query.Parse(q.sql)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := pg_query.Deparse(tree); err != nil {
					b.Fatal(err)
				}
			})
		})
	}
}

// BenchmarkParseDeparseRewritten is Parse plus Deparse of the rewritten
// statement: the part of a cold rewrite's cost that comes from the size of
// what it prints.
func BenchmarkParseDeparseRewritten(b *testing.B) {
	s := benchSession(b)
	for _, q := range benchQueries {
		out := s.Cold(q.sql).SQL
		b.Run(q.name, func(b *testing.B) {
			loop(b, func() {
				tree, err := pg_query.Parse(out)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := pg_query.Deparse(tree); err != nil {
					b.Fatal(err)
				}
			})
		})
	}
}

// BenchmarkVerifyFloor is what a verified cold rewrite cannot do without:
// pg_query's Parse of the statement, to analyse it, and Parse of the
// rewritten statement, to check that what is sent is what was analysed
// (rewrite/verify.go). ColdRewrite ÷ VerifyFloor is the rewrite's own
// share; VerifyFloor ÷ ParseDeparse is the lowest cold ratio the
// verify-before-send design allows.
func BenchmarkVerifyFloor(b *testing.B) {
	s := benchSession(b)
	for _, q := range benchQueries {
		out := s.Cold(q.sql).SQL
		b.Run(q.name, func(b *testing.B) {
			loop(b, func() {
				if _, err := pg_query.Parse(q.sql); err != nil {
					b.Fatal(err)
				}
				if _, err := pg_query.Parse(out); err != nil {
					b.Fatal(err)
				}
			})
		})
	}
}

package engine_test

import (
	"fmt"
	"testing"

	pg_query "github.com/pganalyze/pg_query_go/v6"

	"github.com/pgcloak/pgcloak/proxy"
)

// Shape cache benchmarks (figures, not asserted; see docs/benchmarks.md):
//
//	go test -run XXX -bench Shape -benchmem -count 5 ./engine/
//
// The CRM point lookup with its constant inline, as psycopg2 or Django
// send it: every statement a new text, so the result cache never answers.

var shapeBenchQueries = []struct{ name, format string }{
	{"lookup", `SELECT customer_id, first_name, last_name, email, phone, city FROM customers WHERE customer_id = %d`},
	{"join", `SELECT o.order_id, o.ordered_at, o.status, o.total_amount FROM orders o JOIN customers c ON c.customer_id = o.customer_id WHERE c.customer_id = %d ORDER BY o.ordered_at DESC LIMIT 10`},
}

// shapeTexts are n distinct statements of one shape.
func shapeTexts(format string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf(format, i+1)
	}
	return out
}

// BenchmarkShapeHit is the session's decision for a statement whose shape
// was seen before: lex, look up, put the constant back, describe.
func BenchmarkShapeHit(b *testing.B) {
	s := benchSession(b)
	for _, q := range shapeBenchQueries {
		texts := shapeTexts(q.format, 4096)
		b.Run(q.name, func(b *testing.B) {
			s.Decide(texts[0])
			i := 1
			loop(b, func() {
				if d := s.Decide(texts[i%len(texts)]); d.Action != proxy.Rewrite {
					b.Fatalf("not rewritten: %+v", d)
				}
				i++
			})
		})
	}
}

// BenchmarkShapeColdLiteral is the cold rewrite of the same statements:
// what every one of them cost before the shape cache.
func BenchmarkShapeColdLiteral(b *testing.B) {
	s := benchSession(b)
	for _, q := range shapeBenchQueries {
		texts := shapeTexts(q.format, 4096)
		b.Run(q.name, func(b *testing.B) {
			i := 0
			loop(b, func() {
				s.Cold(texts[i%len(texts)])
				i++
			})
		})
	}
}

// BenchmarkShapeParseDeparse is pg_query's Parse plus Deparse of the same
// statements: the yardstick.
func BenchmarkShapeParseDeparse(b *testing.B) {
	for _, q := range shapeBenchQueries {
		texts := shapeTexts(q.format, 4096)
		b.Run(q.name, func(b *testing.B) {
			i := 0
			loop(b, func() {
				tree, err := pg_query.Parse(texts[i%len(texts)])
				if err != nil {
					b.Fatal(err)
				}
				if _, err := pg_query.Deparse(tree); err != nil {
					b.Fatal(err)
				}
				i++
			})
		})
	}
}

// BenchmarkShapeNormalize is pg_query's Normalize of the same statements,
// the alternative to the shape lexer.
func BenchmarkShapeNormalize(b *testing.B) {
	texts := shapeTexts(shapeBenchQueries[0].format, 4096)
	i := 0
	loop(b, func() {
		if _, err := pg_query.Normalize(texts[i%len(texts)]); err != nil {
			b.Fatal(err)
		}
		i++
	})
}

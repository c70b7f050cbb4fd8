package engine_test

// Fifth independent review (branch review-operator): the declared
// parameter types of a5e1b2f.

import (
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgcloak/pgcloak/internal/cloaktest"
)

// Class param_typed_by_first_use: a parameter the Parse leaves
// unspecified (OID 0) is not of unknown type wherever it appears:
// PostgreSQL types it at its first use (parse_param.c,
// variable_coerce_param_hook), and the select list is analysed before
// WHERE. fitsLeft (rewrite/walk.go) takes every unspecified $1 as unknown,
// so o.order_id = $1 is judged as bigint's equality (leakproof) and the
// policy subquery is not fenced, while $1::oid in the select list has
// made $1 an oid: the qual runs (o.order_id)::oid = $1 on every row and
// raises on the planted south order.
func TestReview5ParamTypedByFirstUse(t *testing.T) {
	plantSouthOrder(t, -739503)
	r := cloaktest.DialRaw(t, front.Addr, "alice")
	for _, oids := range [][]uint32{{0}, nil} {
		got := r.RoundTrip(t, 1, &pgproto3.Parse{Query: "SELECT $1::oid AS k, count(*) FROM orders o WHERE o.order_id = $1", ParameterOIDs: oids},
			&pgproto3.Bind{Parameters: [][]byte{[]byte("1")}}, &pgproto3.Execute{}, &pgproto3.Sync{})
		if strings.Contains(got, "22003") {
			t.Errorf("$1 declared %v: alice hears of a row outside her region:\n%s", oids, got)
		}
	}
}

package engine

import (
	"context"
	"strings"
	"time"

	"github.com/jackc/pgerrcode"
	pg_query "github.com/pganalyze/pg_query_go/v6"

	"github.com/pgcloak/pgcloak/proxy"
	"github.com/pgcloak/pgcloak/rules"
)

// Delegation (design.md §4): an application that logs in with one shared
// login names its end user per session with
//
//	SET pgcloak.end_user = 'alice'        (or 'alice:<expiry>:<hex HMAC>' when signed; docs/rules.md)
//	RESET pgcloak.end_user
//
// pgcloak consumes the statement: the server gets SET pgcloak.end_user TO
// DEFAULT, so the client sees the usual SET tag and the name never reaches
// the server. Until it names one, the application's own role (by default
// the reserved role none) applies. The switch follows the server
// (follow.go): it is refused inside a transaction block or while earlier
// statements are unanswered, and takes effect when the server has
// completed it; from then on the session is decided for the end user's
// principal, and what was prepared, bound or declared for the previous one
// is prepared again or refused.

// delegation handles SET/RESET of the delegation setting by a delegating
// application; ok is false for any other statement.
func (s *session) delegation(sql string) (proxy.Decision, bool) {
	setting := s.pol.Delegation().Setting
	if !strings.Contains(strings.ToLower(sql), setting) {
		return proxy.Decision{}, false
	}
	tree, err := pg_query.Parse(sql)
	if err != nil || len(tree.Stmts) != 1 {
		return proxy.Decision{}, false
	}
	vs := tree.Stmts[0].Stmt.GetVariableSetStmt()
	if vs == nil || strings.ToLower(vs.Name) != setting {
		return proxy.Decision{}, false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if vs.IsLocal {
		return proxy.ErrRefused(pgerrcode.InsufficientPrivilege, "pgcloak: "+setting+" may not be SET LOCAL; set it outside a transaction block (rule: delegation)"), true
	}
	var value string
	switch vs.Kind {
	case pg_query.VariableSetKind_VAR_RESET, pg_query.VariableSetKind_VAR_SET_DEFAULT:
	case pg_query.VariableSetKind_VAR_SET_VALUE:
		if len(vs.Args) != 1 || vs.Args[0].GetAConst().GetSval() == nil {
			return proxy.ErrRefused(pgerrcode.InsufficientPrivilege, "pgcloak: "+setting+" takes one string constant"), true
		}
		value = vs.Args[0].GetAConst().GetSval().Sval
		if _, err := s.e.endUser(ctx, s.pol, s.app, value, s.binding); err != nil {
			return proxy.ErrRefused(pgerrcode.InsufficientPrivilege, err.Error()), true
		}
	default:
		return proxy.ErrRefused(pgerrcode.InsufficientPrivilege, "pgcloak: "+setting+" may only be set or reset"), true
	}
	if !s.idleNow() {
		return proxy.ErrRefused(pgerrcode.ActiveSQLTransaction,
			"pgcloak: "+setting+" may be changed only outside a transaction block, once the server has answered every earlier statement (rule: delegation)"), true
	}
	p := &switchReq{value: value}
	s.pending = p
	// A new generation at once: what the proxy binds or executes for
	// the previous end user before the switch's answer (a Bind of a
	// statement prepared for them, pipelined after the switch) is
	// decided again, and refused while the switch is pending, instead
	// of running with the previous end user's rewrite after it.
	s.gen++
	s.f.wantReady.Store(true)
	// Once: a Bind of the statement after its Parse's Sync (a driver's
	// prepare round trip, a statement run again) is decided again, and
	// switches through that decision's pending request, not this one,
	// which the next ReadyForQuery ends.
	return proxy.Decision{Action: proxy.Rewrite, SQL: "SET " + setting + " TO DEFAULT", Once: true,
		Ack: func(tag string) {
			if tag == "SET" {
				s.post(func() { p.acked = true })
			}
		}}, true
}

// endUser maps the value of the delegation setting to a ready principal.
func (e *Engine) endUser(ctx context.Context, pol *rules.Policy, app *rules.Principal, value, binding string) (*rules.Principal, error) {
	pr, err := pol.EndUserFor(app, value, binding, time.Now())
	if err != nil {
		return nil, err
	}
	if _, ok := pr.AttributeQuery(); ok {
		return rules.Resolve(ctx, pol, connQuerier{e}.QueryRow, pr.Login)
	}
	return pr, nil
}

package rewrite

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
//	SET pgcloak.end_user = 'alice'        (or 'alice:<hex HMAC>' when signed)
//	RESET pgcloak.end_user
//
// pgcloak consumes the statement: the server gets SET pgcloak.end_user TO
// DEFAULT, so the client sees the usual SET tag and the name never reaches
// the server, and from the next statement on the session is decided for
// the end user's principal. Until it names one, the application's own role
// (by default the reserved role none) applies. The change takes effect at
// once, not at commit.

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
	consumed := proxy.Decision{Action: proxy.Rewrite, SQL: "SET " + setting + " TO DEFAULT"}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	switch vs.Kind {
	case pg_query.VariableSetKind_VAR_RESET, pg_query.VariableSetKind_VAR_SET_DEFAULT:
		s.endUser = ""
	case pg_query.VariableSetKind_VAR_SET_VALUE:
		if len(vs.Args) != 1 || vs.Args[0].GetAConst().GetSval() == nil {
			return proxy.ErrRefused(pgerrcode.InsufficientPrivilege, "pgcloak: "+setting+" takes one string constant"), true
		}
		value := vs.Args[0].GetAConst().GetSval().Sval
		if _, err := s.e.endUser(ctx, s.pol, s.app, value); err != nil {
			return proxy.ErrRefused(pgerrcode.InsufficientPrivilege, err.Error()), true
		}
		s.endUser = value
	default:
		return proxy.ErrRefused(pgerrcode.InsufficientPrivilege, "pgcloak: "+setting+" may only be set or reset"), true
	}
	if err := s.resolve(ctx); err != nil {
		s.endUser = ""
		s.resolve(ctx)
		s.setContext()
		s.gen++
		return proxy.ErrRefused(pgerrcode.InsufficientPrivilege, err.Error()), true
	}
	s.setContext()
	s.gen++
	return consumed, true
}

// endUser maps the value of the delegation setting to a ready principal.
func (e *Engine) endUser(ctx context.Context, pol *rules.Policy, app *rules.Principal, value string) (*rules.Principal, error) {
	pr, err := pol.EndUser(app, value)
	if err != nil {
		return nil, err
	}
	if _, ok := pr.AttributeQuery(); ok {
		return pol.Resolve(ctx, connQuerier{e}, pr.Login)
	}
	return pr, nil
}

package rewrite

import (
	"errors"
	"fmt"

	"github.com/pgcloak/pgcloak/rules"
)

// NewRewriterAs returns a function that rewrites statements for principal
// pr exactly as a session of pr would have them rewritten, against the
// catalog snapshot cat (search path public; the caller loads it with
// catalog.Load), for tools that must measure what a role can query
// (package anonymity). A refused statement is an error naming the rule. The
// session's purposes are the role's: its fixed purpose, or all of its
// purposes as before a session chooses one.
func NewRewriterAs(cat *Catalog, pol *rules.Policy, pr *rules.Principal) (func(sql string) (string, error), error) {
	if pr.Unrestricted() {
		return func(sql string) (string, error) { return sql, nil }, nil
	}
	if !pr.Ready() {
		return nil, errors.New("rewrite: the principal's attributes are not known yet (use rules.Resolve)")
	}
	purposes := pr.Role.Purposes
	if pr.Role.PurposeFixed && len(purposes) > 0 {
		purposes = purposes[:1]
	}
	rctx := NewViewer(pol, pr, purposes, []string{"public"})
	subq := NewSubqueryCache()
	return func(sql string) (string, error) {
		res := Rewrite(cat, rctx, subq, sql, ShowRefusal)
		if len(res.Refused) > 0 {
			return "", fmt.Errorf("refused for role %s: %s", pr.Role.Name, res.Refused[0].Message)
		}
		return res.SQL, nil
	}, nil
}

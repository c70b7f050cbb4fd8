package rewrite

import (
	"fmt"
	"sort"
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v6"

	"github.com/pgcloak/pgcloak/rules"
	"github.com/pgcloak/pgcloak/schema"
)

// ChangeSQL renders the UPDATE that applies change request c as pr, the
// requester's principal now, would be allowed to make it: the row must
// still have the recorded version, still be inside pr's row filter and
// purposes, and stay inside with the new values; the UPDATE changes no row
// otherwise.
func ChangeSQL(cat *Catalog, pol *rules.Policy, pr *rules.Principal, c *schema.ChangeRequest) (string, error) {
	tn := rules.ParseTableName(c.Table)
	tab := pol.Table(tn)
	rel := cat.Relation(tn.Schema, tn.Name)
	if tab == nil || rel == nil {
		return "", fmt.Errorf("table %s is no longer protected or no longer exists", c.Table)
	}
	purposes := pr.Role.Purposes
	if pr.Role.PurposeFixed && len(purposes) > 0 {
		purposes = purposes[:1]
	}
	rw := &rewrite{cat: cat, ctx: NewViewer(pol, pr, purposes, []string{"public"})}
	const alias = "pgcloak_target"
	cols := make([]string, 0, len(c.NewValues))
	for col := range c.NewValues {
		cols = append(cols, col)
	}
	sort.Strings(cols)
	var sets []string
	var values []string
	for _, col := range cols {
		if ok, _, why := pr.Role.MayWriteColumn(tn, col, "UPDATE"); !ok {
			return "", fmt.Errorf("change request %d: %s", c.ID, why)
		}
		rc := rel.Column(col)
		if rc == nil {
			return "", fmt.Errorf("column %s of %s no longer exists", col, c.Table)
		}
		v := rules.QuoteLiteral(c.NewValues[col]) + "::" + rc.Type
		sets = append(sets, rules.QuoteIdent(col)+" = "+v)
		values = append(values, v)
	}
	var where []string
	for _, k := range rel.PrimaryKey {
		kv, ok := c.Key[k]
		if !ok {
			return "", fmt.Errorf("the request's row key has no %s", k)
		}
		where = append(where, rules.QuoteIdent(alias)+"."+rules.QuoteIdent(k)+" = "+rules.QuoteLiteral(fmt.Sprint(kv))+"::"+rel.Column(k).Type)
	}
	if c.RowVersion == nil {
		return "", fmt.Errorf("change request %d has no row version, so it cannot be bound to its row; reject it", c.ID)
	}
	where = append(where, RowVersion(alias)+" = "+rules.QuoteLiteral(*c.RowVersion))
	old, _, err := rw.visibleSQL(tab, alias)
	if err != nil {
		return "", err
	}
	where = append(where, "("+old+")")
	valueNodes := make([]*pg_query.Node, len(values))
	for i, v := range values {
		if valueNodes[i], err = parseExpr(v); err != nil {
			return "", err
		}
	}
	check, err := rw.updateCheck(tab, alias, cols, valueNodes)
	if err != nil {
		return "", err
	}
	if check != nil {
		s, err := deparseExpr(check)
		if err != nil {
			return "", err
		}
		where = append(where, s)
	}
	return "UPDATE " + tab.Name.SQL() + " AS " + alias + " SET " + strings.Join(sets, ", ") +
		" WHERE " + strings.Join(where, " AND "), nil
}

package rewrite

import (
	"fmt"
	"slices"
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v6"

	"github.com/pgcloak/pgcloak/rules"
	"github.com/pgcloak/pgcloak/schema"
)

// Changes to a person's record are reviewed (design.md §2.5). For a role
// with review_changes, an UPDATE of a table about a subject (the subject
// table and the tables linked to it) changes nothing the rules do not
// exempt (review_exempt: public columns only, never keys or links): for
// each row it would change, pgcloak.request_change records a change request
// (the requester, the row's key and version, the new values, the
// normalized statement; never the old values) and sends the client a
// NoticeResponse naming it. In tables not about a subject, changes to
// identity, personal and sensitive columns are held. Exempt columns in the
// same statement are updated at once; an UPDATE of held columns only
// answers UPDATE 0. INSERT and DELETE of a person's record are refused for
// such roles (rules.Role.MayWrite). The version (RowVersion) binds the
// request to the row as it was: a request whose row changed, or whose key
// now names another row, is not applied.
//
//	UPDATE t AS a SET <public columns, or key = key>
//	WHERE <rows, as for any UPDATE>
//	  AND CASE WHEN <rows> THEN [NOT] pgcloak.request_change(…) ELSE false END
//
// The CASE keeps the recording function off every row but those the UPDATE
// chooses, whatever order the planner evaluates quals in.

// RowVersion is the SQL expression of a row's version, over the alias of
// the row: the md5 of its text form. Any change to the row, or another row
// at the same key, gives another version.
func RowVersion(alias string) string {
	return "pg_catalog.md5((" + rules.QuoteIdent(alias) + ".*)::pg_catalog.text)"
}

// reviewUpdate turns the personal part of an UPDATE into change requests.
// It reports whether it handled the statement.
//
// A column the role does not see raw (unseen, writeback.go) set to exactly
// what the role was shown of it is a write-back: it is left out of the
// request, row by row, so that approving it never writes the mask over the
// real value; a request with nothing left is not recorded. Any other value
// is recorded if the role may write the column blind, else it fails the
// statement with 42501, as a direct UPDATE does:
//
//	pg_catalog.jsonb_build_object(<columns seen raw>)
//	  || CASE WHEN v IS NOT DISTINCT FROM <shown> THEN '{}'
//	          ELSE jsonb_build_object('col', v::text) END   -- blind
//	  || CASE WHEN v IS NOT DISTINCT FROM <shown>
//	          OR pgcloak.check_violation('…') THEN '{}' END  -- not blind
func (w *walker) reviewUpdate(s *pg_query.UpdateStmt, rel *Relation, tab *rules.Table, alias string,
	cols []string, values []*pg_query.Node, unseen []int, in *pg_query.Node, rows func() (*pg_query.Node, bool)) bool {
	pr := w.rw.ctx.Principal
	var reviewCols, keepCols []string
	var reviewVals []*pg_query.Node
	var reviewUnseen []bool
	var keep []*pg_query.Node
	for i, c := range cols {
		if pr.Role.Reviewed(tab.Name, c) {
			reviewCols = append(reviewCols, c)
			reviewVals = append(reviewVals, values[i])
			reviewUnseen = append(reviewUnseen, slices.Contains(unseen, i))
		} else {
			keepCols = append(keepCols, c)
			keep = append(keep, s.TargetList[i])
		}
	}
	if len(reviewCols) == 0 {
		return false
	}
	if len(rel.PrimaryKey) == 0 {
		w.fail(refuseUnsupported("review of changes to " + tab.Name.String() + ", which has no primary key"))
		return true
	}
	for _, i := range unseen {
		if !pr.Role.Reviewed(tab.Name, cols[i]) {
			// An exempt column written back: as in a direct UPDATE.
			v, err := w.writeBack(rel, tab, alias, cols[i], values[i])
			if err != nil {
				w.fail(err)
				return true
			}
			s.TargetList[i].GetResTarget().Val, values[i] = v, v
		}
	}
	// The public columns still go through the row filter check.
	check, err := w.rw.updateCheck(tab, alias, keepCols, pickValues(cols, values, keepCols))
	if err != nil {
		w.fail(err)
		return true
	}
	var key, vals []string
	for _, k := range rel.PrimaryKey {
		key = append(key, rules.QuoteLiteral(k), rules.QuoteIdent(alias)+"."+rules.QuoteIdent(k))
	}
	var writeBacks []string
	for i, c := range reviewCols {
		e, err := deparseExpr(reviewVals[i])
		if err != nil && hasSubLink(reviewVals[i]) {
			// Its policy subqueries are filled in after this, on the
			// walked nodes: the request could not carry the value.
			w.fail(refuseUnsupported("a sub-select that reads protected tables in SET of column " + c + ", whose changes are reviewed"))
			return true
		}
		if err != nil {
			w.fail(err)
			return true
		}
		if !reviewUnseen[i] {
			vals = append(vals, rules.QuoteLiteral(c), "("+e+")::pg_catalog.text")
			continue
		}
		wb, err := w.reviewWriteBack(rel, tab, alias, c, e)
		if err != nil {
			w.fail(err)
			return true
		}
		writeBacks = append(writeBacks, wb)
	}
	newValues := "pg_catalog.jsonb_build_object(" + strings.Join(vals, ", ") + ")"
	for _, wb := range writeBacks {
		newValues += " OPERATOR(pg_catalog.||) " + wb
	}
	call := schema.RequestChange + "(" + strings.Join([]string{
		rules.QuoteLiteral(pr.Login),
		rules.QuoteLiteral(pr.Role.Name),
		rules.QuoteLiteral(tab.Name.String()),
		"pg_catalog.jsonb_build_object(" + strings.Join(key, ", ") + ")",
		newValues,
		rules.QuoteLiteral(w.normalized()),
		RowVersion(alias),
	}, ", ") + ")"
	if len(keep) == 0 {
		call = "NOT " + call
	}
	if len(writeBacks) > 0 {
		// Nothing left to change in this row: no request; the exempt
		// columns, if any, are still updated.
		call = fmt.Sprintf("CASE WHEN (%s) OPERATOR(pg_catalog.=) '{}'::pg_catalog.jsonb THEN %t ELSE %s END", newValues, len(keep) > 0, call)
	}
	callNode, err := parseExpr(call)
	if err != nil {
		w.fail(err)
		return true
	}
	again, ok := rows()
	if !ok {
		return true
	}
	no, _ := parseExpr("false")
	guard := pg_query.MakeCaseExprNode(nil, []*pg_query.Node{pg_query.MakeCaseWhenNode(again, callNode, -1)}, -1)
	guard.GetCaseExpr().Defresult = no
	if len(keep) == 0 {
		// Nothing is updated; SET needs a column: the key, to itself.
		k := rel.PrimaryKey[0]
		keep = []*pg_query.Node{pg_query.MakeResTargetNodeWithNameAndVal(k,
			pg_query.MakeColumnRefNode([]*pg_query.Node{pg_query.MakeStrNode(alias), pg_query.MakeStrNode(k)}, -1), -1)}
		s.WhereClause = guard
	} else {
		s.WhereClause = andNodes(andNodes(in, check), guard)
	}
	s.TargetList = keep
	w.leaky = true
	return true
}

func pickValues(cols []string, values []*pg_query.Node, want []string) []*pg_query.Node {
	var out []*pg_query.Node
	for _, c := range want {
		for i, have := range cols {
			if have == c {
				out = append(out, values[i])
			}
		}
	}
	return out
}

// normalized is the statement's text with its constants replaced, for the
// change request and the access log: it never holds a value.
func (w *walker) normalized() string {
	out, err := pg_query.Normalize(w.text)
	if err != nil {
		return "(statement not normalizable)"
	}
	return out
}

// reviewWriteBack renders the part of a change request's new values for
// column col, which the role does not see raw, set to the expression e
// (see reviewUpdate): empty for a write-back of what the role is shown.
func (w *walker) reviewWriteBack(rel *Relation, tab *rules.Table, alias, col, e string) (string, error) {
	shownNode, _, err := w.rw.qualifiedView(tab, *rel.Column(col), alias)
	if err != nil {
		return "", err
	}
	shown, err := deparseExpr(shownNode)
	if err != nil {
		return "", err
	}
	pr := w.rw.ctx.Principal
	if pr.Role.BlindWrite(tab.Name, col) {
		return fmt.Sprintf("CASE WHEN (%s) IS NOT DISTINCT FROM (%s) THEN '{}'::pg_catalog.jsonb ELSE pg_catalog.jsonb_build_object(%s, (%s)::pg_catalog.text) END",
			e, shown, rules.QuoteLiteral(col), e), nil
	}
	msg := fmt.Sprintf("pgcloak: UPDATE of column %s of %s may only write back the value role %q is shown (list it under blind_writes to allow writing it unseen) (rule: roles.%s.blind_writes)",
		col, tab.Name, pr.Role.Name, pr.Role.Name)
	return fmt.Sprintf("CASE WHEN (%s) IS NOT DISTINCT FROM (%s) OR %s(%s) THEN '{}'::pg_catalog.jsonb END",
		e, shown, schema.CheckViolation, rules.QuoteLiteral(msg)), nil
}

// Package anonymity measures the k-anonymity of what a role of the rules
// sees of the data subjects: the size of the smallest group of subjects
// that share one combination of the values the role can read of the
// subject table (shown, masked, generalized or banded), computed in the
// database by a GROUP BY rewritten for the role exactly as its own session
// would have it rewritten.
//
// Quasi-identifiers are every column of the subject table the role reads
// with a value: shown, masked (generalized, banded, partial, constant) or
// pseudonymized, except key columns that are pseudonymized. A pseudonymized
// key is an identifier by design, unique per subject and meaningful only
// inside the role's own pseudonym scope; counting it would make every view
// k = 1. A key shown raw is counted: it names the subject to anyone with
// the CRM, so it gives k = 1, and Result.RawKeys lists it. Hidden and denied
// columns carry nothing and are left out. Other pseudonymized columns are
// counted (the pseudonym of a first name is as common as the name).
//
// The measure covers the subject table, one row per subject. Linked tables
// (orders, tickets) describe events of a subject; a role that reads them
// joined to the subject's pseudonym learns more than the subject table
// shows, which k of the subject table does not capture (docs/rules.md).
package anonymity

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/pgcloak/pgcloak/catalog"
	"github.com/pgcloak/pgcloak/rewrite"
	"github.com/pgcloak/pgcloak/rules"
)

// Result is the k-anonymity of one role's view of the subject table.
type Result struct {
	Role  string `json:"role"`
	Login string `json:"login"` // the principal measured
	Table string `json:"table"` // the subject table
	// Subjects is the number of subjects the role sees, Groups the number
	// of distinct combinations of quasi-identifiers among them.
	Subjects int64 `json:"subjects"`
	Groups   int64 `json:"groups"`
	// K is the size of the smallest group; 0 when the role sees no subject.
	K int64 `json:"k"`
	// MinK is anonymity.min_k of the rules (0: none set).
	MinK int `json:"min_k"`
	// BelowMinK is the number of subjects in groups smaller than MinK.
	BelowMinK int64 `json:"below_min_k"`
	// OK: MinK is met (or not set, or the role sees no subject).
	OK bool `json:"ok"`
	// QuasiIdentifiers are the columns grouped by, in table order.
	QuasiIdentifiers []Column `json:"quasi_identifiers"`
	// Drivers are the quasi-identifiers whose removal alone raises K, the
	// one that raises it most first; when no single one does and K is below
	// max(MinK, 2), the columns that, removed one after the other (each
	// time the one raising K most), bring K there.
	Drivers []string `json:"drivers"`
	// PseudonymizedKeys are key columns the role sees pseudonymized (left
	// out); RawKeys are key columns it sees raw (counted).
	PseudonymizedKeys []string `json:"pseudonymized_keys"`
	RawKeys           []string `json:"raw_keys"`
}

// Column is one quasi-identifier.
type Column struct {
	Name string `json:"name"`
	// View is what the role sees: show, pseudonymize, or mask:NAME.
	View string `json:"view"`
	// KWithout is K when this column alone is left out.
	KWithout int64 `json:"k_without"`
}

// Roles lists the roles the rules' anonymity threshold applies to: those
// whose profile pseudonymizes keys (rules.Role.Anonymizing), in file order.
func Roles(pol *rules.Policy) []string {
	var out []string
	for _, r := range pol.Roles() {
		if r.Anonymizing() {
			out = append(out, r.Name)
		}
	}
	return out
}

// MeasureAll measures every role of Roles(pol).
func MeasureAll(ctx context.Context, conn *pgx.Conn, pol *rules.Policy) ([]*Result, error) {
	var out []*Result
	for _, r := range Roles(pol) {
		res, err := Measure(ctx, conn, pol, r)
		if err != nil {
			return nil, err
		}
		out = append(out, res)
	}
	return out, nil
}

// Measure measures role's view, as the first login of the rules mapped to
// it (its attribute query, if any, runs on conn). conn must be able to read
// the subject table (the tables' owner, as pgcloak check connects).
func Measure(ctx context.Context, conn *pgx.Conn, pol *rules.Policy, role string) (*Result, error) {
	r := pol.Role(role)
	if r == nil {
		return nil, fmt.Errorf("anonymity: no role %q in the rules", role)
	}
	logins := pol.LoginsOf(role)
	if len(logins) == 0 {
		return nil, fmt.Errorf("anonymity: role %q has no login in the rules to measure it as", role)
	}
	pr, err := rules.Resolve(ctx, pol, conn.QueryRow, logins[0])
	if err != nil {
		return nil, fmt.Errorf("anonymity: role %q: %w", role, err)
	}
	return MeasureAs(ctx, conn, pol, pr)
}

// MeasureAs measures what principal pr sees.
func MeasureAs(ctx context.Context, conn *pgx.Conn, pol *rules.Policy, pr *rules.Principal) (*Result, error) {
	subj := pol.Subject()
	if subj == nil {
		return nil, errors.New("anonymity: the rules name no subject")
	}
	if pr.Unrestricted() {
		return nil, fmt.Errorf("anonymity: role %q is unrestricted: it sees everything", pr.Role.Name)
	}
	res := &Result{Role: pr.Role.Name, Login: pr.Login, Table: subj.Table.String(), MinK: pol.MinK(),
		QuasiIdentifiers: []Column{}, Drivers: []string{}, PseudonymizedKeys: []string{}, RawKeys: []string{}}
	if !pr.Table(subj.Table).Allowed {
		res.OK = true // it sees no subject
		return res, nil
	}
	cols, err := tableColumns(ctx, conn, subj.Table)
	if err != nil {
		return nil, err
	}
	for _, col := range cols {
		c := col.name
		v := pr.Column(subj.Table, c)
		key := pol.KeyColumn(subj.Table, c)
		view := v.Action.String()
		switch {
		case v.Action == rules.Hide || v.Action == rules.Deny:
			continue
		case v.Mask != nil && v.Mask.Kind == rules.MaskNull:
			continue
		case v.Mask != nil && v.Mask.Kind == rules.MaskPseudonymize:
			if key {
				res.PseudonymizedKeys = append(res.PseudonymizedKeys, c)
				continue
			}
			view = "pseudonymize"
		case v.Coarsen != "" && rules.FamilyOf(col.typ) == rules.FamilyTemporal:
			view = "coarsen:" + v.Coarsen
		case v.Action == rules.MaskValue:
			view = "mask:" + v.Mask.Name
		case key:
			res.RawKeys = append(res.RawKeys, c)
		}
		res.QuasiIdentifiers = append(res.QuasiIdentifiers, Column{Name: c, View: view})
	}
	cat, err := catalog.Load(ctx, conn.Query)
	if err != nil {
		return nil, err
	}
	rw, err := rewrite.NewRewriterAs(cat, pol, pr)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(res.QuasiIdentifiers))
	for i, q := range res.QuasiIdentifiers {
		names[i] = q.Name
	}
	g, err := groups(ctx, conn, rw, subj.Table, names, res.MinK)
	if err != nil {
		return nil, err
	}
	res.K, res.Groups, res.Subjects, res.BelowMinK = g.k, g.groups, g.subjects, g.below
	for i := range res.QuasiIdentifiers {
		rest := append(append([]string(nil), names[:i]...), names[i+1:]...)
		gw, err := groups(ctx, conn, rw, subj.Table, rest, res.MinK)
		if err != nil {
			return nil, err
		}
		res.QuasiIdentifiers[i].KWithout = gw.k
	}
	var drivers []Column
	for _, q := range res.QuasiIdentifiers {
		if q.KWithout > res.K {
			drivers = append(drivers, q)
		}
	}
	sort.SliceStable(drivers, func(i, j int) bool { return drivers[i].KWithout > drivers[j].KWithout })
	for _, d := range drivers {
		res.Drivers = append(res.Drivers, d.Name)
	}
	if target := int64(max(res.MinK, 2)); len(drivers) == 0 && res.K < target && res.Subjects >= target {
		// No single column is to blame: name, greedily, the columns whose
		// removal raises K the most until it reaches the target.
		if res.Drivers, err = greedy(ctx, conn, rw, subj.Table, names, res.MinK, target); err != nil {
			return nil, err
		}
	}
	res.OK = res.MinK == 0 || res.Subjects == 0 || res.K >= int64(res.MinK)
	return res, nil
}

// greedy drops, one at a time, the column whose removal gives the largest
// K (ties: the fewest groups lost first), until K reaches target, and
// returns the columns dropped in order.
func greedy(ctx context.Context, conn *pgx.Conn, rw func(string) (string, error), t rules.TableName, cols []string, minK int, target int64) ([]string, error) {
	var dropped []string
	cols = append([]string(nil), cols...)
	for len(cols) > 0 {
		best, bestK, bestGroups := -1, int64(-1), int64(-1)
		for i := range cols {
			rest := append(append([]string(nil), cols[:i]...), cols[i+1:]...)
			g, err := groups(ctx, conn, rw, t, rest, minK)
			if err != nil {
				return nil, err
			}
			if g.k > bestK || g.k == bestK && g.groups < bestGroups {
				best, bestK, bestGroups = i, g.k, g.groups
			}
		}
		dropped = append(dropped, cols[best])
		cols = append(cols[:best], cols[best+1:]...)
		if bestK >= target {
			break
		}
	}
	return dropped, nil
}

type grouping struct{ k, groups, subjects, below int64 }

// groups runs, as the role, the GROUP BY over cols of the subject table.
func groups(ctx context.Context, conn *pgx.Conn, rw func(string) (string, error), t rules.TableName, cols []string, minK int) (grouping, error) {
	var by string
	if len(cols) > 0 {
		q := make([]string, len(cols))
		for i, c := range cols {
			q[i] = rules.QuoteIdent(c)
		}
		by = " GROUP BY " + strings.Join(q, ", ")
	}
	sql := "SELECT coalesce(min(g.n), 0), count(*), coalesce(sum(g.n), 0), coalesce(sum(g.n) FILTER (WHERE g.n < " +
		strconv.Itoa(minK) + "), 0) FROM (SELECT count(*) AS n FROM " + t.SQL() + by + ") AS g"
	out, err := rw(sql)
	if err != nil {
		return grouping{}, fmt.Errorf("anonymity: %w", err)
	}
	var g grouping
	if err := conn.QueryRow(ctx, out).Scan(&g.k, &g.groups, &g.subjects, &g.below); err != nil {
		return grouping{}, fmt.Errorf("anonymity: grouping %s: %w", t, err)
	}
	if g.subjects == 0 {
		g.groups = 0
	}
	return g, nil
}

type column struct{ name, typ string }

func tableColumns(ctx context.Context, conn *pgx.Conn, t rules.TableName) ([]column, error) {
	rows, err := conn.Query(ctx, `SELECT a.attname::text, pg_catalog.format_type(a.atttypid, a.atttypmod) FROM pg_catalog.pg_attribute a
		WHERE a.attrelid = pg_catalog.to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`, t.SQL())
	if err != nil {
		return nil, err
	}
	cols, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (column, error) {
		var c column
		err := r.Scan(&c.name, &c.typ)
		return c, err
	})
	if err != nil {
		return nil, err
	}
	if len(cols) == 0 {
		return nil, fmt.Errorf("anonymity: table %s does not exist", t)
	}
	return cols, nil
}

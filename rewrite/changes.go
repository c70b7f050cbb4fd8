package rewrite

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	pg_query "github.com/pganalyze/pg_query_go/v6"

	"github.com/pgcloak/pgcloak/rules"
)

// ChangeRequest is a held change to personal data (review.go).
type ChangeRequest struct {
	ID          int64             `json:"id"`
	RequestedAt time.Time         `json:"requested_at"`
	Requester   string            `json:"requester"`
	Role        string            `json:"requester_role"`
	Table       string            `json:"table"`
	Key         map[string]any    `json:"row_key"`
	NewValues   map[string]string `json:"new_values"`
	Statement   string            `json:"statement"`
	Status      string            `json:"status"`
	DecidedBy   *string           `json:"decided_by,omitempty"`
	DecidedAt   *time.Time        `json:"decided_at,omitempty"`
	Note        *string           `json:"note,omitempty"`
	// RowVersion binds the request to the row as it was (RowVersion); nil
	// for requests recorded before pgcloak kept versions, which are not
	// applied.
	RowVersion *string `json:"row_version,omitempty"`
}

const changeColumns = `id, requested_at, requester, requester_role, table_name, row_key, new_values, statement,
	status, decided_by, decided_at, decision_note, row_version`

func scanChange(row pgx.Row) (*ChangeRequest, error) {
	var c ChangeRequest
	var key, vals []byte
	if err := row.Scan(&c.ID, &c.RequestedAt, &c.Requester, &c.Role, &c.Table, &key, &vals, &c.Statement,
		&c.Status, &c.DecidedBy, &c.DecidedAt, &c.Note, &c.RowVersion); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(key, &c.Key); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(vals, &c.NewValues); err != nil {
		return nil, err
	}
	return &c, nil
}

// ListChanges lists change requests, newest first; status "" lists all.
func ListChanges(ctx context.Context, conn *pgx.Conn, status string) ([]*ChangeRequest, error) {
	rows, err := conn.Query(ctx, "SELECT "+changeColumns+" FROM pgcloak.change_requests WHERE $1 = '' OR status = $1 ORDER BY id DESC", status)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*ChangeRequest
	for rows.Next() {
		c, err := scanChange(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// GetChange reads one change request.
func GetChange(ctx context.Context, conn *pgx.Conn, id int64) (*ChangeRequest, error) {
	c, err := scanChange(conn.QueryRow(ctx, "SELECT "+changeColumns+" FROM pgcloak.change_requests WHERE id = $1", id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("no change request %d", id)
	}
	return c, err
}

// Approver is the login a connection is authenticated as (session_user):
// the approving command connects as the approver's own database login, so
// that PostgreSQL, not a command-line flag, says who decides.
func Approver(ctx context.Context, conn *pgx.Conn) (string, error) {
	var login string
	err := conn.QueryRow(ctx, "SELECT pg_catalog.session_user()::text").Scan(&login)
	return login, err
}

// decide locks a pending request for an approver who is a principal of the
// rules whose role may approve changes (approve_changes), and not its
// requester. The caller must have authenticated the approver (Approver).
func decide(ctx context.Context, tx pgx.Tx, pol *rules.Policy, id int64, approver string) (*ChangeRequest, *rules.Policy, error) {
	c, err := scanChange(tx.QueryRow(ctx, "SELECT "+changeColumns+" FROM pgcloak.change_requests WHERE id = $1 FOR UPDATE", id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil, fmt.Errorf("no change request %d", id)
	}
	if err != nil {
		return nil, nil, err
	}
	if c.Status != "pending" {
		return nil, nil, fmt.Errorf("change request %d is already %s", id, c.Status)
	}
	if approver == c.Requester {
		return nil, nil, fmt.Errorf("change request %d: %s requested it and may not also approve or reject it", id, approver)
	}
	apr, err := pol.Principal(approver)
	if err != nil {
		return nil, nil, fmt.Errorf("approver: %w", err)
	}
	if !apr.Role.ApproveChanges || apr.Delegating {
		return nil, nil, fmt.Errorf("change request %d: %s (role %s) may not approve or reject changes: the role has no approve_changes", id, approver, apr.Role.Name)
	}
	return c, pol, nil
}

// RejectChange marks a pending request rejected under the rules pol; the
// row stays as it was.
func RejectChange(ctx context.Context, conn *pgx.Conn, pol *rules.Policy, id int64, approver, note string) error {
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, _, err := decide(ctx, tx, pol, id, approver); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `UPDATE pgcloak.change_requests SET status = 'rejected', decided_by = $2,
			decided_at = now(), decision_note = $3 WHERE id = $1`, id, approver, note)
		return err
	})
}

// ApplyChange applies a pending request as its requester would have: the
// row must still be inside the requester's row filter and purposes now,
// and stay inside with the new values; otherwise nothing changes and the
// request stays pending. pol are the rules in force and cat the catalog
// snapshot (nil when none is loaded).
func ApplyChange(ctx context.Context, conn *pgx.Conn, pol *rules.Policy, cat *Catalog, id int64, approver string) error {
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		c, pol, err := decide(ctx, tx, pol, id, approver)
		if err != nil {
			return err
		}
		sql, err := applySQL(ctx, tx, pol, cat, c)
		if err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, sql)
		if err != nil {
			return fmt.Errorf("change request %d: %w", id, err)
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("change request %d: the row changed since the request, is gone, or is no longer within the row filter of %s (role %s); nothing was applied",
				id, c.Requester, c.Role)
		}
		_, err = tx.Exec(ctx, `UPDATE pgcloak.change_requests SET status = 'applied', decided_by = $2, decided_at = now() WHERE id = $1`, id, approver)
		return err
	})
}

// applySQL renders the UPDATE that applies a request under the
// requester's current principal.
func applySQL(ctx context.Context, tx pgx.Tx, pol *rules.Policy, cat *Catalog, c *ChangeRequest) (string, error) {
	pr, err := pol.Resolve(ctx, tx, c.Requester)
	if err != nil {
		return "", fmt.Errorf("requester: %w", err)
	}
	if pr.Unrestricted() {
		return "", fmt.Errorf("requester %s is now unrestricted; they can make the change themselves", c.Requester)
	}
	if cat == nil {
		return "", errors.New("catalog not loaded")
	}
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

package schema

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// ChangeRequest is a held change to personal data: a row of
// pgcloak.change_requests (rewrite/review.go says when a change is held).
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
	// RowVersion binds the request to the row as it was
	// (rewrite.RowVersion); nil for requests recorded before pgcloak kept
	// versions, which are not applied.
	RowVersion *string `json:"row_version,omitempty"`
}

// pending is the state of a request no one has decided yet (then
// applied or rejected).
const pending = "pending"

const changeColumns = `id, requested_at, requester, requester_role, table_name, row_key, new_values, statement,
	status, decided_by, decided_at, decision_note, row_version`

func scanChange(rows Rows) (*ChangeRequest, error) {
	var c ChangeRequest
	var key, vals []byte
	if err := rows.Scan(&c.ID, &c.RequestedAt, &c.Requester, &c.Role, &c.Table, &key, &vals, &c.Statement,
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
func ListChanges[R Rows](ctx context.Context, query Query[R], status string) ([]*ChangeRequest, error) {
	rows, err := query(ctx, "SELECT "+changeColumns+" FROM pgcloak.change_requests WHERE $1 = '' OR status = $1 ORDER BY id DESC", status)
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
func GetChange[R Rows](ctx context.Context, query Query[R], id int64) (*ChangeRequest, error) {
	return getChange(ctx, query, "SELECT "+changeColumns+" FROM pgcloak.change_requests WHERE id = $1", id)
}

func getChange[R Rows](ctx context.Context, query Query[R], sql string, id int64) (*ChangeRequest, error) {
	rows, err := query(ctx, sql, id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("no change request %d", id)
	}
	c, err := scanChange(rows)
	if err != nil {
		return nil, err
	}
	rows.Close()
	return c, rows.Err()
}

// LockChange reads a pending change request inside the transaction whose
// Query method query is, and locks it until the transaction ends, for an
// approver who is not its requester. Whether the approver's role may
// decide is the rules' question, not this package's.
func LockChange[R Rows](ctx context.Context, query Query[R], id int64, approver string) (*ChangeRequest, error) {
	c, err := getChange(ctx, query, "SELECT "+changeColumns+" FROM pgcloak.change_requests WHERE id = $1 FOR UPDATE", id)
	if err != nil {
		return nil, err
	}
	if c.Status != pending {
		return nil, fmt.Errorf("change request %d is already %s", id, c.Status)
	}
	if approver == c.Requester {
		return nil, fmt.Errorf("change request %d: %s requested it and may not also approve or reject it", id, approver)
	}
	return c, nil
}

// MarkRejected records that approver rejected a request, with a note.
func MarkRejected[T any](ctx context.Context, exec Exec[T], id int64, approver, note string) error {
	_, err := exec(ctx, `UPDATE pgcloak.change_requests SET status = 'rejected', decided_by = $2,
			decided_at = now(), decision_note = $3 WHERE id = $1`, id, approver, note)
	return err
}

// MarkApplied records that approver applied a request.
func MarkApplied[T any](ctx context.Context, exec Exec[T], id int64, approver string) error {
	_, err := exec(ctx, `UPDATE pgcloak.change_requests SET status = 'applied', decided_by = $2, decided_at = now() WHERE id = $1`, id, approver)
	return err
}

// Approver is the login a connection is authenticated as (session_user):
// the approving command connects as the approver's own database login, so
// that PostgreSQL, not a command-line flag, says who decides.
func Approver[R Rows](ctx context.Context, query Query[R]) (string, error) {
	var login string
	err := queryRow(ctx, query, "SELECT pg_catalog.session_user()::text", nil, &login)
	if errors.Is(err, errNoRows) {
		err = errors.New("session_user returned no row")
	}
	return login, err
}

package rewrite

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/pgcloak/pgcloak/rules"
	"github.com/pgcloak/pgcloak/schema"
)

// The engine's part of deciding a change request (package schema holds the
// requests; ChangeSQL renders the change): the approver must be a
// principal of the rules whose role may approve changes, and the change is
// applied as its requester's principal would make it now.

// decide locks a pending request for an approver who is a principal of the
// rules whose role may approve changes (approve_changes), and not its
// requester. The caller must have authenticated the approver (Approver).
func (e *Engine) decide(ctx context.Context, tx pgx.Tx, id int64, approver string) (*schema.ChangeRequest, *rules.Policy, error) {
	c, err := schema.LockChange(ctx, tx.Query, id, approver)
	if err != nil {
		return nil, nil, err
	}
	pol := e.rules()
	apr, err := pol.Principal(approver)
	if err != nil {
		return nil, nil, fmt.Errorf("approver: %w", err)
	}
	if !apr.Role.ApproveChanges || apr.Delegating {
		return nil, nil, fmt.Errorf("change request %d: %s (role %s) may not approve or reject changes: the role has no approve_changes", id, approver, apr.Role.Name)
	}
	return c, pol, nil
}

// RejectChange marks a pending request rejected; the row stays as it was.
func (e *Engine) RejectChange(ctx context.Context, conn *pgx.Conn, id int64, approver, note string) error {
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, _, err := e.decide(ctx, tx, id, approver); err != nil {
			return err
		}
		return schema.MarkRejected(ctx, tx.Exec, id, approver, note)
	})
}

// ApplyChange applies a pending request as its requester would have: the
// row must still be inside the requester's row filter and purposes now,
// and stay inside with the new values; otherwise nothing changes and the
// request stays pending.
func (e *Engine) ApplyChange(ctx context.Context, conn *pgx.Conn, id int64, approver string) error {
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		c, pol, err := e.decide(ctx, tx, id, approver)
		if err != nil {
			return err
		}
		sql, err := e.applySQL(ctx, tx, pol, c)
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
		return schema.MarkApplied(ctx, tx.Exec, id, approver)
	})
}

// applySQL renders the UPDATE that applies a request under the
// requester's current principal.
func (e *Engine) applySQL(ctx context.Context, tx pgx.Tx, pol *rules.Policy, c *schema.ChangeRequest) (string, error) {
	pr, err := pol.Resolve(ctx, tx, c.Requester)
	if err != nil {
		return "", fmt.Errorf("requester: %w", err)
	}
	if pr.Unrestricted() {
		return "", fmt.Errorf("requester %s is now unrestricted; they can make the change themselves", c.Requester)
	}
	st := e.state.Load()
	if st == nil {
		return "", errors.New("catalog not loaded")
	}
	return ChangeSQL(st.cat, pol, pr, c)
}

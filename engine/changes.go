package engine

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/pgcloak/pgcloak/rewrite"
	"github.com/pgcloak/pgcloak/rules"
	"github.com/pgcloak/pgcloak/schema"
)

// Change requests (package schema) are decided under the rules in
// force and applied against the engine's catalog snapshot.

// RejectChange marks a pending change request rejected; the row stays as
// it was.
func (e *Engine) RejectChange(ctx context.Context, conn *pgx.Conn, id int64, approver, note string) error {
	return rejectChange(ctx, conn, e.rules(), id, approver, note)
}

// ApplyChange applies a pending change request as its requester would
// have (applyChange).
func (e *Engine) ApplyChange(ctx context.Context, conn *pgx.Conn, id int64, approver string) error {
	var cat *rewrite.Catalog
	if st := e.state.Load(); st != nil {
		cat = st.cat
	}
	return applyChange(ctx, conn, e.rules(), cat, id, approver)
}

// Deciding a change request: package schema holds the requests, the rules
// say who may decide, and ChangeSQL renders the change as the requester's
// principal would be allowed to make it now. These functions use nothing
// of the rewriter but rewrite.ChangeSQL.

// decide locks a pending request for an approver who is a principal of the
// rules pol whose role may approve changes (approve_changes), and not its
// requester. The caller must have authenticated the approver
// (schema.Approver).
func decide(ctx context.Context, tx pgx.Tx, pol *rules.Policy, id int64, approver string) (*schema.ChangeRequest, error) {
	c, err := schema.LockChange(ctx, tx.Query, id, approver)
	if err != nil {
		return nil, err
	}
	apr, err := pol.Principal(approver)
	if err != nil {
		return nil, fmt.Errorf("approver: %w", err)
	}
	if !apr.Role.ApproveChanges || apr.Delegating {
		return nil, fmt.Errorf("change request %d: %s (role %s) may not approve or reject changes: the role has no approve_changes", id, approver, apr.Role.Name)
	}
	return c, nil
}

// rejectChange marks a pending request rejected under the rules pol; the
// row stays as it was.
func rejectChange(ctx context.Context, conn *pgx.Conn, pol *rules.Policy, id int64, approver, note string) error {
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := decide(ctx, tx, pol, id, approver); err != nil {
			return err
		}
		return schema.MarkRejected(ctx, tx.Exec, id, approver, note)
	})
}

// applyChange applies a pending request as its requester would have: the
// row must still be inside the requester's row filter and purposes now,
// and stay inside with the new values; otherwise nothing changes and the
// request stays pending. pol are the rules in force and cat the catalog
// snapshot (nil when none is loaded).
func applyChange(ctx context.Context, conn *pgx.Conn, pol *rules.Policy, cat *rewrite.Catalog, id int64, approver string) error {
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		c, err := decide(ctx, tx, pol, id, approver)
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
		return schema.MarkApplied(ctx, tx.Exec, id, approver)
	})
}

// applySQL renders the UPDATE that applies a request under the
// requester's current principal.
func applySQL(ctx context.Context, tx pgx.Tx, pol *rules.Policy, cat *rewrite.Catalog, c *schema.ChangeRequest) (string, error) {
	pr, err := rules.Resolve(ctx, pol, tx.QueryRow, c.Requester)
	if err != nil {
		return "", fmt.Errorf("requester: %w", err)
	}
	if pr.Unrestricted() {
		return "", fmt.Errorf("requester %s is now unrestricted; they can make the change themselves", c.Requester)
	}
	if cat == nil {
		return "", errors.New("catalog not loaded")
	}
	return rewrite.ChangeSQL(cat, pol, pr, c)
}

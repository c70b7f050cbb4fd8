package engine

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/pgcloak/pgcloak/rewrite"
)

// Change requests (rewrite/changes.go) are decided under the rules in
// force and applied against the engine's catalog snapshot.

// RejectChange marks a pending change request rejected; the row stays as
// it was.
func (e *Engine) RejectChange(ctx context.Context, conn *pgx.Conn, id int64, approver, note string) error {
	return rewrite.RejectChange(ctx, conn, e.rules(), id, approver, note)
}

// ApplyChange applies a pending change request as its requester would
// have (rewrite.ApplyChange).
func (e *Engine) ApplyChange(ctx context.Context, conn *pgx.Conn, id int64, approver string) error {
	var cat *rewrite.Catalog
	if st := e.state.Load(); st != nil {
		cat = st.cat
	}
	return rewrite.ApplyChange(ctx, conn, e.rules(), cat, id, approver)
}

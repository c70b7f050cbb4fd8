package rewrite

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// Change requests (changes.go) are decided under the rules in force and
// applied against the engine's catalog snapshot.

// RejectChange marks a pending change request rejected; the row stays as
// it was.
func (e *Engine) RejectChange(ctx context.Context, conn *pgx.Conn, id int64, approver, note string) error {
	return RejectChange(ctx, conn, e.rules(), id, approver, note)
}

// ApplyChange applies a pending change request as its requester would
// have (ApplyChange).
func (e *Engine) ApplyChange(ctx context.Context, conn *pgx.Conn, id int64, approver string) error {
	var cat *Catalog
	if st := e.state.Load(); st != nil {
		cat = st.cat
	}
	return ApplyChange(ctx, conn, e.rules(), cat, id, approver)
}

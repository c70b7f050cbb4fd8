package schema

// optOutHistorySQL creates the history of opt-out changes made outside the
// CRM's own screens (the customers' portal, DESIGN.md §2.3): one row per
// change, never updated or deleted. The portal's login may insert and read
// it (docs/portal.md); nobody else is granted anything.
const optOutHistorySQL = `
CREATE TABLE IF NOT EXISTS pgcloak.opt_out_history (
	id         bigserial PRIMARY KEY,
	changed_at timestamptz NOT NULL DEFAULT now(),
	subject    text NOT NULL,
	purpose    text NOT NULL,
	opted_out  boolean NOT NULL,
	source     text NOT NULL DEFAULT 'portal',
	changed_by text NOT NULL DEFAULT current_user
);
CREATE INDEX IF NOT EXISTS opt_out_history_subject ON pgcloak.opt_out_history (subject, changed_at);
REVOKE ALL ON pgcloak.opt_out_history FROM PUBLIC;
REVOKE ALL ON SEQUENCE pgcloak.opt_out_history_id_seq FROM PUBLIC;
`

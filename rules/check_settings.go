package rules

import (
	"fmt"

	"github.com/pgcloak/pgcloak/schema"
)

// settingsTriggers reports triggers whose functions change session
// settings. pgcloak reads a restricted session's SQL under the settings it
// follows (standard_conforming_strings, client_encoding, search_path); a
// trigger that changes one in the session that fired it does so behind
// pgcloak's back: the server reports the change only at the next
// ReadyForQuery (search_path not at all before PostgreSQL 18), so
// statements pipelined after the write were already read under the new
// setting. Such a trigger is the database owner's to remove.
func settingsTriggers[R schema.Rows](db *database[R]) ([]Finding, error) {
	rows, err := db.query(db.ctx, `
		SELECT n.nspname, c.relname, t.tgname, pn.nspname, p.proname
		FROM pg_catalog.pg_trigger t
		JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid
		JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		JOIN pg_catalog.pg_proc p ON p.oid = t.tgfoid
		JOIN pg_catalog.pg_namespace pn ON pn.oid = p.pronamespace
		WHERE NOT t.tgisinternal
		  AND p.prosrc ~* '(set_config|\m(set|reset)\s+(session\s+|local\s+)?("?search_path|"?standard_conforming_strings|"?client_encoding|names|role|session\s+authorization))'
		ORDER BY 1, 2, 3`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Finding
	for rows.Next() {
		var schema, table, trigger, fschema, fname string
		if err := rows.Scan(&schema, &table, &trigger, &fschema, &fname); err != nil {
			return nil, err
		}
		out = append(out, Finding{Severity: SevWarning, Code: "settings-trigger", Table: schema + "." + table,
			Message: fmt.Sprintf("trigger %s runs %s.%s, which changes session settings: statements a restricted session pipelines after a write to this table may be read by the server under settings pgcloak did not check (docs/rewrite.md, Known limits)",
				trigger, fschema, fname)})
	}
	return out, rows.Err()
}

// Package rules reads pgcloak's privacy rules: one YAML file (format in
// docs/rules.md) that says who may see what. Parse and Load decode it
// strictly (unknown keys, duplicate names, wrong types and unknown
// references between sections are errors with file, line and column),
// parse every piece of SQL it holds with the PostgreSQL parser, and compile
// it into an immutable *Policy. Store holds the current Policy and swaps in
// a new one on reload, keeping the old one when the new file is broken.
//
// What a session asks, and where the answer comes from:
//
//   - at connect: Policy.Principal(login) maps a verified login to its
//     Principal (role, attributes, delegating or not), or an
//     *UnmappedLoginError. A principal whose attributes come from an
//     attribute query is not Ready until the caller runs
//     Principal.AttributeQuery and passes the row to Policy.BindAttributes;
//     Resolve does both with the QueryRow method of a connection or
//     transaction (a *pgx.Conn's, a pgx.Tx's: this package imports no
//     driver).
//   - per statement: Principal.Allows(kind), Principal.Table(t) (may the
//     role use the table), Principal.Column(t, col) (show, mask,
//     pseudonymize, hide, deny; ColumnView.SQL renders the expression) and
//     Principal.RowFilter(t) (the predicate with the attributes bound as
//     typed literals). All are map lookups on values built at load time.
//
// The catalog is not needed to load the rules; Policy.CheckCatalog checks
// them against one (tables and columns exist, masks fit column types), and
// CheckDatabase, behind pgcloak check (through internal/dbcheck, which
// gives it a pgx transaction), also reports unclassed and personal-looking
// columns.
package rules

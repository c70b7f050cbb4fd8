// Package catalog is pgcloak's one reader of the database's catalog. Load
// reads, in a few queries over pg_catalog, an immutable snapshot of what
// pgcloak needs to know about the database: its relations and their
// columns, types and primary keys, inheritance and partitions, what views
// read, and which functions, operators and types are built in or
// leakproof.
//
// Three readers use the same snapshot:
//
//   - the rewriter resolves the names of a statement against it and asks
//     it whether a function, operator or type may be named (the engine
//     loads it and swaps in a new one on refresh);
//   - pgcloak check compares the rules with the user's relations
//     (UserRelations) and their column types;
//   - the report lists the tables and their columns.
//
// The snapshot's types and its loader are in one package, and the package
// imports no database driver: Load takes the Query method of the caller's
// connection or transaction (conn.Query of a *pgx.Conn, tx.Query of a
// pgx.Tx), whose rows need only Next, Scan, Err and Close. The rewriter
// imports this package for the snapshot's types; with a driver here, the
// rewriter, which knows SQL and nothing of connections, would depend on
// pgx and its wire protocol package. A subpackage for the loader would
// have kept the driver out too, but would have needed the snapshot's
// fields, or a builder, exported for it: one method value is the smaller
// seam.
package catalog

// Package engine is the session policy engine: the proxy.Policy that
// pgcloak serves. For each authenticated login it finds the principal
// under the rules in force (and, for a delegating application, the end
// user it names), keeps the session's own state as the server acknowledges
// it (end user, SQL-level prepared statements, cursors, a rules reload),
// decides on every statement with the rewriter through a result cache
// and a statement-shape cache (rewrite.ShapeCache),
// refuses what the session may not do, describes each statement for the
// access log, and checks the server's answers (result columns, error
// details, reported settings).
//
// It sits between package proxy, which knows messages and sockets, and
// package rewrite, which knows SQL: it imports both, neither imports it.
// What crosses to the proxy are the proxy's own types (Decision, Error,
// SessionInfo); what crosses to the rewriter are SQL text, the rules and a
// catalog snapshot.
//
//   - engine.go: Engine (catalog snapshots, pgcloak's own connection), the
//     session, its decisions and the wire check.
//   - delegation.go, follow.go: the end user and the session state that
//     follows the server's answers.
//   - startup.go, settings_watch.go: start-up parameters, and settings the
//     server reports later.
//   - bounds.go: what one session may take from everyone (cache bytes,
//     catalog refreshes).
//   - access.go: the descriptions each decision carries for the access
//     log, and Observer, the policy of a pgcloak without rules.
//   - changes.go: change requests decided under the rules in force.
package engine

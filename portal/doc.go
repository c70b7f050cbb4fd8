// Package portal is the customers' own web page (pgcloak portal,
// docs/portal.md): a data subject arrives through a signed, expiring link
// (link.go), sees what the CRM holds about them, changes their opt-outs
// and sends corrections, which become change requests an approver decides
// with pgcloak review.
//
// It is a web application beside the proxy, not behind it: it reads and
// writes the database over its own pool, takes from the rules only the
// subject table, its links and the purposes, and records what it does in
// the access log. It imports neither proxy nor engine nor rewrite.
package portal

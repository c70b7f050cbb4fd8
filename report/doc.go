// Package report is the privacy officer's report (pgcloak report): the
// privacy set-up and the privacy-related activity, for the chief privacy
// officer and for the auditors who verify compliance from it.
//
// Gathering and rendering are apart. Gather reads the facts from three
// sources: the compiled rules (the data model as classed, the profiles,
// what every role sees), the database (its tables and row counts, the
// subjects and their opt-outs counted with the very predicate the rewrite
// applies, the change requests, and pgcloak check's findings), and the
// access log (the activity of the period, and each log's hash chain
// verified with audit.Verify). Facts is the JSON format (WriteJSON);
// WriteHTML renders the same facts as one self-contained page: inline CSS
// and SVG, no script, nothing fetched, printable.
//
// The report holds names, counts and rules, never a value of the
// database: change requests are listed by their columns, not their new
// values, and the access log holds no values to begin with.
package report

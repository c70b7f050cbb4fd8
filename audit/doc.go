// Package audit is pgcloak's access log (design.md §6): one JSON line per
// statement execution and per connection event, hash-chained so that any
// edit, deletion, insertion, reordering or truncation shows, with a file
// sink (size rotation, fsync on rotation and shutdown) and a stream sink
// (stdout, for container log collectors).
//
// The proxy builds Records and Emits them; Emit puts them on a bounded
// queue and one writer goroutine per Log encodes, chains and writes them,
// many to a write. When the sink fails or the queue is full, OnFailure
// decides: FailClosed (the default) makes Admit refuse new statements
// until the log works again, and holds records rather than drop them;
// FailOpen lets statements run and counts the records it loses (a lost
// record in the log says how many).
//
// Verify checks a log, across rotated files and restarts, and names the
// first record where the chain breaks. chain.go describes the chain;
// file.go the sinks, rotation and how a restarted pgcloak continues the
// chain of the run before it.
//
// Records never hold a value: statement text comes normalized (every
// constant replaced) from the policy, parameters and results are never
// read, errors are recorded by SQLSTATE only.
package audit

// Package proxy is pgcloak's PostgreSQL wire-protocol layer: it accepts
// client connections, relays each to a connection of its own to the
// upstream server, and asks a Policy what to do with every message that
// carries SQL. It knows messages and sockets; it knows nothing of the
// privacy rules beyond the Policy interface (policy.go), whose types are
// its own (Decision, Error, Column, ServerError): a policy needs no wire
// type, and package engine, which implements it, sits on the other side
// of that seam.
//
// # Layers
//
//   - server.go: Server accepts connections, enforces the connection limit,
//     dials the upstream (with TLS when configured), forwards cancel
//     requests, and shuts down gracefully.
//   - session.go: one client connection's life until its first
//     ReadyForQuery: SSLRequest (TLS or 'N'), GSSENCRequest ('N'),
//     CancelRequest, the StartupMessage, then the authentication exchange,
//     relayed message by message so that PostgreSQL itself verifies the
//     password. Policy.Open runs when the server says AuthenticationOk and
//     may still refuse the login.
//   - relay.go: the message loop, one goroutine per direction.
//   - evloop_linux.go: the event-loop relay of sessions that are a pure
//     byte relay (no policy, no access log, no TLS), as PgBouncer does it:
//     a few epoll loops, non-blocking reads and writes, no goroutine per
//     session while it lasts.
//   - frame.go: frameReader splits a byte stream into messages in place.
//   - msgtype.go: the message types, one Go type per direction
//     (clientMsg, serverMsg), and the protocol's other one-byte codes.
//   - errors.go: the errors pgcloak raises itself, each with its SQLSTATE.
//   - wirecheck.go, follow.go: the request queue and the server's rules.
//   - reprepare.go: statements and portals of older generations.
//   - shapeprep.go: a statement shape's template prepared once per server
//     connection, and the simple Queries the policy answers from it run
//     as that prepared statement.
//   - limits.go: what one session may keep (prepared statements, portals,
//     their text); past it the session ends with FATAL 54000.
//   - access.go, metrics.go: access records and Prometheus metrics.
//
// # Lifecycle
//
//	accept → [SSLRequest → TLS] → StartupMessage → dial upstream →
//	relay auth (R/p messages) → AuthenticationOk: Policy.Open →
//	ParameterStatus, BackendKeyData → ReadyForQuery → relay loop →
//	Terminate, EOF on either side, or Shutdown
//
// # The relay
//
// Each direction reads as many bytes as the peer has sent, walks the
// complete messages in the buffer without copying them, and writes them on
// with one write. A message is decoded only when something must be known
// about it: Query, Parse and FunctionCall when the session has a policy;
// ReadyForQuery (transaction status, and the count of answered requests);
// ErrorResponse (FATAL, refusals). Everything else is relayed as bytes. A
// server message larger than the buffer (a big DataRow or CopyData) is
// streamed through rather than held; a client message is held whole, up to
// Config.MaxMessageSize.
//
// A session that is a pure byte relay goes to an event loop instead of its
// two goroutines (on Linux, unless Config.GoroutineRelay): the same scan,
// one epoll set for many sessions, so a round trip costs a read and a write
// per direction and no goroutine wake-up. The loop hands the session back
// to the goroutines, with whatever it has read and not yet written, for
// anything but the steady state: a message larger than its buffer, a
// Terminate, a refusal, EOF or an error on a socket, or terminate().
//
// pgcloak never answers for the server, and what it knows of a session
// follows the server's answers, not its own decisions: follow.go models,
// in one place, which requests the server answers (nothing after an
// extended-protocol error until Sync, a simple Query included; Sync
// ignored in COPY FROM STDIN) and applies ParseComplete, CloseComplete,
// CommandComplete and ReadyForQuery to the queue, the prepared statements'
// generations and the policy's own state (Decision.Ack, Follower). In particular
// a refused statement is not answered by pgcloak directly. It is replaced
// by a statement that fails during parse analysis with the refusal encoded in
// its error, and the server-to-client side swaps that error for the
// refusal. The server therefore does exactly what a real error does at that
// point: abort the transaction block, discard extended-protocol messages
// until Sync, keep the statements before it in the pipeline. The client
// sees the refusal's SQLSTATE and message in the place the statement had.
//
// # Access records and metrics
//
// With an access log (Config.AccessLog) or metrics, the relay follows each
// session's requests and answers (wirecheck.go keeps the queue, access.go
// the records): the policy describes every statement when it decides on
// it, and each CommandComplete or ErrorResponse completes the statement it
// answers, the i-th of a simple Query or the Execute of the extended
// protocol (through Bind's portal to Parse's statement). Records are
// queued before the client sees the answer. When the access log cannot be
// written and is set to fail_closed, Admit refuses new statements: a Query
// is replaced by a refusal, an Execute is preceded by a Parse that fails,
// so the server skips it until Sync. Sessions without a policy and without
// an access log stay a pure byte relay.
//
// # Cancellation and faults
//
// BackendKeyData is relayed untouched, so a client's CancelRequest carries
// the server's own key and pgcloak forwards it to the upstream as it
// arrives, on a new connection: any replica can forward any cancel, and no
// state is shared. When a client vanishes while its backend is busy,
// pgcloak cancels the running query before closing the upstream
// connection (a closed socket alone would let the query run on). When the
// upstream vanishes, the client gets FATAL 08006 at a message boundary,
// unless the server already sent its own FATAL.
//
// # Where to start debugging
//
// Run `pgcloak serve --log-level debug` for session start and end. A
// protocol confusion usually shows as a client error naming an unexpected
// message type; compare the same script directly against PostgreSQL and
// through pgcloak with transparency_test.go.
package proxy

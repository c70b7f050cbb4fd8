package proxy

import (
	"bytes"
	"encoding/binary"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgcloak/pgcloak/audit"
)

// WireChecker is implemented by a SessionPolicy that wants the result
// columns of its session checked on the wire (design.md §5.4): a
// RowDescription names the table and column of every plain column of a
// result, so a column that comes straight from a protected column the
// principal may not see raw shows that the rewrite failed. Such columns
// are sent as NULL.
type WireChecker interface {
	// MaskColumns says which columns of a result must not reach the client
	// raw; nil when none. It reports each incident itself.
	MaskColumns(cols []Column) []bool
}

// wireState follows requests and responses closely enough to know which
// RowDescription governs each DataRow. In the simple protocol that is the
// RowDescription just before; in the extended protocol it is the one the
// statement or portal was described with, which may have come many
// messages earlier, or never (then pgcloak describes the portal itself and
// keeps the answer from the client).
//
// The client-to-server side appends the requests it forwards; the
// server-to-client side consumes them as their responses arrive, in order.
type wireState struct {
	mu    sync.Mutex
	queue []wireReq

	// Owned by the client-to-server side: statements described by the
	// client since their Parse; the access-log descriptions of prepared
	// statements and portals.
	described  map[string]bool
	stmtInfo   map[string]*audit.Statement
	portalInfo map[string]*audit.Statement
	// The acknowledgement callbacks of prepared statements and portals
	// (only those whose policy decision asked for one).
	stmtAck, portalAck map[string]func(string)
	// bindGen is the policy generation the Bind being recorded was
	// decided under (reprepare.go).
	bindGen uint64

	// Owned by the server-to-client side.
	stmts   map[string][]bool
	portals map[string][]bool
	cur     []bool // the mask of the simple-protocol result being relayed
	checker WireChecker

	// Access tracking (access.go), owned by the server-to-client side.
	tracking bool
	now      time.Time    // when the batch being processed was read
	errCode  string       // SQLSTATE of the ErrorResponse being processed
	qi       int          // the next statement of the Query at the head
	qAt      time.Time    // when it started
	rows     int64        // DataRows of the Execute at the head
	done     []completion // executions answered in this batch

	// The server's protocol state as its answers show it (follow.go),
	// owned by the server-to-client side.
	skipping bool // an extended-protocol error: the server ignores all until Sync
	copyIn   bool // the request at the head is in COPY FROM STDIN
	// confirmed are the prepared statements the server acknowledged
	// (ParseComplete), with the generation they were decided under;
	// boundGen, the portals it acknowledged (BindComplete), with the
	// generation their Bind was decided under. Under mu.
	confirmed map[string]*preparedStmt
	boundGen  map[string]uint64
	// follower hears of the server's acknowledgements (nil: none).
	follower Follower
	// discarded: what the server dropped, discardedAll (DISCARD ALL: every
	// prepared statement and portal) or discardedStatements (DEALLOCATE
	// ALL: the named statements); the client-to-server side forgets its
	// own at its next message.
	discarded atomic.Int32

	// The statements pgcloak prepared for shapes (shapeprep.go): those
	// the server confirmed, those it refused, those offered once, and
	// those wanted for the next idle moment. Both sides, under mu
	// (wanted: the client-to-server side's); made at the first Query
	// offered one.
	shapes      map[string]*shapeStmt
	shapeFailed map[string]bool
	shapeSeen   map[string]bool // offered once, run as text
	wanted      map[string]*PreparedQuery
	shapeTick   uint64
	counts      *shapeCounts
}

type wireReq struct {
	kind     clientMsg  // the request's message type
	sub      objectKind // for Describe and Close: a statement or a portal
	name     string
	stmt     string // for Bind: the statement
	internal bool   // sent by pgcloak: the response is not relayed

	// For the access log: the statements of a Query, the statement of a
	// Parse, Bind, Execute or FunctionCall, and when it was forwarded.
	stmts []*audit.Statement
	info  *audit.Statement
	at    time.Time
	quiet bool // refused by pgcloak before it ran: no record

	prep *preparedStmt    // for Parse: the statement, as decided
	ack  func(tag string) // called with each CommandComplete the request gets

	// For a Query run as a shape's prepared statement, and for pgcloak's
	// Parse of one: the statement's name; for the Parse, the generation
	// it is prepared under (shapeprep.go).
	shape string
	gen   uint64
}

// internal records a message pgcloak sends on its own; its response is
// kept from the client.
func (w *wireState) internal(kind clientMsg, sub objectKind, name string) {
	w.mu.Lock()
	w.queue = append(w.queue, wireReq{kind: kind, sub: sub, name: name, internal: true})
	w.mu.Unlock()
}

func newWireState(c WireChecker, tracking bool) *wireState {
	return &wireState{checker: c, described: map[string]bool{}, stmts: map[string][]bool{}, portals: map[string][]bool{},
		stmtInfo: map[string]*audit.Statement{}, portalInfo: map[string]*audit.Statement{}, tracking: tracking,
		confirmed: map[string]*preparedStmt{}, boundGen: map[string]uint64{}, stmtAck: map[string]func(string){}, portalAck: map[string]func(string){}}
}

// request records one client message, forwarded at now; stmts are the
// policy's descriptions of its statements (Query, Parse, FunctionCall);
// quiet, a message pgcloak refused before it ran, which gets no record;
// prep, the statement a Parse prepares; ack, the policy's wish to hear of
// the message's CommandCompletes. It returns an extra message for pgcloak
// to send after it (a Describe of a portal nobody described).
func (w *wireState) request(msg []byte, stmts []*audit.Statement, now time.Time, quiet bool, prep *preparedStmt, ack func(string), shape string) (extra []byte) {
	body := msg[5:]
	var r wireReq
	switch typ := clientMsg(msg[0]); typ {
	case clientParse:
		r = wireReq{kind: clientParse, name: cstring(body), prep: prep}
		w.described[r.name] = false
		if w.tracking {
			r.info, r.at = first(stmts), now
			w.stmtInfo[r.name] = r.info
		}
	case clientBind:
		portal := cstring(body)
		stmt := cstring(body[len(portal)+1:])
		r = wireReq{kind: clientBind, name: portal, stmt: stmt, gen: w.bindGen}
		if w.checker != nil && !w.described[stmt] {
			d := &pgproto3.Describe{ObjectType: byte(objectPortal), Name: portal}
			extra, _ = d.Encode(nil)
		}
		if w.tracking {
			r.info, r.at = w.stmtInfo[stmt], now
			w.portalInfo[portal] = r.info
		}
	case clientDescribe:
		if len(body) < 1 {
			return nil
		}
		r = wireReq{kind: clientDescribe, sub: objectKind(body[0]), name: cstring(body[1:])}
		if r.sub == objectStatement {
			w.described[r.name] = true
		}
	case clientExecute:
		r = wireReq{kind: clientExecute, name: cstring(body)}
		if w.tracking {
			r.info, r.at = w.portalInfo[r.name], now
		}
	case clientClose:
		if len(body) < 1 {
			return nil
		}
		r = wireReq{kind: clientClose, sub: objectKind(body[0]), name: cstring(body[1:])}
		if r.sub == objectStatement {
			delete(w.described, r.name)
			delete(w.stmtInfo, r.name)
		} else {
			delete(w.portalInfo, r.name)
		}
	case clientQuery:
		r = wireReq{kind: clientQuery, stmts: stmts, at: now, shape: shape}
	case clientFunctionCall:
		r = wireReq{kind: clientFunctionCall, info: first(stmts), at: now}
	case clientSync:
		r = wireReq{kind: clientSync}
	case clientCopyDone, clientCopyFail:
		// CopyDone and CopyFail get no answer of their own; they mark
		// where a COPY FROM STDIN ends (follow.go).
		r = wireReq{kind: typ}
	default:
		return nil
	}
	r.quiet = quiet
	w.followAcks(&r, ack)
	w.mu.Lock()
	w.queue = append(w.queue, r)
	if extra != nil {
		w.queue = append(w.queue, wireReq{kind: clientDescribe, sub: objectPortal, name: r.name, internal: true})
	}
	w.mu.Unlock()
	return extra
}

func first(stmts []*audit.Statement) *audit.Statement {
	if len(stmts) == 0 {
		return nil
	}
	return stmts[0]
}

// internalParse records a Parse pgcloak sends on its own to prepare a
// client's statement again; stmts describe it as now decided.
func (w *wireState) internalParse(name string, stmts []*audit.Statement, prep *preparedStmt, ack func(string)) {
	r := wireReq{kind: clientParse, name: name, internal: true, prep: prep}
	// The portals bound to it hear of their CommandCompletes through
	// this decision's callback, not the first Parse's.
	w.followAcks(&r, ack)
	w.mu.Lock()
	if w.tracking {
		r.info = first(stmts)
		w.stmtInfo[name] = r.info
	}
	w.queue = append(w.queue, r)
	w.mu.Unlock()
}

func cstring(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}

func (w *wireState) head() *wireReq {
	if len(w.queue) == 0 {
		return nil
	}
	return &w.queue[0]
}

func (w *wireState) pop() { w.queue = w.queue[1:] }

// response processes one server message. When changed, repl is what to
// relay in its place: a masked copy, or nothing.
func (w *wireState) response(msg, scratch []byte) (repl []byte, changed bool) {
	out := w.respond(msg, scratch)
	if len(out) == len(msg) && (len(out) == 0 || &out[0] == &msg[0]) {
		return nil, false
	}
	return out, true
}

func (w *wireState) respond(msg, scratch []byte) []byte {
	w.settle()
	h := w.head()
	switch typ := serverMsg(msg[0]); typ {
	case serverParseComplete, serverBindComplete, serverCloseComplete:
		return w.stepDone(h, typ, msg)
	case serverRowDescription, serverNoData:
		return w.description(h, typ, msg)
	case serverCopyInResponse:
		if h != nil && (h.kind == clientExecute || h.kind == clientQuery) {
			w.copyIn = true
		}
	case serverDataRow:
		return w.dataRow(h, msg, scratch)
	case serverCommandComplete, serverEmptyQueryResponse, serverPortalSuspended:
		w.commandEnded(h, typ, msg)
	case serverFunctionCallResponse:
		if w.tracking && h != nil && h.kind == clientFunctionCall {
			w.completed(h.info, clientFunctionCall, h.at, -1, false, "")
		}
	case serverErrorResponse:
		w.cur = nil
		w.rows = 0
		w.copyEnded(false)
		if w.shapeFailedAt(h, msg) {
			w.errored(h)
			return nil
		}
		if h != nil && h.internal && isFatal(msg) {
			// The session's end, while a request of pgcloak's own ran:
			// it answers the client's request behind.
			for h != nil && h.internal {
				w.pop()
				h = w.head()
			}
		}
		w.failed(h)
		w.errored(h)
	case serverReadyForQuery:
		w.cur = nil
		w.qi = 0
		internal := w.ready(msg[5])
		delete(w.portals, "")
		if internal {
			return nil
		}
	}
	return msg
}

// stepDone handles a ParseComplete, BindComplete or CloseComplete: it
// answers the request h at the head (nil when the client relays what it
// has no request for).
func (w *wireState) stepDone(h *wireReq, typ serverMsg, msg []byte) []byte {
	if h == nil {
		return msg
	}
	if h.kind == clientQuery && h.shape != "" {
		return nil // the BindComplete of a Query run as a prepared statement
	}
	w.acknowledged(h, typ)
	internal := h.internal
	w.pop()
	if internal {
		return nil
	}
	return msg
}

// description handles a RowDescription or NoData: the answer to a
// Describe at the head, kept as the mask of its statement or portal, or
// the result of a simple Query about to be relayed.
func (w *wireState) description(h *wireReq, typ serverMsg, msg []byte) []byte {
	var mask []bool
	if typ == serverRowDescription && w.checker != nil {
		mask = w.columnMask(msg)
	}
	if h != nil && h.kind == clientQuery && h.shape != "" && typ == serverNoData {
		return nil // a Query run as a prepared statement: a result without rows
	}
	if h != nil && h.kind == clientDescribe {
		if h.sub == objectStatement {
			w.stmts[h.name] = mask
		} else {
			w.portals[h.name] = mask
		}
		internal := h.internal
		w.pop()
		if internal {
			return nil
		}
		return msg
	}
	w.cur = mask // a simple Query's result
	return msg
}

// columnMask asks the checker which columns of a RowDescription to mask.
func (w *wireState) columnMask(msg []byte) []bool {
	var rd pgproto3.RowDescription
	if rd.Decode(msg[5:]) == nil {
		return w.checker.MaskColumns(columns(rd.Fields))
	}
	return maskAll
}

// dataRow returns a DataRow with the columns its result's mask hides set
// to NULL (msg itself when none).
func (w *wireState) dataRow(h *wireReq, msg, scratch []byte) []byte {
	mask := w.cur
	if h != nil && h.kind == clientExecute {
		mask = w.portals[h.name]
		w.rows++
	}
	if mask != nil {
		return maskDataRow(scratch, msg, mask)
	}
	return msg
}

// commandEnded handles a CommandComplete, EmptyQueryResponse or
// PortalSuspended: the end of an Execute at the head, or of one statement
// of the simple Query at the head.
func (w *wireState) commandEnded(h *wireReq, typ serverMsg, msg []byte) {
	if typ == serverCommandComplete {
		w.copyEnded(true)
		switch tag := msg[5:]; {
		case bytes.Equal(tag, discardAllTag):
			clear(w.stmts)
			clear(w.portals)
			clear(w.boundGen)
			clear(w.confirmed)
			clear(w.shapes)
			w.discarded.Store(discardedAll)
		case bytes.Equal(tag, deallocateAllTag):
			// The unnamed statement and the portals stay.
			maps.DeleteFunc(w.stmts, func(name string, _ []bool) bool { return name != "" })
			maps.DeleteFunc(w.confirmed, func(name string, _ *preparedStmt) bool { return name != "" })
			clear(w.shapes)
			w.discarded.CompareAndSwap(0, discardedStatements)
		}
		if h != nil && h.ack != nil && (h.kind == clientExecute || h.kind == clientQuery) {
			h.ack(commandTag(msg))
		}
	}
	if h != nil && h.kind == clientExecute {
		if w.tracking && typ != serverEmptyQueryResponse {
			rows := w.rows
			if typ == serverCommandComplete {
				if n := commandRows(msg); n >= 0 || w.rows == 0 {
					rows = n
				}
			}
			w.completed(h.info, clientExecute, h.at, rows, typ == serverPortalSuspended, "")
			w.done[len(w.done)-1].wireCheck = countMasked(w.portals[h.name])
		}
		w.rows = 0
		w.pop()
		return
	}
	mask := w.cur
	w.cur = nil
	if w.tracking && typ == serverCommandComplete && h != nil && h.kind == clientQuery {
		w.simpleAnswered(h, commandRows(msg), "")
		w.done[len(w.done)-1].wireCheck = countMasked(mask)
	}
}

// The CommandComplete tags (with their NUL) after which the server holds
// no prepared statement or portal (DISCARD ALL), or no named prepared
// statement (DEALLOCATE ALL).
var discardAllTag, deallocateAllTag = []byte("DISCARD ALL\x00"), []byte("DEALLOCATE ALL\x00")

// wireState.discarded's values.
const (
	discardedStatements = 1
	discardedAll        = 2
)

// maskAll stands for "mask every column": used when a RowDescription
// cannot be read.
var maskAll = []bool{}

// maskDataRow returns msg with the masked columns set to NULL.
func maskDataRow(dst, msg []byte, mask []bool) []byte {
	if len(msg) < 7 {
		return msg
	}
	n := int(binary.BigEndian.Uint16(msg[5:]))
	dst = append(dst[:0], byte(serverDataRow), 0, 0, 0, 0, msg[5], msg[6])
	p := 7
	for i := 0; i < n; i++ {
		if p+4 > len(msg) {
			return msg
		}
		l := int(int32(binary.BigEndian.Uint32(msg[p:])))
		end := p + 4
		if l > 0 {
			end += l
		}
		if end > len(msg) {
			return msg
		}
		if l >= 0 && (len(mask) == 0 || i < len(mask) && mask[i]) {
			dst = append(dst, 0xff, 0xff, 0xff, 0xff)
		} else {
			dst = append(dst, msg[p:end]...)
		}
		p = end
	}
	binary.BigEndian.PutUint32(dst[1:], uint32(len(dst)-1))
	return dst
}

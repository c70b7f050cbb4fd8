package proxy

import (
	"encoding/binary"
	"sync"

	"github.com/jackc/pgx/v5/pgproto3"
)

// WireChecker is implemented by a SessionPolicy that wants the result
// columns of its session checked on the wire (DESIGN.md §5.4): a
// RowDescription names the table and column of every plain column of a
// result, so a column that comes straight from a protected column the
// principal may not see raw shows that the rewrite failed. Such columns
// are sent as NULL.
type WireChecker interface {
	// MaskColumns says which columns of a result must not reach the client
	// raw; nil when none. It reports each incident itself.
	MaskColumns(fields []pgproto3.FieldDescription) []bool
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
	// client since their Parse.
	described map[string]bool

	// Owned by the server-to-client side.
	stmts   map[string][]bool
	portals map[string][]bool
	cur     []bool // the mask of the simple-protocol result being relayed
	checker WireChecker
}

type wireReq struct {
	kind     byte // the request's message type: P B D E C S Q F
	sub      byte // for Describe and Close: 'S' or 'P'
	name     string
	stmt     string // for Bind: the statement
	internal bool   // sent by pgcloak: the response is not relayed
}

// internal records a message pgcloak sends on its own; its response is
// kept from the client.
func (w *wireState) internal(kind, sub byte, name string) {
	w.mu.Lock()
	w.queue = append(w.queue, wireReq{kind: kind, sub: sub, name: name, internal: true})
	w.mu.Unlock()
}

func newWireState(c WireChecker) *wireState {
	return &wireState{checker: c, described: map[string]bool{}, stmts: map[string][]bool{}, portals: map[string][]bool{}}
}

// request records one client message; it returns an extra message for
// pgcloak to send after it (a Describe of a portal nobody described).
func (w *wireState) request(msg []byte) (extra []byte) {
	body := msg[5:]
	var r wireReq
	switch msg[0] {
	case 'P':
		r = wireReq{kind: 'P', name: cstring(body)}
		w.described[r.name] = false
	case 'B':
		portal := cstring(body)
		stmt := cstring(body[len(portal)+1:])
		r = wireReq{kind: 'B', name: portal, stmt: stmt}
		if w.checker != nil && !w.described[stmt] {
			d := &pgproto3.Describe{ObjectType: 'P', Name: portal}
			extra, _ = d.Encode(nil)
		}
	case 'D':
		if len(body) < 1 {
			return nil
		}
		r = wireReq{kind: 'D', sub: body[0], name: cstring(body[1:])}
		if r.sub == 'S' {
			w.described[r.name] = true
		}
	case 'E':
		r = wireReq{kind: 'E', name: cstring(body)}
	case 'C':
		if len(body) < 1 {
			return nil
		}
		r = wireReq{kind: 'C', sub: body[0], name: cstring(body[1:])}
		if r.sub == 'S' {
			delete(w.described, r.name)
		}
	case 'S', 'Q', 'F':
		r = wireReq{kind: msg[0]}
	default:
		return nil
	}
	w.mu.Lock()
	w.queue = append(w.queue, r)
	if extra != nil {
		w.queue = append(w.queue, wireReq{kind: 'D', sub: 'P', name: r.name, internal: true})
	}
	w.mu.Unlock()
	return extra
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
	h := w.head()
	switch msg[0] {
	case '1', '2', '3':
		if h == nil {
			return msg
		}
		if h.internal {
			w.pop()
			return nil
		}
		if msg[0] == '2' && h.kind == 'B' {
			w.portals[h.name] = w.stmts[h.stmt]
		}
		if msg[0] == '3' && h.kind == 'C' {
			if h.sub == 'S' {
				delete(w.stmts, h.name)
			} else {
				delete(w.portals, h.name)
			}
		}
		w.pop()
	case 'T', 'n':
		var mask []bool
		if msg[0] == 'T' && w.checker != nil {
			var rd pgproto3.RowDescription
			if rd.Decode(msg[5:]) == nil {
				mask = w.checker.MaskColumns(rd.Fields)
			} else {
				mask = maskAll
			}
		}
		if h != nil && h.kind == 'D' {
			if h.sub == 'S' {
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
	case 'D':
		mask := w.cur
		if h != nil && h.kind == 'E' {
			mask = w.portals[h.name]
		}
		if mask != nil {
			return maskDataRow(scratch, msg, mask)
		}
	case 'C', 'I', 's':
		if h != nil && h.kind == 'E' {
			w.pop()
		} else {
			w.cur = nil
		}
	case 'E':
		w.cur = nil
		// The server discards extended-protocol messages until Sync: no
		// response will come for the requests before it.
		for h := w.head(); h != nil && h.kind != 'S' && h.kind != 'Q' && h.kind != 'F'; h = w.head() {
			w.pop()
		}
	case 'Z':
		w.cur = nil
		for h := w.head(); h != nil; h = w.head() {
			w.pop()
			if h.kind == 'S' || h.kind == 'Q' || h.kind == 'F' {
				break
			}
		}
		delete(w.portals, "")
	}
	return msg
}

// maskAll stands for "mask every column": used when a RowDescription
// cannot be read.
var maskAll = []bool{}

// maskDataRow returns msg with the masked columns set to NULL.
func maskDataRow(dst, msg []byte, mask []bool) []byte {
	if len(msg) < 7 {
		return msg
	}
	n := int(binary.BigEndian.Uint16(msg[5:]))
	dst = append(dst[:0], 'D', 0, 0, 0, 0, msg[5], msg[6])
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

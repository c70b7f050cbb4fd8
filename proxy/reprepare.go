package proxy

import (
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgerrcode"

	"github.com/jackc/pgx/v5/pgproto3"
)

// Generational is implemented by a SessionPolicy whose decisions can change
// during a session (the rules were reloaded, the principal moved). The
// generation changes whenever earlier decisions may no longer hold.
type Generational interface {
	Generation() uint64
}

// A statement prepared with Parse lives on in the server with the SQL the
// policy chose when it was prepared. After a rules change, pgcloak
// prepares it again before the client binds it: it closes the statement
// and sends the client's original SQL through the policy once more, and
// keeps both answers from the client. A refusal then arrives where the
// Bind would have answered.

type preparedStmt struct {
	sql  string
	oids []uint32
	gen  uint64
	once bool // Decision.Once: decided again at a Bind after its batch
}

// maxPortals bounds the portals whose generation a session keeps; past it
// they are forgotten, and Executes of the forgotten ones are refused.
const maxPortals = 1024

// remember records a statement the client prepares, as decided now.
func (s *session) remember(p *pgproto3.Parse) *preparedStmt {
	g, ok := s.policy.(Generational)
	if !ok {
		return nil
	}
	if s.prepared == nil {
		s.prepared, s.batch = map[string]*preparedStmt{}, map[string]*preparedStmt{}
	}
	st := &preparedStmt{sql: p.Query, oids: slices.Clone(p.ParameterOIDs), gen: g.Generation()}
	if old := s.prepared[p.Name]; old != nil {
		s.preparedBytes -= len(old.sql)
	}
	s.preparedBytes += len(st.sql)
	s.prepared[p.Name], s.batch[p.Name] = st, st
	return st
}

// reprepare returns the messages to send before a Bind whose statement may
// hold an older generation's SQL; nil when none. The server holds the
// statement the client last sent only once it said ParseComplete, or while
// no Sync came since (a failed Parse makes it skip the Bind too); otherwise
// it may hold an older one, and pgcloak prepares it again. A statement not
// prepared with Parse in this session (one from SQL PREPARE) cannot be
// re-prepared and is refused. A statement whose decision holds for its
// own batch only (Decision.Once) is decided again at a Bind after it.
func (s *session) reprepare(bind []byte) []byte {
	portal := cstring(bind[5:])
	name := cstring(bind[5+len(portal)+1:])
	if s.policy != nil && strings.HasPrefix(name, ShapePrefix) {
		return s.refuseMessage(errShapeName(name).Err) // shapeprep.go
	}
	g, ok := s.policy.(Generational)
	if !ok {
		return nil
	}
	gen := g.Generation()
	s.bound(portal, gen)
	st := s.prepared[name]
	if st == nil {
		return s.refuseMessage(&Error{Code: pgerrcode.InsufficientPrivilege, Message: fmt.Sprintf(
			"pgcloak: statement %q was not prepared with a Parse message in this session; restricted sessions bind only those (rule: fail_closed)", name)})
	}
	if st.gen == gen && s.batch[name] == st {
		return nil
	}
	if st.gen == gen && !st.once {
		s.wire.mu.Lock()
		conf := s.wire.confirmed[name]
		s.wire.mu.Unlock()
		if conf == st {
			return nil
		}
	}
	st = &preparedStmt{sql: st.sql, oids: st.oids, gen: gen}
	s.prepared[name], s.batch[name] = st, st
	d := s.policy.Parse(name, st.sql, st.oids)
	st.once = d.Once
	// The decision may itself start a generation (an end-user switch):
	// the statement and its portal belong to the one in force after it.
	if now := g.Generation(); now != gen {
		st.gen = now
		s.bound(portal, now)
	}
	sql := st.sql
	if d.Action != Forward {
		sql = decidedSQL(d)
	}
	var out []byte
	if name != "" { // the unnamed statement is replaced by a Parse
		out, _ = (&pgproto3.Close{ObjectType: byte(objectStatement), Name: name}).Encode(out)
		s.wire.internal(clientClose, objectStatement, name)
	}
	out, _ = (&pgproto3.Parse{Name: name, Query: sql, ParameterOIDs: st.oids}).Encode(out)
	s.wire.internalParse(name, d.Audit, st, d.Ack)
	return out
}

// bound records the generation a portal's Bind is decided under.
func (s *session) bound(portal string, gen uint64) {
	if s.portalGen == nil || len(s.portalGen) >= maxPortals {
		s.portalGen, s.portalBatch = map[string]uint64{}, map[string]bool{}
	}
	s.portalGen[portal], s.portalBatch[portal] = gen, true
	s.wire.bindGen = gen
}

// checkPortal returns a failing Parse to send before an Execute of a
// portal not bound under the generation in force (a rules reload, another
// end user), or not bound in this session at all (a SQL cursor): the
// server then skips the Execute until Sync. A portal counts as bound once
// the server said BindComplete, or while no Sync came since its Bind (a
// failed Bind makes the server skip the Execute too): a Bind the server
// refused, say because a cursor of that name is open, binds nothing, and
// the name is still the cursor's.
func (s *session) checkPortal(exec []byte) []byte {
	g, ok := s.policy.(Generational)
	if !ok {
		return nil
	}
	portal := cstring(exec[5:])
	gen := g.Generation()
	if bound, ok := s.portalGen[portal]; ok && bound == gen {
		if s.portalBatch[portal] {
			return nil
		}
		s.wire.mu.Lock()
		conf, ok := s.wire.boundGen[portal]
		s.wire.mu.Unlock()
		if ok && conf == gen {
			return nil
		}
	}
	return s.refuseMessage(&Error{Code: pgerrcode.InsufficientPrivilege, Message: fmt.Sprintf(
		"pgcloak: portal %q was not bound under the privacy rules and end user in force; bind it again (rule: fail_closed)", portal)})
}

// closed forgets what a Close message closes.
func (s *session) closed(msg []byte) {
	if len(msg) < 6 {
		return
	}
	name := cstring(msg[6:])
	if objectKind(msg[5]) == objectStatement {
		if st := s.prepared[name]; st != nil {
			s.preparedBytes -= len(st.sql)
		}
		delete(s.prepared, name)
		delete(s.batch, name)
	} else {
		delete(s.portalGen, name)
		delete(s.portalBatch, name)
	}
}

// refuseMessage returns a Parse that fails with e, to send before a
// message the server must skip; the client gets e in its place.
func (s *session) refuseMessage(e *Error) []byte {
	if m := s.srv.cfg.Metrics; m != nil {
		m.denials.WithLabelValues("prepared_stale").Inc()
	}
	out, _ := (&pgproto3.Parse{Name: refusalStatement, Query: RefusalSQL(e)}).Encode(nil)
	s.wire.internal(clientParse, 0, refusalStatement)
	return out
}

package proxy

import (
	"slices"

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
}

// remember records a statement the client prepares.
func (s *session) remember(p *pgproto3.Parse) {
	g, ok := s.policy.(Generational)
	if !ok {
		return
	}
	if s.prepared == nil {
		s.prepared = map[string]*preparedStmt{}
	}
	s.prepared[p.Name] = &preparedStmt{sql: p.Query, oids: slices.Clone(p.ParameterOIDs), gen: g.Generation()}
}

// reprepare returns the messages to send before a Bind whose statement was
// prepared under an older generation; nil when none.
func (s *session) reprepare(bind []byte) []byte {
	g, ok := s.policy.(Generational)
	if !ok {
		return nil
	}
	name := cstring(bind[5+len(cstring(bind[5:]))+1:])
	st := s.prepared[name]
	if st == nil {
		return nil
	}
	gen := g.Generation()
	if st.gen == gen {
		return nil
	}
	st.gen = gen
	d := s.policy.Parse(name, st.sql, st.oids)
	sql := st.sql
	if d.Action != Forward {
		sql = decidedSQL(d)
	}
	var out []byte
	if name != "" { // the unnamed statement is replaced by a Parse
		out, _ = (&pgproto3.Close{ObjectType: 'S', Name: name}).Encode(out)
		s.wire.internal('C', 'S', name)
	}
	out, _ = (&pgproto3.Parse{Name: name, Query: sql, ParameterOIDs: st.oids}).Encode(out)
	s.wire.internalParse(name, d.Audit)
	return out
}

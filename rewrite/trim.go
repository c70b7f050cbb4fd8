package rewrite

import (
	"sync/atomic"

	pg_query "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/proto"
)

// A policy subquery lists every column of its relation, masked, so that
// the statement around it resolves each name as it would against the
// table. PostgreSQL analyses every one of those mask expressions (function
// and operator look-ups, casts) for each statement, although the planner
// then drops the ones the statement never reads: for a point lookup that
// is most of the server's extra work. So in a plain SELECT, a column whose
// name the statement cannot be reading keeps its place and its name but
// stands as NULL of its type.
//
// "Cannot be reading" is decided on names, over the whole statement: a
// column is kept when any identifier anywhere in the statement has its
// name (column references in every scope, USING lists, everything the
// parser kept as a name), and every column is kept when the statement may
// read whole rows: a `*` anywhere, a NATURAL join, a column reference that
// ends in the reference's name (the row itself, also as the argument of a
// function in functional notation), or column aliases that rename the
// relation's columns. A name matched by mistake only keeps a mask; a
// reference missed could only show NULL where the mask would be, never a
// value the mask hides: the row filter, the rows and every kept mask are
// the same whatever is trimmed.

// trimUnread is off only in tests that compare answers with and without.
var trimUnread = func() *atomic.Bool { var b atomic.Bool; b.Store(true); return &b }()

// statementNames is what a statement names, for trimming.
type statementNames struct {
	names     map[string]bool
	wholeRows map[string]bool // column references that end in this name
	// qualified maps a qualifier to the last names written after it
	// (q.name): where q's relation has no column name, PostgreSQL reads
	// it as the call name(q), on the whole row.
	qualified map[string][]string
	all       bool // the statement may read every column of every reference
}

// namesOf collects the names of stmt. It says all when stmt is not a
// plain read (a write, or a SELECT holding one, keeps every column: its
// checks and change requests read them).
func namesOf(stmt *pg_query.Node) *statementNames {
	sn := &statementNames{names: map[string]bool{}, wholeRows: map[string]bool{}, qualified: map[string][]string{}}
	if stmt.GetSelectStmt() == nil {
		sn.all = true
		return sn
	}
	eachMessage(stmt, func(m proto.Message) bool {
		switch x := m.(type) {
		case *pg_query.String:
			sn.names[x.Sval] = true
		case *pg_query.A_Const:
			return false // a literal names nothing; in a shape's template it is a parameter
		case *pg_query.A_Star:
			sn.all = true
		case *pg_query.JoinExpr:
			// An aliased join's row and renamed columns reach its
			// relations' columns under names of its own.
			if x.IsNatural || x.Alias != nil {
				sn.all = true
			}
		case *pg_query.ColumnRef:
			if n := len(x.Fields); n > 0 {
				if s := x.Fields[n-1].GetString_(); s != nil {
					sn.wholeRows[s.Sval] = true
					if n >= 2 {
						if q := x.Fields[n-2].GetString_(); q != nil {
							sn.qualified[q.Sval] = append(sn.qualified[q.Sval], s.Sval)
						}
					}
				}
			}
		case *pg_query.InsertStmt, *pg_query.UpdateStmt, *pg_query.DeleteStmt, *pg_query.MergeStmt:
			sn.all = true
		}
		return !sn.all
	})
	return sn
}

// kept returns which columns of s the statement may read, nil for all.
func (sn *statementNames) kept(s *policySub) []bool {
	if sn.all || s.node.Alias == nil || len(s.node.Alias.Colnames) > 0 ||
		sn.wholeRows[s.alias] || sn.wholeRows[s.rel.Name] {
		return nil
	}
	for _, q := range []string{s.alias, s.rel.Name} {
		for _, name := range sn.qualified[q] {
			if s.rel.Column(name) == nil {
				return nil // q.name is name(q): a call on the whole row
			}
		}
	}
	keep := make([]bool, len(s.rel.Columns))
	trimmed := false
	for i, c := range s.rel.Columns {
		// NULL::<type> names the type as the catalog printed it, which
		// the session's search_path may resolve otherwise (or not at
		// all); only built-in types are left as NULL.
		keep[i] = sn.names[c.Name] || c.TypeOID >= 10000
		trimmed = trimmed || !keep[i]
	}
	if !trimmed {
		return nil
	}
	return keep
}

// trim replaces the policy subqueries of a plain read by ones that mask
// only the columns it may read.
func (w *walker) trim(sn *statementNames) {
	if len(w.subs) == 0 || w.writeRef != nil || !trimUnread.Load() || sn.all {
		return
	}
	for _, s := range w.subs {
		keep := sn.kept(s)
		if keep == nil {
			continue
		}
		e, err := w.rw.subq.get(w.rw, s.rel, s.tab, s.inh, false, keep)
		if err != nil {
			continue // the whole subquery stands
		}
		s.entry = e
	}
}

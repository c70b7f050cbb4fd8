package rewrite

import (
	"slices"

	pg_query "github.com/pganalyze/pg_query_go/v6"

	"github.com/pgcloak/pgcloak/audit"
)

// PostgreSQL reads a.name, where a's row has no column called name, as the
// function call name(a): functional notation. The same goes for
// (expr).name. Such a call never appears as a FuncCall in the parse tree,
// so the function allow-list would not see it; a function of a row type
// (or of record, or anyelement) is one of the things a database's owner
// creates. Every such reference that could be a call is judged as one.

// fromRelation remembers the relation a FROM item names. One whose
// columns an alias renames (AS a(x, y)) is not remembered: a.name may
// then be no column of it (the call name(a)) or another column than the
// relation's own of that name, so it goes by a name whose columns are
// not known, as a sub-select's (noteFromItem counts it in aliasUses).
func (w *walker) fromRelation(rv *pg_query.RangeVar, rel *Relation) {
	name := rv.Relname
	if rv.Alias != nil {
		name = rv.Alias.Aliasname
		if len(rv.Alias.Colnames) > 0 {
			return
		}
	}
	if w.fromRels == nil {
		w.fromRels, w.fromAll, w.fromRelUses = map[string]*Relation{}, map[string][]*Relation{}, map[string]int{}
	}
	w.fromRelUses[name]++
	if !slices.Contains(w.fromAll[name], rel) {
		w.fromAll[name] = append(w.fromAll[name], rel)
	}
	if prev, ok := w.fromRels[name]; ok && prev != rel {
		w.fromRels[name] = nil // several: which one is not known here
		return
	}
	w.fromRels[name] = rel
}

// targetName notes the name a write's target goes by where it is no FROM
// item (SET, RETURNING, ON CONFLICT, and EXCLUDED there): there a.f is
// a column of the target's row or the call f(a), whatever relation a
// names in other scopes of the statement. rel is nil when unknown.
func (w *walker) targetName(name string, rel *Relation) {
	if w.aliasUses == nil {
		w.aliasUses = map[string]int{}
	}
	w.aliasUses[name]++
	if rel != nil {
		w.fromRelation(&pg_query.RangeVar{Relname: name}, rel)
	}
}

// checkFunctionalNotation judges each qualified name that may be a call in
// functional notation: when the qualifier is a relation that has a column
// of that name, it is a column; otherwise, if any function of that name
// exists, it is a call and must pass the function allow-list (and fences,
// as pgcloak cannot tell where the call runs).
//
// Names are judged over the whole statement, not scope by scope, as
// PostgreSQL resolves them: a qualifier that names a relation with such
// a column in one scope may name a sub-select, a function or a CTE in the
// scope the reference is in, and (a) may be a column of any FROM item,
// which PostgreSQL prefers to a whole row. Then the name is judged as a
// call too.
func (w *walker) checkFunctionalNotation() {
	for _, c := range w.colRefs {
		f := stringFields(c.Fields)
		if len(f) < 2 || f[len(f)-1] == "*" {
			continue
		}
		name := f[len(f)-1]
		if q := f[len(f)-2]; len(w.fromAll[q]) > 0 && (w.anonFrom || w.aliasUses[q] > w.fromRelUses[q]) {
			// q also names FROM items other than relations. Also for
			// schema.q.name, which PostgreSQL resolves by the relation,
			// skipping other items named q: finish prints it q.name
			// when q is substituted, which the nearest q resolves.
			if w.maybeCall(name); w.err != nil {
				return
			}
		}
		if rels := w.fromAll[f[len(f)-2]]; len(rels) > 1 {
			// The qualifier names several relations (in different
			// scopes): a.f is a column only if it is one in each.
			for _, r := range rels {
				if knownColumns(r) == nil || r.Column(name) == nil {
					w.notationCall(f[len(f)-2], name)
					return
				}
			}
			continue
		}
		rel := knownColumns(w.fromRels[f[len(f)-2]])
		if rel != nil && rel.Column(name) != nil {
			continue
		}
		if rel != nil {
			w.notationCall(f[len(f)-2], name)
			return
		}
		if w.maybeCall(name); w.err != nil {
			return
		}
	}
	for _, ind := range w.indirect {
		// (a).f, where a names a relation of the FROM list: as a.f.
		var rels []*Relation
		if c := ind.Arg.GetColumnRef(); c != nil {
			if f := stringFields(c.Fields); len(f) == 1 {
				rels = w.fromAll[f[0]]
			}
		}
		for i, n := range ind.Indirection {
			if s := n.GetString_(); s != nil {
				if i == 0 && len(rels) > 0 {
					// A column only if it is one of each relation the
					// name stands for.
					for _, r := range rels {
						if knownColumns(r) == nil || r.Column(s.Sval) == nil {
							w.notationCall("("+r.Name+")", s.Sval)
							return
						}
					}
					if !w.mayBeColumn(stringFields(ind.Arg.GetColumnRef().Fields)[0]) {
						continue
					}
					// (a) may be a column: (a).f a call of f.
				}
				if w.maybeCall(s.Sval); w.err != nil {
					return
				}
			}
		}
	}
}

// mayBeColumn says whether a bare name may be a column of some FROM item
// of the statement: one whose columns pgcloak does not know, or a
// relation with a column of that name.
func (w *walker) mayBeColumn(name string) bool {
	if w.opaque {
		return true
	}
	for _, rels := range w.fromAll {
		for _, r := range rels {
			if knownColumns(r) == nil || r.Column(name) != nil {
				return true
			}
		}
	}
	return false
}

// knownColumns returns rel if the catalog snapshot lists its columns
// (it lists those of every relation, the catalog's own included), nil
// otherwise.
func knownColumns(rel *Relation) *Relation {
	if rel == nil || len(rel.Columns) == 0 {
		return nil
	}
	return rel
}

// notationCall refuses a.f where a is a relation without a column f: a
// call in functional notation, which cannot name the function's schema, so
// an overload created since the catalog snapshot (in any schema, for a.'s
// row type) would be what runs. Written as a call, pg_catalog.f(a), it is
// judged and pinned like any other.
func (w *walker) notationCall(qualifier, name string) {
	w.fail(refuseRule(rule(audit.ReasonFunctions),
		"%s.%s is a call of %s in functional notation, which cannot name the function's schema; restricted roles write it as a call (pg_catalog.%s(%s))",
		qualifier, name, name, name, qualifier))
}

// maybeCall judges name, after a qualifier whose columns pgcloak does not
// know (a sub-select, a CTE, a function's result), as a function called
// with one row argument when a function of that name exists; otherwise it
// is a column.
func (w *walker) maybeCall(name string) {
	if !w.rw.cat.FunctionExists(name) {
		return
	}
	if err := w.rw.checkFunction("", name); err != nil {
		w.fail(err)
		return
	}
	if !w.rw.cat.FunctionLeakproof(name) {
		w.leaky = true
	}
}

package rewrite

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"strconv"
	"strings"
)

// The prepared form of a shape-cache hit. A template is the statement as
// the extended protocol's Parse gets it (its literals as $1..$n, decided
// without seeing a value), so the statement can also run as that template
// prepared once on the server connection and executed with the literals
// as parameters: PostgreSQL then parses and plans the larger rewritten
// statement once per connection instead of once per statement. Values
// travel as parameters, so they cannot change the statement.
//
// The parameters must mean what the literals meant. A literal is typed
// by PostgreSQL's scanner (scan.l) and make_const (parse_node.c): an
// integer that fits in int4 is an int4 constant, any other number
// without a fraction or exponent an int8 one if it fits in int8, else
// numeric; a number with a fraction or an exponent is numeric; a plain
// '…' string is a constant of type unknown, typed by its context, as a
// parameter of unspecified type (OID 0) is. A literal of another kind
// (E'…', U&'…', dollar quotes, bit and hex strings) gets no prepared
// form: the statement is sent with its literals in place.
//
// The template's decisions hold for the parameters as for the literals.
// The rewriter treats a parameter at least as cautiously as a literal,
// but for a cast of a string literal (rewrite.stringParams), which runs
// while the statement is parsed whatever the rows: a parameter of
// unspecified type that is cast takes the cast's type, so its input
// function runs at Bind, before any row is read, as the literal's at
// parse time. (A type modifier's check would run with the rows. One
// written in the cast is a literal itself, so its shape is never shared;
// those the grammar adds, char's and bit's length and interval's fields,
// truncate or round, which raises no error.)
//
// Plain strings are read with standard_conforming_strings on: restricted
// sessions must start with it on and end when it goes off (package
// engine), and the shape lexer reads them so already.

// PreparedPrefix starts the name of every statement pgcloak prepares for
// a shape; clients may not use names that start with it.
const PreparedPrefix = "pgcloak_shape_"

// Type OIDs of the parameters.
const (
	oidUnknown = 0
	oidInt8    = 20
	oidInt4    = 23
	oidNumeric = 1700
	oidBit     = 1560
)

// PreparedForm is a statement as its shape's template, to prepare once
// under Name and execute with Values (text, in OIDs' types).
type PreparedForm struct {
	// Name is derived from SQL and OIDs: the same template has the same
	// name in every session, and another one another name.
	Name   string
	SQL    string
	OIDs   []uint32
	Values [][]byte
}

// prepared returns the prepared form of a statement of t's shape with
// literals lits, or nil when a literal has no unambiguous parameter.
func (t *shapeTemplate) prepared(sql string, lits []shapeLit) *PreparedForm {
	if t.psql == "" {
		return nil
	}
	oids := make([]uint32, len(lits))
	vals := make([][]byte, len(lits))
	for i, l := range lits {
		v, oid, ok := literalParam(sql[l.start:l.end], l.kind)
		if !ok {
			return nil
		}
		vals[i], oids[i] = v, oid
	}
	h := sha256.New()
	h.Write(t.psum[:])
	var b [4]byte
	for _, o := range oids {
		binary.BigEndian.PutUint32(b[:], o)
		h.Write(b[:])
	}
	sum := h.Sum(nil)
	return &PreparedForm{Name: PreparedPrefix + hex.EncodeToString(sum[:16]), SQL: t.psql, OIDs: oids, Values: vals}
}

// literalParam is the value and type of the parameter that means what
// the literal lit of kind means; ok is false when there is none.
func literalParam(lit string, kind byte) (v []byte, oid uint32, ok bool) {
	switch kind {
	case litInt:
		return []byte(lit), oidInt4, true
	case litNum:
		if !strings.ContainsAny(lit, ".eE") {
			if _, err := strconv.ParseInt(lit, 10, 64); err == nil {
				return []byte(lit), oidInt8, true
			}
		}
		return []byte(lit), oidNumeric, true
	case litString:
		if len(lit) < 2 || lit[0] != '\'' || lit[len(lit)-1] != '\'' {
			return nil, 0, false
		}
		return []byte(strings.ReplaceAll(lit[1:len(lit)-1], "''", "'")), oidUnknown, true
	}
	return nil, 0, false
}

package rules

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/pgcloak/pgcloak/schema"
)

// MaskKind is the kind of a mask.
type MaskKind uint8

const (
	MaskNull         MaskKind = iota // NULL of the column's type
	MaskRedact                       // a constant of the column's type
	MaskPartial                      // keep the first/last N characters
	MaskEmail                        // keep the first character and the domain
	MaskPseudonymize                 // stable keyed pseudonym
	MaskGeneralize                   // date/timestamp truncated to year or month
	MaskBucket                       // number to the lower bound of its band
	MaskSQL                          // a custom SQL expression over the column
)

var maskKindNames = []string{"null", "redact", "partial", "email", "pseudonymize", "generalize", "bucket", "sql"}

func (k MaskKind) String() string {
	if int(k) < len(maskKindNames) {
		return maskKindNames[k]
	}
	return "mask(?)"
}

// Mask is a compiled mask. Its SQL depends on the column's type, known only
// from the catalog, so it is rendered by SQL(column, type).
type Mask struct {
	Kind MaskKind
	// Name is the name under masks: for a named mask, else the kind.
	Name  string
	First int    // partial
	Last  int    // partial
	Unit  string // generalize: "decade", "year" or "month"
	Width string // bucket: a positive number, as written
	Value *string
	// Expr is the custom expression, deparsed, with $1 standing for the
	// column (written :value in the rules).
	Expr string
	At   Pos
}

// The masks used when a role masks or pseudonymizes a column that has no
// mask of its own.
var (
	defaultMask   = &Mask{Kind: MaskRedact, Name: "redact"}
	pseudonymMask = &Mask{Kind: MaskPseudonymize, Name: "pseudonymize"}
)

// TypeFamily groups PostgreSQL types by what masks can do with them.
type TypeFamily uint8

const (
	FamilyOther TypeFamily = iota
	FamilyText
	FamilyInteger
	FamilyNumeric // numeric and floating point
	FamilyTemporal
	FamilyBoolean
)

// FamilyOf classifies a type as format_type prints it.
func FamilyOf(sqlType string) TypeFamily {
	t := strings.TrimSpace(strings.ToLower(sqlType))
	if i := strings.IndexByte(t, '('); i >= 0 {
		t = strings.TrimSpace(t[:i] + t[strings.IndexByte(t, ')')+1:])
	}
	if strings.HasSuffix(t, "[]") {
		return FamilyOther
	}
	switch t {
	case "text", "character varying", "varchar", "character", "char", "bpchar", "citext", "name":
		return FamilyText
	case "smallint", "integer", "bigint", "int2", "int4", "int8", "int":
		return FamilyInteger
	case "numeric", "decimal", "real", "double precision", "float4", "float8":
		return FamilyNumeric
	case "date", "timestamp without time zone", "timestamp with time zone", "timestamp", "timestamptz":
		return FamilyTemporal
	case "boolean", "bool":
		return FamilyBoolean
	}
	return FamilyOther
}

func (f TypeFamily) String() string {
	return [...]string{"other", "text", "integer", "numeric", "date/time", "boolean"}[f]
}

// Accepts says whether the mask can produce a value of sqlType; if not, the
// error says why.
func (m *Mask) Accepts(sqlType string) error {
	f := FamilyOf(sqlType)
	ok := true
	switch m.Kind {
	case MaskRedact:
		ok = m.Value != nil || f != FamilyOther
	case MaskPartial, MaskEmail:
		ok = f == FamilyText
	case MaskPseudonymize:
		ok = f == FamilyText || f == FamilyInteger
	case MaskGeneralize:
		ok = f == FamilyTemporal
	case MaskBucket:
		ok = f == FamilyInteger || f == FamilyNumeric
	}
	if !ok {
		if m.Kind == MaskRedact {
			return fmt.Errorf("mask %s has no default constant for type %s; give one: {redact: VALUE}", m.Name, sqlType)
		}
		return fmt.Errorf("mask %s (%s) cannot produce type %s; it needs a %s column", m.Name, m.Kind, sqlType, maskNeeds[m.Kind])
	}
	return nil
}

var maskNeeds = map[MaskKind]string{
	MaskPartial:      "text",
	MaskEmail:        "text",
	MaskPseudonymize: "text or integer",
	MaskGeneralize:   "date or timestamp",
	MaskBucket:       "numeric",
}

// SQL renders the mask over the column's bare name, cast to sqlType, with
// the database's own pseudonym key (scope "").
func (m *Mask) SQL(column, sqlType string) (string, error) { return m.ScopedSQL(column, sqlType, "") }

// ScopedSQL is SQL with the pseudonym key of scope (Role.PseudonymScope):
// pseudonyms of different scopes do not match.
func (m *Mask) ScopedSQL(column, sqlType, scope string) (string, error) {
	if m == defaultMask && FamilyOf(sqlType) == FamilyOther {
		// An unclassed column of a type without a redaction constant.
		return "NULL::" + sqlType, nil
	}
	if err := m.Accepts(sqlType); err != nil {
		return "", err
	}
	c := QuoteIdent(column)
	var e string
	switch m.Kind {
	case MaskNull:
		return "NULL::" + sqlType, nil
	case MaskRedact:
		switch {
		case m.Value != nil:
			e = QuoteLiteral(*m.Value)
		default:
			e = redactConstant[FamilyOf(sqlType)]
		}
		// Keep NULL as NULL: a NULL is not personal data, and turning it into
		// a value would change what IS NULL predicates mean.
		e = "CASE WHEN " + c + " IS NULL THEN NULL ELSE " + e + " END"
	case MaskPartial:
		f, l := strconv.Itoa(m.First), strconv.Itoa(m.Last)
		e = "CASE WHEN pg_catalog.length(" + c + ") <= " + strconv.Itoa(m.First+m.Last) +
			" THEN pg_catalog.repeat('*', pg_catalog.length(" + c + ")) ELSE pg_catalog.left(" + c + ", " + f + ") || pg_catalog.repeat('*', pg_catalog.length(" + c + ") - " +
			strconv.Itoa(m.First+m.Last) + ") || pg_catalog.right(" + c + ", " + l + ") END"
	case MaskEmail:
		e = "CASE WHEN pg_catalog.strpos(" + c + ", '@') > 1 THEN pg_catalog.left(" + c + ", 1) || '***' || pg_catalog.substr(" + c +
			", pg_catalog.strpos(" + c + ", '@')) ELSE pg_catalog.repeat('*', pg_catalog.length(" + c + ")) END"
	case MaskPseudonymize:
		if FamilyOf(sqlType) == FamilyInteger {
			bits := map[string]string{"smallint": "15", "int2": "15", "integer": "31", "int4": "31", "int": "31"}[strings.ToLower(sqlType)]
			if bits == "" {
				bits = "63"
			}
			e = schema.PseudonymFunction + "(" + c + "::bigint, " + bits + scopeArg(scope) + ")"
		} else {
			e = schema.PseudonymFunction + "(" + c + "::text" + scopeArg(scope) + ")"
		}
	case MaskGeneralize:
		e = "pg_catalog.date_trunc(" + QuoteLiteral(m.Unit) + ", " + c + ")"
	case MaskBucket:
		e = "pg_catalog.floor(" + c + "::numeric / " + m.Width + ") * " + m.Width
	case MaskSQL:
		// A custom expression is used as written; pgcloak check verifies its
		// type against the column's.
		return "(" + renderMaskSQL(m.Expr, column) + ")", nil
	}
	return "(" + e + ")::" + sqlType, nil
}

func scopeArg(scope string) string {
	if scope == "" {
		return ""
	}
	return ", " + QuoteLiteral(scope)
}

var redactConstant = map[TypeFamily]string{
	FamilyText:     "'***'",
	FamilyInteger:  "0",
	FamilyNumeric:  "0",
	FamilyTemporal: "'1900-01-01'",
	FamilyBoolean:  "false",
}

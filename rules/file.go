package rules

import (
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"
)

// This file is the rules file as written: the YAML schema, decoded strictly
// (yaml.go) before compile.go checks its meaning and builds a Policy. See
// docs/rules.md for the format.

type fileRules struct {
	Version    *Str              `yaml:"version"`
	Defaults   *fileDefaults     `yaml:"defaults"`
	Subject    *fileSubject      `yaml:"subject"`
	Purposes   []Str             `yaml:"purposes"`
	Masks      omap[fileMask]    `yaml:"masks" noun:"mask"`
	Tables     omap[fileTable]   `yaml:"tables" noun:"table"`
	Profiles   omap[fileProfile] `yaml:"profiles" noun:"profile"`
	Roles      omap[fileRole]    `yaml:"roles" noun:"role"`
	Principals *filePrincipals   `yaml:"principals"`
	Anonymity  *fileAnonymity    `yaml:"anonymity"`
}

type fileDefaults struct {
	UnclassedColumns *Str `yaml:"unclassed_columns"`
	UnlistedTables   *Str `yaml:"unlisted_tables"`
}

type fileSubject struct {
	At      Pos
	Table   *Str         `yaml:"table"`
	Key     *Str         `yaml:"key"`
	OptOuts *fileOptOuts `yaml:"opt_outs"`
}

type fileOptOuts struct {
	At            Pos
	Table         *Str      `yaml:"table"`
	SubjectColumn *Str      `yaml:"subject_column"`
	PurposeColumn *Str      `yaml:"purpose_column"`
	Flags         omap[Str] `yaml:"flags" noun:"opt-out flag of purpose"`
	Writers       []Str     `yaml:"writers"`
}

type fileTable struct {
	At           Pos
	Link         *fileLink        `yaml:"link"`
	Confidential bool             `yaml:"confidential"`
	Columns      omap[fileColumn] `yaml:"columns"`
}

// fileLink is "link: customer_id" (a column holding the subject's key) or
// "link: {column: order_id, references: orders.order_id}".
type fileLink struct {
	At         Pos
	Column     *Str `yaml:"column"`
	References *Str `yaml:"references"`
}

func (l *fileLink) decodeYAML(d *decoder, n *yaml.Node, ctx string) {
	if n.Kind == yaml.ScalarNode {
		l.At = posOf(n)
		l.Column = &Str{At: posOf(n)}
		l.Column.V, _ = d.scalar(n, ctx)
		return
	}
	type plain fileLink
	d.decodeValue(n, reflectValue((*plain)(l)), ctx, "")
}

// fileColumn is "email: identity" or "email: {class: identity, mask: email}".
type fileColumn struct {
	At       Pos
	Class    *Str      `yaml:"class"`
	Mask     *fileMask `yaml:"mask"`
	FreeText bool      `yaml:"free_text"`
}

func (c *fileColumn) decodeYAML(d *decoder, n *yaml.Node, ctx string) {
	if n.Kind == yaml.ScalarNode {
		c.At = posOf(n)
		c.Class = &Str{At: posOf(n)}
		c.Class.V, _ = d.scalar(n, ctx)
		return
	}
	type plain fileColumn
	d.decodeValue(n, reflectValue((*plain)(c)), ctx, "")
}

// fileMask is a mask as written: a name ("email", "redact", "null",
// "pseudonymize", or a mask defined under masks:) or a mapping with one key
// naming the kind and its parameters.
type fileMask struct {
	At   Pos
	Kind string // a built-in kind, or "" for a reference to a named mask
	Ref  string

	Value      *Str // redact: the constant
	First      int  // partial
	Last       int  // partial
	Unit       Str  // generalize
	Width      Str  // bucket
	Expression Str  // sql
}

type filePartial struct {
	First *int `yaml:"first"`
	Last  *int `yaml:"last"`
}

func (m *fileMask) decodeYAML(d *decoder, n *yaml.Node, ctx string) {
	m.At = posOf(n)
	if n.Kind == yaml.ScalarNode {
		// "mask: null" is the null mask, not an absent one.
		if n.Tag == "!!null" && strings.EqualFold(n.Value, "null") {
			m.Kind = "null"
			return
		}
		s, ok := d.scalar(n, ctx)
		if !ok {
			return
		}
		switch s {
		case "null", "redact", "email", "pseudonymize":
			m.Kind = s
		case "partial", "generalize", "bucket", "sql":
			d.errs.add(posOf(n), "mask %q in %s needs parameters, for example %s", s, ctx, maskExample[s])
		default:
			m.Ref = s
		}
		return
	}
	keys, vals, ok := d.mappingPairs(n, ctx)
	if !ok {
		return
	}
	if len(keys) != 1 {
		d.errs.add(posOf(n), "a mask in %s is one kind with its parameters, for example %s", ctx, maskExample["partial"])
		return
	}
	k, v := keys[0], resolveAlias(vals[0])
	m.At = posOf(k)
	kctx := fmt.Sprintf("mask %s in %s", k.Value, ctx)
	switch k.Value {
	case "redact":
		m.Kind = "redact"
		m.Value = &Str{}
		m.Value.decodeYAML(d, v, kctx)
	case "partial":
		m.Kind = "partial"
		var p filePartial
		before := len(d.errs.errs)
		d.decode(v, &p, kctx)
		if len(d.errs.errs) > before {
			return
		}
		if p.First == nil && p.Last == nil {
			d.errs.add(posOf(v), "%s keeps no characters: set first, last or both", kctx)
		}
		if p.First != nil {
			m.First = *p.First
		}
		if p.Last != nil {
			m.Last = *p.Last
		}
		if m.First < 0 || m.Last < 0 {
			d.errs.add(posOf(v), "%s: first and last must not be negative", kctx)
		}
	case "generalize":
		m.Kind = "generalize"
		m.Unit.decodeYAML(d, v, kctx)
	case "bucket":
		m.Kind = "bucket"
		m.Width.decodeYAML(d, v, kctx)
	case "sql":
		m.Kind = "sql"
		m.Expression.decodeYAML(d, v, kctx)
	case "null", "email", "pseudonymize":
		d.errs.add(posOf(k), "mask %q in %s takes no parameters; write mask: %s", k.Value, ctx, k.Value)
	default:
		d.errs.add(posOf(k), "unknown mask kind %q in %s (kinds: null, redact, partial, email, pseudonymize, generalize, bucket, sql)", k.Value, ctx)
	}
}

var maskExample = map[string]string{
	"partial":    "{partial: {first: 1, last: 4}}",
	"generalize": "{generalize: year}",
	"bucket":     "{bucket: 10000}",
	"sql":        `{sql: "left(name, 1)"}`,
}

// fileAction is what a class or a column looks like to a profile or role:
// "show", "mask", "pseudonymize", "hide", "deny", or {mask: MASK} to mask
// with a given mask.
type fileAction struct {
	At     Pos
	Action string
	Mask   *fileMask
}

func (a *fileAction) decodeYAML(d *decoder, n *yaml.Node, ctx string) {
	a.At = posOf(n)
	if n.Kind == yaml.ScalarNode {
		a.Action, _ = d.scalar(n, ctx)
		return
	}
	keys, vals, ok := d.mappingPairs(n, ctx)
	if !ok {
		return
	}
	if len(keys) != 1 || keys[0].Value != "mask" {
		d.errs.add(posOf(n), "%s must be show, mask, pseudonymize, hide, deny or {mask: MASK}", ctx)
		return
	}
	a.Action = "mask"
	a.Mask = &fileMask{}
	a.Mask.decodeYAML(d, resolveAlias(vals[0]), ctx)
}

type fileProfile struct {
	At              Pos
	Identity        *fileAction            `yaml:"identity"`
	Personal        *fileAction            `yaml:"personal"`
	Sensitive       *fileAction            `yaml:"sensitive"`
	Public          *fileAction            `yaml:"public"`
	Keys            *fileAction            `yaml:"keys"`
	Timestamps      *Str                   `yaml:"timestamps"`
	SensitiveOptOut *Str                   `yaml:"sensitive_opt_out"`
	Columns         omap[omap[fileAction]] `yaml:"columns" noun:"columns of table"`
}

type fileRole struct {
	At             Pos
	Profile        *Str                   `yaml:"profile"`
	Unrestricted   bool                   `yaml:"unrestricted"`
	Statements     []Str                  `yaml:"statements"`
	Tables         []fileTableRef         `yaml:"tables"`
	DenyTables     []Str                  `yaml:"deny_tables"`
	Filters        omap[Str]              `yaml:"filters" noun:"row filter of table"`
	Columns        omap[omap[fileAction]] `yaml:"columns" noun:"columns of table"`
	Purpose        *Str                   `yaml:"purpose"`
	Purposes       []Str                  `yaml:"purposes"`
	ReviewChanges  bool                   `yaml:"review_changes"`
	ReviewExempt   omap[[]Str]            `yaml:"review_exempt" noun:"review exemptions of table"`
	ApproveChanges bool                   `yaml:"approve_changes"`
	BlindWrites    omap[[]Str]            `yaml:"blind_writes" noun:"blind writes of table"`
}

type filePrincipals struct {
	At         Pos
	Attributes omap[Str]       `yaml:"attributes" noun:"attribute"`
	Logins     omap[fileLogin] `yaml:"logins" noun:"login"`
	Default    *fileLogin      `yaml:"default"`
	Delegation *fileDelegation `yaml:"delegation"`
}

type fileLogin struct {
	At             Pos
	Role           *Str      `yaml:"role"`
	Attributes     omap[Str] `yaml:"attributes"`
	AttributeQuery *Str      `yaml:"attribute_query"`
	Delegating     bool      `yaml:"delegating"`
}

type fileDelegation struct {
	At      Pos
	Setting *Str `yaml:"setting"`
	KeyEnv  *Str `yaml:"key_env"`
}

package rules

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"sort"
	"strings"
)

// Load reads and compiles the rules file at path.
func Load(path string) (*Policy, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data)
}

// Parse compiles a rules file; filename is used in messages. On failure the
// error is a *LoadError listing every mistake as FILE:LINE:COL: message.
func Parse(filename string, data []byte) (*Policy, error) {
	errs := &errList{file: filename}
	root := parseYAML(errs, data)
	if root == nil {
		return nil, errs.err()
	}
	var f fileRules
	(&decoder{errs: errs}).decode(root, &f, "")
	if err := errs.err(); err != nil {
		// Meaning is checked only on a file whose shape is right: half-decoded
		// sections would only produce follow-on errors.
		return nil, err
	}
	sum := sha256.Sum256(data)
	c := &compiler{errs: errs, f: &f, p: &Policy{
		file:      filename,
		version:   hex.EncodeToString(sum[:6]),
		tables:    map[TableName]*Table{},
		profiles:  map[string]*Profile{},
		roles:     map[string]*Role{},
		attrTypes: map[string]AttrType{},
		logins:    map[string]*loginRule{},
	}}
	c.compile()
	if err := errs.err(); err != nil {
		return nil, err
	}
	return c.p, nil
}

type compiler struct {
	errs     *errList
	f        *fileRules
	p        *Policy
	purposes map[string]bool
	masks    map[string]*Mask // nil for a named mask that did not compile
	tableOf  map[int]*Table   // index under tables → compiled table
	// badAttrs are attributes declared with an error: references to them
	// are not reported again.
	badAttrs map[string]bool
	// subjectBroken: the subject section has an error already reported.
	subjectBroken bool
	// optOutWriters are the roles named in subject.opt_outs.writers,
	// checked once the roles are compiled.
	optOutWriters []Str
}

func (c *compiler) add(at Pos, format string, args ...any) { c.errs.add(at, format, args...) }

func (c *compiler) compile() {
	c.version()
	c.defaults()
	c.compilePurposes()
	c.compileMasks()
	c.compileTables()
	c.compileSubject()
	c.checkLinks()
	if len(c.errs.errs) == 0 {
		c.computeKeys() // follows the links: only once they are known not to loop
	}
	c.compileAnonymity()
	c.compileProfiles()
	c.compileAttributes()
	c.compileRoles()
	c.checkOptOutWriters()
	c.compilePrincipals()
	if len(c.errs.errs) == 0 {
		c.precompute()
	}
}

func (c *compiler) version() {
	v := c.f.Version
	switch {
	case v == nil:
		c.add(Pos{Line: 1, Col: 1}, "version is missing; the first line should be version: 1")
	case v.V != "1":
		c.add(v.At, "version %q is not supported; this pgcloak reads version 1", v.V)
	}
}

func (c *compiler) defaults() {
	c.p.unclassed = Personal
	d := c.f.Defaults
	if d == nil {
		return
	}
	if s := d.UnclassedColumns; s != nil {
		cl, ok := parseClass(s.V)
		switch {
		case !ok:
			c.add(s.At, "unknown class %q in defaults.unclassed_columns (classes: identity, personal, sensitive)", s.V)
		case cl == Public:
			c.add(s.At, "defaults.unclassed_columns cannot be public: unclassed columns must fail closed (identity, personal or sensitive)")
		default:
			c.p.unclassed = cl
		}
	}
	if s := d.UnlistedTables; s != nil {
		switch s.V {
		case "allow":
			c.p.unlistedAllowed = true
		case "deny":
		default:
			c.add(s.At, "defaults.unlisted_tables must be allow or deny, not %q", s.V)
		}
	}
}

var builtinPurposes = []string{DirectMarketing, ThirdPartyDisclosure, AutomatedDecision, SensitiveData}

func (c *compiler) compilePurposes() {
	c.purposes = map[string]bool{}
	for _, p := range builtinPurposes {
		c.purposes[p] = true
		c.p.purposes = append(c.p.purposes, p)
	}
	seen := map[string]bool{}
	for _, s := range c.f.Purposes {
		switch {
		case !identRE.MatchString(s.V):
			c.add(s.At, "purpose %q is not a name (letters, digits, _)", s.V)
		case seen[s.V]:
			c.add(s.At, "duplicate purpose %q", s.V)
		case !c.purposes[s.V]:
			c.purposes[s.V] = true
			c.p.purposes = append(c.p.purposes, s.V)
		}
		seen[s.V] = true
	}
}

func (c *compiler) purpose(s Str, ctx string) bool {
	if !c.purposes[s.V] {
		c.add(s.At, "unknown purpose %q in %s (purposes: %s)", s.V, ctx, strings.Join(c.p.purposes, ", "))
		return false
	}
	return true
}

var maskKinds = map[string]MaskKind{}

func init() {
	for i, n := range maskKindNames {
		maskKinds[n] = MaskKind(i)
	}
}

func (c *compiler) compileMasks() {
	c.masks = map[string]*Mask{}
	for _, e := range c.f.Masks.Entries {
		if _, builtin := maskKinds[e.Key]; builtin {
			c.add(e.KeyAt, "mask name %q is a built-in mask kind; choose another name", e.Key)
			continue
		}
		if !identRE.MatchString(e.Key) {
			c.add(e.KeyAt, "mask name %q is not a name (letters, digits, _)", e.Key)
			continue
		}
		if e.Val.Ref != "" {
			c.add(e.Val.At, "mask %q refers to mask %q; a named mask must be defined by its kind", e.Key, e.Val.Ref)
			continue
		}
		m := c.mask(&e.Val, fmt.Sprintf("mask %q", e.Key))
		if m != nil {
			m.Name = e.Key
		}
		c.masks[e.Key] = m
	}
}

// mask compiles a mask as written, resolving named masks.
func (c *compiler) mask(fm *fileMask, ctx string) *Mask {
	if fm.Ref != "" {
		if m, ok := c.masks[fm.Ref]; ok {
			return m // nil if it did not compile: reported there
		}
		names := make([]string, 0, len(c.f.Masks.Entries))
		for _, e := range c.f.Masks.Entries {
			names = append(names, e.Key)
		}
		c.add(fm.At, "unknown mask %q in %s (built-in: null, redact, email, pseudonymize; defined: %s)", fm.Ref, ctx, strings.Join(names, ", "))
		return nil
	}
	m := &Mask{Kind: maskKinds[fm.Kind], Name: fm.Kind, First: fm.First, Last: fm.Last, At: fm.At}
	switch m.Kind {
	case MaskRedact:
		if fm.Value != nil {
			v := fm.Value.V
			m.Value = &v
		}
	case MaskGeneralize:
		if !generalizeUnits[fm.Unit.V] {
			c.add(fm.Unit.At, "generalize in %s must be decade, year or month, not %q", ctx, fm.Unit.V)
			return nil
		}
		m.Unit = fm.Unit.V
	case MaskBucket:
		w := fm.Width.V
		if !numericRE.MatchString(w) || strings.HasPrefix(w, "-") || strings.Trim(w, "+0.") == "" {
			c.add(fm.Width.At, "bucket width in %s must be a positive number, not %q", ctx, w)
			return nil
		}
		m.Width = strings.TrimPrefix(w, "+")
	case MaskSQL:
		expr, err := parseMaskSQL(fm.Expression.V)
		if err != nil {
			c.add(fm.Expression.At, "sql mask in %s %v", ctx, err)
			return nil
		}
		m.Expr = expr
	}
	return m
}

func (c *compiler) tableName(s string, at Pos, ctx string) (TableName, bool) {
	parts := strings.Split(s, ".")
	for _, p := range parts {
		if p == "" {
			c.add(at, "%q in %s is not a table name", s, ctx)
			return TableName{}, false
		}
	}
	if len(parts) > 2 {
		c.add(at, "%q in %s is not a table name (write table or schema.table)", s, ctx)
		return TableName{}, false
	}
	return ParseTableName(s), true
}

// knownTable resolves a reference to a table named under tables.
func (c *compiler) knownTable(s Str, ctx string) (*Table, bool) {
	tn, ok := c.tableName(s.V, s.At, ctx)
	if !ok {
		return nil, false
	}
	t := c.p.tables[tn]
	if t == nil {
		c.add(s.At, "unknown table %q in %s (not under tables)", s.V, ctx)
		return nil, false
	}
	return t, true
}

func (c *compiler) compileTables() {
	c.tableOf = map[int]*Table{}
	for i, e := range c.f.Tables.Entries {
		tn, ok := c.tableName(e.Key, e.KeyAt, "tables")
		if !ok {
			continue
		}
		if prev := c.p.tables[tn]; prev != nil {
			c.add(e.KeyAt, "duplicate table %s (first at line %d)", tn, prev.At.Line)
			continue
		}
		t := &Table{Name: tn, Confidential: e.Val.Confidential, columns: map[string]*Column{}, At: e.KeyAt}
		ctx := fmt.Sprintf("table %q", e.Key)
		for _, ce := range e.Val.Columns.Entries {
			col := &Column{Name: ce.Key, At: ce.KeyAt}
			fc := ce.Val
			if fc.Class == nil {
				c.add(fc.At, "column %q of %s has no class (identity, personal, sensitive, public)", ce.Key, ctx)
				continue
			}
			cl, ok := parseClass(fc.Class.V)
			if !ok {
				c.add(fc.Class.At, "unknown class %q for column %q of %s (classes: identity, personal, sensitive, public)", fc.Class.V, ce.Key, ctx)
				continue
			}
			col.Class = cl
			col.FreeText = fc.FreeText
			if fc.Mask != nil {
				col.Mask = c.mask(fc.Mask, fmt.Sprintf("column %q of %s", ce.Key, ctx))
			}
			t.columns[col.Name] = col
			t.Columns = append(t.Columns, col)
		}
		c.p.tables[tn] = t
		c.p.tableList = append(c.p.tableList, t)
		c.tableOf[i] = t
	}
}

func (c *compiler) compileSubject() {
	s := c.f.Subject
	if s == nil {
		return
	}
	if s.Table == nil || s.Key == nil {
		c.add(s.At, "subject needs table and key")
		c.subjectBroken = true
		return
	}
	t, ok := c.knownTable(*s.Table, "subject")
	if !ok {
		c.subjectBroken = true
		return
	}
	t.Subject = true
	subj := &Subject{Table: t.Name, Key: s.Key.V, writers: map[string]bool{}}
	c.p.subject = subj
	if o := s.OptOuts; o != nil {
		if o.Table == nil && len(o.Flags.Entries) == 0 {
			c.add(o.At, "opt_outs of subject needs a table of (subject, purpose) rows or flags (purpose: column)")
		}
		if o.Table != nil {
			if o.SubjectColumn == nil || o.PurposeColumn == nil {
				c.add(o.Table.At, "opt_outs table %q needs subject_column and purpose_column", o.Table.V)
			} else if tn, ok := c.tableName(o.Table.V, o.Table.At, "opt_outs"); ok {
				subj.OptOuts = &OptOutTable{Table: tn, SubjectColumn: o.SubjectColumn.V, PurposeColumn: o.PurposeColumn.V}
			}
		} else if o.SubjectColumn != nil || o.PurposeColumn != nil {
			c.add(o.At, "subject_column and purpose_column of opt_outs belong with table")
		}
		c.optOutWriters = append(c.optOutWriters, o.Writers...)
		if len(o.Flags.Entries) > 0 {
			subj.OptOutFlags = map[string]string{}
			for _, e := range o.Flags.Entries {
				if c.purpose(Str{V: e.Key, At: e.KeyAt}, "opt_outs flags") {
					subj.OptOutFlags[e.Key] = e.Val.V
				}
			}
		}
	}
}

// checkLinks resolves every link and rejects chains that loop or that do
// not reach the subject.
func (c *compiler) checkLinks() {
	for i, e := range c.f.Tables.Entries {
		fl := e.Val.Link
		if fl == nil {
			continue
		}
		t := c.tableOf[i]
		if t == nil {
			continue // the table had an error
		}
		ctx := fmt.Sprintf("link of table %q", e.Key)
		if t.Subject {
			c.add(fl.At, "table %q is the subject table and cannot have a link", e.Key)
			continue
		}
		if fl.Column == nil {
			c.add(fl.At, "%s needs column", ctx)
			continue
		}
		l := &Link{Column: fl.Column.V}
		if fl.References == nil {
			if c.subjectBroken {
				continue
			}
			if c.p.subject == nil {
				c.add(fl.At, "%s needs references (table.column): the rules have no subject", ctx)
				continue
			}
			l.References, l.ReferencesColumn = c.p.subject.Table, c.p.subject.Key
		} else {
			ref := fl.References.V
			i := strings.LastIndexByte(ref, '.')
			if i <= 0 || i == len(ref)-1 {
				c.add(fl.References.At, "references in %s must be table.column, not %q", ctx, ref)
				continue
			}
			rt, ok := c.knownTable(Str{V: ref[:i], At: fl.References.At}, ctx)
			if !ok {
				continue
			}
			l.References, l.ReferencesColumn = rt.Name, ref[i+1:]
		}
		t.Link = l
	}
	// Follow each chain; a chain longer than the number of tables loops.
	inCycle := map[*Table]bool{}
	for i, e := range c.f.Tables.Entries {
		start := c.tableOf[i]
		if start == nil || start.Link == nil {
			continue
		}
		path := []string{start.Name.Name}
		for tab := start; ; {
			if tab.Link == nil {
				if !tab.Subject {
					c.add(e.Val.Link.At, "link of table %q leads to %s, which is neither the subject nor linked to it", e.Key, tab.Name)
				}
				break
			}
			tab = c.p.tables[tab.Link.References]
			path = append(path, tab.Name.Name)
			if inCycle[tab] {
				break // reported from the first table of the cycle
			}
			if tab == start {
				c.add(e.Val.Link.At, "circular subject link: %s", strings.Join(path, " → "))
				for t := start.Link; ; {
					rt := c.p.tables[t.References]
					inCycle[rt] = true
					if rt == start {
						break
					}
					t = rt.Link
				}
				break
			}
			if len(path) > len(c.p.tableList)+1 {
				break // a loop further down the chain, reported from there
			}
		}
	}
}

var builtinProfiles = []*Profile{
	{Name: "standard", Builtin: true, HonorSensitiveOptOut: true,
		Classes: [numClasses]rule{Identity: {action: Show}, Personal: {action: MaskValue}, Sensitive: {action: Hide}, Public: {action: Show}}},
	{Name: "personal_data", Builtin: true, HonorSensitiveOptOut: false,
		Classes: [numClasses]rule{Identity: {action: Show}, Personal: {action: Show}, Sensitive: {action: Show}, Public: {action: Show}}},
	{Name: "anonymized", Builtin: true, HonorSensitiveOptOut: true, Keys: &rule{action: Pseudonymize}, Timestamps: "month",
		Classes: [numClasses]rule{Identity: {action: Hide}, Personal: {action: MaskValue}, Sensitive: {action: Hide}, Public: {action: Show}}},
	{Name: "disclosure", Builtin: true, HonorSensitiveOptOut: true, Keys: &rule{action: Pseudonymize}, Timestamps: "month",
		Classes: [numClasses]rule{Identity: {action: Hide}, Personal: {action: MaskValue}, Sensitive: {action: Deny}, Public: {action: Show}}},
}

func (c *compiler) compileProfiles() {
	for _, bp := range builtinProfiles {
		cp := *bp
		c.p.profiles[bp.Name] = &cp
	}
	for _, e := range c.f.Profiles.Entries {
		if prev := c.p.profiles[e.Key]; prev != nil {
			if prev.Builtin {
				c.add(e.KeyAt, "profile %q is built in; give your profile another name", e.Key)
			} else {
				c.add(e.KeyAt, "duplicate profile %q (first at line %d)", e.Key, prev.At.Line)
			}
			continue
		}
		ctx := fmt.Sprintf("profile %q", e.Key)
		fp := e.Val
		pr := &Profile{Name: e.Key, HonorSensitiveOptOut: true, At: e.KeyAt}
		for cl, fa := range [numClasses]*fileAction{Identity: fp.Identity, Personal: fp.Personal, Sensitive: fp.Sensitive, Public: fp.Public} {
			cl := Class(cl)
			if fa == nil {
				if cl == Public {
					pr.Classes[cl] = rule{action: Show}
					continue
				}
				c.add(fp.At, "%s does not say what %s columns look like (show, mask, pseudonymize, hide or deny)", ctx, cl)
				continue
			}
			if r, ok := c.action(fa, fmt.Sprintf("%s columns of %s", cl, ctx)); ok {
				pr.Classes[cl] = r
			}
		}
		if s := fp.SensitiveOptOut; s != nil {
			switch s.V {
			case "honor":
			case "ignore":
				pr.HonorSensitiveOptOut = false
			default:
				c.add(s.At, "sensitive_opt_out of %s must be honor or ignore, not %q", ctx, s.V)
			}
		}
		c.profileKeys(&fp, pr, ctx)
		pr.columns = c.columnRules(fp.Columns, ctx)
		c.p.profiles[e.Key] = pr
	}
}

func (c *compiler) action(fa *fileAction, ctx string) (rule, bool) {
	a, ok := parseAction(fa.Action)
	if !ok {
		c.add(fa.At, "unknown action %q for %s (show, mask, pseudonymize, hide, deny)", fa.Action, ctx)
		return rule{}, false
	}
	r := rule{action: a, at: fa.At}
	if fa.Mask != nil {
		r.mask = c.mask(fa.Mask, ctx)
		if r.mask == nil {
			return rule{}, false
		}
	}
	return r, true
}

// columnRules compiles per-column overrides: table → column → action. The
// columns must be classed columns of protected tables, so that a typo does
// not silently leave a column at its class default.
func (c *compiler) columnRules(m omap[omap[fileAction]], ctx string) map[TableName]map[string]rule {
	out := map[TableName]map[string]rule{}
	for _, te := range m.Entries {
		t, ok := c.knownTable(Str{V: te.Key, At: te.KeyAt}, "columns of "+ctx)
		if !ok {
			continue
		}
		rules := out[t.Name]
		if rules == nil {
			rules = map[string]rule{}
			out[t.Name] = rules
		}
		for _, ce := range te.Val.Entries {
			if t.columns[ce.Key] == nil {
				c.add(ce.KeyAt, "column %q in columns of %s is not a classed column of table %s", ce.Key, ctx, t.Name)
				continue
			}
			if r, ok := c.action(&ce.Val, fmt.Sprintf("column %s.%s of %s", te.Key, ce.Key, ctx)); ok {
				rules[ce.Key] = r
			}
		}
	}
	return out
}

func (c *compiler) compileAttributes() {
	c.badAttrs = map[string]bool{}
	pr := c.f.Principals
	if pr == nil {
		return
	}
	for _, e := range pr.Attributes.Entries {
		if !identRE.MatchString(e.Key) {
			c.add(e.KeyAt, "attribute name %q is not a name (letters, digits, _)", e.Key)
			continue
		}
		if _, ok := attrTypes[e.Val.V]; !ok {
			c.add(e.Val.At, "unknown type %q for attribute %q (text, integer, bigint, numeric, boolean, date, uuid)", e.Val.V, e.Key)
			c.badAttrs[e.Key] = true
			continue
		}
		c.p.attrTypes[e.Key] = AttrType(e.Val.V)
	}
}

// noneRole is the role of a delegating login that names no role of its
// own: until it names an end user, it may touch nothing.
const noneRole = "none"

func (c *compiler) compileRoles() {
	for _, e := range c.f.Roles.Entries {
		if e.Key == noneRole {
			c.add(e.KeyAt, "role name %q is reserved (the role of a delegating login before it names its end user)", e.Key)
			continue
		}
		if prev := c.p.roles[e.Key]; prev != nil {
			c.add(e.KeyAt, "duplicate role %q (first at line %d)", e.Key, prev.At.Line)
			continue
		}
		r := c.role(e.Key, &e.Val, e.KeyAt)
		c.p.roles[e.Key] = r
		c.p.roleList = append(c.p.roleList, r)
	}
	c.p.roles[noneRole] = &Role{Name: noneRole, Profile: c.p.profiles["standard"], statements: sessionKinds,
		listed: map[TableName]bool{}, denied: map[TableName]bool{}, filters: map[TableName]*filterTemplate{}, policy: c.p}
}

func (c *compiler) role(name string, fr *fileRole, at Pos) *Role {
	ctx := fmt.Sprintf("role %q", name)
	r := &Role{Name: name, policy: c.p, At: at, ReviewChanges: fr.ReviewChanges, ApproveChanges: fr.ApproveChanges,
		listed: map[TableName]bool{}, denied: map[TableName]bool{}, filters: map[TableName]*filterTemplate{},
		unlisted: c.p.unlistedAllowed}
	if fr.Unrestricted {
		r.Unrestricted = true
		r.statements = allStatements
		var extra []string
		if fr.Profile != nil {
			extra = append(extra, "profile")
		}
		if len(fr.Filters.Entries) > 0 {
			extra = append(extra, "filters")
		}
		if len(fr.Columns.Entries) > 0 {
			extra = append(extra, "columns")
		}
		if fr.Tables != nil || fr.DenyTables != nil {
			extra = append(extra, "tables")
		}
		if fr.Statements != nil {
			extra = append(extra, "statements")
		}
		if fr.Purpose != nil || fr.Purposes != nil {
			extra = append(extra, "purposes")
		}
		if fr.ReviewChanges {
			extra = append(extra, "review_changes")
		}
		if len(extra) > 0 {
			c.add(fr.At, "%s is unrestricted, so its %s would have no effect; remove them or unrestricted", ctx, strings.Join(extra, ", "))
		}
		return r
	}
	if fr.Profile == nil {
		c.add(fr.At, "%s has no profile (standard, personal_data, anonymized, disclosure or one under profiles)", ctx)
	} else if r.Profile = c.p.profiles[fr.Profile.V]; r.Profile == nil {
		c.add(fr.Profile.At, "unknown profile %q in %s", fr.Profile.V, ctx)
	}
	r.statements = sessionKinds
	if fr.Statements == nil {
		r.statements |= 1 << StmtSelect
	}
	for _, s := range fr.Statements {
		k, ok := parseStatementKind(s.V)
		if !ok {
			c.add(s.At, "unknown statement kind %q in %s (%s, copy)", s.V, ctx, strings.Join(statementNames[:firstSessionKind], ", "))
			continue
		}
		r.statements |= k
	}
	if fr.Tables == nil {
		r.allTables = true
	}
	for _, ref := range fr.Tables {
		s := ref.Name
		ops, ok := c.tableOps(&ref, ctx)
		if !ok {
			continue
		}
		if s.V == "*" {
			r.allTables = true
			r.allOps = ops
			continue
		}
		if t, ok := c.knownTable(s, "tables of "+ctx); ok {
			r.listed[t.Name] = true
			if ref.Ops != nil {
				if r.ops == nil {
					r.ops = map[TableName]OpSet{}
				}
				r.ops[t.Name] = ops
			}
		}
	}
	if !r.allTables {
		// An explicit list without "*" is the whole of what the role may use.
		r.unlisted = false
	}
	for _, s := range fr.DenyTables {
		if t, ok := c.knownTable(s, "deny_tables of "+ctx); ok {
			if r.listed[t.Name] {
				c.add(s.At, "table %q is both in tables and in deny_tables of %s", s.V, ctx)
			}
			r.denied[t.Name] = true
		}
	}
	for _, e := range fr.Filters.Entries {
		t, ok := c.knownTable(Str{V: e.Key, At: e.KeyAt}, "filters of "+ctx)
		if !ok {
			continue
		}
		if r.filters[t.Name] != nil {
			c.add(e.KeyAt, "duplicate row filter for table %s in %s", t.Name, ctx)
			continue
		}
		ft, err := parseFilter(e.Val.V)
		if err != nil {
			c.add(e.Val.At, "row filter of table %s in %s %v", t.Name, ctx, err)
			continue
		}
		ft.at = e.Val.At
		for _, a := range ft.params {
			if _, ok := c.p.attrTypes[a]; !ok && !c.badAttrs[a] {
				c.add(e.Val.At, "row filter of table %s in %s uses :%s, which is not an attribute under principals.attributes", t.Name, ctx, a)
			}
		}
		r.filters[t.Name] = ft
	}
	r.overrides = c.columnRules(fr.Columns, ctx)
	c.reviewExempt(r, fr, ctx)
	for _, e := range fr.BlindWrites.Entries {
		t, ok := c.knownTable(Str{V: e.Key, At: e.KeyAt}, "blind_writes of "+ctx)
		if !ok {
			continue
		}
		if r.blind == nil {
			r.blind = map[TableName]map[string]bool{}
		}
		if r.blind[t.Name] == nil {
			r.blind[t.Name] = map[string]bool{}
		}
		for _, col := range e.Val {
			if t.Column(col.V) == nil {
				c.add(col.At, "blind_writes of %s names column %q, which table %s does not class", ctx, col.V, t.Name)
				continue
			}
			r.blind[t.Name][col.V] = true
		}
	}
	switch {
	case fr.Purpose != nil && fr.Purposes != nil:
		c.add(fr.Purpose.At, "%s has both purpose and purposes; a role works for one purpose or chooses among several", ctx)
	case fr.Purpose != nil:
		if c.purpose(*fr.Purpose, ctx) {
			r.Purposes, r.PurposeFixed = []string{fr.Purpose.V}, true
		}
	default:
		for _, s := range fr.Purposes {
			if c.purpose(s, ctx) {
				r.Purposes = append(r.Purposes, s.V)
			}
		}
	}
	return r
}

func (c *compiler) compilePrincipals() {
	fp := c.f.Principals
	c.p.delegation.Setting = "pgcloak.end_user"
	if fp == nil {
		return
	}
	for _, e := range fp.Logins.Entries {
		if prev := c.p.logins[e.Key]; prev != nil {
			c.add(e.KeyAt, "duplicate login %q (first at line %d)", e.Key, prev.at.Line)
			continue
		}
		if lr := c.login(e.Key, &e.Val, fmt.Sprintf("login %q", e.Key)); lr != nil {
			lr.at = e.KeyAt
			c.p.logins[e.Key] = lr
			c.p.loginList = append(c.p.loginList, lr)
		}
	}
	if fp.Default != nil {
		if fp.Default.Delegating {
			c.add(fp.Default.At, "the default principal cannot be delegating; name delegating logins under logins")
		} else if fp.Default.Role == nil {
			c.add(fp.Default.At, "principals.default needs a role (leave default out to refuse unmapped logins)")
		} else {
			c.p.defaultLogin = c.login("", fp.Default, "principals.default")
		}
	}
	if d := fp.Delegation; d != nil {
		if d.Setting != nil {
			if !strings.Contains(d.Setting.V, ".") || !identRE.MatchString(strings.ReplaceAll(d.Setting.V, ".", "_")) {
				c.add(d.Setting.At, "delegation setting %q must be a custom setting name such as pgcloak.end_user", d.Setting.V)
			}
			c.p.delegation.Setting = d.Setting.V
		}
		c.p.delegation.Unsigned = d.Unsigned
		if d.KeyEnv != nil && d.Unsigned {
			c.add(d.At, "delegation has both key_env and unsigned: true; use one")
		}
		if d.KeyEnv != nil {
			c.p.delegation.KeyEnv = d.KeyEnv.V
			key := os.Getenv(d.KeyEnv.V)
			if len(key) < 16 {
				c.add(d.KeyEnv.At, "delegation key_env %s is not set or shorter than 16 bytes", d.KeyEnv.V)
			}
			c.p.delegation.key = []byte(key)
		}
	}
	c.checkDelegation(fp)
}

// checkDelegation requires a delegating login's end-user roles, and a key
// or an explicit unsigned: true for delegation.
func (c *compiler) checkDelegation(fp *filePrincipals) {
	var at *Pos
	for _, e := range fp.Logins.Entries {
		if !e.Val.Delegating {
			if len(e.Val.EndUserRoles) > 0 {
				c.add(e.Val.EndUserRoles[0].At, "login %q has end_user_roles but is not delegating", e.Key)
			}
			continue
		}
		if at == nil {
			at = &e.KeyAt
		}
		if len(e.Val.EndUserRoles) == 0 {
			c.add(e.KeyAt, "delegating login %q must list the roles of the end users it may name (end_user_roles)", e.Key)
		}
	}
	if at != nil && c.p.delegation.key == nil && !c.p.delegation.Unsigned {
		c.add(*at, "delegating logins need delegation.key_env (signed end-user names), or delegation.unsigned: true to accept unsigned ones")
	}
}

func (c *compiler) login(login string, fl *fileLogin, ctx string) *loginRule {
	lr := &loginRule{login: login, delegating: fl.Delegating, attrs: map[string]string{}}
	for _, r := range fl.EndUserRoles {
		role := c.p.roles[r.V]
		if role == nil || r.V == noneRole {
			c.add(r.At, "unknown role %q in end_user_roles of %s", r.V, ctx)
			continue
		}
		if role.Unrestricted {
			c.add(r.At, "end_user_roles of %s names unrestricted role %q", ctx, r.V)
			continue
		}
		if lr.endUserRoles == nil {
			lr.endUserRoles = map[string]bool{}
		}
		lr.endUserRoles[r.V] = true
	}
	switch {
	case fl.Role == nil && fl.Delegating:
		lr.role = c.p.roles[noneRole]
	case fl.Role == nil:
		c.add(fl.At, "%s has no role", ctx)
		return nil
	default:
		if lr.role = c.p.roles[fl.Role.V]; lr.role == nil || fl.Role.V == noneRole {
			c.add(fl.Role.At, "unknown role %q in %s", fl.Role.V, ctx)
			return nil
		}
	}
	if fl.AttributeQuery != nil && len(fl.Attributes.Entries) > 0 {
		c.add(fl.AttributeQuery.At, "%s has both attributes and attribute_query; use one", ctx)
		return nil
	}
	provided := map[string]bool{}
	for _, e := range fl.Attributes.Entries {
		t, ok := c.p.attrTypes[e.Key]
		if !ok {
			if !c.badAttrs[e.Key] {
				c.add(e.KeyAt, "attribute %q of %s is not declared under principals.attributes", e.Key, ctx)
			}
			provided[e.Key] = true
			continue
		}
		if err := t.checkValue(e.Val.V); err != nil {
			c.add(e.Val.At, "attribute %q of %s: %v", e.Key, ctx, err)
			provided[e.Key] = true
			continue
		}
		lr.attrs[e.Key] = e.Val.V
		provided[e.Key] = true
	}
	if q := fl.AttributeQuery; q != nil {
		aq, err := parseAttrQuery(q.V)
		if err != nil {
			c.add(q.At, "attribute_query of %s %v", ctx, err)
			return nil
		}
		for _, col := range aq.columns {
			if _, ok := c.p.attrTypes[col]; !ok && !c.badAttrs[col] {
				c.add(q.At, "attribute_query of %s returns %q, which is not declared under principals.attributes", ctx, col)
			}
			provided[col] = true
		}
		lr.query = aq
	}
	// Every placeholder of the role's filters needs a value.
	var missing []string
	seen := map[string]bool{}
	for _, ft := range lr.role.filters {
		for _, a := range ft.params {
			_, declared := c.p.attrTypes[a]
			if declared && !provided[a] && !seen[a] {
				missing = append(missing, ":"+a)
				seen[a] = true
			}
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		at := fl.At
		if fl.Role != nil {
			at = fl.Role.At
		}
		c.add(at, "%s has role %q, whose row filters use %s, but gives no value for it", ctx, lr.role.Name, strings.Join(missing, ", "))
	}
	return lr
}

// precompute fills every role's column views, so that a lookup is two map
// reads.
func (c *compiler) precompute() {
	for _, r := range c.p.roles {
		if r.Unrestricted {
			continue
		}
		r.views = map[TableName]map[string]ColumnView{}
		for _, t := range c.p.tableList {
			m := make(map[string]ColumnView, len(t.Columns))
			for _, col := range t.Columns {
				m[col.Name] = r.view(t.Name, col, col.Class, true)
			}
			r.views[t.Name] = m
		}
	}
}

package rules

// Catalog is what the rules need to know about the database's schema.
// CheckDatabase builds one from a snapshot of package catalog (the user's
// relations); tests use a map.
type Catalog interface {
	// ColumnType returns the type of column col of table t as format_type
	// prints it; ok is false when the table or column does not exist.
	ColumnType(t TableName, col string) (sqlType string, ok bool)
	// TableExists says whether table t exists.
	TableExists(t TableName) bool
}

// CheckCatalog checks the policy against a database schema: every table
// and column the rules name exists, and every mask that a role may apply to
// a column can produce the column's type. The error is a *LoadError with
// the position of each mistake in the rules file.
func (p *Policy) CheckCatalog(cat Catalog) error {
	errs := &errList{file: p.file}
	column := func(t TableName, col string, at Pos, ctx string) (string, bool) {
		if !cat.TableExists(t) {
			return "", false // reported once, for the table
		}
		typ, ok := cat.ColumnType(t, col)
		if !ok {
			if ctx == "" {
				errs.add(at, "column %q of table %s does not exist in the database", col, t)
			} else {
				errs.add(at, "column %q of table %s, named by %s, does not exist in the database", col, t, ctx)
			}
		}
		return typ, ok
	}
	for _, t := range p.tableList {
		if !cat.TableExists(t.Name) {
			errs.add(t.At, "table %s does not exist in the database", t.Name)
			continue
		}
		for _, c := range t.Columns {
			column(t.Name, c.Name, c.At, "")
		}
		if l := t.Link; l != nil {
			column(t.Name, l.Column, t.At, "link of table "+t.Name.String())
			column(l.References, l.ReferencesColumn, t.At, "link of table "+t.Name.String())
		}
	}
	if s := p.subject; s != nil {
		at := p.tables[s.Table].At
		column(s.Table, s.Key, at, "subject key")
		if o := s.OptOuts; o != nil {
			if !cat.TableExists(o.Table) {
				errs.add(at, "opt-out table %s does not exist in the database", o.Table)
			} else {
				column(o.Table, o.SubjectColumn, at, "opt_outs subject_column")
				column(o.Table, o.PurposeColumn, at, "opt_outs purpose_column")
			}
		}
		for purpose, col := range s.OptOutFlags {
			if typ, ok := column(s.Table, col, at, "opt-out flag of "+purpose); ok && FamilyOf(typ) != FamilyBoolean {
				errs.add(at, "opt-out flag %s.%s of purpose %s must be boolean, not %s", s.Table, col, purpose, typ)
			}
		}
	}
	// Masks: the column's own mask, and whatever each role's view applies.
	for _, t := range p.tableList {
		for _, c := range t.Columns {
			typ, ok := cat.ColumnType(t.Name, c.Name)
			if !ok {
				continue
			}
			if c.Mask != nil {
				if err := c.Mask.Accepts(typ); err != nil {
					errs.add(c.At, "column %s.%s: %v", t.Name, c.Name, err)
				}
			}
			for _, r := range p.roleList {
				if r.Unrestricted {
					continue
				}
				v := r.views[t.Name][c.Name]
				if v.Mask == nil || v.Mask == c.Mask || v.Mask == defaultMask {
					continue
				}
				if err := v.Mask.Accepts(typ); err != nil {
					errs.add(r.maskAt(t.Name, c), "role %s, column %s.%s: %v", r.Name, t.Name, c.Name, err)
				}
			}
		}
	}
	return errs.err()
}

// maskAt is where the rule that gives column c its mask for role r was
// written.
func (r *Role) maskAt(t TableName, c *Column) Pos {
	if ru, ok := r.overrides[t][c.Name]; ok {
		return ru.at
	}
	if ru, ok := r.Profile.columns[t][c.Name]; ok {
		return ru.at
	}
	if ru := r.Profile.Classes[c.Class]; ru.at != (Pos{}) {
		return ru.at
	}
	// A built-in profile: the mask is the column's class default.
	return c.At
}

// MapCatalog is a Catalog in memory: "schema.table" → column → type.
type MapCatalog map[string]map[string]string

func (m MapCatalog) ColumnType(t TableName, col string) (string, bool) {
	typ, ok := m[t.String()][col]
	return typ, ok
}

func (m MapCatalog) TableExists(t TableName) bool {
	_, ok := m[t.String()]
	return ok
}

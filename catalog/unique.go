package catalog

// UniqueIndex is a unique index or an exclusion constraint of a table.
type UniqueIndex struct {
	Name string
	// Columns are its key columns, in order; nil when a key part is an
	// expression.
	Columns []string
	Primary bool
	// Partial: it has a WHERE predicate. Exclusion: it backs an exclusion
	// constraint. Deferrable: its constraint may be checked at commit.
	Partial, Exclusion, Deferrable bool
}

// Plain says whether the index is a plain unique index on columns: one
// that ON CONFLICT (columns) infers and `=` on its columns decides.
func (u UniqueIndex) Plain() bool {
	return u.Columns != nil && !u.Partial && !u.Exclusion && !u.Deferrable
}

const uniqueIndexesSQL = `
	SELECT i.indrelid, c.relname, i.indisprimary, i.indpred IS NOT NULL, i.indisexclusion, NOT i.indimmediate,
	       i.indexprs IS NOT NULL,
	       ARRAY(SELECT a.attname::text FROM pg_catalog.generate_series(0, i.indnkeyatts - 1) g(n)
	             JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[g.n]
	             ORDER BY g.n)
	FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid
	WHERE i.indisunique OR i.indisexclusion
	ORDER BY i.indrelid, NOT i.indisprimary, c.relname`

func (c *Catalog) scanUniqueIndex(rows Rows) error {
	var rel uint32
	var u UniqueIndex
	var exprs bool
	var cols []string
	if err := rows.Scan(&rel, &u.Name, &u.Primary, &u.Partial, &u.Exclusion, &u.Deferrable, &exprs, &cols); err != nil {
		return err
	}
	if !exprs {
		u.Columns = cols
	}
	if r := c.byOID[rel]; r != nil {
		r.Unique = append(r.Unique, u)
	}
	return nil
}

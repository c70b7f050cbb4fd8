package catalog

import (
	"context"
	"fmt"
	"reflect"
	"sort"
	"strings"

	"github.com/pgcloak/pgcloak/schema"
)

// Catalog is an immutable snapshot of what pgcloak needs to know about the
// database: relations and their columns, inheritance, what views read,
// and which functions, operators and types are built in or leakproof.
// Load reads it; a refresh builds a new one and swaps it in.
type Catalog struct {
	rels     map[relKey]*Relation
	byOID    map[uint32]*Relation
	relnames map[string][]*Relation // relation name → relations of that name in any schema
	funcs    map[string]*funcInfo   // function name → what is known of all functions of that name
	ops      map[string]*opInfo     // operator name → leakproofness
	types    map[relKey]bool        // type (schema, name) → safe to name (typeSafe)
	// Generation numbers the snapshots a reader has loaded in turn; the
	// engine sets it before it swaps the snapshot in.
	Generation uint64
}

type relKey struct{ schema, name string }

// Relation is a table, view or other relation of the database.
type Relation struct {
	OID    uint32
	Schema string
	Name   string
	Kind   byte // pg_class.relkind: r, p, v, m, f, S, t, c
	// Partition is set for a partition of a partitioned table
	// (pg_class.relispartition).
	Partition bool
	Columns   []Column
	// Parents are the relations this one inherits from or is a partition
	// of, transitively.
	Parents []*Relation
	// PrimaryKey lists the primary key's columns, if there is one.
	PrimaryKey []string
	// Unique lists the table's unique indexes and exclusion constraints:
	// what ON CONFLICT without a target checks (onconflict.go).
	Unique []UniqueIndex
	// HasChildren is set for a table that others inherit from or that is
	// partitioned.
	HasChildren bool
	// Reads are the relations a view or materialized view reads,
	// transitively; ReadsFunctions says it calls functions outside
	// pg_catalog.
	Reads          []*Relation
	ReadsFunctions bool

	parentOIDs []uint32
	readOIDs   []uint32
}

// Column is a column of a relation, in attnum order (dropped ones left out).
type Column struct {
	Name    string
	Num     int16
	Type    string // format_type(atttypid, atttypmod)
	TypeOID uint32
	Default string // the default expression (pg_get_expr), "" if none
}

// Column returns a column by name, or nil.
func (r *Relation) Column(name string) *Column {
	for i := range r.Columns {
		if r.Columns[i].Name == name {
			return &r.Columns[i]
		}
	}
	return nil
}

type funcInfo struct {
	// schemas maps each schema that holds a function of this name to
	// whether every function of the name there is built-in (builtinOID).
	schemas      map[string]bool
	allLeakproof bool
}

type opInfo struct {
	leakproof       bool            // every operator of this name is leakproof
	leakproofByLeft map[uint32]bool // per left operand type
	schemas         map[string]bool // as for funcInfo
}

// A function or operator is built-in when initdb created it: its OID is
// below FirstNormalObjectId, and it lives in pg_catalog or
// information_schema. Judging by catalog properties, not by name, lets
// through the helpers drivers call (information_schema._pg_expandarray)
// and keeps out what an extension or a user put into pg_catalog.
const firstNormalObjectID = 16384

func builtinOID(schema string, oid uint32) bool {
	return oid < firstNormalObjectID && (schema == "pg_catalog" || schema == "information_schema")
}

// onlyBuiltin says whether a name whose definitions live in schemas can
// only reach built-in ones: called as schema.name, those of that schema;
// unqualified, those of pg_catalog, which the session guards make the
// first schema searched, and no other schema may hold one of the name.
func onlyBuiltin(schemas map[string]bool, schema string) bool {
	if schema != "" {
		return schemas[schema]
	}
	return len(schemas) == 1 && schemas["pg_catalog"]
}

// Relation finds a relation by schema and name.
func (c *Catalog) Relation(schema, name string) *Relation { return c.rels[relKey{schema, name}] }

// RelationByOID finds a relation by OID.
func (c *Catalog) RelationByOID(oid uint32) *Relation { return c.byOID[oid] }

// Named returns the relations of that name, in any schema.
func (c *Catalog) Named(name string) []*Relation { return c.relnames[name] }

// UserRelations returns the relations that hold or show the database's own
// data, sorted by schema and name: its tables, partitioned tables, views,
// materialized views and foreign tables, outside pg_catalog,
// information_schema and pgcloak's own schema.
func (c *Catalog) UserRelations() []*Relation {
	var out []*Relation
	for _, r := range c.byOID {
		switch {
		case !strings.ContainsRune("rpvmf", rune(r.Kind)):
		case r.Schema == "pg_catalog", r.Schema == "information_schema", r.Schema == schema.Name:
		default:
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Schema != out[j].Schema {
			return out[i].Schema < out[j].Schema
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// Resolve finds the relation an unqualified name denotes on searchPath
// (pg_catalog is searched first unless the path names it).
func (c *Catalog) Resolve(name string, searchPath []string) *Relation {
	for _, s := range effectivePath(searchPath) {
		if r := c.rels[relKey{s, name}]; r != nil {
			return r
		}
	}
	return nil
}

func effectivePath(searchPath []string) []string {
	for _, s := range searchPath {
		if s == "pg_catalog" {
			return searchPath
		}
	}
	return append([]string{"pg_catalog"}, searchPath...)
}

// Rows is a query's result as Load reads it; pgx.Rows is one.
type Rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close()
}

// Load reads a catalog snapshot with query, the Query method of a
// connection or transaction (conn.Query of a *pgx.Conn or a pgx.Tx). It
// sees what the connection's role can see; pgcloak's catalog login must be
// able to read the catalogs (any role can) and does not need to read the
// tables.
func Load[R Rows](ctx context.Context, query func(ctx context.Context, sql string, args ...any) (R, error)) (*Catalog, error) {
	c := &Catalog{
		rels:     map[relKey]*Relation{},
		byOID:    map[uint32]*Relation{},
		relnames: map[string][]*Relation{},
		funcs:    map[string]*funcInfo{},
		ops:      map[string]*opInfo{},
		types:    map[relKey]bool{},
	}
	steps := []struct {
		what string
		sql  string
		scan func(Rows) error
	}{
		{"relations", `
			SELECT c.oid, n.nspname, c.relname, c.relkind::text, c.relispartition
			FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
			WHERE c.relkind IN ('r','p','v','m','f','S','t') AND n.nspname NOT LIKE 'pg\_temp\_%' AND n.nspname NOT LIKE 'pg\_toast%'`, c.scanRelation},
		{"columns", `
			SELECT a.attrelid, a.attname, a.attnum, pg_catalog.format_type(a.atttypid, a.atttypmod), a.atttypid,
			       CASE WHEN a.attgenerated = '' THEN pg_catalog.pg_get_expr(d.adbin, d.adrelid) END
			FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
			JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
			LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
			WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r','p','v','m','f')
			  AND n.nspname NOT LIKE 'pg\_temp\_%' AND n.nspname NOT LIKE 'pg\_toast%'
			ORDER BY a.attrelid, a.attnum`, c.scanColumn},
		{"inheritance", `SELECT inhrelid, inhparent FROM pg_catalog.pg_inherits`, c.scanInherits},
		{"primary keys", `
			SELECT i.indrelid, a.attname
			FROM pg_catalog.pg_index i
			JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
			WHERE i.indisprimary
			ORDER BY i.indrelid, pg_catalog.array_position(i.indkey::pg_catalog.int2[], a.attnum)`, c.scanPrimaryKey},
		{"unique indexes", uniqueIndexesSQL, c.scanUniqueIndex},
		{"view dependencies", `
			SELECT DISTINCT r.ev_class, d.refobjid, d.refclassid = 'pg_catalog.pg_proc'::regclass
			FROM pg_catalog.pg_rewrite r
			JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_rewrite'::regclass AND d.objid = r.oid
			WHERE d.refclassid IN ('pg_catalog.pg_class'::regclass, 'pg_catalog.pg_proc'::regclass)
			  AND d.refobjid <> r.ev_class`, c.scanViewDep},
		{"functions", `
			SELECT p.proname, n.nspname, p.proleakproof, p.oid
			FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace`, c.scanFunc},
		{"operators", `
			SELECT o.oprname, n.nspname, o.oprleft, p.proleakproof, o.oid, p.oid, pn.nspname
			FROM pg_catalog.pg_operator o JOIN pg_catalog.pg_proc p ON p.oid = o.oprcode
			JOIN pg_catalog.pg_namespace n ON n.oid = o.oprnamespace
			JOIN pg_catalog.pg_namespace pn ON pn.oid = p.pronamespace`, c.scanOp},
	}
	steps = append(steps, struct {
		what string
		sql  string
		scan func(Rows) error
	}{"types", `
		SELECT n.nspname, t.typname, t.oid, t.typtype::text, t.typrelid <> 0,
		       COALESCE(e.oid, 0), COALESCE(en.nspname, ''), COALESCE(e.typtype::text, ''), COALESCE(e.typrelid <> 0, false)
		FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
		LEFT JOIN pg_catalog.pg_type e ON e.oid = t.typelem AND t.typsubscript = 'pg_catalog.array_subscript_handler'::pg_catalog.regproc
		LEFT JOIN pg_catalog.pg_namespace en ON en.oid = e.typnamespace
		WHERE n.nspname NOT LIKE 'pg\_temp\_%' AND n.nspname NOT LIKE 'pg\_toast%'`, c.scanType})
	for _, st := range steps {
		rows, err := query(ctx, st.sql)
		if err != nil {
			return nil, fmt.Errorf("catalog: reading %s: %w", st.what, err)
		}
		for rows.Next() {
			if err := st.scan(rows); err != nil {
				rows.Close()
				return nil, fmt.Errorf("catalog: reading %s: %w", st.what, err)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("catalog: reading %s: %w", st.what, err)
		}
	}
	c.link()
	return c, nil
}

func (c *Catalog) scanRelation(rows Rows) error {
	r := &Relation{}
	var kind string
	if err := rows.Scan(&r.OID, &r.Schema, &r.Name, &kind, &r.Partition); err != nil {
		return err
	}
	r.Kind = kind[0]
	c.add(r)
	return nil
}

func (c *Catalog) add(r *Relation) {
	c.rels[relKey{r.Schema, r.Name}] = r
	c.byOID[r.OID] = r
	c.relnames[r.Name] = append(c.relnames[r.Name], r)
}

func (c *Catalog) scanColumn(rows Rows) error {
	var rel uint32
	var col Column
	var def *string
	if err := rows.Scan(&rel, &col.Name, &col.Num, &col.Type, &col.TypeOID, &def); err != nil {
		return err
	}
	if def != nil {
		col.Default = *def
	}
	if r := c.byOID[rel]; r != nil {
		r.Columns = append(r.Columns, col)
	}
	return nil
}

func (c *Catalog) scanInherits(rows Rows) error {
	var child, parent uint32
	if err := rows.Scan(&child, &parent); err != nil {
		return err
	}
	if r := c.byOID[child]; r != nil {
		r.parentOIDs = append(r.parentOIDs, parent)
	}
	return nil
}

func (c *Catalog) scanPrimaryKey(rows Rows) error {
	var rel uint32
	var col string
	if err := rows.Scan(&rel, &col); err != nil {
		return err
	}
	if r := c.byOID[rel]; r != nil {
		r.PrimaryKey = append(r.PrimaryKey, col)
	}
	return nil
}

func (c *Catalog) scanViewDep(rows Rows) error {
	var view, ref uint32
	var isFunc bool
	if err := rows.Scan(&view, &ref, &isFunc); err != nil {
		return err
	}
	r := c.byOID[view]
	if r == nil {
		return nil
	}
	if isFunc {
		// Functions a view calls are resolved below: only pg_catalog ones
		// are known not to read tables behind pgcloak's back.
		r.readOIDs = append(r.readOIDs, 0)
		return nil
	}
	r.readOIDs = append(r.readOIDs, ref)
	return nil
}

func (c *Catalog) scanFunc(rows Rows) error {
	var name, schema string
	var leakproof bool
	var oid uint32
	if err := rows.Scan(&name, &schema, &leakproof, &oid); err != nil {
		return err
	}
	f := c.funcs[name]
	if f == nil {
		f = &funcInfo{schemas: map[string]bool{}, allLeakproof: true}
		c.funcs[name] = f
	}
	addSchema(f.schemas, schema, builtinOID(schema, oid))
	f.allLeakproof = f.allLeakproof && leakproof
	return nil
}

// addSchema records one definition of a name in schema.
func addSchema(schemas map[string]bool, schema string, builtin bool) {
	if prev, ok := schemas[schema]; ok {
		builtin = builtin && prev
	}
	schemas[schema] = builtin
}

func (c *Catalog) scanOp(rows Rows) error {
	var name, schema, procSchema string
	var left, oid, proc uint32
	var leakproof bool
	if err := rows.Scan(&name, &schema, &left, &leakproof, &oid, &proc, &procSchema); err != nil {
		return err
	}
	o := c.ops[name]
	if o == nil {
		o = &opInfo{leakproof: true, leakproofByLeft: map[uint32]bool{}, schemas: map[string]bool{}}
		c.ops[name] = o
	}
	// An operator is as built-in as the function it runs.
	addSchema(o.schemas, schema, builtinOID(schema, oid) && builtinOID(procSchema, proc))
	o.leakproof = o.leakproof && leakproof
	if prev, ok := o.leakproofByLeft[left]; ok {
		o.leakproofByLeft[left] = prev && leakproof
	} else {
		o.leakproofByLeft[left] = leakproof
	}
	return nil
}

// Naming a type can run code: a cast to a domain checks the domain's
// constraints, which may call any function, and a literal of a type runs
// its input function. A type is safe to name when initdb created it, when
// it is the row type of a relation or an enum (whose input functions are
// built in), or when it is an array of such a type.
func typeSafe(schema string, oid uint32, typtype string, composite bool) bool {
	return builtinOID(schema, oid) || typtype == "e" || typtype == "c" && composite
}

func (c *Catalog) scanType(rows Rows) error {
	var schema, name, typtype, elemSchema, elemType string
	var oid, elem uint32
	var composite, elemComposite bool
	if err := rows.Scan(&schema, &name, &oid, &typtype, &composite, &elem, &elemSchema, &elemType, &elemComposite); err != nil {
		return err
	}
	safe := typeSafe(schema, oid, typtype, composite)
	if !safe && elem != 0 {
		safe = typeSafe(elemSchema, elem, elemType, elemComposite)
	}
	c.types[relKey{schema, name}] = safe
	return nil
}

// TypeSafe says whether a type name (schema "" for an unqualified one,
// resolved on searchPath) denotes a type that is safe to name; found is
// false when the snapshot has no such type.
func (c *Catalog) TypeSafe(schema, name string, searchPath []string) (safe, found bool) {
	if schema != "" {
		safe, found = c.types[relKey{schema, name}]
		return safe, found
	}
	for _, s := range effectivePath(searchPath) {
		if safe, found = c.types[relKey{s, name}]; found {
			return safe, true
		}
	}
	return false, false
}

// link resolves parent and view dependency OIDs into transitive closures.
func (c *Catalog) link() {
	for _, r := range c.byOID {
		seen := map[uint32]bool{}
		var walk func(oids []uint32)
		walk = func(oids []uint32) {
			for _, o := range oids {
				if seen[o] {
					continue
				}
				seen[o] = true
				if p := c.byOID[o]; p != nil {
					p.HasChildren = true
					r.Parents = append(r.Parents, p)
					walk(p.parentOIDs)
				}
			}
		}
		walk(r.parentOIDs)

		seen = map[uint32]bool{r.OID: true}
		var reads func(oids []uint32)
		reads = func(oids []uint32) {
			for _, o := range oids {
				if o == 0 {
					r.ReadsFunctions = true
					continue
				}
				if seen[o] {
					continue
				}
				seen[o] = true
				if d := c.byOID[o]; d != nil {
					r.Reads = append(r.Reads, d)
					reads(d.readOIDs)
					reads(d.parentOIDs)
				}
			}
		}
		reads(r.readOIDs)
	}
}

// FunctionExists says whether a function of that name exists in any schema.
func (c *Catalog) FunctionExists(name string) bool { return c.funcs[name] != nil }

// FunctionBuiltin says whether calls of the function name (optionally
// schema-qualified) can only reach built-in functions.
func (c *Catalog) FunctionBuiltin(schema, name string) bool {
	f := c.funcs[name]
	if f == nil {
		return false // unknown: let nothing through that we cannot name
	}
	return onlyBuiltin(f.schemas, schema)
}

// FunctionLeakproof says whether every function of that name is leakproof.
func (c *Catalog) FunctionLeakproof(name string) bool {
	f := c.funcs[name]
	return f != nil && f.allLeakproof
}

// OperatorBuiltin says whether the operator name denotes only built-in
// operators.
func (c *Catalog) OperatorBuiltin(schema, name string) bool {
	o := c.ops[name]
	if o == nil {
		return false
	}
	return onlyBuiltin(o.schemas, schema)
}

// OperatorLeakproof says whether the operator is leakproof for a left
// operand of type left (0: unknown, then every operator of that name must
// be).
func (c *Catalog) OperatorLeakproof(name string, left uint32) bool {
	o := c.ops[name]
	if o == nil {
		return false
	}
	if left != 0 {
		if lp, ok := o.leakproofByLeft[left]; ok {
			return lp
		}
	}
	return o.leakproof
}

// Same says whether two snapshots describe the database alike: every
// relation, column, type, function and operator they hold, their OIDs
// included, whatever their generations. Decisions made on one hold on the
// other.
func (c *Catalog) Same(o *Catalog) bool {
	a, b := *c, *o
	a.Generation, b.Generation = 0, 0
	return reflect.DeepEqual(a, b)
}

// String summarises the snapshot, for logs.
func (c *Catalog) String() string {
	var kinds strings.Builder
	fmt.Fprintf(&kinds, "%d relations, %d functions, %d operators", len(c.byOID), len(c.funcs), len(c.ops))
	return kinds.String()
}

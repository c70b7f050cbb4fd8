package rules

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/pgcloak/pgcloak/catalog"
	"github.com/pgcloak/pgcloak/examples/crm"
	"github.com/pgcloak/pgcloak/internal/pgtest"
	"github.com/pgcloak/pgcloak/schema"
)

var pg *pgtest.Server

func TestMain(m *testing.M) { pgtest.Main(m, pgtest.Options{}, &pg) }

// checkDatabase runs CheckDatabase on conn as pgcloak check does: in a
// read-only transaction, with pgx's Prepare as the Describe.
func checkDatabase(ctx context.Context, p *Policy, conn *pgx.Conn) ([]Finding, error) {
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(ctx)
	return CheckDatabase(ctx, p, tx.Query, func(ctx context.Context, sql string) ([]uint32, []uint32, error) {
		sd, err := tx.Conn().Prepare(ctx, "", sql)
		if err != nil {
			return nil, nil, err
		}
		fields := make([]uint32, len(sd.Fields))
		for i, f := range sd.Fields {
			fields[i] = f.DataTypeOID
		}
		return sd.ParamOIDs, fields, nil
	})
}

var loadCRM = func() func(t *testing.T) *pgx.Conn {
	loaded := false
	return func(t *testing.T) *pgx.Conn {
		t.Helper()
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, pg.DSN(pgtest.SuperUser, pgtest.Database))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close(ctx) })
		if !loaded {
			if _, err := crm.Load(ctx, conn, crm.Options{Customers: 300}); err != nil {
				t.Fatal(err)
			}
			loaded = true
		}
		return conn
	}
}()

// Principal mapping at connect: erin's region comes from the attribute
// query, run against the CRM.
func TestResolveWithAttributeQuery(t *testing.T) {
	conn := loadCRM(t)
	ctx := context.Background()
	p := crmPolicy(t)
	erin, err := Resolve(ctx, p, conn.QueryRow, "erin")
	if err != nil {
		t.Fatal(err)
	}
	if erin.Role.Name != "sales_rep" || erin.Attributes["region"] != "east" || !erin.Ready() {
		t.Fatalf("erin = %+v", erin)
	}
	f, _ := erin.RowFilter(customers)
	var n, east int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM customers WHERE "+f.SQL).Scan(&n); err != nil {
		t.Fatal(err)
	}
	conn.QueryRow(ctx, "SELECT count(*) FROM customers WHERE region = 'east'").Scan(&east)
	if n != east || n == 0 {
		t.Fatalf("erin's filter selects %d customers, east has %d", n, east)
	}
	alice, err := Resolve(ctx, p, conn.QueryRow, "alice") // inline: no query
	if err != nil || alice.Attributes["region"] != "north" {
		t.Fatalf("alice %+v, %v", alice, err)
	}
	_, err = Resolve(ctx, p, conn.QueryRow, "mallory")
	var ue *UnmappedLoginError
	if !errors.As(err, &ue) {
		t.Fatalf("mallory: %v", err)
	}
}

// A login whose attribute query finds no row, or two, is refused.
func TestResolveNoOrManyRows(t *testing.T) {
	conn := loadCRM(t)
	ctx := context.Background()
	src := strings.Replace(string(crm.Rules), "  # No default:", `  default:
    role: sales_rep
    attribute_query: "SELECT region FROM sales_reps WHERE login = $1 OR (login > 'w' AND $1 = 'twins')"
  #`, 1)
	p, err := Parse("x.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if pr, err := Resolve(ctx, p, conn.QueryRow, "wade"); err != nil || pr.Attributes["region"] != "west" {
		t.Fatalf("wade (a rep without own mapping, through the default): %+v %v", pr, err)
	}
	// No row: pgx's ErrNoRows is sql.ErrNoRows to errors.Is, which is
	// all Resolve knows of the driver.
	if _, err := Resolve(ctx, p, conn.QueryRow, "nobody"); !errors.Is(err, ErrNoAttributes) || !strings.Contains(err.Error(), "found no row") {
		t.Fatalf("no row: %v", err)
	}
	if _, err := Resolve(ctx, p, conn.QueryRow, "twins"); !errors.Is(err, ErrNoAttributes) || !strings.Contains(err.Error(), "found 2 rows") {
		t.Fatalf("two rows: %v", err)
	}
}

// An attribute value built to break out of its string constant, coming from
// the database through the attribute query, stays one literal: the filter
// selects nothing rather than everything.
func TestInjectionThroughAttributeQueryStaysLiteral(t *testing.T) {
	conn := loadCRM(t)
	ctx := context.Background()
	if _, err := conn.Exec(ctx, "ALTER TABLE sales_reps DROP CONSTRAINT IF EXISTS sales_reps_region_check"); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `INSERT INTO sales_reps VALUES (99, 'mallory', 'M', 'm@x', $1) ON CONFLICT (rep_id) DO UPDATE SET region = excluded.region`, "x' OR '1'='1"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Exec(context.Background(), "DELETE FROM sales_reps WHERE rep_id = 99") })
	src := strings.Replace(string(crm.Rules), "    erin:", "    mallory: {role: sales_rep, attribute_query: \"SELECT region FROM sales_reps WHERE login = $1\"}\n    erin:", 1)
	p, err := Parse("x.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	m, err := Resolve(ctx, p, conn.QueryRow, "mallory")
	if err != nil {
		t.Fatal(err)
	}
	for _, tab := range []string{"customers", "accounts", "contacts"} {
		f, _ := m.RowFilter(TableName{"public", tab})
		var n int
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM "+tab+" WHERE "+f.SQL).Scan(&n); err != nil {
			t.Fatalf("%s: %v", f.SQL, err)
		}
		if n != 0 {
			t.Errorf("%s: filter %s selects %d rows", tab, f.SQL, n)
		}
	}
}

// Every role's view of every protected column renders to SQL that runs on
// the CRM and keeps the column's type, so a policy subquery built from the
// views has the same row type as the table.
func TestEveryViewRunsOnTheCRM(t *testing.T) {
	conn := loadCRM(t)
	ctx := context.Background()
	if err := schema.Setup(ctx, conn.Exec); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "INSERT INTO pgcloak.pseudonym_key (key) VALUES ($1) ON CONFLICT (id) DO UPDATE SET key = excluded.key",
		[]byte("0123456789abcdef-test-key")); err != nil {
		t.Fatal(err)
	}
	p := crmPolicy(t)
	snap, err := catalog.Load(ctx, conn.Query)
	if err != nil {
		t.Fatal(err)
	}
	cat := newDBCatalog(snap)
	for _, r := range p.Roles() {
		for _, tab := range p.Tables() {
			var sel []string
			for _, dc := range cat.tables[tab.Name].Columns {
				v := r.Column(tab.Name, dc.Name)
				if v.Action == Deny {
					continue
				}
				expr, err := v.SQL(dc.Name, dc.Type)
				if err != nil {
					t.Fatalf("%s %s.%s: %v", r.Name, tab.Name, dc.Name, err)
				}
				sel = append(sel, expr+" AS "+QuoteIdent(dc.Name))
			}
			q := "SELECT " + strings.Join(sel, ", ") + " FROM " + tab.Name.SQL()
			rows, err := conn.Query(ctx, q+" LIMIT 50")
			if err != nil {
				t.Fatalf("%s on %s: %v\n%s", r.Name, tab.Name, err, q)
			}
			fds := rows.FieldDescriptions()
			rows.Close()
			if rows.Err() != nil {
				t.Fatalf("%s on %s: %v", r.Name, tab.Name, rows.Err())
			}
			i := 0
			for _, dc := range cat.tables[tab.Name].Columns {
				if r.Column(tab.Name, dc.Name).Action == Deny {
					continue
				}
				if fds[i].DataTypeOID != dc.TypeOID {
					t.Errorf("%s %s.%s: type %d, column %d", r.Name, tab.Name, dc.Name, fds[i].DataTypeOID, dc.TypeOID)
				}
				i++
			}
		}
	}

	// The analyst's key pseudonyms are stable and keep distinct counts;
	// the disclosure role's are others.
	a := p.Role("analyst").Column(customers, "customer_id")
	expr, _ := a.SQL("customer_id", "bigint")
	d := p.Role("disclosure_export").Column(customers, "customer_id")
	dexpr, _ := d.SQL("customer_id", "bigint")
	var distinctRaw, distinctPs, shared int
	var same bool
	if err := conn.QueryRow(ctx, "SELECT count(DISTINCT customer_id), count(DISTINCT "+expr+"), bool_and("+expr+" = "+expr+"), count(*) FILTER (WHERE "+expr+" = "+dexpr+") FROM customers").
		Scan(&distinctRaw, &distinctPs, &same, &shared); err != nil {
		t.Fatal(err)
	}
	if distinctRaw != distinctPs || !same || shared != 0 || a.Action != Pseudonymize {
		t.Errorf("pseudonyms: %d distinct keys, %d distinct pseudonyms, stable %v, %d shared with disclosure", distinctRaw, distinctPs, same, shared)
	}
	if strings.Contains(expr, "0123456789abcdef") {
		t.Error("the pseudonym key is in the SQL")
	}
	// A session login cannot read the key.
	other, err := pgx.Connect(ctx, pg.DSN(pgtest.ScramUser, pgtest.Database))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close(ctx)
	var ps string
	if err := other.QueryRow(ctx, "SELECT pgcloak.pseudonym('a@b.c')").Scan(&ps); err != nil || !strings.HasPrefix(ps, "ps_") {
		t.Errorf("a session cannot pseudonymize: %q %v", ps, err)
	}
	if _, err := other.Exec(ctx, "SELECT key FROM pgcloak.pseudonym_key"); err == nil {
		t.Error("a session can read the pseudonym key")
	}
}

// pgcloak check reads the user's relations from the catalog snapshot:
// tables, partitions (marked), views, with their column types and keys,
// sorted; never pgcloak's own schema nor the system catalogs. The
// snapshot is read over a transaction's Query method, so the objects made
// in the transaction are seen and rolled back.
func TestCheckReadsTheUserRelations(t *testing.T) {
	conn := loadCRM(t)
	ctx := context.Background()
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if err := schema.Setup(ctx, tx.Exec); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `CREATE SCHEMA zz_check;
		CREATE TABLE zz_check.b (id integer PRIMARY KEY, note text);
		CREATE TABLE zz_check.a (at date) PARTITION BY RANGE (at);
		CREATE TABLE zz_check.a_2026 PARTITION OF zz_check.a FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
		CREATE VIEW zz_check.c AS SELECT note FROM zz_check.b`); err != nil {
		t.Fatal(err)
	}
	snap, err := catalog.Load(ctx, tx.Query)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range snap.UserRelations() {
		if r.Schema == schema.Name || r.Schema == "pg_catalog" || r.Schema == "information_schema" {
			t.Errorf("user relations include %s.%s", r.Schema, r.Name)
		}
		if r.Schema == "zz_check" {
			got = append(got, fmt.Sprintf("%s:%c:%v", r.Name, r.Kind, r.Partition))
		}
	}
	if want := "a:p:false a_2026:r:true b:r:false c:v:false"; strings.Join(got, " ") != want {
		t.Errorf("zz_check relations = %v, want %s", got, want)
	}
	b := snap.Relation("zz_check", "b")
	if b == nil || len(b.Columns) != 2 || b.Columns[0].Type != "integer" || b.Columns[0].TypeOID != 23 ||
		b.Columns[1].Type != "text" || strings.Join(b.PrimaryKey, ",") != "id" {
		t.Fatalf("zz_check.b = %+v", b)
	}
	cat := newDBCatalog(snap)
	if !cat.TableExists(TableName{Schema: "zz_check", Name: "c"}) || cat.TableExists(TableName{Schema: schema.Name, Name: "change_requests"}) {
		t.Error("the check's catalog must know the user's view and not pgcloak's own table")
	}
	if typ, ok := cat.ColumnType(TableName{Schema: "zz_check", Name: "c"}, "note"); !ok || typ != "text" {
		t.Errorf("zz_check.c.note = %q, %v", typ, ok)
	}
}

// pgcloak check reports a database where pgcloak setup has not run (the
// functions masks and rewritten writes call are missing), and stops
// reporting it once it has.
func TestCheckSaysWhenSetupIsMissing(t *testing.T) {
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, pg.DSN(pgtest.SuperUser, pgtest.Database))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	for _, sql := range []string{"DROP DATABASE IF EXISTS zz_nosetup", "CREATE DATABASE zz_nosetup"} {
		if _, err := admin.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	conn, err := pgx.Connect(ctx, pg.DSN(pgtest.SuperUser, "zz_nosetup"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	setupFindings := func() int {
		t.Helper()
		fs, err := checkDatabase(ctx, crmPolicy(t), conn)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, f := range fs {
			if f.Code == "setup" {
				n++
			}
		}
		return n
	}
	if n := setupFindings(); n != 1 {
		t.Fatalf("before setup: %d setup findings, want 1", n)
	}
	if in, err := schema.Inspect(ctx, conn.Query); err != nil || in.Pseudonym || in.CheckViolation {
		t.Fatalf("before setup: Inspect = %+v, %v", in, err)
	}
	if err := schema.Setup(ctx, conn.Exec); err != nil {
		t.Fatal(err)
	}
	if n := setupFindings(); n != 0 {
		t.Fatalf("after setup: %d setup findings, want 0", n)
	}
	if in, err := schema.Inspect(ctx, conn.Query); err != nil || !in.Pseudonym || !in.CheckViolation {
		t.Fatalf("after setup: Inspect = %+v, %v", in, err)
	}
}

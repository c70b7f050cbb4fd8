package rules

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/pgcloak/pgcloak/catalog"
	"github.com/pgcloak/pgcloak/schema"
)

// Severity of a finding: errors make pgcloak check fail, warnings only with
// --strict.
type Severity string

const (
	SevError   Severity = "error"
	SevWarning Severity = "warning"
)

// Finding is one thing pgcloak check reports.
type Finding struct {
	Severity Severity `json:"severity"`
	// Code is a stable name for the kind of finding, for CI pipelines:
	// rules, schema, setup, mask-type, filter, attribute-query,
	// unclassed-column, looks-personal.
	Code    string `json:"code"`
	File    string `json:"file,omitempty"`
	Line    int    `json:"line,omitempty"`
	Col     int    `json:"col,omitempty"`
	Table   string `json:"table,omitempty"`
	Column  string `json:"column,omitempty"`
	Message string `json:"message"`
}

func (f Finding) String() string {
	where := ""
	switch {
	case f.Line > 0:
		where = fmt.Sprintf("%s:%d:%d: ", f.File, f.Line, f.Col)
	case f.Column != "":
		where = f.Table + "." + f.Column + ": "
	case f.Table != "":
		where = f.Table + ": "
	}
	return where + f.Message
}

// FindingsOf turns a Parse, Load or CheckCatalog error into findings.
func FindingsOf(err error, code string) []Finding {
	var le *LoadError
	if !errors.As(err, &le) {
		return []Finding{{Severity: SevError, Code: code, Message: err.Error()}}
	}
	out := make([]Finding, 0, len(le.Errors))
	for _, e := range le.Errors {
		out = append(out, Finding{Severity: SevError, Code: code, File: e.File, Line: e.Pos.Line, Col: e.Pos.Col, Message: e.Msg})
	}
	return out
}

// dbCatalog is the Catalog of a database: its user relations
// (catalog.Catalog.UserRelations), in order.
type dbCatalog struct {
	tables map[TableName]*catalog.Relation
	order  []*catalog.Relation
}

func newDBCatalog(cat *catalog.Catalog) *dbCatalog {
	c := &dbCatalog{tables: map[TableName]*catalog.Relation{}, order: cat.UserRelations()}
	for _, r := range c.order {
		c.tables[TableName{Schema: r.Schema, Name: r.Name}] = r
	}
	return c
}

func (c *dbCatalog) ColumnType(t TableName, col string) (string, bool) {
	if dc := c.column(t, col); dc != nil {
		return dc.Type, true
	}
	return "", false
}

func (c *dbCatalog) TableExists(t TableName) bool { return c.tables[t] != nil }

func (c *dbCatalog) column(t TableName, col string) *catalog.Column {
	if r := c.tables[t]; r != nil {
		return r.Column(col)
	}
	return nil
}

// Describe prepares sql without running it and returns the type OIDs of
// its parameters and of its result columns: what a driver's Prepare learns
// from the protocol's Parse and Describe messages, and no SQL statement
// tells before PostgreSQL 16.
type Describe func(ctx context.Context, sql string) (params, fields []uint32, err error)

// CheckDatabase checks policy p against the database, which it reads with
// query and describe: the Query method of a read-only transaction (tx.Query
// of a pgx.Tx) and a Describe in the same transaction, which the caller
// rolls back afterwards. Taking the transaction's methods rather than the
// transaction keeps this package, and the rewriter that imports it, free of
// any database driver. It reports:
//
//   - every table and column the rules name exists, masks fit the column
//     types (CheckCatalog);
//   - every mask, row filter and attribute query is valid SQL there
//     (prepared, not run), and every mask produces the column's type;
//   - unclassed columns of protected tables (warnings: they are treated as
//     UnclassedClass);
//   - columns anywhere that look personal, by name or by sampled values,
//     but are not classed (errors when restricted roles could read them
//     unmasked, warnings otherwise), and public columns whose values look
//     personal.
func CheckDatabase[R schema.Rows](ctx context.Context, p *Policy, query schema.Query[R], describe Describe) ([]Finding, error) {
	snap, err := catalog.Load(ctx, query)
	if err != nil {
		return nil, err
	}
	cat := newDBCatalog(snap)
	var out []Finding
	if err := p.CheckCatalog(cat); err != nil {
		out = append(out, FindingsOf(err, "schema")...)
	}
	db := &database[R]{ctx: ctx, query: query}
	pr := &prober[R]{db: db, describe: describe, seen: map[string]error{}}
	installed, err := schema.Inspect(ctx, query)
	if err != nil {
		return nil, err
	}
	havePseudonym := installed.Pseudonym
	if !installed.Pseudonym || !installed.CheckViolation || !installed.RowCheck {
		out = append(out, Finding{Severity: SevError, Code: "setup",
			Message: "schema pgcloak is missing or incomplete (pseudonym and check functions, pseudonym key): run pgcloak setup --database DSN"})
	}
	out = append(out, probeMasks(p, pr, cat, havePseudonym)...)
	out = append(out, probeFilters(p, pr, cat)...)
	out = append(out, probeAttrQueries(p, pr)...)
	if pr.err != nil {
		return nil, pr.err
	}
	looks, err := personalLooking(p, db, cat)
	if err != nil {
		return nil, err
	}
	out = append(out, looks...)
	triggers, err := settingsTriggers(db)
	if err != nil {
		return nil, err
	}
	out = append(out, triggers...)
	return out, nil
}

// database is CheckDatabase's transaction.
type database[R schema.Rows] struct {
	ctx   context.Context
	query schema.Query[R]
}

// exec runs a statement that returns no rows.
func (db *database[R]) exec(sql string) error {
	rows, err := db.query(db.ctx, sql)
	if err != nil {
		return err
	}
	rows.Close()
	return rows.Err()
}

// typeName is the name of type oid as format_type prints it, or "" if
// the query fails.
func (db *database[R]) typeName(oid uint32) string {
	rows, err := db.query(db.ctx, "SELECT format_type($1, NULL)", oid)
	if err != nil {
		return ""
	}
	defer rows.Close()
	var name string
	if rows.Next() {
		rows.Scan(&name)
	}
	return name
}

// prober prepares statements without running them, each behind a
// savepoint so that one failure does not abort the transaction.
type prober[R schema.Rows] struct {
	db       *database[R]
	describe Describe
	seen     map[string]error
	err      error // a failure of the connection itself
	// oids of the last probe's result columns
	fields []uint32
	params int
}

func (pr *prober[R]) prepare(sql string) error {
	if err, ok := pr.seen[sql]; ok && err != nil {
		return err
	}
	if err := pr.db.exec("SAVEPOINT pgcloak_probe"); err != nil {
		pr.err = err
		return nil
	}
	params, fields, err := pr.describe(pr.db.ctx, sql)
	if err != nil {
		if rerr := pr.db.exec("ROLLBACK TO SAVEPOINT pgcloak_probe"); rerr != nil {
			pr.err = rerr
		}
		pr.seen[sql] = err
		return err
	}
	pr.fields = append(pr.fields[:0], fields...)
	pr.params = len(params)
	pr.seen[sql] = nil
	if err := pr.db.exec("RELEASE SAVEPOINT pgcloak_probe"); err != nil {
		pr.err = err
	}
	return nil
}

func pgMessage(err error) string {
	msg := err.Error()
	return strings.TrimPrefix(msg, "ERROR: ")
}

func probeMasks[R schema.Rows](p *Policy, pr *prober[R], cat *dbCatalog, havePseudonym bool) []Finding {
	var out []Finding
	reported := map[string]bool{}
	for _, t := range p.tableList {
		for _, c := range t.Columns {
			dc := cat.column(t.Name, c.Name)
			if dc == nil {
				continue
			}
			type use struct {
				view ColumnView
				at   Pos
				who  string
			}
			var uses []use
			if c.Mask != nil {
				uses = append(uses, use{ColumnView{Action: MaskValue, Mask: c.Mask}, c.At, ""})
			}
			for _, r := range p.roleList {
				if r.Unrestricted {
					continue
				}
				v := r.views[t.Name][c.Name]
				if v.Mask != nil && v.Mask != c.Mask {
					uses = append(uses, use{v, r.maskAt(t.Name, c), "role " + r.Name + ", "})
				}
			}
			for _, u := range uses {
				if u.view.Mask.Accepts(dc.Type) != nil {
					continue // CheckCatalog reported it
				}
				if u.view.Mask.Kind == MaskPseudonymize && !havePseudonym {
					continue
				}
				expr, err := u.view.SQL(c.Name, dc.Type)
				if err != nil {
					continue
				}
				msg := ""
				if err := pr.prepare("SELECT " + expr + " FROM " + t.Name.SQL()); err != nil {
					msg = fmt.Sprintf("%smask %s of column %s.%s does not work on this database: %s", u.who, u.view.Mask.Name, t.Name, c.Name, pgMessage(err))
				} else if len(pr.fields) == 1 && pr.fields[0] != dc.TypeOID {
					got := pr.db.typeName(pr.fields[0])
					msg = fmt.Sprintf("%smask %s of column %s.%s produces %s, but the column is %s", u.who, u.view.Mask.Name, t.Name, c.Name, got, dc.Type)
				}
				if msg != "" && !reported[msg] {
					reported[msg] = true
					out = append(out, Finding{Severity: SevError, Code: "mask-type", File: p.file, Line: u.at.Line, Col: u.at.Col,
						Table: t.Name.String(), Column: c.Name, Message: msg})
				}
			}
		}
	}
	return out
}

var sampleValues = map[AttrType]string{
	"text": "x", "integer": "0", "bigint": "0", "numeric": "0", "boolean": "false",
	"date": "2000-01-01", "uuid": "00000000-0000-0000-0000-000000000000",
}

func probeFilters[R schema.Rows](p *Policy, pr *prober[R], cat *dbCatalog) []Finding {
	var out []Finding
	attrs := map[string]string{}
	for a, t := range p.attrTypes {
		attrs[a] = sampleValues[t]
	}
	for _, r := range p.roleList {
		tables := make([]TableName, 0, len(r.filters))
		for t := range r.filters {
			tables = append(tables, t)
		}
		sort.Slice(tables, func(i, j int) bool { return tables[i].String() < tables[j].String() })
		for _, t := range tables {
			ft := r.filters[t]
			if !cat.TableExists(t) {
				continue
			}
			f, err := ft.bind(p.attrTypes, attrs)
			if err == nil {
				err = pr.prepare("SELECT 1 FROM " + t.SQL() + " WHERE " + f.SQL)
			}
			if err != nil {
				out = append(out, Finding{Severity: SevError, Code: "filter", File: p.file, Line: ft.at.Line, Col: ft.at.Col, Table: t.String(),
					Message: fmt.Sprintf("row filter of table %s in role %s does not work on this database: %s", t, r.Name, pgMessage(err))})
			}
		}
	}
	return out
}

func probeAttrQueries[R schema.Rows](p *Policy, pr *prober[R]) []Finding {
	var out []Finding
	check := func(lr *loginRule, what string) {
		if lr == nil || lr.query == nil {
			return
		}
		err := pr.prepare(lr.query.wrapped())
		if err == nil && pr.params > 1 {
			err = fmt.Errorf("it has %d parameters", pr.params)
		}
		if err != nil {
			out = append(out, Finding{Severity: SevError, Code: "attribute-query", File: p.file, Line: lr.at.Line, Col: lr.at.Col,
				Message: fmt.Sprintf("attribute_query of %s does not work on this database: %s", what, pgMessage(err))})
		}
	}
	for _, lr := range p.loginList {
		check(lr, fmt.Sprintf("login %q", lr.login))
	}
	check(p.defaultLogin, "principals.default")
	return out
}

// Names that suggest personal data, as whole words of a column name
// (split at _ and at lower-to-upper case changes).
var personalWords = map[string]string{
	"email": "email", "mail": "email", "phone": "phone", "mobile": "phone", "cell": "phone", "fax": "phone",
	"tel": "phone", "telephone": "phone", "ssn": "national id", "passport": "national id", "nino": "national id",
	"iban": "bank account", "birth": "birth date", "birthday": "birth date", "dob": "birth date", "birthdate": "birth date",
	"address": "address", "street": "address", "zip": "address", "postal": "address", "postcode": "address",
	"income": "income", "salary": "income", "wage": "income", "religion": "religion", "religious": "religion",
	"ethnicity": "ethnicity", "ethnic": "ethnicity", "race": "ethnicity", "health": "health", "medical": "health",
	"diagnosis": "health", "gender": "gender", "sex": "gender", "surname": "name", "firstname": "name",
	"lastname": "name", "fullname": "name", "ip": "IP address",
}

var personalPhrases = map[string]string{
	"national_id": "national id", "tax_id": "national id", "social_security": "national id",
	"first_name": "name", "last_name": "name", "full_name": "name", "card_number": "card number",
	"credit_card": "card number", "date_of_birth": "birth date",
}

var camelRE = regexp.MustCompile(`([a-z0-9])([A-Z])`)

// personalName says what a column name suggests, or "".
func personalName(col string) string {
	n := strings.ToLower(camelRE.ReplaceAllString(col, "${1}_${2}"))
	for ph, what := range personalPhrases {
		if strings.Contains(n, ph) {
			return what
		}
	}
	for _, w := range strings.Split(n, "_") {
		if what, ok := personalWords[w]; ok {
			return what
		}
	}
	return ""
}

var (
	emailRE = regexp.MustCompile(`^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$`)
	phoneRE = regexp.MustCompile(`^\+?[0-9][0-9 ().-]{5,22}[0-9]$`)
	ssnRE   = regexp.MustCompile(`^[0-9]{3}-[0-9]{2}-[0-9]{4}$|^[A-Z]{2}[0-9]{6}[A-D]$`)
	cardRE  = regexp.MustCompile(`^[0-9][0-9 -]{11,22}[0-9]$`)
)

// valueShape says what a value looks like: "email addresses", "phone
// numbers", "card numbers", "national ids", or "".
func valueShape(v string) string {
	v = strings.TrimSpace(v)
	switch {
	case emailRE.MatchString(v):
		return "email addresses"
	case ssnRE.MatchString(v):
		return "national ids"
	case cardRE.MatchString(v) && luhn(v):
		return "card numbers"
	case phoneRE.MatchString(v):
		digits := 0
		for _, r := range v {
			if r >= '0' && r <= '9' {
				digits++
			}
		}
		if digits >= 7 && digits <= 15 && (strings.ContainsAny(v, "+ ()-") || digits >= 10) {
			return "phone numbers"
		}
	}
	return ""
}

func luhn(s string) bool {
	var digits []int
	for _, r := range s {
		if r >= '0' && r <= '9' {
			digits = append(digits, int(r-'0'))
		}
	}
	if len(digits) < 13 || len(digits) > 19 {
		return false
	}
	sum := 0
	for i := range digits {
		d := digits[len(digits)-1-i]
		if i%2 == 1 {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return sum%10 == 0
}

const sampleSize = 200

// sampleShape samples a text column's values and returns the shape most of
// them have, or "".
func sampleShape[R schema.Rows](db *database[R], t TableName, col string) (string, error) {
	q := "SELECT " + QuoteIdent(col) + "::text FROM " + t.SQL() + " WHERE " + QuoteIdent(col) + " IS NOT NULL LIMIT " + fmt.Sprint(sampleSize)
	if err := db.exec("SAVEPOINT pgcloak_sample"); err != nil {
		return "", err
	}
	rows, err := db.query(db.ctx, q)
	if err != nil {
		return "", err
	}
	counts := map[string]int{}
	n := 0
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			rows.Close()
			return "", err
		}
		n++
		counts[valueShape(v)]++
	}
	rows.Close()
	if rows.Err() != nil {
		// No privilege on the table, for example: sampling is best effort.
		return "", db.exec("ROLLBACK TO SAVEPOINT pgcloak_sample")
	}
	if err := db.exec("RELEASE SAVEPOINT pgcloak_sample"); err != nil {
		return "", err
	}
	best, bestN := "", 0
	for s, c := range counts {
		if s != "" && c > bestN {
			best, bestN = s, c
		}
	}
	if n >= 3 && bestN*10 >= n*6 {
		return best, nil
	}
	return "", nil
}

func personalLooking[R schema.Rows](p *Policy, db *database[R], cat *dbCatalog) ([]Finding, error) {
	var out []Finding
	for _, rel := range cat.order {
		tn := TableName{Schema: rel.Schema, Name: rel.Name}
		tab := p.tables[tn]
		if p.subject != nil && p.subject.OptOuts != nil && p.subject.OptOuts.Table == tn && tab == nil {
			// The opt-out table only holds keys and purposes.
			continue
		}
		for _, dc := range rel.Columns {
			var classed *Column
			if tab != nil {
				classed = tab.columns[dc.Name]
			}
			if classed != nil && classed.Class != Public {
				continue
			}
			var why []string
			if classed == nil {
				if what := personalName(dc.Name); what != "" {
					why = append(why, "its name suggests "+what)
				}
			}
			if FamilyOf(dc.Type) == FamilyText {
				shape, err := sampleShape(db, tn, dc.Name)
				if err != nil {
					return nil, err
				}
				if shape != "" {
					why = append(why, "its values look like "+shape)
				}
			}
			f := Finding{Severity: SevWarning, Table: tn.String(), Column: dc.Name}
			switch {
			case classed != nil:
				if len(why) == 0 {
					continue
				}
				f.Code = "looks-personal"
				f.File, f.Line, f.Col = p.file, classed.At.Line, classed.At.Col
				f.Message = fmt.Sprintf("column %s.%s is classed public, but %s", tn, dc.Name, strings.Join(why, " and "))
			case tab != nil:
				f.Code = "unclassed-column"
				f.Message = fmt.Sprintf("column %s.%s of a protected table is not classed; it is treated as %s", tn, dc.Name, p.unclassed)
				if len(why) > 0 {
					f.Message += "; " + strings.Join(why, " and ")
				}
			default:
				if len(why) == 0 {
					continue
				}
				f.Code = "looks-personal"
				if p.unlistedAllowed {
					f.Severity = SevError
					f.Message = fmt.Sprintf("column %s.%s looks personal (%s), but table %s is not in the rules, so restricted roles read it unmasked (defaults.unlisted_tables: allow)", tn, dc.Name, strings.Join(why, " and "), tn)
				} else {
					f.Message = fmt.Sprintf("column %s.%s looks personal (%s), but table %s is not in the rules (restricted roles cannot read it)", tn, dc.Name, strings.Join(why, " and "), tn)
				}
			}
			out = append(out, f)
		}
	}
	return out, nil
}

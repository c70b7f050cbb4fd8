package portal

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgcloak/pgcloak/rules"
)

// Limits on what one visitor can make the portal do.
const (
	maxRowsPerTable = 1000 // linked rows shown and exported per table
	maxValueLen     = 1000 // bytes of a corrected value
	maxPending      = 20   // pending corrections per subject
)

// model is what the portal reads and writes, worked out once from the
// rules and the catalog. Every SQL text it holds is built from names in the
// rules and the catalog; values a visitor sends are always bind
// parameters.
type model struct {
	pol       *rules.Policy
	subject   *rules.Subject
	keyType   string // format_type of the subject key
	requester *rules.Principal
	tables    []*tableQuery
	editable  []editable
	purposes  []purposeStore
}

// tableQuery reads one table's rows of one subject ($1, the key as text).
type tableQuery struct {
	name    rules.TableName
	subject bool
	sql     string
}

type editable struct {
	column, class, sqlType string
}

// purposeStore says how to read and change one purpose's opt-out.
type purposeStore struct {
	purpose string
	get     string // returns one boolean row for subject $1
	optOut  string // $1 subject
	optIn   string // $1 subject
}

func (m *model) keyParam(n int) string {
	return fmt.Sprintf("$%d::text::%s", n, m.keyType)
}

// newModel checks that the database has what the rules name and builds the
// queries. requester is the login change requests are recorded for.
func newModel(ctx context.Context, db *pgxpool.Pool, pol *rules.Policy, requester string) (*model, error) {
	subj := pol.Subject()
	if subj == nil {
		return nil, errors.New("portal: the rules name no data subject (subject: table, key)")
	}
	m := &model{pol: pol, subject: subj}
	pr, err := pol.Principal(requester)
	if err != nil {
		return nil, fmt.Errorf("portal: the requester %q of corrections must be a login of the rules: %w", requester, err)
	}
	if pr.Unrestricted() || !pr.Role.Allows(rules.StmtUpdate) || !pr.Table(subj.Table).Allowed {
		return nil, fmt.Errorf("portal: the requester %q must have a restricted role that may update %s (see docs/portal.md)", requester, subj.Table)
	}
	m.requester = pr
	cols, err := catalogColumns(ctx, db, subj.Table)
	if err != nil {
		return nil, err
	}
	kc, ok := cols[subj.Key]
	if !ok {
		return nil, fmt.Errorf("portal: %s has no key column %s", subj.Table, subj.Key)
	}
	m.keyType = kc.typ

	for _, t := range pol.Tables() {
		var where string
		switch {
		case t.Subject:
			where = rules.QuoteIdent("t") + "." + rules.QuoteIdent(subj.Key) + " = " + m.keyParam(1)
		case len(pol.LinkPath(t.Name)) > 0:
			where = m.linkPredicate(t, "t", 0)
		default:
			continue
		}
		tc, err := catalogColumns(ctx, db, t.Name)
		if err != nil {
			return nil, err
		}
		if len(tc) == 0 {
			continue // named in the rules, not in this database
		}
		m.tables = append(m.tables, &tableQuery{name: t.Name, subject: t.Subject,
			sql: "SELECT t.* FROM " + t.Name.SQL() + " t WHERE " + where + " ORDER BY 1 LIMIT " + fmt.Sprint(maxRowsPerTable+1)})
	}

	tab := pol.Table(subj.Table)
	for _, c := range tab.Columns {
		cc, ok := cols[c.Name]
		if !ok || c.Name == subj.Key || c.Class == rules.Public {
			continue
		}
		if isFlag(subj, c.Name) || pr.Role.Column(subj.Table, c.Name).Action != rules.Show {
			continue
		}
		m.editable = append(m.editable, editable{column: c.Name, class: c.Class.String(), sqlType: cc.typ})
	}

	if err := m.purposeStores(ctx, db); err != nil {
		return nil, err
	}
	return m, nil
}

func isFlag(s *rules.Subject, col string) bool {
	for _, c := range s.OptOutFlags {
		if c == col {
			return true
		}
	}
	return false
}

// linkPredicate is the condition, over alias, that a row of t belongs to
// the subject $1, following t's link to the subject table.
func (m *model) linkPredicate(t *rules.Table, alias string, depth int) string {
	l := t.Link
	col := rules.QuoteIdent(alias) + "." + rules.QuoteIdent(l.Column)
	if l.References == m.subject.Table && l.ReferencesColumn == m.subject.Key {
		return col + " = " + m.keyParam(1)
	}
	ref := m.pol.Table(l.References)
	inner := fmt.Sprintf("l%d", depth)
	var cond string
	if ref.Subject {
		cond = rules.QuoteIdent(inner) + "." + rules.QuoteIdent(m.subject.Key) + " = " + m.keyParam(1)
	} else {
		cond = m.linkPredicate(ref, inner, depth+1)
	}
	return col + " IN (SELECT " + rules.QuoteIdent(inner) + "." + rules.QuoteIdent(l.ReferencesColumn) +
		" FROM " + l.References.SQL() + " " + rules.QuoteIdent(inner) + " WHERE " + cond + ")"
}

type catColumn struct {
	typ        string
	notNull    bool
	hasDefault bool
}

func catalogColumns(ctx context.Context, db *pgxpool.Pool, t rules.TableName) (map[string]catColumn, error) {
	rows, err := db.Query(ctx, `SELECT a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), a.attnotnull, a.atthasdef
		FROM pg_catalog.pg_attribute a
		WHERE a.attrelid = pg_catalog.to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped`, t.SQL())
	if err != nil {
		return nil, fmt.Errorf("portal: reading the columns of %s: %w", t, err)
	}
	defer rows.Close()
	out := map[string]catColumn{}
	for rows.Next() {
		var name string
		var c catColumn
		if err := rows.Scan(&name, &c.typ, &c.notNull, &c.hasDefault); err != nil {
			return nil, err
		}
		out[name] = c
	}
	return out, rows.Err()
}

// purposeStores builds, per purpose, the statements that read and change
// the subject's opt-out: a boolean column of the subject table, or a row
// of the opt-out table. Other NOT NULL columns of the opt-out table
// without a default must be dates or times: they get now().
func (m *model) purposeStores(ctx context.Context, db *pgxpool.Pool) error {
	s := m.subject
	key := m.keyParam(1)
	var extraCols, extraVals []string
	if o := s.OptOuts; o != nil {
		cols, err := catalogColumns(ctx, db, o.Table)
		if err != nil {
			return err
		}
		if len(cols) == 0 {
			return fmt.Errorf("portal: the opt-out table %s does not exist", o.Table)
		}
		for name, c := range cols {
			if name == o.SubjectColumn || name == o.PurposeColumn || !c.notNull || c.hasDefault {
				continue
			}
			switch {
			case strings.HasPrefix(c.typ, "timestamp"), c.typ == "date":
				extraCols = append(extraCols, rules.QuoteIdent(name))
				extraVals = append(extraVals, "now()")
			default:
				return fmt.Errorf("portal: column %s of the opt-out table %s is NOT NULL without a default; the portal cannot fill it", name, o.Table)
			}
		}
	}
	for _, p := range m.pol.Purposes() {
		ps := purposeStore{purpose: p}
		if col, ok := s.OptOutFlags[p]; ok {
			c := rules.QuoteIdent(col)
			where := " WHERE " + rules.QuoteIdent(s.Key) + " = " + key
			ps.get = "SELECT coalesce(" + c + ", false) FROM " + s.Table.SQL() + where
			ps.optOut = "UPDATE " + s.Table.SQL() + " SET " + c + " = true" + where + " AND " + c + " IS DISTINCT FROM true"
			ps.optIn = "UPDATE " + s.Table.SQL() + " SET " + c + " = false" + where + " AND " + c + " IS DISTINCT FROM false"
		} else if o := s.OptOuts; o != nil {
			t := o.Table.SQL()
			sc, pc := rules.QuoteIdent(o.SubjectColumn), rules.QuoteIdent(o.PurposeColumn)
			lit := rules.QuoteLiteral(p)
			match := sc + " = " + key + " AND " + pc + " = " + lit
			ps.get = "SELECT EXISTS (SELECT 1 FROM " + t + " WHERE " + match + ")"
			cols := append([]string{sc, pc}, extraCols...)
			vals := append([]string{key, lit}, extraVals...)
			ps.optOut = "INSERT INTO " + t + " (" + strings.Join(cols, ", ") + ") SELECT " + strings.Join(vals, ", ") +
				" WHERE NOT EXISTS (SELECT 1 FROM " + t + " WHERE " + match + ")"
			ps.optIn = "DELETE FROM " + t + " WHERE " + match
		} else {
			continue
		}
		m.purposes = append(m.purposes, ps)
	}
	return nil
}

// field is one column of a row, as PostgreSQL prints it.
type field struct {
	Name  string
	Value *string
}

// row keeps its columns in table order, also in JSON.
type row []field

func (r row) MarshalJSON() ([]byte, error) {
	var b strings.Builder
	b.WriteByte('{')
	for i, f := range r {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(f.Name)
		v, _ := json.Marshal(f.Value)
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return []byte(b.String()), nil
}

type tableRows struct {
	Table     string `json:"table"`
	Subject   bool   `json:"subject_table,omitempty"`
	Rows      []row  `json:"rows"`
	Truncated bool   `json:"truncated,omitempty"`
}

type optOut struct {
	Purpose  string `json:"purpose"`
	OptedOut bool   `json:"opted_out"`
}

type historyEntry struct {
	At       time.Time `json:"changed_at"`
	Purpose  string    `json:"purpose"`
	OptedOut bool      `json:"opted_out"`
}

type correction struct {
	ID        int64             `json:"id"`
	At        time.Time         `json:"requested_at"`
	NewValues map[string]string `json:"new_values"`
	Status    string            `json:"status"`
	DecidedAt *time.Time        `json:"decided_at,omitempty"`
	Note      *string           `json:"note,omitempty"`
}

// export is everything the portal shows a subject, and the JSON download.
type export struct {
	Subject     string         `json:"subject"`
	ExportedAt  time.Time      `json:"exported_at"`
	Tables      []tableRows    `json:"tables"`
	OptOuts     []optOut       `json:"opt_outs"`
	History     []historyEntry `json:"opt_out_history"`
	Corrections []correction   `json:"corrections"`
}

// exists says whether the subject is in the subject table.
func (m *model) exists(ctx context.Context, db *pgxpool.Pool, subject string) (bool, error) {
	var ok bool
	err := db.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM "+m.subject.Table.SQL()+" WHERE "+
		rules.QuoteIdent(m.subject.Key)+" = "+m.keyParam(1)+")", subject).Scan(&ok)
	var pe *pgconn.PgError
	if errors.As(err, &pe) && strings.HasPrefix(pe.Code, "22") {
		// A key that is not even of the key's type (22P02, 22003) names nobody.
		return false, nil
	}
	return ok, err
}

// load reads everything about one subject in one read-only snapshot.
func (m *model) load(ctx context.Context, db *pgxpool.Pool, subject string) (*export, error) {
	x := &export{Subject: subject, ExportedAt: time.Now().UTC()}
	err := pgx.BeginTxFunc(ctx, db, pgx.TxOptions{AccessMode: pgx.ReadOnly, IsoLevel: pgx.RepeatableRead}, func(tx pgx.Tx) error {
		for _, tq := range m.tables {
			tr, err := readRows(ctx, tx, tq, subject)
			if err != nil {
				return err
			}
			x.Tables = append(x.Tables, *tr)
		}
		for _, ps := range m.purposes {
			o := optOut{Purpose: ps.purpose}
			if err := tx.QueryRow(ctx, ps.get, subject).Scan(&o.OptedOut); err != nil {
				return err
			}
			x.OptOuts = append(x.OptOuts, o)
		}
		rows, err := tx.Query(ctx, `SELECT changed_at, purpose, opted_out FROM pgcloak.opt_out_history
			WHERE subject = $1 ORDER BY changed_at DESC, id DESC LIMIT 100`, subject)
		if err != nil {
			return err
		}
		for rows.Next() {
			var h historyEntry
			if err := rows.Scan(&h.At, &h.Purpose, &h.OptedOut); err != nil {
				return err
			}
			x.History = append(x.History, h)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		rows, err = tx.Query(ctx, `SELECT id, requested_at, new_values, status, decided_at, decision_note
			FROM pgcloak.change_requests
			WHERE requester = $1 AND table_name = $2 AND row_key = jsonb_build_object($3::text, `+m.keyParam(4)+`)
			ORDER BY id DESC LIMIT 100`, m.requester.Login, m.subject.Table.String(), m.subject.Key, subject)
		if err != nil {
			return err
		}
		for rows.Next() {
			var c correction
			var vals []byte
			if err := rows.Scan(&c.ID, &c.At, &vals, &c.Status, &c.DecidedAt, &c.Note); err != nil {
				return err
			}
			if err := json.Unmarshal(vals, &c.NewValues); err != nil {
				return err
			}
			x.Corrections = append(x.Corrections, c)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, err
	}
	return x, nil
}

func readRows(ctx context.Context, tx pgx.Tx, tq *tableQuery, subject string) (*tableRows, error) {
	rows, err := tx.Query(ctx, tq.sql, pgx.QueryResultFormats{pgx.TextFormatCode}, subject)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", tq.name, err)
	}
	defer rows.Close()
	tr := &tableRows{Table: tq.name.String(), Subject: tq.subject, Rows: []row{}}
	fds := rows.FieldDescriptions()
	for rows.Next() {
		if len(tr.Rows) == maxRowsPerTable {
			tr.Truncated = true
			break
		}
		raw := rows.RawValues()
		r := make(row, len(fds))
		for i, fd := range fds {
			r[i].Name = fd.Name
			if raw[i] != nil {
				v := string(raw[i])
				r[i].Value = &v
			}
		}
		tr.Rows = append(tr.Rows, r)
	}
	rows.Close()
	return tr, rows.Err()
}

// setOptOut records the subject's choice for purpose: it takes effect in
// the same transaction that writes the history row. changed is false when
// the choice was already so.
func (m *model) setOptOut(ctx context.Context, db *pgxpool.Pool, subject, purpose string, out bool) (changed bool, err error) {
	var ps *purposeStore
	for i := range m.purposes {
		if m.purposes[i].purpose == purpose {
			ps = &m.purposes[i]
		}
	}
	if ps == nil {
		return false, errUnknownPurpose
	}
	err = pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		sql := ps.optIn
		if out {
			sql = ps.optOut
		}
		tag, err := tx.Exec(ctx, sql, subject)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return nil
		}
		changed = true
		_, err = tx.Exec(ctx, `INSERT INTO pgcloak.opt_out_history (subject, purpose, opted_out, source) VALUES ($1, $2, $3, 'portal')`,
			subject, purpose, out)
		return err
	})
	return changed, err
}

var (
	errUnknownPurpose = errors.New("unknown purpose")
	errUnknownColumn  = errors.New("unknown column")
	errTooMany        = errors.New("too many pending corrections")
	errBadValue       = errors.New("not a valid value")
)

// requestCorrection records a change request for one column of the
// subject's row, the way a held UPDATE is recorded (rewrite/changes.go):
// the portal's login is the requester, an approver applies it with
// pgcloak review. It returns the request's id.
func (m *model) requestCorrection(ctx context.Context, db *pgxpool.Pool, subject, column, value string) (int64, error) {
	var ed *editable
	for i := range m.editable {
		if m.editable[i].column == column {
			ed = &m.editable[i]
		}
	}
	if ed == nil {
		return 0, errUnknownColumn
	}
	var id int64
	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		// One subject's corrections are recorded one at a time, so the
		// limit on pending ones holds under concurrent posts.
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtextextended('pgcloak.portal:' || $1, 0))", subject); err != nil {
			return err
		}
		var pending int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM pgcloak.change_requests
			WHERE requester = $1 AND table_name = $2 AND row_key = jsonb_build_object($3::text, `+m.keyParam(4)+`) AND status = 'pending'`,
			m.requester.Login, m.subject.Table.String(), m.subject.Key, subject).Scan(&pending); err != nil {
			return err
		}
		if pending >= maxPending {
			return errTooMany
		}
		// The value must be one of the column's type; checked in a
		// savepoint so that a bad one ends only the check.
		sp, err := tx.Begin(ctx)
		if err != nil {
			return err
		}
		if _, err := sp.Exec(ctx, "SELECT $1::text::"+ed.sqlType, value); err != nil {
			sp.Rollback(ctx)
			return errBadValue
		}
		if err := sp.Commit(ctx); err != nil {
			return err
		}
		stmt := "UPDATE " + m.subject.Table.SQL() + " SET " + rules.QuoteIdent(column) + " = $1 WHERE " +
			rules.QuoteIdent(m.subject.Key) + " = $2 /* pgcloak portal correction */"
		// The key goes into row_key as a value of its own type (a number
		// for a bigint key), as to_jsonb of the row has it.
		if _, err := tx.Exec(ctx, `SELECT pgcloak.request_change($1, $2, $3, jsonb_build_object($4::text, `+m.keyParam(5)+`), jsonb_build_object($6::text, $7::text), $8)`,
			m.requester.Login, m.requester.Role.Name, m.subject.Table.String(), m.subject.Key, subject, column, value, stmt); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `SELECT max(id) FROM pgcloak.change_requests WHERE requester = $1 AND row_key = jsonb_build_object($2::text, `+m.keyParam(3)+`)`,
			m.requester.Login, m.subject.Key, subject).Scan(&id)
	})
	return id, err
}

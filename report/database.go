package report

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgcloak/pgcloak/catalog"
	"github.com/pgcloak/pgcloak/rules"
	"github.com/pgcloak/pgcloak/schema"
)

// The parts of the report that come from the database: its tables and
// their row counts, the subjects and their opt-outs, and the change
// requests. Everything is read in one read-only, repeatable-read
// transaction, so the figures agree with each other.

// dbTable is a table of the database and its columns' types.
type dbTable struct {
	name    rules.TableName
	kind    byte // r, p (tables); v, m, f (counted too, when readable)
	columns map[string]string
}

func readTables(ctx context.Context, tx pgx.Tx) ([]*dbTable, error) {
	cat, err := catalog.Load(ctx, tx.Query)
	if err != nil {
		return nil, err
	}
	var out []*dbTable
	for _, r := range cat.UserRelations() {
		if r.Partition || len(r.Columns) == 0 {
			continue // a partition's rows are its parent's
		}
		t := &dbTable{name: rules.TableName{Schema: r.Schema, Name: r.Name}, kind: r.Kind, columns: map[string]string{}}
		for _, c := range r.Columns {
			t.columns[c.Name] = c.Type
		}
		out = append(out, t)
	}
	return out, nil
}

// databaseFacts reads the overview, the column types for the data model
// and the change requests.
func databaseFacts(ctx context.Context, conn *pgx.Conn, p *rules.Policy, period Period) (DatabaseOverview, map[string]map[string]string, Changes, error) {
	var ov DatabaseOverview
	var ch Changes
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return ov, nil, ch, err
	}
	defer tx.Rollback(ctx)
	tables, err := readTables(ctx, tx)
	if err != nil {
		return ov, nil, ch, err
	}
	types := map[string]map[string]string{}
	ov.Tables = []TableCount{}
	for _, t := range tables {
		types[t.name.String()] = t.columns
		if t.kind != 'r' && t.kind != 'p' {
			continue // views and foreign tables: their rows are elsewhere
		}
		tc := TableCount{Name: t.name.String()}
		if pt := p.Table(t.name); pt != nil {
			tc.Protected, tc.Confidential = true, pt.Confidential
			tc.LinkedToSubject = linkedToSubject(p, pt)
		}
		if err := tx.QueryRow(ctx, "SELECT count(*) FROM "+t.name.SQL()).Scan(&tc.Rows); err != nil {
			return ov, nil, ch, fmt.Errorf("counting the rows of %s: %w", t.name, err)
		}
		ov.Tables = append(ov.Tables, tc)
	}
	ov.OptOuts = []PurposeOptOut{}
	if s := p.Subject(); s != nil {
		if _, ok := types[s.Table.String()]; !ok {
			return ov, types, ch, fmt.Errorf("the subject table %s is not in the database", s.Table)
		}
		if err := tx.QueryRow(ctx, "SELECT count(*) FROM "+s.Table.SQL()).Scan(&ov.Subjects); err != nil {
			return ov, types, ch, err
		}
		for _, pu := range p.Purposes() {
			po := PurposeOptOut{Purpose: pu, Recorded: optOutStorage(s, pu).Table != ""}
			if po.Recorded {
				// The predicate the rewrite itself applies: these are the
				// subjects pgcloak leaves out for the purpose.
				q := "SELECT count(*) FROM " + s.Table.SQL() + " s WHERE " + s.OptedOut(pu, "s")
				if err := tx.QueryRow(ctx, q).Scan(&po.Subjects); err != nil {
					return ov, types, ch, fmt.Errorf("counting the opt-outs of %s: %w", pu, err)
				}
			}
			if ov.Subjects > 0 {
				po.Share = float64(po.Subjects) / float64(ov.Subjects)
			}
			ov.OptOuts = append(ov.OptOuts, po)
		}
	}
	ch, err = changeFacts(ctx, tx, period)
	return ov, types, ch, err
}

// changeFacts reads the change requests of the period.
func changeFacts(ctx context.Context, tx pgx.Tx, period Period) (Changes, error) {
	ch := Changes{ByState: []Count{}, ByRequester: []Count{}, ByApprover: []Count{}, Requests: []ChangeFacts{}}
	var exists bool
	if err := tx.QueryRow(ctx, "SELECT to_regclass('pgcloak.change_requests') IS NOT NULL").Scan(&exists); err != nil {
		return ch, err
	}
	if !exists {
		ch.Note = "pgcloak.change_requests does not exist: pgcloak setup has not been run on this database, so no change can have been held for review"
		return ch, nil
	}
	ch.Available = true
	list, err := schema.ListChanges(ctx, tx.Query, "")
	if err != nil {
		return ch, fmt.Errorf("reading the change requests: %w", err)
	}
	states, requesters, approvers := counter{}, counter{}, counter{}
	for _, c := range list {
		if !period.contains(c.RequestedAt) {
			continue
		}
		cf := ChangeFacts{ID: c.ID, RequestedAt: c.RequestedAt, Requester: c.Requester, Role: c.Role, Table: c.Table,
			Status: c.Status, DecidedAt: c.DecidedAt}
		for col := range c.NewValues {
			cf.Columns = append(cf.Columns, col)
		}
		sort.Strings(cf.Columns)
		states.add(c.Status, 1)
		requesters.add(c.Requester+" ("+c.Role+")", 1)
		if c.DecidedBy != nil {
			cf.DecidedBy = *c.DecidedBy
			approvers.add(*c.DecidedBy, 1)
		}
		ch.Requests = append(ch.Requests, cf)
	}
	ch.ByState, ch.ByRequester, ch.ByApprover = states.sorted(), requesters.sorted(), approvers.sorted()
	ch.OptOutChanges.History, err = optOutHistory(ctx, tx, period)
	return ch, err
}

// optOutHistory counts the rows of pgcloak.opt_out_history in the period:
// the portal writes one for each opt-out a customer changes there
// (docs/portal.md). Subjects are counted, never listed.
func optOutHistory(ctx context.Context, tx pgx.Tx, period Period) (OptOutHistory, error) {
	h := OptOutHistory{ByPurpose: []PurposeChange{}, BySource: []Count{}}
	if err := tx.QueryRow(ctx, "SELECT to_regclass('pgcloak.opt_out_history') IS NOT NULL").Scan(&h.Available); err != nil || !h.Available {
		return h, err
	}
	since, until := period.Since, period.Until
	const where = ` WHERE ($1::timestamptz IS NULL OR changed_at >= $1) AND ($2::timestamptz IS NULL OR changed_at < $2)`
	if err := tx.QueryRow(ctx, "SELECT count(*), count(DISTINCT subject) FROM pgcloak.opt_out_history"+where, since, until).
		Scan(&h.Changes, &h.Subjects); err != nil {
		return h, fmt.Errorf("reading pgcloak.opt_out_history: %w", err)
	}
	rows, err := tx.Query(ctx, "SELECT purpose, count(*) FILTER (WHERE opted_out), count(*) FILTER (WHERE NOT opted_out) FROM pgcloak.opt_out_history"+
		where+" GROUP BY purpose ORDER BY purpose", since, until)
	if err != nil {
		return h, err
	}
	for rows.Next() {
		var pc PurposeChange
		if err := rows.Scan(&pc.Purpose, &pc.OptedOut, &pc.OptedIn); err != nil {
			return h, err
		}
		h.ByPurpose = append(h.ByPurpose, pc)
	}
	if err := rows.Err(); err != nil {
		return h, err
	}
	rows, err = tx.Query(ctx, "SELECT source || ' (' || changed_by || ')', count(*) FROM pgcloak.opt_out_history"+where+" GROUP BY 1", since, until)
	if err != nil {
		return h, err
	}
	sources := counter{}
	for rows.Next() {
		var name string
		var n int64
		if err := rows.Scan(&name, &n); err != nil {
			return h, err
		}
		sources.add(name, n)
	}
	h.BySource = sources.sorted()
	return h, rows.Err()
}

func (p Period) contains(t time.Time) bool {
	if p.Since != nil && t.Before(*p.Since) {
		return false
	}
	if p.Until != nil && !t.Before(*p.Until) {
		return false
	}
	return true
}

// counter counts by name.
type counter map[string]int64

func (c counter) add(name string, n int64) { c[name] += n }

// sorted lists the counts, largest first, then by name.
func (c counter) sorted() []Count {
	out := make([]Count, 0, len(c))
	for n, v := range c {
		out = append(out, Count{n, v})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Count != out[j].Count {
			return out[i].Count > out[j].Count
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// linkedToSubject says whether each row of t belongs to a data subject:
// t is the subject table or its links lead there.
func linkedToSubject(p *rules.Policy, t *rules.Table) bool {
	if t.Subject {
		return true
	}
	path := p.LinkPath(t.Name)
	return p.Subject() != nil && len(path) > 0 && path[len(path)-1].Link.References == p.Subject().Table
}

package report

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgcloak/pgcloak/internal/dbcheck"
	"github.com/pgcloak/pgcloak/rules"
)

// Options say what to gather the facts from.
type Options struct {
	Policy *rules.Policy
	// Conn is a connection to the protected database, as a login that may
	// read every table (its owner); nil leaves out what needs it.
	Conn *pgx.Conn
	// AuditFiles are access logs, each a file or a glob pattern matching a
	// log's current and rotated files (one hash chain each).
	AuditFiles []string
	// AuditOpen accepts logs without an end record: the live log of a
	// running pgcloak (audit.VerifyOptions.Open).
	AuditOpen bool
	// Since and Until bound the period; zero is open.
	Since, Until time.Time
	// Now is the report's time (time.Now when nil).
	Now func() time.Time
}

// Gather collects the facts. A failure to read the database or a log is
// an error; what a log says (a broken chain included) is a fact.
func Gather(ctx context.Context, o Options) (*Facts, error) {
	p := o.Policy
	now := time.Now
	if o.Now != nil {
		now = o.Now
	}
	f := &Facts{Generated: now().UTC(), Rules: RulesInfo{File: p.File(), Version: p.Version()}}
	if !o.Since.IsZero() {
		s := o.Since.UTC()
		f.Period.Since = &s
	}
	if !o.Until.IsZero() {
		u := o.Until.UTC()
		f.Period.Until = &u
	}

	var types map[string]map[string]string
	var findings []rules.Finding
	f.Changes = Changes{ByState: []Count{}, ByRequester: []Count{}, ByApprover: []Count{}, Requests: []ChangeFacts{},
		Note: "no database given", OptOutChanges: OptOutChanges{History: OptOutHistory{ByPurpose: []PurposeChange{}, BySource: []Count{}}}}
	f.Database = DatabaseOverview{Tables: []TableCount{}, OptOuts: []PurposeOptOut{}}
	if o.Conn != nil {
		var err error
		// pgcloak check's own findings: unclassed and personal-looking
		// columns, and anything else wrong with the rules here.
		if findings, err = dbcheck.Check(ctx, p, o.Conn); err != nil {
			return nil, fmt.Errorf("checking the rules against the database: %w", err)
		}
		if f.Database, types, f.Changes, err = databaseFacts(ctx, o.Conn, p, f.Period); err != nil {
			return nil, err
		}
	}
	f.DataModel = dataModel(p, types)
	if findings != nil {
		f.DataModel.Findings = findings
	}
	f.PrivacyViews = privacyViews(p)
	f.Risk = measureRisk(ctx, o, p)

	ar := newActivityReader(p, f.Period)
	f.Integrity = []LogIntegrity{}
	for _, pat := range o.AuditFiles {
		files, err := expand(pat)
		if err != nil {
			return nil, fmt.Errorf("--audit-file %s: %w", pat, err)
		}
		for _, file := range files {
			if err := ar.readFile(file); err != nil {
				return nil, fmt.Errorf("reading the access log: %w", err)
			}
		}
		f.Integrity = append(f.Integrity, verifyLog(pat, files, o.AuditOpen))
	}
	var through map[string][]string
	history := f.Changes.OptOutChanges.History
	f.Activity, f.Changes.OptOutChanges, f.Changes.Decisions, through = ar.finish(len(o.AuditFiles) > 0)
	f.Changes.OptOutChanges.History = history
	for i := range f.PrivacyViews.Roles {
		f.PrivacyViews.Roles[i].ObservedThrough = through[f.PrivacyViews.Roles[i].Name]
	}
	return f, nil
}

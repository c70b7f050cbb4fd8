package main

import (
	"context"
	"fmt"
	"io"

	"github.com/jackc/pgx/v5"

	"github.com/pgcloak/pgcloak/anonymity"
	"github.com/pgcloak/pgcloak/rules"
)

// checkAnonymity measures, for each role whose profile pseudonymizes keys,
// the k-anonymity of what it sees of the subjects (package anonymity). A
// role below anonymity.min_k is a warning (an error with --strict); a role
// that cannot be measured is an error.
func checkAnonymity(ctx context.Context, p *rules.Policy, dsn string) ([]*anonymity.Result, []rules.Finding, error) {
	if p.Subject() == nil || len(anonymity.Roles(p)) == 0 {
		return nil, nil, nil
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return nil, nil, err
	}
	defer conn.Close(context.Background())
	var results []*anonymity.Result
	var out []rules.Finding
	for _, role := range anonymity.Roles(p) {
		r, err := anonymity.Measure(ctx, conn, p, role)
		if err != nil {
			out = append(out, rules.Finding{Severity: rules.SevError, Code: "anonymity", Table: p.Subject().Table.String(),
				Message: fmt.Sprintf("role %s: k-anonymity could not be measured: %v", role, err)})
			continue
		}
		results = append(results, r)
		if !r.OK {
			out = append(out, rules.Finding{Severity: rules.SevWarning, Code: "anonymity", Table: r.Table,
				Message: fmt.Sprintf("role %s sees %d of %d subjects in groups smaller than anonymity.min_k %d (k = %d); generalize or hide: %v",
					role, r.BelowMinK, r.Subjects, r.MinK, r.K, r.Drivers)})
		}
	}
	return results, out, nil
}

func writeAnonymityText(w io.Writer, results []*anonymity.Result) {
	for _, r := range results {
		fmt.Fprintf(w, "anonymity: role %s (as %s): k = %d over %d subjects in %d groups (min_k %d)\n",
			r.Role, r.Login, r.K, r.Subjects, r.Groups, r.MinK)
	}
}

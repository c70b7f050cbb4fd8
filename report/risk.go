package report

import (
	"context"
	"fmt"

	"github.com/pgcloak/pgcloak/anonymity"
	"github.com/pgcloak/pgcloak/rules"
)

// measureRisk measures, in the database, the k-anonymity of what every
// role with an anonymizing profile sees (package anonymity: a GROUP BY
// over the role's quasi-identifiers, rewritten for the role as its own
// session would be).
func measureRisk(ctx context.Context, o Options, p *rules.Policy) RiskSection {
	rs := RiskSection{Roles: []RoleRisk{}, Threshold: p.MinK()}
	roles := anonymity.Roles(p)
	switch {
	case len(roles) == 0:
		rs.Note = "no role has an anonymizing profile (anonymized, disclosure, or keys: pseudonymize)"
		return rs
	case o.Conn == nil:
		rs.Note = "no database given: k-anonymity is measured in the database"
		return rs
	}
	if rs.Threshold == 0 {
		rs.Note = "the rules set no threshold (anonymity: {min_k: N}), so no group is too small"
	}
	rs.Measured = true
	for _, name := range roles {
		r := p.Role(name)
		rr := RoleRisk{Role: name, Profile: r.Profile.Name, K: -1, QuasiIdentifiers: []string{}, Drivers: []string{}}
		res, err := anonymity.Measure(ctx, o.Conn, p, name)
		if err != nil {
			rr.Error = err.Error()
			rs.Roles = append(rs.Roles, rr)
			continue
		}
		rr.Login, rr.Table, rr.K, rr.Subjects, rr.Groups, rr.SubjectsBelow, rr.OK = res.Login, res.Table, res.K, res.Subjects, res.Groups, res.BelowMinK, res.OK
		for _, q := range res.QuasiIdentifiers {
			rr.QuasiIdentifiers = append(rr.QuasiIdentifiers, fmt.Sprintf("%s (%s; k without it: %d)", q.Name, q.View, q.KWithout))
		}
		rr.Drivers = append(rr.Drivers, res.Drivers...)
		rr.PseudonymizedKeys, rr.RawKeys = res.PseudonymizedKeys, res.RawKeys
		rs.Roles = append(rs.Roles, rr)
	}
	return rs
}

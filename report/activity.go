package report

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"os"
	"sort"
	"time"

	"github.com/pgcloak/pgcloak/audit"
	"github.com/pgcloak/pgcloak/rules"
)

// The activity of the period, from the access log: every statement
// record in the period is counted once. Chain records (start, rules) give
// the rules versions in force, whatever the period.

// topStatements is how many statements per role the report lists.
const topStatements = 5

// activityReader accumulates the records of every file given.
type activityReader struct {
	period Period
	policy *rules.Policy

	act       Activity
	roles     counter
	logins    counter
	endUsers  counter
	classes   counter
	decisions counter
	roleDec   map[string]counter
	refusals  counter
	families  counter
	incidents counter
	auth      counter
	reviews   counter
	stmts     map[string]map[string]*StatementFreq // role → query → freq
	times     []stamped
	versions  []versionMark
	through   map[string]map[string]bool // role → delegating application
	optOut    optOutMatcher
	optLogins counter
	optKinds  counter
	optStmts  int64
	optRows   int64

	portalApplied, portalUnchanged int64
	portalChanges                  counter
	first, end                     time.Time
}

// stamped is a statement's time and decision, for the timeline.
type stamped struct {
	t        time.Time
	decision string
}

// versionMark is a chain record naming the rules in force.
type versionMark struct {
	t       time.Time
	version string
	why     string
}

func newActivityReader(p *rules.Policy, period Period) *activityReader {
	return &activityReader{period: period, policy: p,
		roles: counter{}, logins: counter{}, endUsers: counter{}, classes: counter{}, decisions: counter{},
		roleDec: map[string]counter{}, refusals: counter{}, families: counter{}, incidents: counter{}, auth: counter{},
		reviews: counter{}, stmts: map[string]map[string]*StatementFreq{}, through: map[string]map[string]bool{},
		optOut: newOptOutMatcher(p), optLogins: counter{}, optKinds: counter{}, portalChanges: counter{}}
}

// maxLine bounds one access record: statement text is cut at 4 KiB by the
// writer, objects and names add little.
const maxLine = 4 << 20

// readFile reads the records of one file.
func (a *activityReader) readFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return a.read(f)
}

func (a *activityReader) read(r io.Reader) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxLine)
	for sc.Scan() {
		var rec audit.Record
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil || rec.Type == "" {
			a.act.Skipped++
			continue
		}
		a.record(&rec)
	}
	if errors.Is(sc.Err(), bufio.ErrTooLong) {
		a.act.Skipped++
		return nil
	}
	return sc.Err()
}

func (a *activityReader) record(r *audit.Record) {
	switch r.Type {
	case audit.TypeStart:
		why := "start"
		if r.Cause == "restart" {
			why = "restart"
		}
		if r.RulesVersion != "" && r.Cause != "rotate" {
			a.versions = append(a.versions, versionMark{r.Time, r.RulesVersion, why})
		}
		return
	case audit.TypeRules:
		a.versions = append(a.versions, versionMark{r.Time, r.RulesVersion, "reload"})
		return
	}
	if !a.period.contains(r.Time) {
		return
	}
	switch r.Type {
	case audit.TypeAuth:
		a.auth.add(r.Outcome, 1)
	case "review":
		if r.Statement != nil {
			a.reviews.add(r.Login+": "+r.Decision, 1)
		}
	case "portal":
		a.portal(r)
	case audit.TypeStatement:
		a.statement(r)
	}
}

func (a *activityReader) statement(r *audit.Record) {
	st := r.Statement
	if st == nil {
		st = &audit.Statement{}
	}
	a.act.Statements++
	if a.first.IsZero() || r.Time.Before(a.first) {
		a.first = r.Time
	}
	if r.Time.After(a.end) {
		a.end = r.Time
	}
	role := st.Role
	if role == "" {
		role = "(no rules)"
	}
	a.roles.add(role, 1)
	a.logins.add(r.Login, 1)
	if st.EndUser != "" {
		a.endUsers.add(st.EndUser+" via "+r.Login, 1)
		if a.through[role] == nil {
			a.through[role] = map[string]bool{}
		}
		a.through[role][r.Login] = true
	}
	dec := st.Decision
	a.decisions.add(dec, 1)
	if a.roleDec[role] == nil {
		a.roleDec[role] = counter{}
	}
	a.roleDec[role].add(dec, 1)
	a.times = append(a.times, stamped{r.Time, dec})
	if dec == audit.Denied {
		reason := st.Reason
		if reason == "" {
			reason = "(no reason recorded)"
		}
		a.refusals.add(reason, 1)
		a.families.add(string(audit.ReasonOf(st.Reason)), 1)
	} else if r.SQLState != "" {
		a.act.ServerErrors++
	}
	if r.WireCheck > 0 {
		a.act.Incidents++
		a.act.IncidentColumns += int64(r.WireCheck)
		a.incidents.add(role, 1)
	}
	classes := map[string]bool{}
	for _, o := range st.Objects {
		for _, c := range o.Columns {
			classes[c] = true
		}
	}
	for c := range classes {
		a.classes.add(c, 1)
	}
	q := st.Query
	if q == "" {
		q = "(text not recorded: it does not parse)"
	}
	if a.stmts[role] == nil {
		a.stmts[role] = map[string]*StatementFreq{}
	}
	f := a.stmts[role][q]
	if f == nil {
		f = &StatementFreq{Query: q, Kind: st.Kind}
		a.stmts[role][q] = f
	}
	f.Count++
	f.Decision = dec
	if dec == audit.Denied {
		f.Denied++
	}
	if dec != audit.Denied && r.SQLState == "" && a.optOut.matches(st) {
		a.optStmts++
		if r.Rows != nil {
			a.optRows += *r.Rows
		}
		who := r.Login
		if st.EndUser != "" {
			who = st.EndUser + " via " + r.Login
		}
		a.optLogins.add(who, 1)
		a.optKinds.add(st.Kind, 1)
	}
}

// portal counts a customer's own opt-out change in the portal (the
// portal's access record: kind portal_opt_out or portal_opt_in, decision
// applied or unchanged).
func (a *activityReader) portal(r *audit.Record) {
	st := r.Statement
	if st == nil {
		return
	}
	var what string
	switch st.Kind {
	case "portal_opt_out":
		what = "opted out of " + st.Purpose
	case "portal_opt_in":
		what = "allowed " + st.Purpose + " again"
	default:
		return
	}
	switch st.Decision {
	case "applied":
		a.portalApplied++
		a.portalChanges.add(what, 1)
	case "unchanged":
		a.portalUnchanged++
	}
}

// finish sorts and fills in what is counted.
func (a *activityReader) finish(logs bool) (Activity, OptOutChanges, []Count, map[string][]string) {
	act := a.act
	act.Logs = logs
	if !a.first.IsZero() {
		f, l := a.first, a.end
		act.First, act.Last = &f, &l
	}
	act.Decisions = map[string]int64{audit.Allowed: 0, audit.Rewritten: 0, audit.Denied: 0}
	for d, n := range a.decisions {
		act.Decisions[d] = n
	}
	act.ByRole, act.ByLogin, act.ByEndUser, act.ByClass = a.roles.sorted(), a.logins.sorted(), a.endUsers.sorted(), a.classes.sorted()
	act.ByRoleDecision = map[string]map[string]int64{}
	for role, c := range a.roleDec {
		act.ByRoleDecision[role] = c
	}
	act.Refusals, act.RefusalFamily = a.refusals.sorted(), a.families.sorted()
	act.IncidentsByRole, act.Auth = a.incidents.sorted(), a.auth.sorted()
	act.TopStatements = []RoleStatements{}
	for _, rc := range act.ByRole {
		var list []StatementFreq
		for _, f := range a.stmts[rc.Name] {
			list = append(list, *f)
		}
		sort.Slice(list, func(i, j int) bool {
			if list[i].Count != list[j].Count {
				return list[i].Count > list[j].Count
			}
			return list[i].Query < list[j].Query
		})
		if len(list) > topStatements {
			list = list[:topStatements]
		}
		act.TopStatements = append(act.TopStatements, RoleStatements{Role: rc.Name, Statements: list})
	}
	act.RulesVersions = a.rulesVersions()
	act.Timeline = a.timeline()
	oc := OptOutChanges{Statements: a.optStmts, Rows: a.optRows, ByLogin: a.optLogins.sorted(), ByKind: a.optKinds.sorted(),
		Source:        "statements in the access log that wrote " + a.optOut.where() + " and succeeded",
		PortalApplied: a.portalApplied, PortalUnchanged: a.portalUnchanged, PortalByChange: a.portalChanges.sorted()}
	through := map[string][]string{}
	for role, apps := range a.through {
		for app := range apps {
			through[role] = append(through[role], app)
		}
		sort.Strings(through[role])
	}
	return act, oc, a.reviews.sorted(), through
}

// rulesVersions turns the chain records into periods, keeping those that
// overlap the report's period.
func (a *activityReader) rulesVersions() []RulesPeriod {
	marks := a.versions
	sort.SliceStable(marks, func(i, j int) bool { return marks[i].t.Before(marks[j].t) })
	var out []RulesPeriod
	for _, m := range marks {
		if n := len(out); n > 0 && out[n-1].Version == m.version {
			continue
		}
		if n := len(out); n > 0 {
			t := m.t
			out[n-1].Until = &t
		}
		out = append(out, RulesPeriod{Version: m.version, From: m.t, Why: m.why})
	}
	kept := []RulesPeriod{}
	for _, rp := range out {
		if a.period.Until != nil && !rp.From.Before(*a.period.Until) {
			continue
		}
		if a.period.Since != nil && rp.Until != nil && !rp.Until.After(*a.period.Since) {
			continue
		}
		kept = append(kept, rp)
	}
	return kept
}

// Bucket sizes for the timeline, the smallest that gives at most
// maxBuckets.
var bucketSizes = []time.Duration{time.Minute, 5 * time.Minute, 15 * time.Minute, time.Hour, 3 * time.Hour,
	6 * time.Hour, 24 * time.Hour, 7 * 24 * time.Hour, 30 * 24 * time.Hour}

const maxBuckets = 48

func (a *activityReader) timeline() Timeline {
	tl := Timeline{Buckets: []TimelineBucket{}}
	if len(a.times) == 0 {
		return tl
	}
	from, to := a.first, a.end
	if a.period.Since != nil {
		from = *a.period.Since
	}
	if a.period.Until != nil {
		to = *a.period.Until
	}
	size := bucketSizes[len(bucketSizes)-1]
	for _, s := range bucketSizes {
		if to.Sub(from.Truncate(s))/s < maxBuckets {
			size = s
			break
		}
	}
	start := from.Truncate(size)
	n := int(to.Sub(start)/size) + 1
	tl.Start, tl.Bucket = start, size.String()
	tl.Buckets = make([]TimelineBucket, n)
	for i := range tl.Buckets {
		tl.Buckets[i].Start = start.Add(time.Duration(i) * size)
	}
	for _, s := range a.times {
		i := int(s.t.Sub(start) / size)
		if i < 0 || i >= n {
			continue
		}
		switch s.decision {
		case audit.Denied:
			tl.Buckets[i].Denied++
		case audit.Rewritten:
			tl.Buckets[i].Rewritten++
		default:
			tl.Buckets[i].Allowed++
		}
	}
	return tl
}

// optOutMatcher recognizes statements that change opt-outs: writes to the
// opt-out table, or to an opt-out flag of the subject table.
type optOutMatcher struct {
	table string
	flags map[string]bool // flag columns of subjectTable
	subj  string
}

func newOptOutMatcher(p *rules.Policy) optOutMatcher {
	m := optOutMatcher{flags: map[string]bool{}}
	s := p.Subject()
	if s == nil {
		return m
	}
	if s.OptOuts != nil {
		m.table = s.OptOuts.Table.String()
	}
	m.subj = s.Table.String()
	for _, col := range s.OptOutFlags {
		m.flags[col] = true
	}
	return m
}

func (m optOutMatcher) matches(st *audit.Statement) bool {
	for _, o := range st.Objects {
		if o.Access != "write" {
			continue
		}
		if o.Relation == m.table && m.table != "" {
			return true
		}
		if o.Relation == m.subj && len(m.flags) > 0 {
			for c := range o.Columns {
				if m.flags[c] {
					return true
				}
			}
		}
	}
	return false
}

func (m optOutMatcher) where() string {
	switch {
	case m.table != "" && len(m.flags) > 0:
		return m.table + " or the opt-out flags of " + m.subj
	case m.table != "":
		return m.table
	case len(m.flags) > 0:
		return "the opt-out flags of " + m.subj
	}
	return "opt-outs (the rules record none)"
}

package report_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgcloak/pgcloak/anonymity"
	"github.com/pgcloak/pgcloak/report"
)

// logCounts are the figures the test computes from the access log on its
// own: a plain JSON reading of every line, not the report's code.
type logCounts struct {
	statements int64
	byRole     map[string]int64
	byLogin    map[string]int64
	decisions  map[string]int64
	refusals   map[string]int64
	incidents  int64
	columns    int64
	optOuts    int64

	portalApplied, portalUnchanged int64
}

func countLog(t *testing.T, since, until time.Time, files ...string) logCounts {
	t.Helper()
	c := logCounts{byRole: map[string]int64{}, byLogin: map[string]int64{}, decisions: map[string]int64{}, refusals: map[string]int64{}}
	for _, file := range files {
		f, err := os.Open(file)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var r struct {
				Time      time.Time `json:"time"`
				Type      string    `json:"type"`
				Login     string    `json:"login"`
				Role      string    `json:"role"`
				Kind      string    `json:"kind"`
				Decision  string    `json:"decision"`
				Reason    string    `json:"reason"`
				SQLState  string    `json:"sqlstate"`
				WireCheck int64     `json:"wire_check"`
				Objects   []struct {
					Relation, Access string
				} `json:"objects"`
			}
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			if (!since.IsZero() && r.Time.Before(since)) || (!until.IsZero() && !r.Time.Before(until)) {
				continue
			}
			if r.Type == "portal" && strings.HasPrefix(r.Kind, "portal_opt_") {
				switch r.Decision {
				case "applied":
					c.portalApplied++
				case "unchanged":
					c.portalUnchanged++
				}
			}
			if r.Type != "statement" {
				continue
			}
			c.statements++
			c.byRole[r.Role]++
			c.byLogin[r.Login]++
			c.decisions[r.Decision]++
			if r.Decision == "denied" {
				c.refusals[r.Reason]++
			}
			if r.WireCheck > 0 {
				c.incidents++
				c.columns += r.WireCheck
			}
			for _, o := range r.Objects {
				if o.Relation == "public.customer_opt_outs" && o.Access == "write" && r.Decision != "denied" && r.SQLState == "" {
					c.optOuts++
					break
				}
			}
		}
		f.Close()
	}
	return c
}

func asMap(cs []report.Count) map[string]int64 {
	m := map[string]int64{}
	for _, c := range cs {
		m[c.Name] = c.Count
	}
	return m
}

func sameCounts(t *testing.T, what string, got, want map[string]int64) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: report has %v, the log %v", what, got, want)
		return
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s %q: report says %d, the log %d", what, k, got[k], v)
		}
	}
}

// TestFiguresMatchLogAndDatabase: a real workload through pgcloak and a
// generated log; every figure of the report equals what the test counts
// itself from the log files and the database.
func TestFiguresMatchLogAndDatabase(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	live, start := runWorkload(t, dir)
	gen := writeGenerated(t, dir, 120)
	conn := adminConn(t)
	// The portal's opt-out history: rows in the period and one before it.
	if _, err := conn.Exec(ctx, optOutHistorySQL); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `INSERT INTO pgcloak.opt_out_history (changed_at, subject, purpose, opted_out) VALUES
		(now() - interval '10 days', '1', 'direct_marketing', true),
		(now(), '7', 'direct_marketing', true), (now(), '7', 'direct_marketing', false), (now(), '8', 'sensitive_data', true)`); err != nil {
		t.Fatal(err)
	}

	facts, err := report.Gather(ctx, report.Options{Policy: policy, Conn: conn, AuditFiles: []string{live, gen.file}, Since: start})
	if err != nil {
		t.Fatal(err)
	}
	want := countLog(t, start, time.Time{}, live, gen.file)
	if want.portalApplied != 4 || want.portalUnchanged != 1 {
		t.Fatalf("the generated log has %d applied and %d unchanged portal changes", want.portalApplied, want.portalUnchanged)
	}
	a := facts.Activity
	if a.Statements != want.statements || want.statements < 170 {
		t.Errorf("statements: report %d, log %d", a.Statements, want.statements)
	}
	sameCounts(t, "statements of role", asMap(a.ByRole), want.byRole)
	sameCounts(t, "statements of login", asMap(a.ByLogin), want.byLogin)
	sameCounts(t, "decision", a.Decisions, want.decisions)
	sameCounts(t, "refusals for", asMap(a.Refusals), want.refusals)
	if a.Incidents != want.incidents || a.IncidentColumns != want.columns || a.Incidents != int64(gen.incidents) {
		t.Errorf("incidents: report %d (%d columns), log %d (%d), generated %d", a.Incidents, a.IncidentColumns, want.incidents, want.columns, gen.incidents)
	}
	// The workload's own refusals are there, by the rule that refused.
	for _, rule := range []string{"tables.public.commissions", "roles.sales_rep.statements"} {
		if asMap(a.Refusals)[rule] == 0 {
			t.Errorf("no refusal by %s in %v", rule, a.Refusals)
		}
	}
	if a.ServerErrors < 1 {
		t.Errorf("SELECT 1/0 is not counted as failed at the server")
	}
	// The four SELECTs: the SET that names bob is the application's own
	// statement, as the switch takes effect when the server answers it.
	if asMap(a.ByEndUser)["bob via crm_app"] != 4 {
		t.Errorf("end users: %v", a.ByEndUser)
	}
	oc := facts.Changes.OptOutChanges
	if oc.Statements != want.optOuts || oc.Statements != 3 {
		t.Errorf("opt-out changes: report %d, log %d, workload 3", oc.Statements, want.optOuts)
	}
	if oc.PortalApplied != want.portalApplied || oc.PortalUnchanged != want.portalUnchanged ||
		asMap(oc.PortalByChange)["opted out of direct_marketing"] != 2 {
		t.Errorf("portal opt-out changes: %d applied, %d unchanged, %v; the log %d, %d",
			oc.PortalApplied, oc.PortalUnchanged, oc.PortalByChange, want.portalApplied, want.portalUnchanged)
	}
	var histChanges, histSubjects int64
	if err := conn.QueryRow(ctx, "SELECT count(*), count(DISTINCT subject) FROM pgcloak.opt_out_history WHERE changed_at >= $1", start).
		Scan(&histChanges, &histSubjects); err != nil {
		t.Fatal(err)
	}
	if h := oc.History; !h.Available || h.Changes != histChanges || h.Subjects != histSubjects || histChanges < 3 {
		t.Errorf("opt-out history: report %+v, database %d changes of %d subjects", h, histChanges, histSubjects)
	}
	// The workload's rules, then the generated log's two versions (the
	// period begins at the workload's start).
	if v := a.RulesVersions; len(v) != 3 || v[0].Version != policy.Version() || v[1].Version != "aaaaaaaaaaaa" ||
		v[2].Version != "bbbbbbbbbbbb" || v[2].Why != "reload" || !v[2].From.Equal(gen.start.Add(30*time.Minute)) {
		t.Errorf("rules versions: %+v", a.RulesVersions)
	}
	var buckets int64
	for _, b := range a.Timeline.Buckets {
		buckets += b.Allowed + b.Rewritten + b.Denied
	}
	if buckets != want.statements {
		t.Errorf("timeline holds %d statements, the log %d", buckets, want.statements)
	}

	// The database, counted here with plain SQL.
	var subjects int64
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM customers").Scan(&subjects); err != nil {
		t.Fatal(err)
	}
	if facts.Database.Subjects != subjects || subjects != testCustomers {
		t.Errorf("subjects: report %d, database %d", facts.Database.Subjects, subjects)
	}
	rows, err := conn.Query(ctx, "SELECT purpose, count(DISTINCT customer_id) FROM customer_opt_outs GROUP BY purpose")
	if err != nil {
		t.Fatal(err)
	}
	optOuts := map[string]int64{}
	for rows.Next() {
		var p string
		var n int64
		rows.Scan(&p, &n)
		optOuts[p] = n
	}
	if len(optOuts) != 4 {
		t.Fatalf("opt-outs in the database: %v", optOuts)
	}
	for _, po := range facts.Database.OptOuts {
		if po.Subjects != optOuts[po.Purpose] || math.Abs(po.Share-float64(optOuts[po.Purpose])/float64(subjects)) > 1e-12 {
			t.Errorf("opt-outs of %s: report %d (%.4f), database %d of %d", po.Purpose, po.Subjects, po.Share, optOuts[po.Purpose], subjects)
		}
	}
	for _, tc := range facts.Database.Tables {
		var n int64
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM "+tc.Name).Scan(&n); err != nil || n != tc.Rows {
			t.Errorf("rows of %s: report %d, database %d (%v)", tc.Name, tc.Rows, n, err)
		}
	}
	if len(facts.Database.Tables) != 12 {
		t.Errorf("%d tables, the sample CRM has 12", len(facts.Database.Tables))
	}

	// Change requests: sam's two, one applied by petra.
	states := asMap(facts.Changes.ByState)
	if states["applied"] != 1 || states["pending"] != 1 || asMap(facts.Changes.ByApprover)["petra"] != 1 ||
		asMap(facts.Changes.ByRequester)["sam (support)"] != 2 {
		t.Errorf("change requests: %+v", facts.Changes)
	}
	for _, r := range facts.Changes.Requests {
		if len(r.Columns) != 1 || (r.Columns[0] != "phone" && r.Columns[0] != "street") {
			t.Errorf("request %d names columns %v", r.ID, r.Columns)
		}
	}

	// Re-identification risk: what package anonymity measures, for every
	// role it applies to, with the rules' threshold.
	results, err := anonymity.MeasureAll(ctx, conn, policy)
	if err != nil {
		t.Fatal(err)
	}
	if r := facts.Risk; !r.Measured || r.Threshold != policy.MinK() || len(r.Roles) != len(results) || len(results) < 2 {
		t.Errorf("risk: %+v; anonymity measures %d roles", r, len(results))
	} else {
		for i, res := range results {
			got := r.Roles[i]
			if got.Role != res.Role || got.K != res.K || got.SubjectsBelow != res.BelowMinK || got.Groups != res.Groups ||
				got.Subjects != res.Subjects || got.OK != res.OK || strings.Join(got.Drivers, ",") != strings.Join(res.Drivers, ",") ||
				len(got.QuasiIdentifiers) != len(res.QuasiIdentifiers) || got.Error != "" {
				t.Errorf("risk of %s: report %+v, anonymity %+v", res.Role, got, res)
			}
		}
	}

	// Both chains verify.
	if len(facts.Integrity) != 2 {
		t.Fatalf("integrity: %+v", facts.Integrity)
	}
	for _, li := range facts.Integrity {
		if !li.Intact || !li.Closed || li.Break != nil || li.Records == 0 {
			t.Errorf("%s: %+v", li.Pattern, li)
		}
	}

	// The JSON is the facts.
	var buf bytes.Buffer
	if err := report.WriteJSON(&buf, facts); err != nil {
		t.Fatal(err)
	}
	var back report.Facts
	if err := json.Unmarshal(buf.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if back.Activity.Statements != a.Statements || back.Activity.Incidents != a.Incidents || back.Database.Subjects != subjects {
		t.Errorf("the JSON does not carry the facts")
	}
	// No value of the workload reaches the report: the new phone number
	// and city of sam's requests.
	if bytes.Contains(buf.Bytes(), []byte("555 0100")) || bytes.Contains(buf.Bytes(), []byte("Elsewhere")) {
		t.Errorf("a value of a change request is in the report")
	}
}

// TestPeriod: --since and --until keep only the records of the window.
func TestPeriod(t *testing.T) {
	gen := writeGenerated(t, t.TempDir(), 120)
	since, until := gen.start.Add(10*time.Minute), gen.start.Add(40*time.Minute)
	facts, err := report.Gather(context.Background(), report.Options{Policy: policy, AuditFiles: []string{gen.file}, Since: since, Until: until})
	if err != nil {
		t.Fatal(err)
	}
	want := countLog(t, since, until, gen.file)
	if facts.Activity.Statements != want.statements || want.statements != 60 {
		t.Errorf("statements in the window: report %d, log %d, want 60", facts.Activity.Statements, want.statements)
	}
	sameCounts(t, "statements of role", asMap(facts.Activity.ByRole), want.byRole)
	sameCounts(t, "refusals for", asMap(facts.Activity.Refusals), want.refusals)
	if facts.Activity.Incidents != want.incidents {
		t.Errorf("incidents in the window: report %d, log %d", facts.Activity.Incidents, want.incidents)
	}
	if facts.Activity.First.Before(since) || !facts.Activity.Last.Before(until) {
		t.Errorf("statements from %v to %v, outside the window", facts.Activity.First, facts.Activity.Last)
	}
	// Both versions were in force in the window (the reload came at 30m).
	if v := facts.Activity.RulesVersions; len(v) != 2 {
		t.Errorf("rules versions in the window: %+v", v)
	}
}

// TestTamperedLogShowsBreak: a record edited after the fact shows as the
// first break of its chain, in the facts and on the page.
func TestTamperedLogShowsBreak(t *testing.T) {
	dir := t.TempDir()
	gen := writeGenerated(t, dir, 40)
	data, err := os.ReadFile(gen.file)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(data), "\n")
	// Line 10 (seq 10): someone hides who ran a statement.
	if !strings.Contains(lines[9], `"login":"`) {
		t.Fatalf("line 10 is not a statement record: %s", lines[9])
	}
	lines[9] = strings.Replace(lines[9], `"login":"`, `"login":"x`, 1)
	tampered := filepath.Join(dir, "tampered.log")
	if err := os.WriteFile(tampered, []byte(strings.Join(lines, "")), 0o644); err != nil {
		t.Fatal(err)
	}
	facts, err := report.Gather(context.Background(), report.Options{Policy: policy, AuditFiles: []string{gen.file, tampered}})
	if err != nil {
		t.Fatal(err)
	}
	if li := facts.Integrity[0]; !li.Intact {
		t.Errorf("the untouched log: %+v", li)
	}
	li := facts.Integrity[1]
	if li.Intact || li.Break == nil || li.Break.File != tampered || li.Break.Line != 10 || li.Break.Seq != 10 || !strings.Contains(li.Break.Message, "edited") {
		t.Fatalf("tampered log: %+v %+v", li, li.Break)
	}
	var buf bytes.Buffer
	if err := report.WriteHTML(&buf, facts); err != nil {
		t.Fatal(err)
	}
	page := buf.String()
	for _, s := range []string{"BROKEN", "tampered.log:10", "(seq 10)", "1 broken"} {
		if !strings.Contains(page, s) {
			t.Errorf("the page does not say %q", s)
		}
	}
}

// TestPageIsSelfContained: every section is on the page, and nothing on
// it is fetched from elsewhere.
func TestPageIsSelfContained(t *testing.T) {
	gen := writeGenerated(t, t.TempDir(), 60)
	facts, err := report.Gather(context.Background(), report.Options{Policy: policy, Conn: adminConn(t), AuditFiles: []string{gen.file}})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := report.WriteHTML(&buf, facts); err != nil {
		t.Fatal(err)
	}
	page := buf.String()
	for _, id := range report.SectionIDs {
		if !strings.Contains(page, `<section id="`+id+`">`) {
			t.Errorf("no section %s", id)
		}
	}
	for _, bad := range []string{"<script", "<link", "<img", "<iframe", "@import", "url(", "src=", "https://"} {
		if strings.Contains(page, bad) {
			t.Errorf("the page holds %q: it must not fetch anything", bad)
		}
	}
	// The only http:// is the SVG namespace, which is a name, not a fetch.
	if strings.Count(page, "http://") != strings.Count(page, `xmlns="http://www.w3.org/2000/svg"`) {
		t.Errorf("the page names an http:// address")
	}
	for _, s := range []string{"@media print", "<svg id=\"timeline\"", "role-analyst", "public.customer_opt_outs: a row"} {
		if !strings.Contains(page, s) {
			t.Errorf("the page has no %q", s)
		}
	}
	// The matrix of a role: analyst pseudonymizes identity columns.
	if !strings.Contains(page, `<span class="chip a-pseudonymize"`) {
		t.Errorf("no pseudonymized cell in the matrices")
	}
}

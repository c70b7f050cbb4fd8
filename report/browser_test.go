//go:build browser

package report_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"text/template"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/pgcloak/pgcloak/report"
)

// TestReportInBrowser opens the report of a real workload in headless
// Chromium: every section is there and visible, the page fetches nothing
// and logs no error, the print layout hides the navigation and prints, and
// screenshots go to docs/img for docs/report.md, which the test writes.
// Run it with .ci/browser.sh (go test -tags browser ./report/...).
func TestReportInBrowser(t *testing.T) {
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("chromium is not installed (apt-get install chromium; .ci/browser.sh does): %v", err)
	}
	dir := t.TempDir()
	live, _ := runWorkload(t, dir)
	gen := writeGenerated(t, dir, 120)
	facts, err := report.Gather(context.Background(), report.Options{Policy: policy, Conn: adminConn(t), AuditFiles: []string{live, gen.file}})
	if err != nil {
		t.Fatal(err)
	}
	// Paths on the page are the test's temporary ones; the screenshot
	// shows where files usually are.
	facts.Rules.File = "/etc/pgcloak/rules.yaml"
	for i := range facts.Integrity {
		base := filepath.Base(facts.Integrity[i].Pattern)
		facts.Integrity[i].Pattern = "/var/log/pgcloak/" + base
		facts.Integrity[i].Files = []string{"/var/log/pgcloak/" + base}
	}
	file := filepath.Join(dir, "report.html")
	var buf bytes.Buffer
	if err := report.WriteHTML(&buf, facts); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium), chromedp.NoSandbox,
		chromedp.DisableGPU, chromedp.WindowSize(1280, 1500))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancel()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	enable := chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		if _, err := cdp.Call(ctx, t, cdplog.Enable, cdp.Empty{}); err != nil {
			return err
		}
		_, err := cdp.Call(ctx, t, network.Enable, network.EnableParams{})
		return err
	})
	if err := chromedp.Do(ctx, enable); err != nil { // starts the browser
		t.Fatal(err)
	}
	// Subscribe before the navigation; read after it.
	lctx, stopListening := context.WithCancel(ctx)
	console := chromedp.Console(lctx)
	requests := chromedp.Events(lctx, network.RequestWillBeSent)
	var mu sync.Mutex
	var problems, urls []string
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for m, err := range console {
			if err != nil {
				return
			}
			if m.IsException() || m.Type == chromedp.ConsoleError || m.Type == chromedp.ConsoleWarning {
				mu.Lock()
				problems = append(problems, m.String())
				mu.Unlock()
			}
		}
	}()
	go func() {
		defer wg.Done()
		for ev, err := range requests {
			if err != nil {
				return
			}
			mu.Lock()
			urls = append(urls, ev.Request.URL)
			mu.Unlock()
		}
	}()

	tctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := chromedp.Do(tctx,
		chromedp.Navigate("file://"+file),
		chromedp.WaitVisible(chromedp.ID("integrity")),
	); err != nil {
		t.Fatal(err)
	}
	sections, err := chromedp.Run(tctx, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll("main > section")).map(s => s.id)`))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(sections, ",") != strings.Join(report.SectionIDs, ",") {
		t.Errorf("sections %v, want %v", sections, report.SectionIDs)
	}
	headings, err := chromedp.Run(tctx, chromedp.Evaluate[map[string]string](
		`Object.fromEntries(Array.from(document.querySelectorAll("main > section")).map(s => [s.id, s.querySelector("h2").textContent]))`))
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range report.SectionIDs {
		if headings[id] == "" {
			t.Errorf("section %s has no heading", id)
		}
	}
	visible, err := chromedp.Run(tctx, chromedp.Evaluate[bool](`Array.from(document.querySelectorAll("main > section")).every(s => s.offsetHeight > 40)`))
	if err != nil || !visible {
		t.Errorf("a section is not displayed (%v)", err)
	}
	rects, err := chromedp.Run(tctx, chromedp.Evaluate[int](`document.querySelectorAll("#timeline rect").length`))
	if err != nil || rects == 0 {
		t.Errorf("the timeline has %d bars (%v)", rects, err)
	}

	// Screenshots: the top of the page, and the activity.
	top, err := chromedp.Run(tctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(tctx, chromedp.Evaluate[chromedp.Void](`window.scrollTo(0, document.getElementById("activity").offsetTop - 50)`)); err != nil {
		t.Fatal(err)
	}
	activity, err := chromedp.Run(tctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}

	// The print layout: no navigation, and a PDF comes out.
	media := chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{Media: "print"})
		return err
	})
	if err := chromedp.Do(tctx, media); err != nil {
		t.Fatal(err)
	}
	navDisplay, err := chromedp.Run(tctx, chromedp.Evaluate[string](`getComputedStyle(document.querySelector("nav")).display`))
	if err != nil || navDisplay != "none" {
		t.Errorf("printed, the navigation is %q (%v), want none", navDisplay, err)
	}
	pdf, err := chromedp.Run(tctx, chromedp.PrintToPDF(chromedp.PDFPaper(chromedp.PaperA4), chromedp.PDFPrintBackground()))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(pdf, []byte("%PDF")) || len(pdf) < 10000 {
		t.Errorf("printing gave %d bytes", len(pdf))
	}

	// Let late messages arrive, then stop listening.
	time.Sleep(500 * time.Millisecond)
	stopListening()
	wg.Wait()
	for _, p := range problems {
		t.Errorf("the browser reported: %s", p)
	}
	if len(urls) == 0 {
		t.Errorf("no request seen: the network events are not reaching the test")
	}
	for _, u := range urls {
		if !strings.HasPrefix(u, "file://") {
			t.Errorf("the page fetched %s", u)
		}
	}
	if t.Failed() {
		return
	}
	writeDocs(t, facts, top, activity, len(pdf))
}

// writeDocs writes the screenshots and docs/report.md.
func writeDocs(t *testing.T, f *report.Facts, top, activity []byte, pdfBytes int) {
	t.Helper()
	img := filepath.Join("..", "docs", "img")
	if err := os.MkdirAll(img, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{"report.png": top, "report-activity.png": activity} {
		if err := os.WriteFile(filepath.Join(img, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var b bytes.Buffer
	if err := docTemplate.Execute(&b, map[string]any{"F": f, "Sections": report.SectionIDs}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join("..", "docs", "report.md"), b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

var docTemplate = template.Must(template.New("doc").Funcs(template.FuncMap{
	"n": func(m map[string]int64, k string) int64 { return m[k] },
}).Parse(`<!-- Generated by TestReportInBrowser (report/browser_test.go, go test -tags browser ./report/); edit the test, not this file. -->
# The privacy officer's report

` + "`pgcloak report`" + ` writes the report the chief privacy officer checks
and auditors verify compliance from: the privacy set-up as the rules and
the database have it, and the privacy-related activity of a period as the
access log records it. It is one self-contained HTML page (inline CSS and
SVG, no script, nothing fetched: it reads offline, and prints with a layout
of its own) or the same facts as JSON.

` + "```" + `
pgcloak report --rules rules.yaml --database "$OWNER_DSN" \
    --audit-file '/var/log/pgcloak/audit*.log' --audit-file /var/log/pgcloak/review.log \
    --since 2026-11-01 --until 2026-12-01 --out report.html
pgcloak report --rules rules.yaml --database "$OWNER_DSN" --audit-file '…' --format json --out report.json
` + "```" + `

- ` + "`--database`" + ` connects as a login that reads every table (the tables'
  owner, as for ` + "`pgcloak check`" + `); everything is read in one read-only,
  repeatable-read transaction.
- ` + "`--audit-file`" + ` names one access log: a file, or a glob pattern for its
  current and rotated files (one hash chain). Repeat it for several logs
  (pgcloak serve's, ` + "`pgcloak review --audit-file`" + `'s).
  ` + "`--audit-open`" + ` accepts a log without an end record, the live log of a
  running pgcloak (as ` + "`pgcloak audit verify --open`" + `).
- ` + "`--since`" + ` (inclusive) and ` + "`--until`" + ` (exclusive), RFC 3339 or a date,
  bound the activity and the change requests listed; the data model, the
  database and the integrity are always as of now and whole.

The page holds names, counts and rules, never a value from the database:
change requests are listed by the columns they change, not their values,
and the access log holds no values to begin with.

![The top of the report](img/report.png)

## Sections

| section | what it says | from |
| --- | --- | --- |
| Summary | the figures an auditor looks at first | all below |
| Data model | every protected table and column with its class and own mask, its link to the data subject, where each purpose's opt-outs are recorded; what ` + "`pgcloak check`" + ` finds (unclassed and personal-looking columns, rules that do not fit the database), computed by check's own code | rules, database catalog |
| Database overview | tables and row counts, protected or not, tied to a subject or not; subjects; opt-outs per purpose, counted with the predicate the rewrite applies | database |
| Re-identification risk | per role with an anonymizing profile (package ` + "`anonymity`" + `): k-anonymity of what it sees of the subject table, measured as its first login (row filter and opt-outs applied) by a GROUP BY the rewrite makes for the role; the columns it is computed on (with k without each), those that drive it, subjects in groups below ` + "`anonymity.min_k`" + ` | database, through the rewrite |
| Privacy views | each profile (class → action); per role its purposes, statement kinds, logins (with attributes), the delegating applications that may act for them (and those seen doing so), and a table × column matrix: show, mask (which), pseudonymize, hide, deny, row filters (own and through links), refused tables with the rule | rules |
| Activity | statements by role (allowed, rewritten, refused), login, end user and class of data touched; refusals by the rule that refused and by family; statements that failed at the server; wire-check incidents (` + "`wire_check`" + ` in the access log); sessions; the most frequent normalized statements per role; rules versions in force over time; a timeline | access log |
| Changes | change requests by state, requester and approver, and each request (columns only); review decisions in the access log; opt-out changes: successful writes through pgcloak to where opt-outs are recorded (by who and how), the customers' own changes in the portal's access records, and ` + "`pgcloak.opt_out_history`" + ` counted by purpose and source (subjects are counted, never listed) | ` + "`pgcloak.change_requests`" + `, ` + "`pgcloak.opt_out_history`" + `, access logs |
| Integrity | each log's hash chain verified with ` + "`audit.Verify`" + ` (as ` + "`pgcloak audit verify`" + `): records, sequence range, closed or open, and the first break if any | access log files |

![The activity of a period](img/report-activity.png)

## How it is tested

` + "`report/report_test.go`" + ` drives a real workload through pgcloak with the
access log on (reads rewritten and refused, a server error, opt-outs
recorded and withdrawn, a change request approved, an application acting
for an end user) and writes a second log with the audit package's writer
(refusals, wire-check incidents, a rules reload), then checks that every
figure of the report equals what the test counts on its own from the log
files and the database: statements per role and login, decisions,
refusals per rule, incidents, opt-out changes, subjects and opt-out shares,
row counts, change requests; that ` + "`--since/--until`" + ` keep exactly the
records of the window; that a record edited after the fact shows as the
first break of its chain (file, line, seq) on the page; and that the page
fetches nothing.

This page and its screenshots were written by ` + "`TestReportInBrowser`" + `
(` + "`report/browser_test.go`" + `, run by ` + "`.ci/browser.sh`" + `), which opens
the report in headless Chromium, finds every section, checks that the
browser logged no error and fetched nothing but the file, and that the print
layout hides the navigation and prints to PDF. In that run: {{.F.Activity.Statements}}
statements ({{n .F.Activity.Decisions "allowed"}} allowed, {{n .F.Activity.Decisions "rewritten"}} rewritten,
{{n .F.Activity.Decisions "denied"}} refused), {{.F.Activity.Incidents}} wire-check incidents (generated),
{{.F.Database.Subjects}} subjects, {{len .F.Integrity}} access logs with intact chains{{range .F.Risk.Roles}}; role {{.Role}}: k = {{.K}}, {{.SubjectsBelow}} subjects below k {{$.F.Risk.Threshold}}{{end}}.
`))

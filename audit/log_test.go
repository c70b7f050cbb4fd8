package audit_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pgcloak/pgcloak/audit"
	"github.com/pgcloak/pgcloak/internal/cloaktest"
	"github.com/pgcloak/pgcloak/internal/pgtest"
)

func stmt(i int) *audit.Record {
	n := int64(i)
	return &audit.Record{Time: time.Now(), Type: audit.TypeStatement, Session: "s1", Login: "alice",
		Statement: &audit.Statement{Role: "sales_rep", Kind: "select", Query: "SELECT $1", Decision: audit.Allowed},
		Protocol:  "simple", Rows: &n}
}

// writeLog writes n statement records to a fresh log at path and closes it.
func writeLog(t *testing.T, opts audit.Options, n int) {
	t.Helper()
	l, err := audit.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		l.Emit(stmt(i))
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.SplitAfter(string(b), "\n")[:strings.Count(string(b), "\n")]
}

func writeLines(t *testing.T, path string, lines []string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(strings.Join(lines, "")), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestChainVerifies(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	writeLog(t, audit.Options{File: path, RulesVersion: func() string { return "abc123" }}, 100)
	lines := readLines(t, path)
	if len(lines) != 102 {
		t.Fatalf("%d lines, want start + 100 + end", len(lines))
	}
	var first map[string]any
	json.Unmarshal([]byte(lines[0]), &first)
	if first["type"] != "start" || first["rules_version"] != "abc123" || first["seq"] != 1.0 || first["prev"] != "" {
		t.Fatalf("start record: %s", lines[0])
	}
	if !strings.HasPrefix(lines[1], `{"seq":2,"prev":"`) {
		t.Fatalf("record 2: %s", lines[1])
	}
	rep, err := audit.Verify([]string{path}, audit.VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Records != 102 || rep.FirstSeq != 1 || rep.LastSeq != 102 || !rep.Closed {
		t.Fatalf("report %+v", rep)
	}
}

// TestTampering edits, deletes, swaps and truncates a closed log: verify
// must fail and name the place.
func TestTampering(t *testing.T) {
	dir := t.TempDir()
	orig := filepath.Join(dir, "orig.log")
	writeLog(t, audit.Options{File: orig}, 20)
	lines := readLines(t, orig) // seq 1 (start) … 21, 22 (end)

	cases := []struct {
		name   string
		change func([]string) []string
		line   int
		want   string
	}{
		{"edit a field", func(l []string) []string {
			l[9] = strings.Replace(l[9], `"login":"alice"`, `"login":"mallory"`, 1)
			return l
		}, 10, "record seq 10 was edited"},
		{"edit the row count", func(l []string) []string {
			l[4] = strings.Replace(l[4], `"rows":3`, `"rows":30`, 1)
			return l
		}, 5, "record seq 5 was edited"},
		{"edit a prev", func(l []string) []string {
			l[6] = strings.Replace(l[6], `"prev":"`, `"prev":"0`, 1)
			return l
		}, 7, "record seq 7 was edited"},
		{"break the JSON", func(l []string) []string {
			l[3] = l[3][:20] + "\n"
			return l
		}, 4, "not a valid access record"},
		{"delete a record", func(l []string) []string {
			return append(l[:12:12], l[13:]...)
		}, 13, "record seq 13 is missing"},
		{"delete three records", func(l []string) []string {
			return append(l[:12:12], l[15:]...)
		}, 13, "records seq 13 to 15 are missing"},
		{"swap two records", func(l []string) []string {
			l[7], l[8] = l[8], l[7]
			return l
		}, 8, "records out of order: seq 9 stands where seq 8 should"},
		{"duplicate a record", func(l []string) []string {
			return append(l[:8:8], append([]string{l[6]}, l[8:]...)...)
		}, 9, "seq 7 stands where seq 9 should"},
		{"truncate mid-record", func(l []string) []string {
			l = l[:15]
			l[14] = l[14][:40]
			return l
		}, 15, "incomplete record: the file was truncated"},
		{"truncate at a record boundary", func(l []string) []string {
			return l[:15]
		}, 15, "the log ends at seq 15 without an end record"},
		{"delete the start record", func(l []string) []string {
			return l[1:]
		}, 1, "does not begin with a start record"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "_")+".log")
			writeLines(t, path, c.change(append([]string(nil), lines...)))
			_, err := audit.Verify([]string{path}, audit.VerifyOptions{})
			var be *audit.BreakError
			if !errors.As(err, &be) {
				t.Fatalf("verify: %v, want a break", err)
			}
			if be.File != path || be.Line != c.line || !strings.Contains(be.Msg, c.want) {
				t.Fatalf("break %v; want line %d: %q", be, c.line, c.want)
			}
		})
	}
}

// TestRotationAndRestart writes across rotations and restarts; the files,
// given in any order, verify as one chain.
func TestRotationAndRestart(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	opts := audit.Options{File: path, MaxSize: 4096}
	writeLog(t, opts, 100) // rotates several times
	writeLog(t, opts, 30)  // a clean restart: the old file is set aside, the chain goes on

	files, _ := filepath.Glob(filepath.Join(dir, "audit*.log"))
	if len(files) < 5 {
		t.Fatalf("files %v: want several rotations", files)
	}
	for _, f := range files {
		fi, _ := os.Stat(f)
		if fi.Size() > 4096+2048 {
			t.Errorf("%s is %d bytes, over max_size by more than a batch", f, fi.Size())
		}
	}
	reversed := make([]string, len(files))
	for i, f := range files {
		reversed[len(files)-1-i] = f
	}
	rep, err := audit.Verify(reversed, audit.VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// 130 statements, plus start and end records per file and run.
	if rep.FirstSeq != 1 || int(rep.LastSeq) != rep.Records || rep.Records < 130+2*len(files) {
		t.Fatalf("report %+v", rep)
	}
	starts := 0
	for _, f := range files {
		for _, l := range readLines(t, f) {
			if strings.Contains(l, `"cause":"restart","previous":"closed"`) {
				starts++
			}
		}
	}
	if starts != 1 {
		t.Fatalf("%d restart records, want 1", starts)
	}

	// A missing middle file is a break: its records are missing.
	_, err = audit.Verify(append(append([]string(nil), files[:2]...), files[3:]...), audit.VerifyOptions{})
	var be *audit.BreakError
	if !errors.As(err, &be) || !strings.Contains(be.Msg, "missing") {
		t.Fatalf("verify without a middle file: %v", err)
	}
	// The oldest files may be pruned: the chain then continues from a file
	// not given, which is a note, not a break.
	rep, err = audit.Verify(files[2:], audit.VerifyOptions{})
	if err != nil || len(rep.Notes) == 0 || !strings.Contains(rep.Notes[0], "continues from seq") {
		t.Fatalf("verify without the oldest files: %+v %v", rep, err)
	}
}

func TestMaxFiles(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	writeLog(t, audit.Options{File: path, MaxSize: 2048, MaxFiles: 2}, 100)
	old, _ := filepath.Glob(filepath.Join(dir, "audit-*.log"))
	if len(old) != 2 {
		t.Fatalf("rotated files %v, want 2 kept", old)
	}
}

// TestUncleanStop: a log left without an end record and with a torn last
// line (pgcloak killed while writing) verifies with Open; the next run
// continues the chain from the last complete record and says so.
func TestUncleanStop(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	writeLog(t, audit.Options{File: path}, 10)
	lines := readLines(t, path)
	killed := append(lines[:len(lines)-1:len(lines)-1], `{"seq":12,"prev":"ab`) // end record lost, a torn line
	writeLines(t, path, killed)

	if _, err := audit.Verify([]string{path}, audit.VerifyOptions{}); err == nil {
		t.Fatal("a torn log verifies without Open")
	}
	rep, err := audit.Verify([]string{path}, audit.VerifyOptions{Open: true})
	if err != nil || rep.LastSeq != 11 || rep.Closed {
		t.Fatalf("open verify: %+v %v", rep, err)
	}

	writeLog(t, audit.Options{File: path}, 5)
	files, _ := filepath.Glob(filepath.Join(dir, "audit*.log"))
	rep, err = audit.Verify(files, audit.VerifyOptions{})
	if err != nil {
		t.Fatalf("verify after restart: %v", err)
	}
	if rep.LastSeq != 11+1+5+1 || !strings.Contains(strings.Join(rep.Notes, "\n"), "stopped without closing") {
		t.Fatalf("report %+v", rep)
	}
}

func TestFailClosed(t *testing.T) {
	path, heal := cloaktest.FailingFile(t)
	reg := prometheus.NewRegistry()
	l, err := audit.Open(audit.Options{File: path, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	pgtest.Eventually(t, 10*time.Second, "the sink to fail", func() bool { return l.Healthy() != nil })
	if err := l.Admit(); err == nil {
		t.Fatal("fail_closed admits statements while the sink fails")
	}
	if !strings.Contains(l.Healthy().Error(), "no space left") {
		t.Fatalf("healthy: %v", l.Healthy())
	}
	for i := range 3 { // records of statements that were already running
		l.Emit(stmt(i))
	}
	heal()
	pgtest.Eventually(t, 10*time.Second, "the sink to recover", func() bool { return l.Admit() == nil })
	l.Emit(stmt(3))
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	rep, err := audit.Verify([]string{path}, audit.VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Records != 6 { // start, 4 statements, end: nothing lost
		t.Fatalf("%d records", rep.Records)
	}
	if v := gathered(t, reg, "pgcloak_audit_dropped_records_total"); v != 0 {
		t.Fatalf("dropped %v", v)
	}
	if v := gathered(t, reg, "pgcloak_audit_write_errors_total"); v < 1 {
		t.Fatalf("write errors %v", v)
	}
}

func TestFailOpen(t *testing.T) {
	path, heal := cloaktest.FailingFile(t)
	reg := prometheus.NewRegistry()
	l, err := audit.Open(audit.Options{File: path, OnFailure: audit.FailOpen, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	pgtest.Eventually(t, 10*time.Second, "the sink to fail", func() bool { return l.Healthy() != nil })
	if err := l.Admit(); err != nil {
		t.Fatalf("fail_open refuses: %v", err)
	}
	for i := range 7 {
		l.Emit(stmt(i))
	}
	pgtest.Eventually(t, 10*time.Second, "7 lost records", func() bool { return l.Stats().Lost == 7 })
	heal()
	// The start record is retried with the next write; what was lost is
	// said in a lost record.
	pgtest.Eventually(t, 10*time.Second, "the sink to recover", func() bool {
		l.Emit(stmt(100))
		return l.Healthy() == nil
	})
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := audit.Verify([]string{path}, audit.VerifyOptions{}); err != nil {
		t.Fatal(err)
	}
	lost := int64(0)
	f, _ := os.Open(path)
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r audit.Record
		json.Unmarshal(sc.Bytes(), &r)
		lost += r.Lost
	}
	st := l.Stats()
	if lost != st.Lost || lost < 7 {
		t.Fatalf("lost records say %d, counter %d", lost, st.Lost)
	}
	if v := gathered(t, reg, "pgcloak_audit_dropped_records_total"); int64(v) != st.Lost {
		t.Fatalf("dropped metric %v, counter %d", v, st.Lost)
	}
}

func TestStdout(t *testing.T) {
	var buf bytes.Buffer
	l, err := audit.Open(audit.Options{Stream: &buf})
	if err != nil {
		t.Fatal(err)
	}
	l.Emit(stmt(1))
	l.Close()
	path := filepath.Join(t.TempDir(), "stdout.log")
	os.WriteFile(path, buf.Bytes(), 0o600)
	if rep, err := audit.Verify([]string{path}, audit.VerifyOptions{}); err != nil || rep.Records != 3 {
		t.Fatalf("%+v %v", rep, err)
	}
}

// gathered is the value of a counter or gauge in reg.
func gathered(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			m := mf.GetMetric()[0]
			return m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// TestEncodingMatchesJSON: the writer's hand encoding is what
// encoding/json (without HTML escaping) makes of the same record.
func TestEncodingMatchesJSON(t *testing.T) {
	rows := int64(7)
	weird := "a\"b\\c\nd\te\x01f\u2028g\xffh<&>ünï€"
	recs := []*audit.Record{
		{Time: time.Date(2026, 1, 2, 3, 4, 5, 600, time.UTC), Type: audit.TypeStatement, Session: "s", Client: "1.2.3.4:5",
			Login: weird, Database: "db", Application: weird, TLS: true,
			Statement: &audit.Statement{Role: "r", Purpose: "p", EndUser: "e", Kind: "select", Fingerprint: "f", Query: weird,
				Objects: []audit.Object{{Relation: "public.t", Access: "read", Protected: true,
					Columns: map[string]string{"b": "personal", "a": "identity", weird: "x"}, Masked: map[string]string{"b": "mask"},
					Filters: []string{"row_filter", "opt_out:x"}}, {Relation: "u", Access: "write"}},
				Decision: audit.Denied, Reason: "tables.x", ReasonCode: "tables", Masked: 1},
			Protocol: "extended", Rows: &rows, Suspended: true, DurationUS: 12, SQLState: "22012", WireCheck: 2},
		{Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Type: audit.TypeStart, Cause: "new", Previous: "none", RulesVersion: "v"},
		{Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Type: audit.TypeLost, Lost: 3},
		{Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Type: audit.TypeAuth, Outcome: "ok", Statement: &audit.Statement{Role: "r"}},
	}
	path := filepath.Join(t.TempDir(), "audit.log")
	l, err := audit.Open(audit.Options{File: path})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		l.Emit(r)
	}
	l.Close()
	lines := readLines(t, path)[1:]
	for i, r := range recs {
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		enc.Encode(r)
		want := strings.TrimPrefix(b.String(), "{")
		got := lines[i][strings.Index(lines[i], `"time"`):]
		if got != want {
			t.Errorf("record %d:\n got %s\nwant %s", i, got, want)
		}
	}
}

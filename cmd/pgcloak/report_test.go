package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgcloak/pgcloak/audit"
	"github.com/pgcloak/pgcloak/examples/crm"
	"github.com/pgcloak/pgcloak/internal/pgtest"
	"github.com/pgcloak/pgcloak/report"
)

// TestReportCommand: pgcloak report writes the page and the JSON, reads a
// log given as a glob of rotated files, keeps to --since/--until, and
// refuses bad usage.
func TestReportCommand(t *testing.T) {
	pg := crmDB(t)
	rulesFile := writeRules(t, crm.Rules)
	dir := t.TempDir()
	file := filepath.Join(dir, "audit.log")
	l, err := audit.Open(audit.Options{File: file, MaxSize: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	day := time.Date(2026, 11, 5, 0, 0, 0, 0, time.UTC)
	for i := range 2000 { // rotates a few times
		st := &audit.Statement{Role: "analyst", Kind: "select", Decision: audit.Rewritten, Query: "SELECT birth_date FROM customers WHERE customer_id = $1"}
		l.Emit(&audit.Record{Time: day.Add(time.Duration(i) * time.Minute), Type: audit.TypeStatement, Login: "ana", Statement: st})
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if files, _ := filepath.Glob(filepath.Join(dir, "audit*.log")); len(files) < 3 {
		t.Fatalf("the log did not rotate: %v", files)
	}
	run := func(args ...string) (int, string, string) {
		var out, errOut bytes.Buffer
		code := reportCmd(args, &out, &errOut)
		return code, out.String(), errOut.String()
	}
	dsn := pg.DSN(pgtest.SuperUser, pgtest.Database)
	code, out, stderr := run("--rules", rulesFile, "--database", dsn, "--audit-file", filepath.Join(dir, "audit*.log"),
		"--since", "2026-11-05T10:00:00Z", "--until", "2026-11-06", "--format", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var f report.Facts
	if err := json.Unmarshal([]byte(out), &f); err != nil {
		t.Fatal(err)
	}
	// 10:00 to midnight: 14 hours of one statement a minute.
	var subjects int64
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if err := conn.QueryRow(context.Background(), "SELECT count(*) FROM customers").Scan(&subjects); err != nil {
		t.Fatal(err)
	}
	if f.Activity.Statements != 14*60 || f.Database.Subjects != subjects || subjects == 0 {
		t.Errorf("%d statements, %d subjects (the database has %d)", f.Activity.Statements, f.Database.Subjects, subjects)
	}
	if len(f.Integrity) != 1 || !f.Integrity[0].Intact || len(f.Integrity[0].Files) < 3 || f.Integrity[0].Records != 2000+2*len(f.Integrity[0].Files) {
		t.Errorf("integrity: %+v", f.Integrity)
	}

	page := filepath.Join(dir, "report.html")
	if code, _, stderr := run("--rules", rulesFile, "--database", dsn, "--audit-file", file, "--out", page); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	html, err := os.ReadFile(page)
	if err != nil || !strings.Contains(string(html), `<section id="integrity">`) {
		t.Fatalf("no page: %v", err)
	}

	for _, args := range [][]string{
		{},
		{"--database", dsn},
		{"--rules", rulesFile, "--format", "xml"},
		{"--rules", rulesFile, "extra"},
	} {
		if code, _, _ := run(args...); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
	if code, _, _ := run("--rules", rulesFile, "--since", "last week"); code != 1 {
		t.Errorf("a bad --since: exit %d, want 1", code)
	}
}

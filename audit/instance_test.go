package audit_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pgcloak/pgcloak/audit"
	"github.com/pgcloak/pgcloak/internal/cloaktest"
)

// TestInstances: every record names its replica; the files of several
// replicas in one directory are told apart and each chain verifies on its
// own; a record of one replica moved into another's chain breaks it; a log
// written before records named their instance still verifies.
func TestInstances(t *testing.T) {
	dir := t.TempDir()
	a, b, legacy := filepath.Join(dir, "audit-a.log"), filepath.Join(dir, "audit-b.log"), filepath.Join(t.TempDir(), "old.log")
	writeLog(t, audit.Options{File: a, Instance: "pgcloak-0", MaxSize: 4 << 10}, 60) // rotates
	writeLog(t, audit.Options{File: b, Instance: "pgcloak-1"}, 30)
	writeLog(t, audit.Options{File: legacy}, 10)

	lines := readLines(t, b)
	for i, l := range lines {
		var r audit.Record
		if err := json.Unmarshal([]byte(l), &r); err != nil || r.Instance != "pgcloak-1" {
			t.Fatalf("line %d: instance %q: %s", i+1, r.Instance, l)
		}
	}
	if !strings.HasPrefix(lines[0], `{"seq":1,"prev":"","instance":"pgcloak-1","time":`) {
		t.Fatalf("start record: %s", lines[0])
	}
	if strings.Contains(readLines(t, legacy)[0], "instance") {
		t.Fatal("a log without an instance names one")
	}

	entries, _ := os.ReadDir(dir)
	var paths []string
	for _, e := range entries {
		paths = append(paths, filepath.Join(dir, e.Name()))
	}
	groups, err := audit.GroupByInstance(paths)
	if err != nil {
		t.Fatal(err)
	}
	if len(groups) != 2 || len(groups["pgcloak-0"]) < 2 || !slices.Equal(groups["pgcloak-1"], []string{b}) {
		t.Fatalf("groups %v", groups)
	}
	for inst, files := range groups {
		rep, err := audit.Verify(files, audit.VerifyOptions{})
		if err != nil || rep.Instance != inst || !rep.Closed {
			t.Errorf("%s: %+v %v", inst, rep, err)
		}
	}
	if _, err := audit.Verify(paths, audit.VerifyOptions{}); err == nil {
		t.Error("two replicas' files verified as one chain")
	}
	if rep, err := audit.Verify([]string{legacy}, audit.VerifyOptions{}); err != nil || rep.Instance != "" {
		t.Errorf("legacy log: %+v %v", rep, err)
	}

	// A record of pgcloak-0 (chain fields rewritten to fit) in pgcloak-1's
	// chain: the instance gives it away even where seq and prev agree.
	lines[5] = strings.Replace(lines[5], `"instance":"pgcloak-1"`, `"instance":"pgcloak-0"`, 1)
	for i := 6; i < len(lines); i++ { // the chain recomputed, as a forger would
		sum := sha256.Sum256([]byte(strings.TrimSuffix(lines[i-1], "\n")))
		var r map[string]json.RawMessage
		json.Unmarshal([]byte(lines[i]), &r)
		old := string(r["prev"])
		lines[i] = strings.Replace(lines[i], `"prev":`+old, `"prev":"`+hex.EncodeToString(sum[:])+`"`, 1)
	}
	writeLines(t, b, lines)
	_, err = audit.Verify([]string{b}, audit.VerifyOptions{})
	var be *audit.BreakError
	if !errors.As(err, &be) || be.Line != 6 || !strings.Contains(be.Msg, "another replica") {
		t.Fatalf("a record of another instance: %v", err)
	}
}

// TestWritten: with WaitForWrite, Written returns once the records emitted
// before it are in the file (a kill could not lose them), and waits while
// the sink fails.
func TestWritten(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l, err := audit.Open(audit.Options{File: path, WaitForWrite: true})
	if err != nil {
		t.Fatal(err)
	}
	for round := 1; round <= 50; round++ {
		l.Emit(stmt(round))
		l.Written()
		if n := len(readLines(t, path)); n != round+1 { // the start record, then one per round
			t.Fatalf("round %d: %d lines in the file after Written", round, n)
		}
	}
	l.Close()

	failing, heal := cloaktest.FailingFile(t)
	l, err = audit.Open(audit.Options{File: failing, WaitForWrite: true})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	l.Emit(stmt(1))
	done := make(chan struct{})
	go func() { l.Written(); close(done) }()
	select {
	case <-done:
		t.Fatal("Written returned while the sink fails")
	case <-time.After(300 * time.Millisecond):
	}
	heal()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Written did not return once the sink recovered")
	}
	if n := len(readLines(t, failing)); n != 2 {
		t.Fatalf("%d lines after the sink recovered", n)
	}
}

package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pgcloak/pgcloak/examples/crm"
	"github.com/pgcloak/pgcloak/internal/pgtest"
)

// verifyCLI runs `pgcloak audit verify` and returns its exit status and
// output.
func verifyCLI(t *testing.T, bin string, args ...string) (int, string) {
	t.Helper()
	out, err := exec.Command(bin, append([]string{"audit", "verify"}, args...)...).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), string(out)
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0, string(out)
}

func auditFiles(t *testing.T, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "audit*.log"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no access log files in %s: %v", dir, err)
	}
	return files
}

// TestKillUnderLoad kills pgcloak with SIGKILL while eight sessions run
// statements and the log rotates: every record written is intact and the
// chain verifies up to the last complete record; a restarted pgcloak
// continues the chain, and the whole log then verifies as closed.
func TestKillUnderLoad(t *testing.T) {
	pg := crmDB(t)
	bin := buildPgcloak(t)
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "pgcloak.yaml")
	if err := os.WriteFile(cfgFile, []byte(fmt.Sprintf("audit:\n  file: %s\n  max_size: 64KiB\n", filepath.Join(dir, "audit.log"))), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"--config", cfgFile, "--upstream", pg.Addr(), "--rules", writeRules(t, crm.Rules),
		"--catalog-dsn", pg.DSN(pgtest.SuperUser, pgtest.Database)}
	s := serveAdmin(t, bin, args...)
	s.waitStatus(t, "/readyz", 200)

	ctx := context.Background()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	done := 0
	for i := range 8 {
		login := []string{"alice", "dana", "bob", "ana"}[i%4]
		conn, err := s.connect(t, login)
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer conn.Close(ctx)
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				var err error
				if n%2 == 0 {
					_, err = conn.Exec(ctx, fmt.Sprintf("SELECT customer_id, birth_date FROM customers WHERE customer_id > %d LIMIT 3", n)).ReadAll()
				} else {
					err = conn.ExecParams(ctx, "SELECT count(*) FROM orders WHERE order_id > $1", [][]byte{[]byte(fmt.Sprint(n))}, nil, nil, nil).Read().Err
				}
				if err != nil {
					return // pgcloak was killed
				}
				mu.Lock()
				done++
				mu.Unlock()
			}
		}()
	}
	// Run until the log has rotated a few times.
	pgtest.Eventually(t, time.Minute, "the log rotated three times", func() bool { return len(auditFiles(t, dir)) >= 4 })
	s.cmd.Process.Kill()
	<-s.done
	close(stop)
	wg.Wait()
	files := auditFiles(t, dir)
	t.Logf("%d statements run, %d files", done, len(files))

	code, out := verifyCLI(t, bin, files...)
	if code != 1 || !strings.Contains(out, "without an end record") {
		t.Fatalf("verify of a killed pgcloak's log without --open: exit %d\n%s", code, out)
	}
	code, out = verifyCLI(t, bin, append([]string{"--open"}, files...)...)
	if code != 0 || !strings.Contains(out, "chain is intact") {
		t.Fatalf("verify --open: exit %d\n%s", code, out)
	}
	t.Log(strings.TrimSpace(out))

	// A restart continues the chain; stopped cleanly, the whole log is
	// closed and intact, and says pgcloak was stopped uncleanly before.
	s = serveAdmin(t, bin, args...)
	s.waitStatus(t, "/readyz", 200)
	conn, err := s.connect(t, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "SELECT count(*) FROM customers").ReadAll(); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	s.stop(t)
	files = auditFiles(t, dir)
	code, out = verifyCLI(t, bin, files...)
	if code != 0 || !strings.Contains(out, "stopped without closing") || !strings.Contains(out, "log is closed") {
		t.Fatalf("verify after a restart: exit %d\n%s", code, out)
	}

	// An edit is found, by file and line.
	b, err := os.ReadFile(files[1])
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(b), "\n")
	// The first statement record after the file's first line (which
	// records land where depends on the timing of the kill).
	edited := -1
	for i := 1; i < len(lines) && edited < 0; i++ {
		if strings.Contains(lines[i], `"rows":`) {
			lines[i] = strings.Replace(lines[i], `"rows":`, `"rows":1`, 1)
			edited = i
		}
	}
	if edited < 0 {
		t.Fatalf("no statement record in %s to edit", files[1])
	}
	if err := os.WriteFile(files[1], []byte(strings.Join(lines, "")), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out = verifyCLI(t, bin, files...)
	if code != 1 || !strings.Contains(out, fmt.Sprintf("%s:%d: record seq", files[1], edited+1)) || !strings.Contains(out, "was edited") {
		t.Fatalf("verify of an edited log (line %d): exit %d\n%s", edited+1, code, out)
	}
}

func TestAuditConfig(t *testing.T) {
	cfg, err := serveFlags([]string{"--audit-file", "/var/log/pgcloak/audit.log"})
	if err != nil {
		t.Fatal(err)
	}
	if a := cfg.Audit; a.File != "/var/log/pgcloak/audit.log" || a.OnFailure != "fail_closed" || a.MaxSize != 100<<20 || a.QueueSize != 10000 || a.Stdout {
		t.Fatalf("%+v", a)
	}
	path := filepath.Join(t.TempDir(), "pgcloak.yaml")
	os.WriteFile(path, []byte("audit:\n  stdout: true\n  on_failure: fail_open\n  max_size: 1MiB\n  max_files: 3\n  queue_size: 50\n"), 0o644)
	cfg, err = serveFlags([]string{"--config", path, "--audit-on-failure", "fail_closed"})
	if err != nil {
		t.Fatal(err)
	}
	if a := cfg.Audit; !a.Stdout || a.OnFailure != "fail_closed" || a.MaxSize != 1<<20 || a.MaxFiles != 3 || a.QueueSize != 50 {
		t.Fatalf("%+v", a)
	}
	for yaml, want := range map[string]string{
		"audit:\n  on_failure: shrug\n": "audit.on_failure: \"shrug\" is not fail_closed or fail_open",
		"audit:\n  max_size: 1KiB\n":    "audit.max_size: must be at least 64KiB",
		"audit:\n  queue_size: 0\n":     "audit.queue_size: must be between",
		"audit:\n  files: x\n":          "audit.files: unknown key",
	} {
		os.WriteFile(path, []byte(yaml), 0o644)
		if _, err := serveFlags([]string{"--config", path}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", yaml, err, want)
		}
	}
}

// TestAuditVerifyReplicas: two replicas write their access logs into one
// directory; every record names its instance, and `audit verify DIR`
// verifies each replica's chain on its own.
func TestAuditVerifyReplicas(t *testing.T) {
	pg := crmDB(t)
	bin := buildPgcloak(t)
	dir := t.TempDir()
	for _, inst := range []string{"pgcloak-0", "pgcloak-1"} {
		s := serveAdmin(t, bin, "--upstream", pg.Addr(), "--instance-id", inst, "--audit-file", filepath.Join(dir, "audit-"+inst+".log"))
		conn, err := s.connect(t, "dana")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Exec(context.Background(), "SELECT 1").ReadAll(); err != nil {
			t.Fatal(err)
		}
		conn.Close(context.Background())
		s.stop(t)
		b, err := os.ReadFile(filepath.Join(dir, "audit-"+inst+".log"))
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		for _, l := range lines {
			if !strings.Contains(l, `"instance":"`+inst+`"`) {
				t.Fatalf("a record without its instance: %s", l)
			}
		}
	}
	code, out := verifyCLI(t, bin, dir)
	if code != 0 || strings.Count(out, "the chain is intact and the log is closed") != 2 ||
		!strings.Contains(out, "instance pgcloak-0: ok:") || !strings.Contains(out, "instance pgcloak-1: ok:") {
		t.Fatalf("audit verify DIR: exit %d\n%s", code, out)
	}
}

package rules

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pgcloak/pgcloak/examples/crm"
	"github.com/pgcloak/pgcloak/internal/pgtest"
)

// syncBuffer is a log destination safe for the watcher's goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newStore(t *testing.T) (*Store, string, *syncBuffer) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "rules.yaml")
	write(t, path, crm.Rules)
	logs := &syncBuffer{}
	s, err := NewStore(path, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return s, path, logs
}

func write(t *testing.T, path string, data []byte) {
	t.Helper()
	// Write beside and rename, as editors and ConfigMap updates do.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// Alice's region moves from north to west in the second version.
var westRules = []byte(strings.Replace(string(crm.Rules), "{region: north}", "{region: west}", 1))

// The sample's sales_rep role made unable to see phone numbers: a broken
// edit (unknown action).
var brokenRules = []byte(strings.Replace(string(crm.Rules), "{phone: show}", "{phone: shw}", 1))

func aliceFilter(t *testing.T, p *Policy) string {
	t.Helper()
	a, err := p.Principal("alice")
	if err != nil {
		t.Fatal(err)
	}
	f, _ := a.RowFilter(customers)
	return f.SQL
}

func TestStoreReload(t *testing.T) {
	s, path, logs := newStore(t)
	old := s.Current()
	v1 := old.Version()

	// Unchanged: success, no swap.
	if err := s.Reload(); err != nil || s.Current() != old {
		t.Fatalf("unchanged reload: %v", err)
	}

	write(t, path, westRules)
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	cur := s.Current()
	if cur.Version() == v1 || aliceFilter(t, cur) != "region = 'west'::pg_catalog.text" {
		t.Fatalf("new rules not in force: %s", aliceFilter(t, cur))
	}
	// A statement that started under the old rules still has them.
	if aliceFilter(t, old) != "region = 'north'::pg_catalog.text" {
		t.Fatal("the old policy changed")
	}

	write(t, path, brokenRules)
	err := s.Reload()
	var le *LoadError
	if !errors.As(err, &le) || !strings.Contains(err.Error(), `unknown action "shw"`) || le.Errors[0].Pos.Line == 0 {
		t.Fatalf("broken reload: %v", err)
	}
	if s.Current() != cur {
		t.Fatal("a broken file replaced the rules")
	}
	st := s.Stats()
	if st.Successes != 2 || st.Failures != 1 || st.LastSuccessful || st.Version != cur.Version() {
		t.Fatalf("stats %+v", st)
	}
	if !strings.Contains(logs.String(), "rules reload rejected") || !strings.Contains(logs.String(), "line=") {
		t.Errorf("the rejection is not logged with its position:\n%s", logs)
	}

	os.Remove(path)
	if err := s.Reload(); err == nil || s.Current() != cur {
		t.Fatal("a missing file replaced the rules")
	}
}

func TestNewStoreRejectsBrokenFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rules.yaml")
	write(t, path, brokenRules)
	if _, err := NewStore(path, nil); err == nil {
		t.Fatal("broken file accepted")
	}
}

func TestStoreWatch(t *testing.T) {
	s, path, logs := newStore(t)
	v1 := s.Current().Version()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	// Watch, with its polls counted.
	ticker := time.NewTicker(20 * time.Millisecond)
	defer ticker.Stop()
	var polls atomic.Int64
	go func() { s.watch(ctx, ticker.C, func() { polls.Add(1) }); close(done) }()
	defer func() { cancel(); <-done }()

	// Readers keep using the store while it reloads.
	var stop atomic.Bool
	var readers sync.WaitGroup
	for range 4 {
		readers.Add(1)
		go func() {
			defer readers.Done()
			for !stop.Load() {
				p := s.Current()
				if r := p.Role("sales_rep"); r == nil || r.Column(customers, "email").Action != Show {
					t.Error("a reader saw a broken policy")
					return
				}
			}
		}()
	}
	defer func() { stop.Store(true); readers.Wait() }()

	write(t, path, westRules)
	pgtest.Eventually(t, 5*time.Second, "the new rules", func() bool { return s.Current().Version() != v1 })
	v2 := s.Current().Version()
	if aliceFilter(t, s.Current()) != "region = 'west'::pg_catalog.text" {
		t.Fatal("wrong rules in force")
	}

	write(t, path, brokenRules)
	pgtest.Eventually(t, 5*time.Second, "the rejection", func() bool { return s.Stats().Failures == 1 })
	n := polls.Load()
	pgtest.Eventually(t, 5*time.Second, "ten more polls", func() bool { return polls.Load() >= n+10 })
	if st := s.Stats(); st.Failures != 1 || st.LastSuccessful || s.Current().Version() != v2 {
		t.Fatalf("after a broken file: %+v (reported once, old rules kept)", st)
	}
	if n := strings.Count(logs.String(), "rules reload rejected"); n != 1 {
		t.Errorf("rejection logged %d times", n)
	}

	write(t, path, crm.Rules)
	// The reload swaps the rules, then counts its success: wait for both.
	pgtest.Eventually(t, 5*time.Second, "the fixed rules, reloaded successfully", func() (bool, string) {
		st := s.Stats()
		return s.Current().Version() == v1 && st.LastSuccessful, fmt.Sprintf("%+v", st)
	})
}

// Several writes in quick succession make one reload: the watcher acts
// once the file has stayed the same for a whole tick.
func TestStoreWatchDebounces(t *testing.T) {
	s, path, _ := newStore(t)
	ticks := make(chan time.Time)
	handled := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.watch(ctx, ticks, func() { handled <- struct{}{} }); close(done) }()
	defer func() { cancel(); <-done }()
	tick := func() { ticks <- time.Time{}; <-handled }
	before := s.Stats().Successes
	v1 := s.Current().Version()
	for i := range 5 {
		write(t, path, []byte(string(westRules)+strings.Repeat("\n", i+1)))
		tick()
		if s.Current().Version() != v1 {
			t.Fatalf("reloaded while the file was still changing (write %d)", i)
		}
	}
	tick() // the file stayed the same for a tick: reload
	if n := s.Stats().Successes - before; n != 1 || s.Current().Version() == v1 {
		t.Fatalf("%d reloads for one burst of writes", n)
	}
	// A write that keeps size and modification time is found by content,
	// every fifth tick.
	fi, _ := os.Stat(path)
	same := []byte(strings.Replace(string(westRules)+strings.Repeat("\n", 5), "{region: west}", "{region: east}", 1))
	os.WriteFile(path, same, 0o644)
	os.Chtimes(path, fi.ModTime(), fi.ModTime())
	for range 5 {
		tick()
	}
	tick()
	if aliceFilter(t, s.Current()) != "region = 'east'::pg_catalog.text" {
		t.Fatal("a same-size, same-mtime edit was not picked up")
	}
}

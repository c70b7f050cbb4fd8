package rules

import (
	"context"
	"crypto/sha256"
	"errors"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Store holds the rules in force and replaces them on reload. Each
// statement should load Current once and use that Policy throughout, so that
// a statement that started under the old rules finishes under them; a
// reload never changes a Policy, it swaps the pointer.
type Store struct {
	path string
	log  *slog.Logger

	cur atomic.Pointer[loaded]

	mu         sync.Mutex // serializes reloads
	failedHash [sha256.Size]byte
	lastErr    error

	successes, failures atomic.Uint64
	lastSuccess         atomic.Int64 // unix nanoseconds
	lastOK              atomic.Bool
}

// loaded is a Policy with the hash of the bytes it came from.
type loaded struct {
	p    *Policy
	hash [sha256.Size]byte
	at   time.Time // when it was put in force
}

// NewStore loads the rules file at path. A file that does not compile is an
// error: there are no old rules to keep.
func NewStore(path string, log *slog.Logger) (*Store, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	p, err := Parse(path, data)
	if err != nil {
		return nil, err
	}
	s := &Store{path: path, log: log}
	s.cur.Store(&loaded{p: p, hash: sha256.Sum256(data), at: time.Now()})
	s.lastSuccess.Store(time.Now().UnixNano())
	s.lastOK.Store(true)
	return s, nil
}

// Current is the policy in force.
func (s *Store) Current() *Policy { return s.cur.Load().p }

// Path is the rules file the store reads.
func (s *Store) Path() string { return s.path }

// Reload reads and compiles the rules file and, if it compiles, makes it
// the policy in force. If it does not, the old policy stays, the error
// (a *LoadError with every mistake's position) is logged and returned.
// An unchanged file is a successful reload that swaps nothing.
func (s *Store) Reload() error { return s.reload(false) }

// reload; fromWatch skips a file that already failed with the same bytes,
// so a broken file is reported once, not at every poll.
func (s *Store) reload(fromWatch bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	data, err := os.ReadFile(s.path)
	if err != nil {
		return s.failed(err)
	}
	hash := sha256.Sum256(data)
	old := s.cur.Load()
	if hash == old.hash {
		// The watcher's periodic look at an unchanged file is not a reload;
		// a file put back to the rules in force after a failure is.
		if !fromWatch || !s.lastOK.Load() {
			s.succeeded()
		}
		return nil
	}
	if fromWatch && hash == s.failedHash {
		return s.lastErr
	}
	p, err := Parse(s.path, data)
	if err != nil {
		s.failedHash = hash
		return s.failed(err)
	}
	s.cur.Store(&loaded{p: p, hash: hash, at: time.Now()})
	s.failedHash = [sha256.Size]byte{}
	s.succeeded()
	s.log.Info("rules reloaded", "file", s.path, "old_version", old.p.Version(), "version", p.Version())
	return nil
}

func (s *Store) succeeded() {
	s.successes.Add(1)
	s.lastSuccess.Store(time.Now().UnixNano())
	s.lastOK.Store(true)
	s.lastErr = nil
}

func (s *Store) failed(err error) error {
	s.failures.Add(1)
	s.lastOK.Store(false)
	s.lastErr = err
	var le *LoadError
	if errors.As(err, &le) {
		for _, e := range le.Errors {
			s.log.Error("rules reload rejected; the old rules stay in force", "file", e.File, "line", e.Pos.Line, "col", e.Pos.Col,
				"error", e.Msg, "version", s.cur.Load().p.Version())
		}
	} else {
		s.log.Error("rules reload failed; the old rules stay in force", "file", s.path, "error", err, "version", s.cur.Load().p.Version())
	}
	return err
}

// ReloadStats are the store's counters, for metrics.
type ReloadStats struct {
	Successes, Failures uint64
	// LastSuccess is when rules were last loaded or found unchanged.
	LastSuccess time.Time
	// LastSuccessful is false while the file on disk does not compile.
	LastSuccessful bool
	Version        string
	// Loaded is when the rules in force were put in force.
	Loaded time.Time
}

// Stats returns the reload counters.
func (s *Store) Stats() ReloadStats {
	return ReloadStats{
		Successes:      s.successes.Load(),
		Failures:       s.failures.Load(),
		LastSuccess:    time.Unix(0, s.lastSuccess.Load()),
		LastSuccessful: s.lastOK.Load(),
		Version:        s.Current().Version(),
		Loaded:         s.cur.Load().at,
	}
}

// fileState is what the watcher compares between polls.
type fileState struct {
	mod  time.Time
	size int64
	ok   bool
}

func stat(path string) fileState {
	fi, err := os.Stat(path)
	if err != nil {
		return fileState{}
	}
	return fileState{mod: fi.ModTime(), size: fi.Size(), ok: true}
}

// Watch polls the rules file every interval (1s if zero) until ctx ends and
// reloads it when it changed. A change is acted on once the file has stayed
// the same for one more interval, so an editor's several writes make one
// reload. Every fifth poll also compares the content, for writes that keep
// size and modification time. Polling, rather than inotify, also follows
// the symlink swaps of Kubernetes ConfigMap volumes.
func (s *Store) Watch(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = time.Second
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	s.watch(ctx, t.C, nil)
}

// watch is Watch driven by ticks, so that tests can drive it; handled, if
// set, is called after each tick.
func (s *Store) watch(ctx context.Context, ticks <-chan time.Time, handled func()) {
	w := watchState{last: stat(s.path)}
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticks:
		}
		s.poll(&w)
		if handled != nil {
			handled()
		}
	}
}

// watchState is what the watcher remembers between polls.
type watchState struct {
	last    fileState
	pending bool // changed at the last poll: reload once it stays the same
	missing bool // reported gone
	n       int  // polls so far
}

func (s *Store) poll(w *watchState) {
	w.n++
	st := stat(s.path)
	switch {
	case !st.ok:
		if !w.missing {
			s.log.Warn("rules file is gone; the rules in force stay", "file", s.path)
			w.missing = true
		}
		w.last = st
	case st != w.last:
		w.last, w.pending, w.missing = st, true, false
	case w.pending || w.n%5 == 0:
		w.pending = false
		s.reload(true)
	}
}

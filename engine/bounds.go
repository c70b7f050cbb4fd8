package engine

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgerrcode"

	"github.com/pgcloak/pgcloak/proxy"
	"github.com/pgcloak/pgcloak/rewrite"
)

// What one session can take from everyone is bounded: the rewrite cache
// is shared, so it is bounded in bytes (and a refused or unparsable
// statement is cached only when it is small: a client can send any number
// of large ones); a catalog refresh for a name the snapshot lacks is
// shared by the sessions waiting for it and allowed to each session at
// most once per interval, and a statement that would need another is
// refused with a clear error instead of reloading the catalog for
// everyone.

// Limits bound the engine's shared memory and each session's demands.
type Limits struct {
	// CacheBytes bounds the rewrite cache (default 64 MiB).
	CacheBytes int64
	// MaxRefusedCached is the largest refused or unparsable statement
	// that is cached (default 4 KiB).
	MaxRefusedCached int
	// UnknownRefreshInterval is how often one session may have the
	// catalog reloaded because a statement names a relation it lacks
	// (default one second), after a burst of unknownRefreshBurst (a
	// session creating a few temporary tables in a row).
	UnknownRefreshInterval time.Duration
}

const unknownRefreshBurst = 5

// DefaultLimits are the limits of an engine whose SetLimits was not called.
var DefaultLimits = Limits{CacheBytes: 64 << 20, MaxRefusedCached: 4 << 10, UnknownRefreshInterval: time.Second}

// SetLimits sets the engine's limits; zero fields keep the defaults. Call
// before Start.
func (e *Engine) SetLimits(l Limits) {
	if l.CacheBytes <= 0 {
		l.CacheBytes = DefaultLimits.CacheBytes
	}
	if l.MaxRefusedCached <= 0 {
		l.MaxRefusedCached = DefaultLimits.MaxRefusedCached
	}
	if l.UnknownRefreshInterval <= 0 {
		l.UnknownRefreshInterval = DefaultLimits.UnknownRefreshInterval
	}
	e.limits = l
}

// CacheBytes is the estimated size of the rewrite cache.
func (e *Engine) CacheBytes() int64 {
	if st := e.state.Load(); st != nil {
		return st.results.bytes.Load() + st.shapes.Bytes()
	}
	return 0
}

// UnknownRefreshes counts catalog refreshes made for relations a
// statement named and the snapshot lacked, and the statements refused
// because their session had one too recently.
func (e *Engine) UnknownRefreshes() (done, refused int64) {
	return e.unknownRefreshes.Load(), e.unknownRefused.Load()
}

// resultCache maps (context, SQL) to the rewrite's result, within a byte
// budget: when an entry would pass it, the cache starts over.
type resultCache struct {
	mu         sync.RWMutex
	m          map[string]*rewrite.Result
	bytes      atomic.Int64
	max        int64
	maxRefused int
}

// maxResults bounds the entries too (small entries have overhead the
// estimate leaves out).
const maxResults = 50000

func newResultCache(l Limits) *resultCache {
	// A quarter of the budget is the shape cache's (rewrite/shapecache.go).
	return &resultCache{m: map[string]*rewrite.Result{}, max: l.CacheBytes - l.CacheBytes/4, maxRefused: l.MaxRefusedCached}
}

func (c *resultCache) get(k string) *rewrite.Result {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.m[k]
}

func (c *resultCache) put(k string, r *rewrite.Result) {
	size := resultSize(k, r)
	if len(r.Refused) > 0 && len(k) > c.maxRefused || size > c.max/16 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[k]; ok {
		return
	}
	if len(c.m) >= maxResults || c.bytes.Load()+size > c.max {
		clear(c.m)
		c.bytes.Store(0)
	}
	c.m[k] = r
	c.bytes.Add(size)
}

// resultSize estimates the memory a cached result holds: its key, its SQL,
// its refusals and its descriptions (those are shared with the
// description cache, but may outlive it).
func resultSize(k string, r *rewrite.Result) int64 {
	n := 256 + len(k) + len(r.SQL)
	for _, f := range r.Refused {
		n += 64 + len(f.Message) + len(f.Rule)
	}
	for _, s := range r.Reads {
		n += 16 + len(s)
	}
	for _, s := range r.Unknown {
		n += 16 + len(s)
	}
	for _, st := range r.Statements {
		n += 128 + len(st.Query) + len(st.Fingerprint) + len(st.Reason)
		for _, o := range st.Objects {
			n += 64 + len(o.Relation) + 48*(len(o.Columns)+len(o.Masked)) + 16*len(o.Filters)
		}
	}
	return int64(n)
}

// mayRefreshForUnknown says whether the session may have the catalog
// reloaded now for a name it lacks, and if so counts it.
func (s *session) mayRefreshForUnknown() bool {
	now := time.Now()
	if s.lastUnknownRefresh.IsZero() {
		s.refreshTokens = unknownRefreshBurst
	} else {
		s.refreshTokens = min(unknownRefreshBurst,
			s.refreshTokens+float64(now.Sub(s.lastUnknownRefresh))/float64(s.e.limits.UnknownRefreshInterval))
	}
	s.lastUnknownRefresh = now
	if s.refreshTokens < 1 {
		s.e.unknownRefused.Add(1)
		return false
	}
	s.refreshTokens--
	s.e.unknownRefreshes.Add(1)
	return true
}

// errUnknownTooSoon refuses a statement naming a relation pgcloak's
// catalog lacks when its session had the catalog reloaded very recently.
var errUnknownTooSoon = proxy.ErrRefused(pgerrcode.ProgramLimitExceeded,
	"pgcloak: the statement names a relation pgcloak's catalog does not have, and this session had the catalog reloaded for such a name moments ago; retry in a second (limits: rewrite.unknown_refresh_interval)")

package engine

import (
	"context"
	"errors"

	"github.com/pgcloak/pgcloak/proxy"
	"github.com/pgcloak/pgcloak/rewrite"
)

// Test-only hooks for the benchmarks (bench_test.go): a restricted session
// as the proxy opens it, without a connection, and the three paths a
// statement can take through the engine.

// BenchSession is a restricted session of one login.
type BenchSession struct {
	s  *session
	st *engineState
}

// NewBenchSession opens a session of login with the given search_path, as
// Open does after the server told it the session's search_path.
func (e *Engine) NewBenchSession(ctx context.Context, login string, searchPath []string) (*BenchSession, error) {
	s := &session{e: e, login: login, searchPath: searchPath}
	if err := s.resolve(ctx); err != nil {
		return nil, err
	}
	s.setViewer()
	if s.viewer == nil {
		return nil, errors.New("unrestricted login: nothing to rewrite")
	}
	s.openedRestricted = true // as Open would
	st := e.state.Load()
	if st == nil {
		return nil, errors.New("catalog not loaded")
	}
	return &BenchSession{s: s, st: st}, nil
}

// Decide is what the proxy asks for every Query and Parse message: the
// session's decision, through the result cache.
func (b *BenchSession) Decide(sql string) proxy.Decision { return b.s.decide(sql, nil) }

// Cached is the result cache alone (engineState.rewrite).
func (b *BenchSession) Cached(sql string) *rewrite.Result { return b.st.rewrite(b.s.viewer, sql, nil) }

// Cold rewrites without the result cache; the policy subqueries come from
// the catalog snapshot's cache, as for any statement text not seen before.
func (b *BenchSession) Cold(sql string) *rewrite.Result {
	return rewrite.Rewrite(b.st.cat, b.s.viewer, b.st.subq, sql, refusalSQL)
}

// Coldest also builds the policy subqueries anew, as after a catalog
// refresh or for the first session of a role.
func (b *BenchSession) Coldest(sql string) *rewrite.Result {
	return rewrite.Rewrite(b.st.cat, b.s.viewer, rewrite.NewSubqueryCache(), sql, refusalSQL)
}

// MaskColumns is the session's wire check (proxy.WireChecker).
func (b *BenchSession) MaskColumns(cols []proxy.Column) []bool { return b.s.MaskColumns(cols) }

// FilterError is the session's error filter (proxy.ErrorFilter).
func (b *BenchSession) FilterError(e *proxy.ServerError) bool { return b.s.FilterError(e) }

// Catalog is the catalog snapshot the session decides against.
func (b *BenchSession) Catalog() *rewrite.Catalog { return b.st.cat }

// HoldConn takes the engine's own connection, as a catalog load does,
// until release is called.
func (e *Engine) HoldConn() (release func()) {
	e.connMu.Lock()
	return e.connMu.Unlock
}

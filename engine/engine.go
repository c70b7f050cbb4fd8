package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	pg_query "github.com/pganalyze/pg_query_go/v6"

	"github.com/pgcloak/pgcloak/catalog"
	"github.com/pgcloak/pgcloak/proxy"
	"github.com/pgcloak/pgcloak/rewrite"
	"github.com/pgcloak/pgcloak/rules"
)

// Engine is the privacy policy the proxy asks: it maps each verified login
// to its principal, then rewrites or refuses every statement of a
// restricted session. It implements proxy.Policy.
type Engine struct {
	rules      func() *rules.Policy
	catalogDSN string
	log        *slog.Logger

	state atomic.Pointer[engineState] // catalog snapshot and its caches

	refreshMu   sync.Mutex
	lastRefresh time.Time // when the snapshot in force began loading
	refreshing  atomic.Bool

	incidents      atomic.Int64 // wire-check incidents
	verifyFailures atomic.Int64 // rewrites whose text did not say what their tree said

	cacheHits, cacheMisses atomic.Int64
	shapeCounts            rewrite.ShapeCounters // rewrite/shapecache.go

	limits                           Limits // bounds.go
	unknownRefreshes, unknownRefused atomic.Int64

	connMu sync.Mutex
	conn   *pgx.Conn // pgcloak's own connection: catalog (and attribute queries until Start)

	attrs atomic.Pointer[pgxpool.Pool] // attribute queries' connections (attrs.go)
}

// engineState is one catalog snapshot with the caches built on it.
type engineState struct {
	cat     *rewrite.Catalog
	subq    *rewrite.SubqueryCache
	results *resultCache
	shapes  *rewrite.ShapeCache // rewrite/shapecache.go
	// database is the database the catalog describes: the only one whose
	// names pgcloak can resolve.
	database string
	loaded   time.Time // when the snapshot began loading
}

// NewEngine returns an engine reading rules from current and the catalog
// over catalogDSN. Call Start before serving.
func NewEngine(current func() *rules.Policy, catalogDSN string, log *slog.Logger) *Engine {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Engine{rules: current, catalogDSN: catalogDSN, log: log, limits: DefaultLimits}
}

// Start loads the catalog and refreshes it every interval until ctx ends.
// A catalog that cannot be loaded yet is retried; restricted sessions are
// refused until it is.
func (e *Engine) Start(ctx context.Context, interval time.Duration) error {
	if pool, err := newAttrPool(e.catalogDSN); err != nil { // attrs.go
		e.log.Warn("attribute queries run on the catalog connection", "err", err)
	} else if old := e.attrs.Swap(pool); old != nil {
		old.Close()
	}
	err := e.Refresh(ctx)
	go func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				if pool := e.attrs.Swap(nil); pool != nil {
					pool.Close()
				}
				e.connMu.Lock()
				if e.conn != nil {
					e.conn.Close(context.Background())
				}
				e.connMu.Unlock()
				return
			case <-t.C:
				if err := e.Refresh(ctx); err != nil {
					e.log.Warn("catalog refresh failed", "err", err)
				}
			}
		}
	}()
	return err
}

// Ready says whether a catalog is loaded.
func (e *Engine) Ready() bool { return e.state.Load() != nil }

// CatalogLoadedAt is when the catalog snapshot in force began loading; zero
// while none is loaded.
func (e *Engine) CatalogLoadedAt() time.Time {
	if st := e.state.Load(); st != nil {
		return st.loaded
	}
	return time.Time{}
}

// Refresh loads a new catalog snapshot and swaps it in.
func (e *Engine) Refresh(ctx context.Context) error {
	e.refreshMu.Lock()
	defer e.refreshMu.Unlock()
	return e.refreshLocked(ctx)
}

// refreshLocked is Refresh with refreshMu held.
func (e *Engine) refreshLocked(ctx context.Context) error {
	start := time.Now()
	var cat *rewrite.Catalog
	var database string
	err := e.withConn(ctx, func(c *pgx.Conn) error {
		var err error
		if cat, err = catalog.Load(ctx, c.Query); err != nil {
			return err
		}
		return c.QueryRow(ctx, "SELECT pg_catalog.current_database()").Scan(&database)
	})
	if err != nil {
		return err
	}
	old := e.state.Load()
	if old != nil && old.database == database && old.cat.Same(cat) {
		// Nothing changed: the snapshot, its generation and the caches of
		// decisions made on it stay, so that a refresh every minute (or
		// one a client's unknown name asked for) re-prepares and
		// re-rewrites nothing.
		kept := *old
		kept.loaded = start
		e.state.Store(&kept)
		e.lastRefresh = start
		e.log.Debug("catalog unchanged", "catalog", cat.String())
		return nil
	}
	if old != nil {
		cat.Generation = old.cat.Generation + 1
	}
	e.state.Store(&engineState{cat: cat, subq: rewrite.NewSubqueryCache(), results: newResultCache(e.limits),
		shapes: rewrite.NewShapeCache(e.limits.CacheBytes/4, &e.shapeCounts), database: database, loaded: start})
	e.lastRefresh = start
	e.log.Debug("catalog loaded", "catalog", cat.String())
	return nil
}

// refreshSoon refreshes the catalog in the background after a statement
// that may have changed it.
func (e *Engine) refreshSoon() {
	if e.refreshing.Swap(true) {
		return
	}
	go func() {
		defer e.refreshing.Store(false)
		time.Sleep(50 * time.Millisecond)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := e.Refresh(ctx); err != nil {
			e.log.Warn("catalog refresh failed", "err", err)
		}
	}()
}

// refreshForUnknown loads a fresh catalog snapshot when a statement names
// a relation the current one lacks: it may be a relation created since (a
// view over protected tables, say), which must not pass for a temporary
// table. Only a snapshot begun after the statement arrived can tell: one
// that was loading already may have been read before the relation was
// created. Requests that arrive while a snapshot loads wait for it and
// share the next one.
func (e *Engine) refreshForUnknown() {
	asked := time.Now()
	e.refreshMu.Lock()
	defer e.refreshMu.Unlock()
	if e.lastRefresh.After(asked) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.refreshLocked(ctx); err != nil {
		e.log.Warn("catalog refresh failed", "err", err)
	}
}

// hasNewUnknown says whether a result names relations the session has not
// yet found to be its own temporary ones.
func (s *session) hasNewUnknown(res *rewrite.Result) bool {
	for _, n := range res.Unknown {
		if !s.temps[n] {
			return true
		}
	}
	return false
}

// withConn runs f on pgcloak's own connection, (re)connecting as needed.
func (e *Engine) withConn(ctx context.Context, f func(*pgx.Conn) error) error {
	e.connMu.Lock()
	defer e.connMu.Unlock()
	if e.conn == nil || e.conn.IsClosed() {
		c, err := pgx.Connect(ctx, e.catalogDSN)
		if err != nil {
			return fmt.Errorf("catalog connection: %w", err)
		}
		e.conn = c
	}
	err := f(e.conn)
	if err != nil && e.conn.PgConn().IsBusy() {
		e.conn.Close(ctx)
		e.conn = nil
	}
	return err
}

// connQuerier runs attribute queries (attrs.go).
type connQuerier struct{ e *Engine }

type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

func (q connQuerier) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	return q.e.queryValues(ctx, sql, args...)
}

// connQueryRow runs an attribute query on the engine's connection.
func (q connQuerier) connQueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	var row pgx.Row = errRow{errors.New("no connection")}
	err := q.e.withConn(ctx, func(c *pgx.Conn) error {
		// Scan inside the lock: the row belongs to the connection.
		vals, err := c.Query(ctx, sql, args...)
		if err != nil {
			return err
		}
		defer vals.Close()
		if !vals.Next() {
			if err := vals.Err(); err != nil {
				return err
			}
			row = errRow{pgx.ErrNoRows}
			return nil
		}
		raw, err := vals.Values()
		if err != nil {
			return err
		}
		row = valuesRow(raw)
		return vals.Err()
	})
	if err != nil {
		return errRow{err}
	}
	return row
}

// valuesRow scans already-read values into pointers.
type valuesRow []any

func (r valuesRow) Scan(dst ...any) error {
	if len(dst) != len(r) {
		return fmt.Errorf("attribute query: %d columns, %d destinations", len(r), len(dst))
	}
	for i, d := range dst {
		switch p := d.(type) {
		case **string:
			if r[i] == nil {
				*p = nil
			} else {
				s := fmt.Sprint(r[i])
				*p = &s
			}
		case *int64:
			switch v := r[i].(type) {
			case int64:
				*p = v
			case int32:
				*p = int64(v)
			default:
				return fmt.Errorf("attribute query: column %d is %T, not a count", i, r[i])
			}
		default:
			return fmt.Errorf("attribute query: cannot scan into %T", d)
		}
	}
	return nil
}

// Open maps the session's login to its principal. An unrestricted
// principal's session gets a policy too, which forwards its statements
// but decides each under the rules in force: a reload may restrict the
// login, and a delegating application may name an end user.
func (e *Engine) Open(ctx context.Context, info proxy.SessionInfo) (proxy.SessionPolicy, error) {
	s := &session{e: e, login: info.User, params: info.Params, idle: info.Idle, startParams: info.ServerParams,
		binding: strconv.FormatUint(uint64(info.BackendPID), 10)}
	if err := s.resolve(ctx); err != nil {
		return nil, err
	}
	rows, err := info.Upstream.Query(ctx,
		"SELECT s FROM pg_catalog.unnest(pg_catalog.current_schemas(false)) WITH ORDINALITY AS p(s, i) ORDER BY i")
	if err != nil {
		return nil, fmt.Errorf("pgcloak: reading the session's search_path: %w", err)
	}
	s.searchPath = []string{}
	for _, r := range rows {
		if r[0] != nil {
			s.searchPath = append(s.searchPath, *r[0])
		}
	}
	if s.restricted {
		// pgcloak's masks call built-in functions by their bare names, as
		// the rules' filters do: pg_catalog must be searched first.
		if i := slices.Index(s.searchPath, "pg_catalog"); i > 0 {
			return nil, &proxy.Error{Code: pgerrcode.InvalidAuthorizationSpecification,
				Message: "pgcloak: restricted sessions must search pg_catalog first; the session's search_path puts it later (rule: fail_closed)"}
		}
		// pgcloak parses what the server will parse; an encoding whose
		// multibyte characters can hide a quote or backslash byte would let
		// the two read the same bytes differently.
		if enc := strings.ToUpper(info.ServerParams["client_encoding"]); unsafeEncodings[enc] {
			return nil, &proxy.Error{Code: pgerrcode.InvalidAuthorizationSpecification,
				Message: fmt.Sprintf("pgcloak: restricted sessions may not use client_encoding %s; use UTF8 (rule: fail_closed)", enc)}
		}
		if err := checkStartup(s.pr, info.Params); err != nil {
			return nil, err
		}
		if info.ServerParams["standard_conforming_strings"] != "on" {
			return nil, &proxy.Error{Code: pgerrcode.InvalidAuthorizationSpecification,
				Message: "pgcloak: restricted sessions need standard_conforming_strings on (rule: fail_closed)"}
		}
		st := e.state.Load()
		if st == nil {
			return nil, &proxy.Error{Code: pgerrcode.CannotConnectNow,
				Message: "pgcloak is not ready: the database catalog is not loaded yet"}
		}
		// Names resolve against the catalog of one database. In another,
		// a view or a copy of a protected table is a name pgcloak does
		// not know.
		if info.Database != st.database {
			return nil, &proxy.Error{Code: pgerrcode.InvalidAuthorizationSpecification,
				Message: fmt.Sprintf("pgcloak: restricted sessions may connect only to database %q, whose catalog pgcloak reads, not to %q (rule: fail_closed)",
					st.database, info.Database)}
		}
	}
	s.setViewer()
	s.openedRestricted = s.restricted || s.app != nil
	return s, nil
}

// unsafeEncodings are the client-only encodings whose multibyte
// characters may contain the bytes of ' or \.
var unsafeEncodings = map[string]bool{"SJIS": true, "SHIFT_JIS_2004": true, "BIG5": true, "GBK": true,
	"UHC": true, "GB18030": true, "JOHAB": true}

// session is one restricted session's policy.
type session struct {
	e          *Engine
	login      string
	params     map[string]string
	pol        *rules.Policy
	pr         *rules.Principal
	purposes   []string
	searchPath []string
	restricted bool
	// openedRestricted: Open checked the session as a restricted one (or
	// as a delegating application's, whose end users are).
	openedRestricted bool
	app              *rules.Principal  // a delegating application's own principal
	endUser          string            // the end user it named (the setting's value)
	viewer           *rewrite.Viewer   // nil: unrestricted
	openErr          error             // set when a reload left the login without a role
	temps            map[string]bool   // names found to be the session's temporary relations
	gen              uint64            // bumped when the rules in force or the end user change
	sqlPrepared      map[string]uint64 // SQL-level PREPAREd names → generation (follow.go)
	cursors          map[string]cursorState
	pending          *switchReq  // an end-user switch awaiting the server
	idle             func() bool // proxy.SessionInfo.Idle
	binding          string      // what a signed end-user name is bound to: the backend pid
	// lastUnknownRefresh is when the session last had the catalog
	// reloaded for a relation it lacked (bounds.go).
	lastUnknownRefresh time.Time
	refreshTokens      float64
	f                  following
	lastRes            *rewrite.Result // the last decision's rewrite, for the access log
	// startParams are the settings the server reported at start-up, which
	// the session guards checked; watching is set while the session is
	// restricted (read by the proxy's server-side goroutine).
	startParams map[string]string
	watching    atomic.Bool
}

// The proxy finds a session's optional interfaces by type assertion: these
// make a renamed or retyped method a compile error, not a check that
// silently stops running.
var (
	_ proxy.Policy          = (*Engine)(nil)
	_ proxy.SessionPolicy   = (*session)(nil)
	_ proxy.ErrorFilter     = (*session)(nil) // FilterError
	_ proxy.WireChecker     = (*session)(nil) // MaskColumns
	_ proxy.SettingsWatcher = (*session)(nil) // ParameterStatus (settings_watch.go)
	_ proxy.Generational    = (*session)(nil) // Generation
	_ proxy.Follower        = (*session)(nil) // Ready (follow.go)
	_ proxy.Identity        = (*session)(nil) // Identity (access.go)
	_ proxy.Policy          = Observer{}      // access.go
	_ proxy.SessionPolicy   = observed{}
)

func (s *session) setViewer() {
	s.viewer = nil
	if s.restricted {
		s.viewer = rewrite.NewViewer(s.pol, s.pr, s.purposes, s.searchPath)
	}
	s.watching.Store(s.restricted)
}

// resolve maps the login under the rules in force.
func (s *session) resolve(ctx context.Context) error {
	pol := s.e.rules()
	if pol == nil {
		return &proxy.Error{Code: pgerrcode.CannotConnectNow, Message: "pgcloak is not ready: no rules loaded"}
	}
	pr, err := rules.Resolve(ctx, pol, connQuerier{s.e}.QueryRow, s.login)
	if err != nil {
		var um *rules.UnmappedLoginError
		if errors.As(err, &um) {
			return &proxy.Error{Code: pgerrcode.InvalidAuthorizationSpecification, Message: err.Error()}
		}
		return &proxy.Error{Code: pgerrcode.InvalidAuthorizationSpecification,
			Message: "pgcloak: cannot map login to a principal: " + err.Error()}
	}
	if pr.Delegating {
		s.app = pr
		if s.endUser != "" {
			if pr, err = s.e.endUser(ctx, pol, pr, s.endUser, s.binding); err != nil {
				return err
			}
		}
	}
	s.pol, s.pr = pol, pr
	s.restricted = !pr.Unrestricted()
	if !s.restricted {
		return nil
	}
	role := pr.Role
	s.purposes = role.Purposes
	if want := s.params["pgcloak.purpose"]; want != "" && !role.PurposeFixed {
		ok := false
		for _, p := range role.Purposes {
			ok = ok || p == want
		}
		if !ok {
			return &proxy.Error{Code: pgerrcode.InvalidAuthorizationSpecification,
				Message: fmt.Sprintf("pgcloak: role %q may not work for purpose %q", role.Name, want)}
		}
		s.purposes = []string{want}
	} else if role.PurposeFixed && len(role.Purposes) > 0 {
		s.purposes = role.Purposes[:1]
	}
	return nil
}

// current returns the viewer under the rules in force, re-mapping the
// login after a reload.
func (s *session) current() (*rewrite.Viewer, error) {
	if pol := s.e.rules(); pol != s.pol {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		s.openErr = s.resolve(ctx)
		cancel()
		if s.openErr == nil && s.restricted && !s.openedRestricted {
			// Open checked nothing of an unrestricted session (its
			// search_path, encoding, settings), and nothing followed
			// them since.
			s.openErr = &proxy.Error{Code: pgerrcode.InsufficientPrivilege, Message: "pgcloak: the rules in force " +
				"now restrict this login, whose session began unrestricted and was not checked; connect again (rule: fail_closed)"}
		}
		s.setViewer()
		s.gen++
	}
	return s.viewer, s.openErr
}

// Generation changes whenever the session's earlier decisions may no
// longer hold (the rules were reloaded): the proxy then prepares the
// client's statements again before using them.
func (s *session) Generation() uint64 {
	s.drain()
	s.current()
	return s.gen
}

func (s *session) Query(sql string) proxy.Decision {
	d := s.decide(sql, nil)
	// A shape hit's prepared form (rewrite/shapeprep.go): the proxy may
	// run the Query as its template's prepared statement.
	if res := s.lastRes; d.Action == proxy.Rewrite && res != nil && res.Prepared != nil && d.SQL == res.SQL {
		p := res.Prepared
		d.Prepared = &proxy.PreparedQuery{Name: p.Name, SQL: p.SQL, OIDs: p.OIDs, Values: p.Values}
	}
	return s.audited(sql, d)
}

func (s *session) Parse(_, sql string, oids []uint32) proxy.Decision {
	return s.audited(sql, s.decide(sql, oids))
}

func (s *session) FunctionCall(uint32) proxy.Decision {
	return s.functionCall(proxy.ErrRefused(pgerrcode.FeatureNotSupported,
		"pgcloak: the FunctionCall message is refused for restricted roles (rule: fail_closed)"))
}

func (s *session) Close() {}

// decide decides sql, a Query's or a Parse's; oids are the types a Parse
// declares for its parameters.
func (s *session) decide(sql string, oids []uint32) proxy.Decision {
	s.drain()
	viewer, err := s.current()
	if err != nil {
		var pe *proxy.Error
		if errors.As(err, &pe) {
			return proxy.Decision{Action: proxy.Refuse, Err: pe}
		}
		return proxy.ErrRefused(pgerrcode.InvalidAuthorizationSpecification, err.Error())
	}
	if viewer == nil {
		return proxy.Decision{} // unrestricted after a reload
	}
	if s.pending != nil {
		return errPending
	}
	if s.app != nil {
		if d, ok := s.delegation(sql); ok {
			return d
		}
	}
	st := s.e.state.Load()
	if st == nil {
		return proxy.ErrRefused(pgerrcode.CannotConnectNow, "pgcloak is not ready: the database catalog is not loaded yet")
	}
	res := s.rewrite(st, viewer, sql, oids)
	if s.hasNewUnknown(res) {
		if !s.mayRefreshForUnknown() {
			return errUnknownTooSoon
		}
		s.e.refreshForUnknown()
		st = s.e.state.Load()
		res = s.rewrite(st, viewer, sql, oids)
		// Still unknown after a fresh look: the session's own temporary
		// relations (which pgcloak's connection cannot see).
		for _, n := range res.Unknown {
			if s.temps == nil {
				s.temps = map[string]bool{}
			}
			s.temps[n] = true
		}
	}
	if n := reservedName(res); n != "" {
		return proxy.Decision{Action: proxy.Refuse, Err: errShapeName(n)}
	}
	if res.VerifyFailed() {
		s.e.verifyFailures.Add(1)
		s.e.log.Error("verify: a rewritten statement does not parse back to the tree pgcloak checked; refused",
			"role", viewer.Principal.Role.Name, "fingerprint", fingerprintOf(sql))
	}
	if res.CatalogChange {
		s.temps = nil
		s.e.refreshSoon()
	}
	if res.Unchanged {
		return s.follow(sql, proxy.Decision{})
	}
	return s.follow(sql, proxy.Decision{Action: proxy.Rewrite, SQL: res.SQL})
}

// rewrite rewrites through the result cache. oids are the parameter
// types a Parse declares: a statement with any is decided with them,
// cached under them, and kept out of the shape cache.
func (st *engineState) rewrite(v *rewrite.Viewer, sql string, oids []uint32) *rewrite.Result {
	key := resultKey(v, sql, oids)
	if r := st.results.get(key); r != nil {
		return r
	}
	if typed(oids) {
		r := rewrite.RewriteParams(st.cat, v, st.subq, sql, oids, refusalSQL)
		st.results.put(key, r)
		return r
	}
	r, probe := st.shapes.Lookup(v, sql)
	if r != nil {
		return r
	}
	r = rewrite.Rewrite(st.cat, v, st.subq, sql, refusalSQL)
	st.results.put(key, r)
	st.shapes.Learn(st.cat, st.subq, v, probe, r, refusalSQL)
	return r
}

// resultKey is the result cache's key of sql decided for v with
// parameter types oids.
func resultKey(v *rewrite.Viewer, sql string, oids []uint32) string {
	key := v.Key + "\x00" + sql
	if typed(oids) {
		key += "\x00" + fmt.Sprint(oids)
	}
	return key
}

// typed says whether a Parse declares the type of any parameter.
func typed(oids []uint32) bool {
	for _, o := range oids {
		if o != 0 {
			return true
		}
	}
	return false
}

// reservedName is the first SQL-level prepared statement res names that
// starts with rewrite.PreparedPrefix, which only pgcloak may prepare:
// "" when none.
func reservedName(res *rewrite.Result) string {
	for _, names := range [][]string{res.Prepares, res.Executes, res.Deallocates} {
		for _, n := range names {
			if strings.HasPrefix(n, rewrite.PreparedPrefix) {
				return n
			}
		}
	}
	return ""
}

func errShapeName(name string) *proxy.Error {
	return &proxy.Error{Code: pgerrcode.InsufficientPrivilege, Message: fmt.Sprintf(
		"pgcloak: statement names starting with %q are reserved for pgcloak; %q cannot be used (rule: fail_closed)", rewrite.PreparedPrefix, name)}
}

func refusalSQL(r *rewrite.Refusal) string {
	return proxy.RefusalSQL(&proxy.Error{Code: r.Code, Message: r.Message})
}

// Explain rewrites sql for a login as a session of it would be, for
// `pgcloak explain`. searchPath stands in for the session's.
func (e *Engine) Explain(ctx context.Context, login string, searchPath []string, sql string) (*rewrite.Result, *rules.Principal, error) {
	s := &session{e: e, login: login, searchPath: searchPath}
	if err := s.resolve(ctx); err != nil {
		return nil, nil, err
	}
	s.setViewer()
	if s.viewer == nil {
		return &rewrite.Result{SQL: sql, Unchanged: true}, s.pr, nil
	}
	st := e.state.Load()
	if st == nil {
		return nil, nil, errors.New("catalog not loaded")
	}
	// A refused statement is shown as a statement that names the refusal:
	// Rewrite parses what the renderer returns.
	return rewrite.Rewrite(st.cat, s.viewer, st.subq, sql, rewrite.ShowRefusal), s.pr, nil
}

// MaskColumns is the wire check (design.md §5.4): a result column that
// comes straight from a protected column the principal may not see raw
// means a rewrite failed. It is masked and reported as an incident.
func (s *session) MaskColumns(fields []proxy.Column) []bool {
	if s.viewer == nil {
		return nil
	}
	st := s.e.state.Load()
	if st == nil {
		return nil
	}
	var mask []bool
	for i, f := range fields {
		if f.TableOID == 0 {
			continue
		}
		rel := st.cat.RelationByOID(f.TableOID)
		if rel == nil {
			continue
		}
		tab := rewrite.Protecting(s.viewer.Policy, rel)
		if tab == nil {
			continue
		}
		var col string
		for _, c := range rel.Columns {
			if c.Num == int16(f.Attribute) {
				col = c.Name
			}
		}
		v := s.pr.Column(tab.Name, col)
		allowed := s.pr.Table(tab.Name).Allowed
		if allowed && col != "" && v.Action == rules.Show && !v.HideIfOptedOut {
			continue
		}
		if mask == nil {
			mask = make([]bool, len(fields))
		}
		mask[i] = true
		s.e.incidents.Add(1)
		s.e.log.Error("wire check: a result column comes straight from a protected column; sent as NULL",
			"table", tab.Name.String(), "column", col, "role", s.pr.Role.Name)
	}
	return mask
}

// Incidents counts wire-check incidents since start.
func (e *Engine) Incidents() int64 { return e.incidents.Load() }

// fingerprintOf names a statement in the operational log without its
// constants.
func fingerprintOf(sql string) string {
	fp, err := pg_query.Fingerprint(sql)
	if err != nil {
		return "?"
	}
	return fp
}

// VerifyFailures counts statements refused since start because their
// rewritten text did not parse back to the tree pgcloak checked.
func (e *Engine) VerifyFailures() int64 { return e.verifyFailures.Load() }

// FilterError withholds the parts of server errors that can carry values
// the principal may not see: the DETAIL of integrity constraint violations
// shows the failing row ("Failing row contains (…)", hidden columns
// included) or the conflicting key of another row.
func (s *session) FilterError(e *proxy.ServerError) bool {
	if !s.restricted || e.Detail == "" {
		return false
	}
	if strings.HasPrefix(e.Code, "23") || strings.HasPrefix(e.Detail, "Failing row contains") {
		e.Detail = "pgcloak: detail withheld; it can show values the role may not see"
		return true
	}
	return false
}

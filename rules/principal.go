package rules

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// loginRule is one entry of principals.logins (or principals.default).
type loginRule struct {
	login      string // "" for the default
	role       *Role
	attrs      map[string]string
	query      *attrQuery
	delegating bool
	// endUserRoles are the roles of the end users a delegating login may
	// name.
	endUserRoles map[string]bool
	at           Pos
}

// Delegation configures applications that name their end user.
type Delegation struct {
	// Setting is the custom setting that names the end user
	// (SET pgcloak.end_user = 'alice'); pgcloak consumes the statement.
	Setting string
	// KeyEnv is the environment variable holding the shared key, if end
	// user names must be signed.
	KeyEnv string
	// Unsigned: end-user names are accepted without a signature (an
	// explicit choice in the rules; pgcloak check warns about it).
	Unsigned bool
	key      []byte
}

// Delegation returns the delegation settings.
func (p *Policy) Delegation() Delegation { return p.delegation }

// UnmappedLoginError is returned for a login that the rules do not map to a
// role, when the rules have no default role. Its message is meant for the
// client.
type UnmappedLoginError struct {
	Login string
}

func (e *UnmappedLoginError) Error() string {
	return fmt.Sprintf("pgcloak: login %q is not mapped to a role in the privacy rules; ask the rules administrator to add it", e.Login)
}

// Principal is who a session acts for: a login mapped to a role and its
// attributes. It is immutable once returned by Policy.Principal (without an
// attribute query) or Policy.BindAttributes.
type Principal struct {
	Login string
	Role  *Role
	// Attributes are the principal's attributes (region, …), from the rules
	// or from the attribute query.
	Attributes map[string]string
	// Delegating logins are applications that may name an end user
	// (Policy.EndUser).
	Delegating bool

	policy  *Policy
	query   *attrQuery
	filters map[TableName]*Filter // nil until the attributes are known
}

// Unrestricted says whether the principal's statements pass through
// untouched.
func (p *Principal) Unrestricted() bool { return p.Role.Unrestricted }

// AttributeQuery returns the SQL the caller must run, with the login as $1,
// before the principal is ready (then pass its row to BindAttributes). ok is
// false when the attributes are already known.
//
// The query is wrapped so that it returns every attribute as text and, last,
// the number of rows the original query returned: exactly one row is
// required.
func (p *Principal) AttributeQuery() (sql string, ok bool) {
	if p.query == nil || p.filters != nil {
		return "", false
	}
	return p.query.wrapped(), true
}

func (q *attrQuery) wrapped() string {
	var b strings.Builder
	b.WriteString("SELECT ")
	for _, c := range q.columns {
		b.WriteString("(q." + QuoteIdent(c) + ")::text, ")
	}
	b.WriteString("count(*) OVER () FROM (" + q.sql + "\n) q LIMIT 1")
	return b.String()
}

// Ready says whether the principal's attributes are known.
func (p *Principal) Ready() bool { return p.filters != nil }

// RowFilter returns the row filter of table t for the principal, with the
// principal's attributes bound as typed literals; ok is false when the role
// has no filter on t. Filters on the tables t links to (Policy.LinkPath)
// limit t as well; composing them is the rewrite's job. A principal whose
// attribute query has not run yet gets the filter "false".
func (p *Principal) RowFilter(t TableName) (f *Filter, ok bool) {
	if _, has := p.Role.filters[t]; !has {
		return nil, false
	}
	if p.filters == nil {
		return denyAll, true
	}
	return p.filters[t], true
}

// Column is shorthand for p.Role.Column.
func (p *Principal) Column(t TableName, col string) ColumnView { return p.Role.Column(t, col) }

// Allows is shorthand for p.Role.Allows.
func (p *Principal) Allows(k StatementKind) bool { return p.Role.Allows(k) }

// Table is shorthand for p.Role.Table.
func (p *Principal) Table(t TableName) TableAccess { return p.Role.Table(t) }

// Principal maps a verified login to its principal. A login the rules do
// not name gets the default role if one is configured, else an
// *UnmappedLoginError. If the principal's attributes come from an attribute
// query, the returned principal is not Ready: run AttributeQuery and pass
// the row to BindAttributes, or use Resolve, which does both.
func (p *Policy) Principal(login string) (*Principal, error) {
	lr := p.logins[login]
	if lr == nil {
		lr = p.defaultLogin
	}
	if lr == nil {
		return nil, &UnmappedLoginError{Login: login}
	}
	pr := &Principal{Login: login, Role: lr.role, Delegating: lr.delegating, policy: p, query: lr.query}
	if lr.query != nil {
		return pr, nil
	}
	pr.Attributes = lr.attrs
	if err := p.bindFilters(pr); err != nil {
		return nil, err
	}
	return pr, nil
}

// BindAttributes returns a copy of pr, which came from Principal with an
// attribute query, with the attributes of row (attribute name → text value,
// as returned by the query) bound. Values are checked against the declared
// attribute types and bound as typed literals.
func (p *Policy) BindAttributes(pr *Principal, row map[string]string) (*Principal, error) {
	if pr.query == nil {
		return nil, fmt.Errorf("pgcloak: login %q has no attribute query", pr.Login)
	}
	attrs := make(map[string]string, len(row))
	for _, c := range pr.query.columns {
		v, ok := row[c]
		if !ok {
			return nil, fmt.Errorf("pgcloak: the attribute query of login %q returned no %q", pr.Login, c)
		}
		attrs[c] = v
	}
	out := *pr
	out.Attributes = attrs
	out.filters = nil
	if err := p.bindFilters(&out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Row is the row a query returned; pgx.Row is one.
type Row interface {
	Scan(dest ...any) error
}

// ErrNoAttributes is returned by Resolve when the attribute query finds no
// row (or more than one) for the login.
var ErrNoAttributes = errors.New("pgcloak: no attributes")

// Resolve maps login to a ready principal of policy p, running its
// attribute query with queryRow if it has one: the QueryRow method of a
// connection or transaction (conn.QueryRow of a *pgx.Conn, tx.QueryRow of
// a pgx.Tx), so that this package knows no database driver. A row's Scan
// must return an error that is sql.ErrNoRows (errors.Is) when there is no
// row, as pgx's ErrNoRows is.
func Resolve[R Row](ctx context.Context, p *Policy, queryRow func(ctx context.Context, sql string, args ...any) R, login string) (*Principal, error) {
	pr, err := p.Principal(login)
	if err != nil {
		return nil, err
	}
	query, ok := pr.AttributeQuery()
	if !ok {
		return pr, nil
	}
	vals := make([]*string, len(pr.query.columns))
	dst := make([]any, 0, len(vals)+1)
	for i := range vals {
		dst = append(dst, &vals[i])
	}
	var count int64
	dst = append(dst, &count)
	if err := queryRow(ctx, query, login).Scan(dst...); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("%w: the attribute query found no row for login %q", ErrNoAttributes, login)
		}
		return nil, fmt.Errorf("pgcloak: attribute query for login %q: %w", login, err)
	}
	if count != 1 {
		return nil, fmt.Errorf("%w: the attribute query found %d rows for login %q, not one", ErrNoAttributes, count, login)
	}
	row := make(map[string]string, len(vals))
	for i, c := range pr.query.columns {
		if vals[i] == nil {
			return nil, fmt.Errorf("%w: attribute %q of login %q is NULL", ErrNoAttributes, c, login)
		}
		row[c] = *vals[i]
	}
	return p.BindAttributes(pr, row)
}

// boundFilters keeps the row filters bound for each (role, attributes):
// every session of a login maps it to its principal again, and binding
// parses and walks each filter of the role (a tenth of the CPU of a
// restricted connect). Filters are immutable (Filter.Node returns a
// copy), so principals share them. A Policy is never changed once loaded,
// so neither is what is kept here; at most maxBound entries, then binding
// is done each time again.
type boundFilters struct {
	mu sync.Mutex
	m  map[string]map[TableName]*Filter
}

const maxBound = 10000

func boundKey(pr *Principal) string {
	keys := make([]string, 0, len(pr.Attributes))
	for k := range pr.Attributes {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	b.WriteString(pr.Role.Name)
	for _, k := range keys {
		b.WriteByte(0)
		b.WriteString(k)
		b.WriteByte(0)
		b.WriteString(pr.Attributes[k])
	}
	return b.String()
}

func (p *Policy) bindFilters(pr *Principal) error {
	key := boundKey(pr)
	p.bound.mu.Lock()
	filters, ok := p.bound.m[key]
	p.bound.mu.Unlock()
	if ok {
		pr.filters = filters
		return nil
	}
	filters, err := p.bindFiltersOf(pr)
	if err != nil {
		return err
	}
	p.bound.mu.Lock()
	if p.bound.m == nil {
		p.bound.m = map[string]map[TableName]*Filter{}
	}
	if len(p.bound.m) < maxBound {
		p.bound.m[key] = filters
	}
	p.bound.mu.Unlock()
	pr.filters = filters
	return nil
}

func (p *Policy) bindFiltersOf(pr *Principal) (map[TableName]*Filter, error) {
	filters := make(map[TableName]*Filter, len(pr.Role.filters))
	for t, ft := range pr.Role.filters {
		f, err := ft.bind(p.attrTypes, pr.Attributes)
		if err != nil {
			return nil, fmt.Errorf("pgcloak: login %q, row filter of table %s: %w", pr.Login, t, err)
		}
		filters[t] = f
	}
	return filters, nil
}

// EndUser maps the value a delegating application set (Delegation.Setting)
// to its end user's principal, unbound to any session: a signed value is
// refused (see EndUserFor).
func (p *Policy) EndUser(app *Principal, value string) (*Principal, error) {
	return p.EndUserFor(app, value, "", time.Now())
}

// EndUserFor maps the value a delegating application set on the session
// whose binding is session (the server process id of its connection, as
// BackendKeyData gave it) to its end user's principal. With a delegation
// key the value must be
//
//	login:expiry:HEX
//
// where expiry is a Unix time in seconds, not yet past at now, and HEX the
// hexadecimal HMAC-SHA256, under the key, of login, expiry and session
// joined by newlines (SignEndUser). The end user must be a mapped login,
// neither delegating nor unrestricted, of one of the roles the
// application's end_user_roles list.
func (p *Policy) EndUserFor(app *Principal, value, session string, now time.Time) (*Principal, error) {
	if !app.Delegating {
		return nil, fmt.Errorf("pgcloak: login %q is not a delegating application and cannot set %s", app.Login, p.delegation.Setting)
	}
	login := value
	if p.delegation.key != nil {
		rest, sig, ok1 := cutLast(value, ":")
		l, exp, ok2 := cutLast(rest, ":")
		got, err := hex.DecodeString(sig)
		want := SignEndUser(p.delegation.key, l, exp, session)
		if !ok1 || !ok2 || err != nil || !hmac.Equal(got, want) {
			return nil, fmt.Errorf("pgcloak: %s is not signed with the delegation key for this session (login:expiry:HMAC)", p.delegation.Setting)
		}
		t, err := strconv.ParseInt(exp, 10, 64)
		if err != nil || now.Unix() > t {
			return nil, fmt.Errorf("pgcloak: the signed %s has expired", p.delegation.Setting)
		}
		login = l
	}
	pr, err := p.Principal(login)
	if err != nil {
		return nil, err
	}
	if pr.Delegating || pr.Unrestricted() {
		return nil, fmt.Errorf("pgcloak: login %q cannot be named as an end user", login)
	}
	if lr := p.logins[app.Login]; lr == nil || !lr.endUserRoles[pr.Role.Name] {
		return nil, fmt.Errorf("pgcloak: application %q may not name end users of role %q (rule: principals.logins.%s.end_user_roles)",
			app.Login, pr.Role.Name, app.Login)
	}
	return pr, nil
}

// SignEndUser is the signature of an end-user name: HMAC-SHA256 under key
// of login, expiry (Unix seconds, decimal) and session (the server process
// id of the connection, decimal), joined by newlines.
func SignEndUser(key []byte, login, expiry, session string) []byte {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(login + "\n" + expiry + "\n" + session))
	return mac.Sum(nil)
}

func cutLast(s, sep string) (before, after string, ok bool) {
	i := strings.LastIndex(s, sep)
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+len(sep):], true
}

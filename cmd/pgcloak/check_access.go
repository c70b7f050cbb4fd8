package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgcloak/pgcloak/rules"
)

// The access check (pgcloak check --proxy-addresses): pgcloak relays
// PostgreSQL's own authentication, so a restricted login's password works
// on the database directly too. The rules protect only if restricted
// logins can reach PostgreSQL from pgcloak's addresses alone, and only if
// their attributes do not defeat what the rules rely on (docs/deploy.md).
// Finding codes:
//   - hba-bypass (error): a pg_hba.conf line lets a restricted login in
//     from an address outside --proxy-addresses;
//   - hba-local (warning): ... over the Unix socket or from the database
//     host itself (samehost);
//   - login-attribute (error): a restricted login is a superuser, has
//     BYPASSRLS or REPLICATION, or is (a member of) the owner of a
//     protected table.

// parseProxyAddresses reads CIDRs or single addresses, comma-separated.
func parseProxyAddresses(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, item := range list {
		for _, s := range strings.Split(item, ",") {
			s = strings.TrimSpace(s)
			if s == "" {
				continue
			}
			if p, err := netip.ParsePrefix(s); err == nil {
				out = append(out, p.Masked())
				continue
			}
			a, err := netip.ParseAddr(s)
			if err != nil {
				return nil, fmt.Errorf("--proxy-addresses: %q is not an address or a CIDR", s)
			}
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
		}
	}
	return out, nil
}

// hbaRule is one line of pg_hba_file_rules.
type hbaRule struct {
	line      int
	typ       string
	databases []string
	users     []string
	address   *string
	netmask   *string
	method    string
	err       *string
}

// restrictedLogin is a database login the rules map to a restricted role.
type restrictedLogin struct {
	name                          string
	role                          string
	memberOf                      []string // every role it is a member of, directly or not, itself included
	super, bypassRLS, replication bool
}

func checkAccess(ctx context.Context, p *rules.Policy, dsn string, proxies []netip.Prefix) ([]rules.Finding, error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	var database, sockets string
	var version int
	if err := conn.QueryRow(ctx, `SELECT pg_catalog.current_database(), pg_catalog.current_setting('unix_socket_directories'),
		pg_catalog.current_setting('server_version_num')::int`).Scan(&database, &sockets, &version); err != nil {
		return nil, err
	}
	hba, err := readHBA(ctx, conn, version)
	if err != nil {
		return nil, err
	}
	logins, err := readRestrictedLogins(ctx, conn, p)
	if err != nil {
		return nil, err
	}
	owners, err := protectedOwners(ctx, conn, p)
	if err != nil {
		return nil, err
	}
	var findings []rules.Finding
	for _, r := range hba {
		if r.err != nil {
			findings = append(findings, rules.Finding{Severity: rules.SevWarning, Code: "hba-error",
				Message: fmt.Sprintf("pg_hba.conf line %d does not parse (%s): PostgreSQL will not load the file as it is", r.line, *r.err)})
		}
	}
	for _, l := range logins {
		findings = append(findings, hbaFindings(l, database, sockets != "", hba, proxies)...)
		findings = append(findings, attributeFindings(l, owners)...)
	}
	return findings, nil
}

func readHBA(ctx context.Context, conn *pgx.Conn, version int) ([]hbaRule, error) {
	order := "line_number"
	if version >= 160000 {
		order = "rule_number" // include files: line numbers repeat
	}
	rows, err := conn.Query(ctx, `SELECT line_number, type, database, user_name, address, netmask,
		coalesce(auth_method, ''), error FROM pg_catalog.pg_hba_file_rules ORDER BY `+order)
	if err != nil {
		return nil, fmt.Errorf("reading pg_hba_file_rules (needs a superuser, or EXECUTE on pg_hba_file_rules()): %w", err)
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (hbaRule, error) {
		var r hbaRule
		var typ *string
		err := row.Scan(&r.line, &typ, &r.databases, &r.users, &r.address, &r.netmask, &r.method, &r.err)
		if typ != nil {
			r.typ = *typ
		}
		return r, err
	})
}

// readRestrictedLogins lists the database's login roles that the rules
// map to a restricted role (by name or through principals.default).
func readRestrictedLogins(ctx context.Context, conn *pgx.Conn, p *rules.Policy) ([]restrictedLogin, error) {
	rows, err := conn.Query(ctx, `
		SELECT r.rolname, r.rolsuper, r.rolbypassrls, r.rolreplication,
		       ARRAY(WITH RECURSIVE m(id) AS (SELECT r.oid UNION SELECT a.roleid FROM pg_catalog.pg_auth_members a JOIN m ON a.member = m.id)
		             SELECT g.rolname::text FROM m JOIN pg_catalog.pg_roles g ON g.oid = m.id)
		FROM pg_catalog.pg_roles r WHERE r.rolcanlogin ORDER BY r.rolname`)
	if err != nil {
		return nil, err
	}
	all, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (restrictedLogin, error) {
		var l restrictedLogin
		err := row.Scan(&l.name, &l.super, &l.bypassRLS, &l.replication, &l.memberOf)
		return l, err
	})
	if err != nil {
		return nil, err
	}
	var out []restrictedLogin
	for _, l := range all {
		pr, err := p.Principal(l.name)
		var unmapped *rules.UnmappedLoginError
		switch {
		case errors.As(err, &unmapped):
			continue // pgcloak refuses it: not a login of the rules
		case err == nil && pr.Unrestricted():
			continue
		case err == nil:
			l.role = pr.Role.Name
		default:
			l.role = "?"
		}
		out = append(out, l)
	}
	return out, nil
}

// protectedOwners maps each owner role of a protected table to the tables.
func protectedOwners(ctx context.Context, conn *pgx.Conn, p *rules.Policy) (map[string][]string, error) {
	owners := map[string][]string{}
	for _, t := range p.Tables() {
		var owner string
		err := conn.QueryRow(ctx, `SELECT pg_catalog.pg_get_userbyid(c.relowner)::text FROM pg_catalog.pg_class c
			JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2`,
			t.Name.Schema, t.Name.Name).Scan(&owner)
		if errors.Is(err, pgx.ErrNoRows) {
			continue // pgcloak check --database reports missing tables
		}
		if err != nil {
			return nil, err
		}
		owners[owner] = append(owners[owner], t.Name.String())
	}
	return owners, nil
}

func attributeFindings(l restrictedLogin, owners map[string][]string) []rules.Finding {
	var out []rules.Finding
	bad := func(format string, args ...any) {
		out = append(out, rules.Finding{Severity: rules.SevError, Code: "login-attribute",
			Message: fmt.Sprintf("login %q (role %s) ", l.name, l.role) + fmt.Sprintf(format, args...)})
	}
	if l.super {
		bad("is a superuser: it bypasses every privilege and row-level security, and can change what pgcloak relies on (ALTER ROLE %s NOSUPERUSER)", quoteIdent(l.name))
	}
	if l.bypassRLS {
		bad("has BYPASSRLS: row-level security does not apply to it (ALTER ROLE %s NOBYPASSRLS)", quoteIdent(l.name))
	}
	if l.replication {
		bad("has REPLICATION: it can stream a copy of the whole cluster (ALTER ROLE %s NOREPLICATION)", quoteIdent(l.name))
	}
	for _, m := range l.memberOf {
		if tables, ok := owners[m]; ok {
			how := "owns"
			if m != l.name {
				how = fmt.Sprintf("is a member of %q, which owns", m)
			}
			bad("%s the protected table(s) %s: an owner can alter, disable row-level security on, and grant its tables", how, strings.Join(tables, ", "))
		}
	}
	return out
}

// hbaFindings reports how l can reach database other than from proxies.
// PostgreSQL uses the first line matching a connection's type, database,
// user and address: a line lets l in from the part of its address range
// that no earlier matching line took and that is not pgcloak's.
func hbaFindings(l restrictedLogin, database string, sockets bool, hba []hbaRule, proxies []netip.Prefix) []rules.Finding {
	var out []rules.Finding
	// earlier holds, per kind of connection, the address ranges earlier
	// lines matched; pgcloak's own addresses count as taken.
	earlier := map[string][]netip.Prefix{}
	localTaken, samehostTaken := false, false
	for _, r := range hba {
		if r.err != nil || !hbaMatchesUser(r.users, l) || !hbaMatchesDatabase(r.databases, database, l) {
			continue
		}
		allow := r.method != "reject"
		where := fmt.Sprintf("pg_hba.conf line %d (%s %s %s %s)", r.line, r.typ, strings.Join(r.databases, ","),
			strings.Join(r.users, ","), strings.TrimSpace(deref(r.address)+" "+deref(r.netmask)))
		report := func(sev rules.Severity, code, what string) {
			out = append(out, rules.Finding{Severity: sev, Code: code,
				Message: fmt.Sprintf("restricted login %q (role %s) can connect to database %q %s, not through pgcloak: %s",
					l.name, l.role, database, what, where)})
		}
		if r.typ == "local" {
			if allow && sockets && !localTaken {
				report(rules.SevWarning, "hba-local", "over the Unix socket on the database host")
			}
			localTaken = true
			continue
		}
		addr := deref(r.address)
		switch addr {
		case "samehost":
			if allow && !samehostTaken {
				report(rules.SevWarning, "hba-local", "from the database host's own addresses")
			}
			samehostTaken = true
			continue
		case "samenet":
			if allow {
				report(rules.SevError, "hba-bypass", "from any address on the database server's subnets (samenet: list pgcloak's CIDRs instead)")
			}
			continue
		}
		ranges, err := hbaRanges(addr, deref(r.netmask))
		if err != nil {
			if allow {
				report(rules.SevError, "hba-bypass", fmt.Sprintf("from %s (%v)", addr, err))
			}
			continue
		}
		kinds := hbaKinds[r.typ]
		if kinds == nil {
			kinds = hbaKinds["host"]
		}
	lines:
		for _, k := range kinds {
			if !allow {
				break
			}
			for _, rg := range ranges {
				if !coveredBy(rg, append(slices.Clone(proxies), earlier[k]...)) {
					report(rules.SevError, "hba-bypass", "from addresses outside --proxy-addresses ("+rg.String()+")")
					break lines
				}
			}
		}
		for _, k := range kinds {
			earlier[k] = append(earlier[k], ranges...)
		}
	}
	return out
}

// hbaKinds are the kinds of TCP connection (TLS, GSSAPI-encrypted, plain)
// each line type matches: a hostssl line does not stop a plain connection
// from reaching the lines below it.
var hbaKinds = map[string][]string{
	"host":         {"ssl", "gss", "plain"},
	"hostssl":      {"ssl"},
	"hostnossl":    {"gss", "plain"},
	"hostgssenc":   {"gss"},
	"hostnogssenc": {"ssl", "plain"},
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// hbaRanges turns a pg_hba address into the address ranges it matches. A
// host name is resolved: it matches the addresses it resolves to (PostgreSQL
// checks the client's reverse and forward lookups); a domain suffix
// (.example.com) cannot be bounded.
func hbaRanges(addr, netmask string) ([]netip.Prefix, error) {
	if addr == "all" {
		return []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}, nil
	}
	if a, err := netip.ParseAddr(addr); err == nil {
		bits := a.BitLen()
		if netmask != "" {
			m, err := netip.ParseAddr(netmask)
			if err != nil {
				return nil, fmt.Errorf("netmask %q", netmask)
			}
			ones, _ := net.IPMask(m.AsSlice()).Size()
			bits = ones
		}
		p, err := a.Unmap().Prefix(bits)
		return []netip.Prefix{p}, err
	}
	if strings.HasPrefix(addr, ".") {
		return nil, errors.New("a domain suffix matches any host of the domain")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", addr)
	if err != nil {
		return nil, fmt.Errorf("host name %q does not resolve here: %v", addr, err)
	}
	var out []netip.Prefix
	for _, ip := range ips {
		ip = ip.Unmap()
		out = append(out, netip.PrefixFrom(ip, ip.BitLen()))
	}
	return out, nil
}

// coveredBy says whether every address of p lies in one of set.
func coveredBy(p netip.Prefix, set []netip.Prefix) bool {
	overlap := false
	for _, s := range set {
		if s.Addr().Is4() != p.Addr().Is4() {
			continue
		}
		if s.Bits() <= p.Bits() && s.Contains(p.Addr()) {
			return true
		}
		overlap = overlap || s.Overlaps(p)
	}
	if !overlap || p.Bits() == p.Addr().BitLen() {
		return false
	}
	// Part of p is in the set: both halves must be.
	lo := netip.PrefixFrom(p.Addr(), p.Bits()+1)
	hiAddr := p.Addr().AsSlice()
	hiAddr[p.Bits()/8] |= 0x80 >> (p.Bits() % 8)
	hi, _ := netip.AddrFromSlice(hiAddr)
	return coveredBy(lo, set) && coveredBy(netip.PrefixFrom(hi, p.Bits()+1), set)
}

// hbaMatchesUser follows PostgreSQL: all, a name, +role (membership,
// direct or not), /regex.
func hbaMatchesUser(users []string, l restrictedLogin) bool {
	for _, u := range users {
		switch {
		case u == "all" || u == l.name:
			return true
		case strings.HasPrefix(u, "+") && slices.Contains(l.memberOf, u[1:]):
			return true
		case strings.HasPrefix(u, "/") && regexMatches(u[1:], l.name):
			return true
		}
	}
	return false
}

// hbaMatchesDatabase: all, sameuser, samerole, a name, /regex; replication
// lines are for replication connections only (REPLICATION is reported
// among the attributes).
func hbaMatchesDatabase(dbs []string, database string, l restrictedLogin) bool {
	for _, d := range dbs {
		switch {
		case d == "all" || d == database:
			return true
		case d == "sameuser" && database == l.name:
			return true
		case d == "samerole" && slices.Contains(l.memberOf, database):
			return true
		case strings.HasPrefix(d, "/") && regexMatches(d[1:], database):
			return true
		}
	}
	return false
}

// regexMatches: a pattern Go cannot compile counts as a match (fail closed).
func regexMatches(pattern, s string) bool {
	re, err := regexp.Compile(pattern)
	return err != nil || re.MatchString(s)
}

func quoteIdent(s string) string { return pgx.Identifier{s}.Sanitize() }

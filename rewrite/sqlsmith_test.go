//go:build sqlsmith

package rewrite_test

// Generative leak fuzzing (issue 9): SQLsmith generates random queries
// over the sample CRM, and every query runs through pgcloak as restricted
// logins of different roles, in the simple and in the extended protocol,
// on the leak suite's database with its canaries planted
// (leak_plant_test.go). No canary a login may not see may come back on
// any channel, pgcloak must keep serving, and no session may end.
//
//	go test -tags sqlsmith -run TestSQLsmith -v ./rewrite/
//
// (.ci/sqlsmith.sh installs SQLsmith and runs it.) The seeds and the
// number of queries per seed come from SQLSMITH_SEEDS (comma-separated,
// default 1,2,3) and SQLSMITH_QUERIES (default 700), the logins from
// SQLSMITH_LOGINS, for longer runs:
//
//	SQLSMITH_SEEDS=$(seq -s, 100 120) SQLSMITH_QUERIES=5000 go test -tags sqlsmith -run TestSQLsmith -timeout 0 ./rewrite/

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pgcloak/pgcloak/internal/pgtest"
)

// smithLogins: a sales rep (row filter by region), the consultant (no
// contact details) and the analyst (anonymized, opt-outs of automated
// decisions); SQLSMITH_LOGINS (comma-separated) names others.
var smithLogins = []string{"alice", "connie", "ana"}

// smithGenerator is the PostgreSQL role SQLsmith reads the schema as: it
// has privileges on the tables every login of smithLogins may read, so
// that SQLsmith (which lists the tables a role has privileges on) writes
// queries that reach the rewrite instead of being refused for naming a
// table the login may not read.
const smithGenerator = "pgcloak_smith"

// smithTables are the tables all smithLogins may read.
func smithTables() []string {
	var out []string
	for _, t := range slices.Sorted(maps.Keys(gtables)) {
		all := true
		for _, r := range leakRoles {
			if slices.Contains(smithLogins, r.login) && !r.tableAllowed(t) {
				all = false
			}
		}
		if all {
			out = append(out, t)
		}
	}
	return out
}

func smithConfig(t *testing.T) (seeds []int, perSeed int) {
	t.Helper()
	if l := os.Getenv("SQLSMITH_LOGINS"); l != "" {
		smithLogins = strings.Split(l, ",")
		for _, login := range smithLogins {
			if !slices.ContainsFunc(leakRoles, func(r *leakRole) bool { return r.login == login }) {
				t.Fatalf("SQLSMITH_LOGINS: %s is not a login of the leak suite", login)
			}
		}
	}
	s := os.Getenv("SQLSMITH_SEEDS")
	if s == "" {
		s = "1,2,3"
	}
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			t.Fatalf("SQLSMITH_SEEDS: %v", err)
		}
		seeds = append(seeds, n)
	}
	perSeed = 700
	if q := os.Getenv("SQLSMITH_QUERIES"); q != "" {
		n, err := strconv.Atoi(q)
		if err != nil || n <= 0 {
			t.Fatalf("SQLSMITH_QUERIES: %q", q)
		}
		perSeed = n
	}
	return seeds, perSeed
}

// generate runs SQLsmith without executing anything (--dry-run) over the
// schema of database db, which it reads as smithGenerator.
func generate(t *testing.T, db string, seed, n int) []string {
	t.Helper()
	bin, err := exec.LookPath("sqlsmith")
	if err != nil {
		t.Fatal("sqlsmith is not installed (.ci/sqlsmith.sh installs it): ", err)
	}
	target := fmt.Sprintf("host=%s port=%d dbname=%s user=%s", pg.Host, pg.Port, db, smithGenerator)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--dry-run", "--exclude-catalog", "--seed="+strconv.Itoa(seed),
		"--max-queries="+strconv.Itoa(n), "--target="+target)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("sqlsmith --seed=%d: %v\n%s", seed, err, stderr.String())
	}
	qs := splitSmith(string(out))
	if len(qs) < n*9/10 {
		t.Fatalf("sqlsmith --seed=%d generated %d queries, asked for %d\n%s", seed, len(qs), n, stderr.String())
	}
	return qs
}

// splitSmith splits SQLsmith's dry-run output, one statement after
// another, each ended by a semicolon at the end of a line.
func splitSmith(out string) []string {
	var qs []string
	var cur strings.Builder
	for _, line := range strings.Split(out, "\n") {
		cur.WriteString(line)
		cur.WriteByte('\n')
		if strings.HasSuffix(strings.TrimRight(line, " \t\r"), ";") {
			if q := strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(cur.String()), ";")); q != "" {
				qs = append(qs, q)
			}
			cur.Reset()
		}
	}
	if q := strings.TrimSpace(cur.String()); q != "" {
		qs = append(qs, q)
	}
	return qs
}

// stripTablesample removes TABLESAMPLE clauses (TABLESAMPLE method (args)
// [REPEATABLE (seed)]), which pgcloak refuses on protected tables, so that
// the queries reach the rewrite. String literals and quoted identifiers
// are skipped.
func stripTablesample(q string) string {
	var b strings.Builder
	lower := strings.ToLower(q)
	i := 0
	for i < len(q) {
		switch c := q[i]; {
		case c == '\'' || c == '"':
			j := i + 1
			for j < len(q) {
				if q[j] == c {
					if j+1 < len(q) && q[j+1] == c {
						j += 2
						continue
					}
					break
				}
				j++
			}
			end := min(j+1, len(q))
			b.WriteString(q[i:end])
			i = end
		case strings.HasPrefix(lower[i:], "tablesample") && (i == 0 || !isIdent(q[i-1])) &&
			(i+11 == len(q) || !isIdent(q[i+11])):
			j := skipGroup(q, skipWord(q, i+11))
			if k := skipSpace(q, j); strings.HasPrefix(lower[k:], "repeatable") {
				j = skipGroup(q, k+len("repeatable"))
			}
			i = j
		default:
			b.WriteByte(c)
			i++
		}
	}
	return b.String()
}

func isIdent(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func skipSpace(q string, i int) int {
	for i < len(q) && (q[i] == ' ' || q[i] == '\n' || q[i] == '\t' || q[i] == '\r') {
		i++
	}
	return i
}

// skipWord skips spaces and the sampling method's name.
func skipWord(q string, i int) int {
	i = skipSpace(q, i)
	for i < len(q) && (isIdent(q[i]) || q[i] == '.' || q[i] == '"') {
		i++
	}
	return i
}

// skipGroup skips spaces and one parenthesized group.
func skipGroup(q string, i int) int {
	i = skipSpace(q, i)
	if i >= len(q) || q[i] != '(' {
		return i
	}
	depth := 0
	for ; i < len(q); i++ {
		switch q[i] {
		case '(':
			depth++
		case ')':
			depth--
			if depth == 0 {
				return i + 1
			}
		}
	}
	return i
}

func TestSQLsmithStripTablesample(t *testing.T) {
	cases := map[string]string{
		"select * from public.customers as ref_0 tablesample system (7.3) where true":   "select * from public.customers as ref_0  where true",
		"select 1 from orders tablesample bernoulli (0.1) repeatable (42), customers":   "select 1 from orders , customers",
		"select 'tablesample system (1)' from t TABLESAMPLE SYSTEM(1)":                  "select 'tablesample system (1)' from t ",
		"select tablesample_x from t":                                                   "select tablesample_x from t",
		"select * from (select * from orders tablesample system (cast(1 as float4))) s": "select * from (select * from orders ) s",
	}
	for in, want := range cases {
		if got := stripTablesample(in); got != want {
			t.Errorf("stripTablesample(%q) = %q, want %q", in, got, want)
		}
	}
}

// smithTally is what happened to the queries of one login in one mode.
type smithTally struct {
	roleTally
	answered, broken int
	reasons          map[string]int // refusal messages, the values cut out
}

func TestSQLsmith(t *testing.T) {
	seeds, perSeed := smithConfig(t)
	// The queries are generated over the main test database, which holds
	// the sample CRM without the leak suite's hostile objects (views and
	// functions unknown to the rules are refused, and would crowd out the
	// queries that reach the rewrite), and run on the leak suite's.
	tables := smithTables()
	if len(tables) == 0 {
		t.Fatalf("the logins %v share only the tables %v", smithLogins, tables)
	}
	admin := direct(t)
	if _, err := admin.Exec(context.Background(), fmt.Sprintf(`DO $$ BEGIN
		IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '%[1]s') THEN CREATE ROLE %[1]s LOGIN; END IF;
	END $$; GRANT SELECT, INSERT, UPDATE, DELETE ON %[2]s TO %[1]s`, smithGenerator, strings.Join(tables, ", "))); err != nil {
		t.Fatal(err)
	}
	var queries []string
	sampled := 0
	start := time.Now()
	for _, seed := range seeds {
		for _, q := range generate(t, pgtest.Database, seed, perSeed) {
			s := stripTablesample(q)
			if s != q {
				sampled++
			}
			queries = append(queries, s)
		}
	}
	t.Logf("SQLsmith generated %d queries over %v from seeds %v (%d a seed) in %v; TABLESAMPLE stripped from %d",
		len(queries), tables, seeds, perSeed, time.Since(start).Round(time.Millisecond), sampled)
	if len(queries) < 1 {
		t.Fatal("no queries")
	}

	env := setupLeak(t)
	var mu sync.Mutex
	totals := map[string]*smithTally{}
	t.Run("logins", func(t *testing.T) {
		for _, login := range smithLogins {
			t.Run(login, func(t *testing.T) {
				t.Parallel()
				tallies := env.runSmith(t, login, queries)
				mu.Lock()
				defer mu.Unlock()
				for mode, tl := range tallies {
					totals[login+" "+mode] = tl
				}
			})
		}
	})

	// pgcloak still serves every login.
	for _, login := range smithLogins {
		w, err := dialWire(context.Background(), env.addr, login, leakDB, nil)
		if err != nil {
			t.Fatalf("pgcloak no longer serves %s: %v", login, err)
		}
		if r := w.simple("SELECT count(*) FROM customers"); r.broken != nil || r.errored() || r.rows != 1 {
			t.Errorf("pgcloak no longer answers %s: %v %v", login, r.broken, r.outcome)
		}
		w.close()
	}

	var all smithTally
	reasons := map[string]int{}
	var b strings.Builder
	for _, login := range smithLogins {
		for _, m := range leakModes {
			tl := totals[login+" "+m.name]
			if tl == nil {
				continue
			}
			fmt.Fprintf(&b, "\n  %-7s %-8s %6d run  %6d refused by pgcloak  %6d answered  %6d other errors  %d sessions lost",
				login, m.name, tl.runs, tl.refused, tl.answered, tl.failed, tl.broken)
			all.runs += tl.runs
			all.refused += tl.refused
			all.answered += tl.answered
			all.failed += tl.failed
			all.broken += tl.broken
			for k, v := range tl.reasons {
				reasons[k] += v
			}
		}
	}
	t.Logf("%d queries × %d logins × %d protocols in %v:%s\n  total: %d run, %d refused by pgcloak, %d answered, %d other errors, %d sessions lost",
		len(queries), len(smithLogins), len(leakModes), time.Since(start).Round(time.Second), b.String(),
		all.runs, all.refused, all.answered, all.failed, all.broken)
	type reason struct {
		msg string
		n   int
	}
	var rs []reason
	for k, v := range reasons {
		rs = append(rs, reason{k, v})
	}
	sort.Slice(rs, func(i, j int) bool { return rs[i].n > rs[j].n || rs[i].n == rs[j].n && rs[i].msg < rs[j].msg })
	b.Reset()
	for i, r := range rs {
		if i == 15 {
			break
		}
		fmt.Fprintf(&b, "\n  %6d  %s", r.n, r.msg)
	}
	t.Logf("the most frequent errors:%s", b.String())
}

var (
	smithQuoted = regexp.MustCompile(`"[^"]*"|'[^']*'`)
	smithNumber = regexp.MustCompile(`\b\d+\b`)
)

// smithReason is an error message with names and numbers cut out, to
// count errors by kind.
func smithReason(m string) string {
	return smithNumber.ReplaceAllString(smithQuoted.ReplaceAllString(m, "…"), "N")
}

// runSmith runs every query as login in both protocols on one session
// (reconnected if it is lost, which is an error) and checks every answer.
func (env *leakEnv) runSmith(t *testing.T, login string, queries []string) map[string]*smithTally {
	ctx := context.Background()
	// A short statement timeout: SQLsmith's joins can be slow, and what
	// is checked is what comes back, not that everything finishes.
	w, err := dialWire(ctx, env.addr, login, leakDB, map[string]string{"statement_timeout": "1s"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.close()
	check := newLeakChecker(env.plant.forbidden(env.policy, env.role(login)))
	tallies := map[string]*smithTally{}
	for _, m := range leakModes {
		tallies[m.name] = &smithTally{reasons: map[string]int{}}
	}
	leaks := 0
	for i, sql := range queries {
		q := &hostileQuery{pos: fmt.Sprintf("sqlsmith #%d", i+1), group: "sqlsmith", sql: sql,
			write: writeWords.MatchString(sql), stateful: stateWords.MatchString(sql)}
		for _, mode := range leakModes {
			tl := tallies[mode.name]
			before := tl.roleTally
			r := env.runOne(t, w, check, q, mode, sql, nil, &tl.roleTally)
			if r.broken != nil {
				tl.broken++
			}
			if tl.refused == before.refused && tl.failed == before.failed {
				tl.answered++
			}
			for _, m := range r.errorMessages {
				tl.reasons[smithReason(m)]++
			}
			if t.Failed() && leaks == 0 {
				leaks++
				t.Logf("first failure at query #%d [%s]:\n%s", i+1, mode.name, sql)
			}
		}
	}
	return tallies
}

package rewrite_test

// Native Go fuzzing of the rewriter (issue 9):
//
//	go test -run XXX -fuzz FuzzRewrite -fuzztime 60s ./rewrite/
//
// Every input is rewritten cold (no result cache) for three restricted
// logins of different profiles against the catalog of the test server
// TestMain starts (the sample CRM and its rules). The rewrite must not
// panic, and what pgcloak would send must be what it meant to send:
//
//   - text forwarded unchanged parses (unparsable text is refused);
//   - rewritten text parses, into as many statements as the input has
//     (a statement that became two smuggles one past the checks);
//   - rewritten text is a fixed point of pg_query's parse and deparse:
//     deparsing what the server will parse gives the text back. Text the
//     deparser printed from a tree parses to that tree, which deparses to
//     the same text; text whose meaning changed on the way (an identifier
//     printed unquoted that holds SQL, a comment that swallows the policy
//     subqueries) does not;
//   - no refusal is an internal error.
//
// The rewriter checks its own text before it is sent (verify.go); the
// fuzzer's fixed-point check is independent of how that check is built,
// and covers the text as sent, policy subqueries spliced in.
// TestFuzzOracle shows that the fuzzer's check finds the deparser
// bypasses when the rewriter's check is switched off.
//
// The seed corpus, which runs in every plain `go test`, is the hostile
// corpus (testdata/hostile) and the soundness suite's statements
// (soundness_test.go), with the canaries' values in.

import (
	"context"
	"fmt"
	"strings"
	"testing"

	pg_query "github.com/pganalyze/pg_query_go/v6"

	"github.com/pgcloak/pgcloak/rewrite"
)

// fuzzLogins are the restricted logins each input is rewritten for: a
// sales rep (row filter by region), senior marketing (opt-outs of direct
// marketing) and the disclosure export (COPY TO, the disclosure profile).
var fuzzLogins = []string{"alice", "mia", "dex"}

// fuzzSeeds are the hostile corpus and the soundness suite's statements,
// with the planted values in.
func fuzzSeeds(t testing.TB) []string {
	p := buildPlanting(map[string]string{"north": "1", "south": "2", "east": "3", "west": "4"})
	var out []string
	for _, q := range loadHostile(t) {
		sql, _ := p.expand(t, q.sql, nil)
		var args []string
		for _, a := range q.args {
			e, _ := p.expand(t, a, nil)
			args = append(args, e)
		}
		out = append(out, inlineArgs(sql, args))
	}
	return append(out, soundSeeds()...)
}

func FuzzRewrite(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	var sessions []*coldRewriter
	conn := direct(f)
	for _, login := range fuzzLogins {
		s, err := newColdRewriter(context.Background(), conn, policy, login)
		if err != nil {
			f.Fatalf("session of %s: %v", login, err)
		}
		sessions = append(sessions, s)
	}
	f.Fuzz(func(t *testing.T, sql string) {
		for i, s := range sessions {
			if err := checkRewrite(sql, s.Cold(sql)); err != nil {
				t.Errorf("%s: %v\ninput: %q", fuzzLogins[i], err, sql)
			}
		}
	})
}

// checkRewrite checks one result of the rewrite of sql.
func checkRewrite(sql string, res *rewrite.Result) error {
	in, inErr := pg_query.Parse(sql)
	if res.Unchanged {
		if res.SQL != sql {
			return fmt.Errorf("unchanged, but the text differs: %q", res.SQL)
		}
		if inErr != nil {
			return fmt.Errorf("forwarded unchanged, but it does not parse: %v", inErr)
		}
		return nil
	}
	out, err := pg_query.Parse(res.SQL)
	if err != nil {
		return fmt.Errorf("the rewritten text does not parse: %v\noutput: %s", err, res.SQL)
	}
	want := 1 // a string that does not parse is refused with one statement
	if inErr == nil {
		want = len(in.Stmts)
	}
	if len(out.Stmts) != want {
		return fmt.Errorf("%d statements became %d\noutput: %s", want, len(out.Stmts), res.SQL)
	}
	if isRefusalTemplate(res.SQL) {
		return nil // the whole string was refused: the refusal's own text
	}
	again, err := pg_query.Deparse(out)
	if err != nil {
		return fmt.Errorf("the rewritten text does not deparse: %v\noutput: %s", err, res.SQL)
	}
	if again != res.SQL {
		return fmt.Errorf("the server would run another statement than the one pgcloak printed\noutput:   %s\nparsed as: %s",
			res.SQL, again)
	}
	for _, r := range res.Refused {
		if r.Code == "XX000" || strings.Contains(r.Message, "panic") {
			return fmt.Errorf("internal error: %s", r.Message)
		}
	}
	return nil
}

// isRefusalTemplate says whether sql is a refusal as proxy.RefusalSQL
// writes it, not printed by the deparser.
func isRefusalTemplate(sql string) bool {
	return strings.HasPrefix(sql, "SELECT 'pgcloak-refusal:") && strings.HasSuffix(sql, "'::pg_catalog.int4") &&
		strings.Count(sql, "'") == 2
}

// TestFuzzOracle: with the rewriter's check before send switched off, the
// fuzzer's own check (checkRewrite) finds the deparser bypasses of the
// soundness suite; with it on, every rewrite of them passes.
func TestFuzzOracle(t *testing.T) {
	p := buildPlanting(map[string]string{"north": "1", "south": "2", "east": "3", "west": "4"})
	sessions := map[string]*coldRewriter{}
	conn := direct(t)
	session := func(login string) *coldRewriter {
		if login == "" {
			login = "alice"
		}
		if sessions[login] == nil {
			s, err := newColdRewriter(context.Background(), conn, policy, login)
			if err != nil {
				t.Fatal(err)
			}
			sessions[login] = s
		}
		return sessions[login]
	}
	var deparser []soundVariant
	for _, c := range soundClasses {
		if c.name == "deparser" {
			deparser = c.variants
		}
	}
	if len(deparser) < 5 {
		t.Fatal("the soundness suite has no deparser class")
	}
	for _, on := range []bool{false, true} {
		prev := rewrite.SetVerify(on)
		found, refused := 0, 0
		for _, v := range deparser {
			sql, _ := p.expand(t, v.steps[0], nil)
			res := session(v.login).Cold(sql)
			err := checkRewrite(sql, res)
			switch {
			case on && err != nil:
				t.Errorf("%s: with the check before send on: %v", v.name, err)
			case !on && err != nil:
				found++
			case !on && len(res.Refused) > 0:
				refused++ // refused by another rule (the type judged by the catalog, say)
			case !on:
				t.Errorf("%s: with the check before send off, the bypass is neither refused nor found by the fuzzer's check\noutput: %s",
					v.name, res.SQL)
			}
		}
		rewrite.SetVerify(prev)
		if !on {
			t.Logf("check before send off: of %d deparser bypasses, the fuzzer's check finds %d, other rules refuse %d",
				len(deparser), found, refused)
			if found == 0 {
				t.Error("with the check before send off, the fuzzer's check finds none of the deparser bypasses")
			}
		}
	}
}

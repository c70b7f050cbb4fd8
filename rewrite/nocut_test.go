package rewrite_test

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// The rewriter is SQL in, SQL out (package doc): nothing it depends on
// knows the wire or a database driver. The proxy and the engine sit on its
// other side; what reads the database (the catalog snapshot, pgcloak's
// schema, the rules' attribute queries and database check) takes the Query
// method of the caller's connection or transaction, so no pgx package,
// pgproto3 included, is below rewrite.

const module = "github.com/pgcloak/pgcloak/"

// notBelowRewrite are packages rewrite must not depend on at all.
var notBelowRewrite = []string{module + "proxy", module + "engine"}

func TestRewriteKnowsNoWire(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}{{range .Imports}} {{.}}{{end}}", module+"rewrite").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	seen := 0
	for line := range strings.Lines(string(out)) {
		f := strings.Fields(line)
		pkg, imports := f[0], f[1:]
		if slices.Contains(notBelowRewrite, pkg) {
			t.Errorf("rewrite depends on %s", pkg)
		}
		if !strings.HasPrefix(pkg, module) {
			if strings.HasPrefix(pkg, "github.com/jackc/pgx/") {
				t.Errorf("rewrite depends on %s", pkg)
			}
			continue
		}
		seen++
		for _, imp := range imports {
			if strings.HasPrefix(imp, "github.com/jackc/pgx/") {
				t.Errorf("%s, below rewrite, imports %s: no database driver below the rewriter", pkg, imp)
			}
		}
	}
	if seen < 3 { // rewrite, rules, audit at least
		t.Fatalf("go list -deps found only %d pgcloak packages:\n%s", seen, out)
	}
}

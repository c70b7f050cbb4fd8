package rewrite_test

import (
	"go/parser"
	"go/token"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// The rewriter is SQL in, SQL out (package doc): nothing it depends on
// knows the wire. The proxy and the engine sit on its other side, and no
// pgcloak package below it speaks protocol messages (pgproto3).
//
// pgx still comes in, and pgproto3 with it as a part of pgx, from code
// that reads the database: the catalog snapshot and the schema and change
// requests in this package, and the rules' own reading of the catalog and
// of attributes. Those are listed below; the lists only shrink.

const module = "github.com/pgcloak/pgcloak/"

// notBelowRewrite are packages rewrite must not depend on at all.
var notBelowRewrite = []string{module + "proxy", module + "engine"}

// pgxPackages are the pgcloak packages below rewrite that may import pgx.
var pgxPackages = map[string]string{
	module + "rewrite": "the files of pgxFiles",
	module + "rules":   "check.go reads the catalog; Querier (principal.go) is pgx's row interface",
}

// pgxFiles are the files of package rewrite that may import pgx.
var pgxFiles = []string{
	"catalog.go", // Load reads the catalog snapshot
	"changes.go", // change requests live in the database
	"setup.go",   // installs pgcloak's schema
	"view.go",    // NewRewriterAs reads the catalog for tools
}

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
			continue
		}
		seen++
		for _, imp := range imports {
			switch {
			case imp == "github.com/jackc/pgx/v5/pgproto3":
				t.Errorf("%s, below rewrite, imports %s", pkg, imp)
			case strings.HasPrefix(imp, "github.com/jackc/pgx/") && pgxPackages[pkg] == "":
				t.Errorf("%s, below rewrite, imports %s", pkg, imp)
			}
		}
	}
	if seen < 3 { // rewrite, rules, audit at least
		t.Fatalf("go list -deps found only %d pgcloak packages:\n%s", seen, out)
	}

	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, is := range f.Imports {
			path, _ := strconv.Unquote(is.Path.Value)
			if strings.HasPrefix(path, "github.com/jackc/pgx/") && !slices.Contains(pgxFiles, name) {
				t.Errorf("rewrite/%s imports %s: the rewriter reads no database", name, path)
			}
		}
	}
}

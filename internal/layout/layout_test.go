package layout

import (
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/pgcloak/pgcloak/"

// documentedGraph reads the import graph block of docs/design.md §3: the
// code block after the line that begins "Import graph".
func documentedGraph(t *testing.T) map[string][]string {
	t.Helper()
	doc, err := os.ReadFile("../../docs/design.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "\nImport graph")
	if !ok {
		t.Fatal("docs/design.md has no paragraph beginning \"Import graph\"")
	}
	_, rest, ok = strings.Cut(rest, "```\n")
	block, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 {
		t.Fatal("docs/design.md: no code block after \"Import graph\"")
	}
	graph := map[string][]string{}
	for line := range strings.Lines(block) {
		pkg, imports, ok := strings.Cut(line, "→")
		if !ok {
			t.Fatalf("docs/design.md import graph: %q has no →", line)
		}
		deps := strings.Fields(imports)
		if slices.Equal(deps, []string{"(none)"}) {
			deps = nil
		}
		slices.Sort(deps)
		graph[strings.TrimSpace(pkg)] = deps
	}
	return graph
}

// listedGraph is each package's imports among the module's packages, as
// go list reports them; examples, internal and deploy packages are left
// out as packages (not as imports).
func listedGraph(t *testing.T) map[string][]string {
	t.Helper()
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}}{{range .Imports}} {{.}}{{end}}", module+"...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	graph := map[string][]string{}
	for line := range strings.Lines(string(out)) {
		f := strings.Fields(line)
		pkg := strings.TrimPrefix(f[0], module)
		if strings.HasPrefix(pkg, "examples/") || strings.HasPrefix(pkg, "internal/") || strings.HasPrefix(pkg, "deploy/") {
			continue
		}
		var deps []string
		for _, imp := range f[1:] {
			if rel, ok := strings.CutPrefix(imp, module); ok {
				deps = append(deps, rel)
			}
		}
		slices.Sort(deps)
		graph[pkg] = deps
	}
	return graph
}

func TestDesignImportGraph(t *testing.T) {
	doc, listed := documentedGraph(t), listedGraph(t)
	if len(listed) < 5 {
		t.Fatalf("go list found only %d packages", len(listed))
	}
	for pkg, deps := range listed {
		d, ok := doc[pkg]
		switch {
		case !ok:
			t.Errorf("docs/design.md §3 import graph lacks %s → %s", pkg, strings.Join(deps, " "))
		case !slices.Equal(d, deps):
			t.Errorf("docs/design.md §3 import graph: %s → %s, but go list says %s", pkg, strings.Join(d, " "), strings.Join(deps, " "))
		}
	}
	for pkg := range doc {
		if _, ok := listed[pkg]; !ok {
			t.Errorf("docs/design.md §3 import graph names %s, which go list does not know", pkg)
		}
	}
}

func TestReadmeLayout(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, layout, ok := strings.Cut(string(readme), "\n## Layout\n")
	if !ok {
		t.Fatal("README.md has no Layout section")
	}
	layout, _, _ = strings.Cut(layout, "\n## ")
	for pkg := range listedGraph(t) {
		if !strings.Contains(layout, "| `"+pkg+"/` |") && !strings.Contains(layout, "| `"+pkg+"` |") {
			t.Errorf("README.md's layout table has no row for %s", pkg)
		}
	}
}

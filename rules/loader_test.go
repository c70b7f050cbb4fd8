package rules

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the # want: lines of testdata/*.bad.yaml with the errors produced")

// Each testdata/*.bad.yaml holds one mistake and ends with the error it must
// produce, as "# want: LINE:COL: message" lines (the file name is prefixed
// when comparing). A "# catalog:" line gives the database schema for
// mistakes that only show against a catalog:
// "# catalog: schema.table: col=type col=type; schema.table: …".
func TestBadFiles(t *testing.T) {
	files, err := filepath.Glob("testdata/*.bad.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 25 {
		t.Fatalf("only %d bad files", len(files))
	}
	seen := map[string]string{}
	for _, path := range files {
		t.Run(strings.TrimSuffix(filepath.Base(path), ".bad.yaml"), func(t *testing.T) {
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			var want []string
			var body []string
			var cat MapCatalog
			for _, line := range strings.SplitAfter(string(data), "\n") {
				switch {
				case strings.HasPrefix(line, "# want: "):
					want = append(want, path+":"+strings.TrimSpace(strings.TrimPrefix(line, "# want: ")))
					continue
				case strings.HasPrefix(line, "# catalog: "):
					cat = parseCatalogLine(strings.TrimPrefix(line, "# catalog: "))
				}
				body = append(body, line)
			}
			p, err := Parse(path, data)
			if err == nil && cat != nil {
				err = p.CheckCatalog(cat)
			}
			if err == nil {
				t.Fatalf("%s compiled without error", path)
			}
			if _, ok := err.(*LoadError); !ok {
				t.Fatalf("error is %T, not *LoadError: %v", err, err)
			}
			got := err.Error()
			if *update {
				var b strings.Builder
				b.WriteString(strings.Join(body, ""))
				for _, l := range strings.Split(got, "\n") {
					b.WriteString("# want: " + strings.TrimPrefix(l, path+":") + "\n")
				}
				if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if len(want) == 0 {
				t.Fatalf("%s has no # want: line; it produces:\n%s", path, got)
			}
			if got != strings.Join(want, "\n") {
				t.Errorf("got:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
			}
			if prev, dup := seen[got]; dup {
				t.Errorf("same error as %s: the bad files should be distinct mistakes", prev)
			}
			seen[got] = path
		})
	}
}

func parseCatalogLine(s string) MapCatalog {
	cat := MapCatalog{}
	for _, tab := range strings.Split(strings.TrimSpace(s), ";") {
		name, cols, _ := strings.Cut(strings.TrimSpace(tab), ":")
		m := map[string]string{}
		for _, c := range strings.Fields(cols) {
			k, v, _ := strings.Cut(c, "=")
			m[k] = v
		}
		cat[name] = m
	}
	return cat
}

func TestGoodBaseFile(t *testing.T) {
	p, err := Load("testdata/base.good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if p.Role("sales_rep") == nil {
		t.Fatal("no sales_rep")
	}
}

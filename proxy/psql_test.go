package proxy_test

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/pgcloak/pgcloak/internal/pgtest"
	"github.com/pgcloak/pgcloak/proxy"
)

// runTool runs one of PostgreSQL's client programs against addr as user.
func runTool(t *testing.T, addr, user, name string, args ...string) string {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command(pg.Bin(name), args...)
	cmd.Env = append(os.Environ(),
		"PGHOST="+host, "PGPORT="+port, "PGUSER="+user, "PGPASSWORD="+pgtest.Password,
		"PGDATABASE="+pgtest.Database, "PGSSLMODE=disable", "PGCONNECT_TIMEOUT=10")
	cmd.Dir = t.TempDir()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestPsql(t *testing.T) {
	_, addr := startProxy(t, proxy.Config{})
	user := pgtest.ScramUser
	out := runTool(t, addr, user, "psql", "-X", "-v", "ON_ERROR_STOP=1", "-c",
		"create table if not exists psql_t (id int primary key, name text)")
	if !strings.Contains(out, "CREATE TABLE") {
		t.Fatalf("create: %s", out)
	}
	t.Cleanup(func() { runTool(t, addr, user, "psql", "-X", "-c", "drop table psql_t") })

	// \copy from a file and back out.
	dir := t.TempDir()
	in := filepath.Join(dir, "in.csv")
	var b strings.Builder
	for i := range 1000 {
		fmt.Fprintf(&b, "%d,name %d\n", i, i)
	}
	if err := os.WriteFile(in, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	out = runTool(t, addr, user, "psql", "-X", "-v", "ON_ERROR_STOP=1", "-c", `\copy psql_t from '`+in+`' csv`)
	if !strings.Contains(out, "COPY 1000") {
		t.Fatalf(`\copy from: %s`, out)
	}
	outFile := filepath.Join(dir, "out.csv")
	runTool(t, addr, user, "psql", "-X", "-v", "ON_ERROR_STOP=1", "-c", `\copy (select * from psql_t order by id) to '`+outFile+`' csv`)
	got, err := os.ReadFile(outFile)
	if err != nil || string(got) != b.String() {
		t.Fatalf(`\copy to: %d bytes, %v`, len(got), err)
	}

	// \d describes through the catalog queries psql sends.
	out = runTool(t, addr, user, "psql", "-X", "-c", `\d psql_t`)
	for _, want := range []string{`Table "public.psql_t"`, "id", "integer", "name", "text", "psql_t_pkey"} {
		if !strings.Contains(out, want) {
			t.Fatalf(`\d output lacks %q:\n%s`, want, out)
		}
	}

	// Several statements in one -c, and an error in the middle.
	out = runTool(t, addr, user, "psql", "-X", "-At", "-c", "select 1; select count(*) from psql_t")
	if strings.TrimSpace(out) != "1\n1000" {
		t.Fatalf("multi-statement: %q", out)
	}
}

var failedTx = regexp.MustCompile(`number of failed transactions: (\d+)`)
var processedTx = regexp.MustCompile(`number of transactions actually processed: (\d+)`)

func TestPgbench(t *testing.T) {
	_, addr := startProxy(t, proxy.Config{})
	user := pgtest.MD5User
	runTool(t, addr, user, "pgbench", "-i", "-s", "1", "-q")
	for _, mode := range []string{"simple", "extended", "prepared"} {
		t.Run(mode, func(t *testing.T) {
			out := runTool(t, addr, user, "pgbench", "-M", mode, "-c", "4", "-j", "2", "-t", "100", "-n")
			failed := failedTx.FindStringSubmatch(out)
			processed := processedTx.FindStringSubmatch(out)
			if processed == nil || processed[1] != "400" {
				t.Fatalf("processed: %v\n%s", processed, out)
			}
			if failed != nil && failed[1] != "0" {
				t.Fatalf("failed transactions: %s\n%s", failed[1], out)
			}
		})
	}
}

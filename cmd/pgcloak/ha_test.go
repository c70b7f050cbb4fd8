//go:build ha

package main

// The two-replica fault test (.ci/ha.sh): two pgcloak replicas behind
// HAProxy, restricted sessions running a mixed workload through the
// balancer, one replica killed with SIGKILL mid-load. Run with
//
//	go test -tags ha -run TestTwoReplicasBehindHAProxy ./cmd/pgcloak/

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgcloak/pgcloak/examples/crm"
	"github.com/pgcloak/pgcloak/internal/pgtest"
)

// haConn is one connection a worker made through the balancer: how many
// statements it got an answer to, and whether it ended with one in flight.
type haConn struct {
	answered int
	inFlight bool
}

// TestTwoReplicasBehindHAProxy: no statement is answered without its
// access record on disk, even on the replica killed mid-load; clients
// reconnect through the other; each replica's chain verifies; a rules
// change reaches both replicas.
func TestTwoReplicasBehindHAProxy(t *testing.T) {
	haproxy, err := exec.LookPath("haproxy")
	if err != nil {
		t.Fatal("haproxy is not installed (Debian package haproxy; .ci/ha.sh installs it)")
	}
	pg := crmDB(t)
	bin := buildPgcloak(t)
	dsn := pg.DSN(pgtest.SuperUser, pgtest.Database)
	rulesFile := writeRules(t, crm.Rules)
	logs := t.TempDir()

	type replica struct {
		name, listen, admin string
		s                   *served
	}
	replicas := []*replica{{name: "pgcloak-0"}, {name: "pgcloak-1"}}
	start := func(r *replica) {
		r.s = serveAdmin(t, bin, "--listen", r.listen, "--admin", r.admin, "--upstream", pg.Addr(), "--rules", rulesFile,
			"--catalog-dsn", dsn, "--instance-id", r.name, "--audit-file", filepath.Join(logs, "audit-"+r.name+".log"),
			"--admin-token", testToken)
		r.s.waitStatus(t, "/readyz", 200)
	}
	for _, r := range replicas {
		r.listen, r.admin = freeAddr(t), freeAddr(t)
		start(r)
	}

	// HAProxy balances TCP connections over both, checking /readyz.
	front := freeAddr(t)
	var servers strings.Builder
	for _, r := range replicas {
		_, adminPort, _ := net.SplitHostPort(r.admin)
		fmt.Fprintf(&servers, "  server %s %s check port %s inter 200ms fall 1 rise 2\n", r.name, r.listen, adminPort)
	}
	cfg := fmt.Sprintf(`global
  maxconn 1000
defaults
  mode tcp
  timeout connect 1s
  timeout client 60s
  timeout server 60s
  retries 3
  option redispatch
frontend pg
  bind %s
  default_backend pgcloak
backend pgcloak
  balance roundrobin
  option httpchk GET /readyz
  http-check expect status 200
%s`, front, servers.String())
	cfgFile := filepath.Join(t.TempDir(), "haproxy.cfg")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	hap := exec.Command(haproxy, "-db", "-f", cfgFile)
	hapOut, _ := hap.StderrPipe()
	if err := hap.Start(); err != nil {
		t.Fatal(err)
	}
	var hapLog strings.Builder
	var hapMu sync.Mutex
	go func() {
		sc := bufio.NewScanner(hapOut)
		for sc.Scan() {
			hapMu.Lock()
			hapLog.WriteString(sc.Text() + "\n")
			hapMu.Unlock()
		}
	}()
	t.Cleanup(func() { hap.Process.Kill(); hap.Wait() })

	host, port, _ := net.SplitHostPort(front)
	connect := func(ctx context.Context, login, app string) (*pgconn.PgConn, error) {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		return pgconn.Connect(ctx, fmt.Sprintf("host=%s port=%s user=%s password=%s dbname=%s sslmode=disable application_name=%s",
			host, port, login, crm.DemoPassword, pgtest.Database, app))
	}
	pgtest.Eventually(t, 15*time.Second, "a session through HAProxy", func() (bool, string) {
		c, err := connect(context.Background(), "alice", "ha-probe")
		if err == nil {
			c.Close(context.Background())
			return true, ""
		}
		return false, fmt.Sprintf("%v\n%s", err, hapLog.String())
	})

	// The workload: restricted logins of several roles, each worker on its
	// own connection until it breaks, then on a new one.
	logins := []string{"alice", "bob", "sam", "connie", "walt", "ana", "alice", "bob", "sam", "connie", "walt", "ana"}
	statements := []func(ctx context.Context, c *pgconn.PgConn, n int) error{
		func(ctx context.Context, c *pgconn.PgConn, n int) error {
			_, err := c.Exec(ctx, fmt.Sprintf("SELECT order_id, status FROM orders WHERE order_id > %d ORDER BY order_id LIMIT 5", n)).ReadAll()
			return err
		},
		func(ctx context.Context, c *pgconn.PgConn, n int) error {
			return c.ExecParams(ctx, "SELECT count(*) FROM orders WHERE order_id > $1", [][]byte{[]byte(fmt.Sprint(n))}, nil, nil, nil).Read().Err
		},
		func(ctx context.Context, c *pgconn.PgConn, n int) error { // refused for every role here
			_, err := c.Exec(ctx, "SELECT amount FROM commissions").ReadAll()
			return err
		},
		func(ctx context.Context, c *pgconn.PgConn, n int) error {
			_, err := c.Exec(ctx, "SELECT count(*) FROM order_lines WHERE quantity > 1").ReadAll()
			return err
		},
	}
	var mu sync.Mutex
	conns := map[string]*haConn{}
	broken := 0
	stop := make(chan struct{})
	var wg sync.WaitGroup
	ctx := context.Background()
	for w, login := range logins {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; ; k++ {
				select {
				case <-stop:
					return
				default:
				}
				app := fmt.Sprintf("ha-w%d-c%d", w, k)
				c, err := connect(ctx, login, app)
				if err != nil {
					time.Sleep(50 * time.Millisecond)
					continue
				}
				hc := &haConn{}
				mu.Lock()
				conns[app] = hc
				mu.Unlock()
				for n := 0; ; n++ {
					select {
					case <-stop:
						c.Close(ctx)
						return
					default:
					}
					err := statements[n%len(statements)](ctx, c, n)
					var pe *pgconn.PgError
					mu.Lock()
					if err == nil || (errors.As(err, &pe) && pe.Severity == "ERROR") {
						hc.answered++
						mu.Unlock()
						continue
					}
					hc.inFlight = true // no answer: the connection broke
					broken++
					mu.Unlock()
					c.Close(ctx)
					break
				}
			}
		}()
	}
	statementsOf := func() (total int) {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			total += c.answered
		}
		return total
	}

	time.Sleep(4 * time.Second)
	before := statementsOf()
	killed := replicas[0]
	killed.s.cmd.Process.Kill() // SIGKILL, mid-load
	<-killed.s.done
	killedAt := time.Now()
	time.Sleep(4 * time.Second)
	after := statementsOf()
	t.Logf("%d statements answered before the kill, %d in the 4s after it", before, after-before)
	if after-before < 50 {
		t.Errorf("clients did not carry on through the other replica: %d statements in 4s after the kill", after-before)
	}

	// The killed replica's chain ends without an end record: it verifies
	// open; the live one's too.
	code, out := verifyCLI(t, bin, "--open", logs)
	if code != 0 || strings.Count(out, "the chain is intact and the log is open") != 2 {
		t.Fatalf("audit verify --open after the kill: exit %d\n%s", code, out)
	}

	// The orchestrator restarts the killed replica; it continues its chain.
	start(killed)
	// A rules change reaches both replicas while the load runs.
	oldVersion := rulesVersion(t, replicas[1].s)
	rules, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	changed := strings.Replace(string(rules), "    dana: {role: dba}\n", "    dana: {role: dba}\n    zed: {role: support}\n", 1)
	if changed == string(rules) {
		t.Fatal("the rules change did not apply to the sample rules")
	}
	if err := os.WriteFile(rulesFile, []byte(changed), 0o644); err != nil {
		t.Fatal(err)
	}
	pgtest.Eventually(t, 15*time.Second, "both replicas on the new rules", func() (bool, string) {
		var versions []string
		for _, r := range replicas {
			versions = append(versions, rulesVersion(t, r.s))
		}
		return versions[0] == versions[1] && versions[0] != oldVersion, fmt.Sprintf("rules versions %v (before the change %s)", versions, oldVersion)
	})
	time.Sleep(2 * time.Second) // load on both, under the new rules
	close(stop)
	wg.Wait()
	for _, r := range replicas {
		r.s.stop(t)
	}

	// Every answered statement has its record on disk: per connection
	// (application_name), records >= answers; at most one more, for the
	// statement in flight when a connection broke.
	records := map[string]int{}
	perInstance := map[string]int{}
	files, _ := filepath.Glob(filepath.Join(logs, "*"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			var r struct {
				Type, Instance string
				App            string `json:"application_name"`
			}
			if err := json.Unmarshal([]byte(line), &r); err != nil {
				t.Fatalf("%s: %v: %s", f, err, line)
			}
			if r.Type == "statement" && strings.HasPrefix(r.App, "ha-w") {
				records[r.App]++
				perInstance[r.Instance]++
			}
		}
	}
	answered, missing, extra := 0, 0, 0
	for app, c := range conns {
		answered += c.answered
		switch n := records[app]; {
		case n < c.answered:
			missing += c.answered - n
			t.Errorf("%s: %d statements answered, %d records", app, c.answered, n)
		case n > c.answered+1 || (n > c.answered && !c.inFlight):
			t.Errorf("%s: %d statements answered, %d records (in flight: %v)", app, c.answered, n, c.inFlight)
		case n > c.answered:
			extra++
		}
	}
	t.Logf("%d connections, %d broken, %d statements answered, %d records (%v per instance), %d recorded but unanswered (in flight at the kill); killed at %s",
		len(conns), broken, answered, sumValues(records), perInstance, extra, killedAt.Format(time.TimeOnly))
	if missing > 0 {
		t.Errorf("%d statements were answered without an access record", missing)
	}
	if broken == 0 {
		t.Error("no connection broke: the kill did not happen under load")
	}
	for _, r := range replicas {
		if perInstance[r.name] == 0 {
			t.Errorf("no statement went through %s", r.name)
		}
	}

	// Both chains verify closed; the killed one says it was killed.
	code, out = verifyCLI(t, bin, logs)
	if code != 0 || strings.Count(out, "the chain is intact and the log is closed") != 2 ||
		!strings.Contains(out, "instance pgcloak-0: note:") || !strings.Contains(out, "stopped without closing") {
		t.Fatalf("audit verify: exit %d\n%s", code, out)
	}
	t.Log(strings.TrimSpace(out))
}

// rulesVersion is the version label of pgcloak_rules_info.
func rulesVersion(t *testing.T, s *served) string {
	t.Helper()
	for _, m := range s.metrics(t)["pgcloak_rules_info"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "version" {
				return l.GetValue()
			}
		}
	}
	return ""
}

func sumValues(m map[string]int) (n int) {
	for _, v := range m {
		n += v
	}
	return n
}

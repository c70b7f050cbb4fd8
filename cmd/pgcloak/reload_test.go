package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgcloak/pgcloak/examples/crm"
	"github.com/pgcloak/pgcloak/internal/pgtest"
	"github.com/pgcloak/pgcloak/proxy"
)

const testToken = "s3cret-admin-token-for-tests"

// secretVolume is a certificate directory laid out as Kubernetes lays out a
// Secret volume: tls.crt and tls.key are symlinks through ..data, itself a
// symlink to a timestamped directory that an update replaces atomically.
type secretVolume struct {
	dir string
	n   int
}

func (v *secretVolume) cert() string { return filepath.Join(v.dir, "tls.crt") }
func (v *secretVolume) key() string  { return filepath.Join(v.dir, "tls.key") }

// update swaps in a new certificate and returns its serial.
func (v *secretVolume) update(t *testing.T) *big.Int {
	t.Helper()
	v.n++
	gen := filepath.Join(v.dir, fmt.Sprintf("..%d", v.n))
	if err := os.Mkdir(gen, 0o755); err != nil {
		t.Fatal(err)
	}
	certs, err := pgtest.WriteCerts(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for from, to := range map[string]string{certs.CertFile: "tls.crt", certs.KeyFile: "tls.key"} {
		b, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(gen, to), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	tmp := filepath.Join(v.dir, "..data_tmp")
	if err := os.Symlink(filepath.Base(gen), tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(v.dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if v.n == 1 {
		for _, f := range []string{"tls.crt", "tls.key"} {
			if err := os.Symlink(filepath.Join("..data", f), filepath.Join(v.dir, f)); err != nil {
				t.Fatal(err)
			}
		}
	}
	cert, err := tls.LoadX509KeyPair(v.cert(), v.key())
	if err != nil {
		t.Fatal(err)
	}
	return leafSerial(t, cert.Certificate[0])
}

func leafSerial(t *testing.T, der []byte) *big.Int {
	t.Helper()
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c.SerialNumber
}

// connectTLS opens a session over TLS and returns it with the serial of
// the certificate pgcloak served.
func (s *served) connectTLS(t *testing.T, login string) (*pgconn.PgConn, *big.Int) {
	t.Helper()
	host, port, _ := net.SplitHostPort(s.addr)
	cfg, err := pgconn.ParseConfig(fmt.Sprintf("host=%s port=%s user=%s password=%s dbname=%s sslmode=require",
		host, port, login, crm.DemoPassword, pgtest.Database))
	if err != nil {
		t.Fatal(err)
	}
	cfg.TLSConfig = &tls.Config{InsecureSkipVerify: true} // the test reads the serial instead
	cfg.Fallbacks = nil
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	tc, ok := conn.Conn().(*tls.Conn)
	if !ok {
		t.Fatalf("not a TLS connection: %T", conn.Conn())
	}
	return conn, tc.ConnectionState().PeerCertificates[0].SerialNumber
}

// ctl runs a pgcloak client command against s.
func (s *served) ctl(t *testing.T, bin string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(bin, append(args[:1:1], append([]string{"--admin", s.admin, "--admin-token", testToken}, args[1:]...)...)...)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	return cmd.ProcessState.ExitCode(), string(out)
}

func (s *served) waitLog(t *testing.T, substr string) {
	t.Helper()
	pgtest.Eventually(t, 15*time.Second, fmt.Sprintf("the log saying %q", substr), func() (bool, string) {
		log := s.stderr()
		return strings.Contains(log, substr), log
	})
}

func query(t *testing.T, conn *pgconn.PgConn, sql string) {
	t.Helper()
	if _, err := conn.Exec(context.Background(), sql).ReadAll(); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// TestReloadCertificatesAndConfig: a renewed certificate (a Secret volume's
// symlink swap) reaches new connections while sessions opened before keep
// running; a certificate file that does not load leaves the old one in
// force with an error and a metric; the config file reloads what may
// change and names what needs a restart.
func TestReloadCertificatesAndConfig(t *testing.T) {
	pg := crmDB(t)
	bin := buildPgcloak(t)
	vol := &secretVolume{dir: t.TempDir()}
	serial1 := vol.update(t)
	config := filepath.Join(t.TempDir(), "pgcloak.yaml")
	rulesPath := writeRules(t, crm.Rules)
	writeConfig := func(extra string) {
		t.Helper()
		c := fmt.Sprintf("upstream: {address: %q}\nadmin_token: %q\ntls: {cert_file: %q, key_file: %q}\nrules: %q\ncatalog_dsn: %q\n%s",
			pg.Addr(), testToken, vol.cert(), vol.key(), rulesPath, pg.DSN(pgtest.SuperUser, pgtest.Database), extra)
		if err := os.WriteFile(config, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeConfig("")
	s := serveAdmin(t, bin, "--config", config)
	s.waitStatus(t, "/readyz", 200)

	old, got := s.connectTLS(t, "alice")
	if got.Cmp(serial1) != 0 {
		t.Fatalf("served serial %x, want %x", got, serial1)
	}
	query(t, old, "SELECT count(*) FROM customers")

	// Renewal: new connections get the new certificate within the watch
	// interval; the session opened before keeps running.
	serial2 := vol.update(t)
	pgtest.Eventually(t, 10*time.Second, "new connections getting the renewed certificate", func() (bool, string) {
		c, got := s.connectTLS(t, "alice")
		c.Close(context.Background())
		return got.Cmp(serial2) == 0, fmt.Sprintf("still serial %x", got)
	})
	query(t, old, "SELECT count(*) FROM customers")

	// A bad certificate file: the old certificate stays, with an error
	// logged and counted.
	target, _ := filepath.EvalSymlinks(vol.cert())
	if err := os.WriteFile(target, []byte("-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s.waitLog(t, "client TLS certificate not reloaded; the old one stays in force")
	if v := value(s.metrics(t), "pgcloak_tls_certificate_reloads_total", map[string]string{"result": "failure"}); v < 1 {
		t.Errorf("failed certificate reloads: %v", v)
	}
	c, got := s.connectTLS(t, "alice")
	c.Close(context.Background())
	if got.Cmp(serial2) != 0 {
		t.Fatalf("after a bad file, serial %x, want the old %x", got, serial2)
	}
	code, out := s.ctl(t, bin, "reload")
	if code != 1 || !strings.Contains(out, "error: certificate") {
		t.Errorf("reload with a bad certificate: exit %d\n%s", code, out)
	}
	query(t, old, "SELECT count(*) FROM customers")

	// The config: log.level applies, the upstream address needs a restart.
	serial3 := vol.update(t)
	writeConfig("log: {level: debug}\n")
	s.waitLog(t, `msg="reload done" why="config file changed" result=success applied=log.level`)
	writeConfig("log: {level: debug}\nlimits: {max_client_connections: 5}\n")
	s.waitLog(t, `msg="config change needs a restart; the old value stays in force until then" key=limits.max_client_connections`)
	code, out = s.ctl(t, bin, "reload")
	if code != 0 || !strings.Contains(out, "needs a restart (old values in force): limits.max_client_connections") || !strings.Contains(out, "rules: unchanged") {
		t.Errorf("pgcloak reload: exit %d\n%s", code, out)
	}
	c, got = s.connectTLS(t, "alice")
	c.Close(context.Background())
	if got.Cmp(serial3) != 0 {
		t.Errorf("after reload, serial %x, want %x", got, serial3)
	}
	mfs := s.metrics(t)
	if value(mfs, "pgcloak_config_restart_pending", nil) != 1 || value(mfs, "pgcloak_config_reloads_total", map[string]string{"result": "success"}) < 2 {
		t.Errorf("config reload metrics: restart_pending %v, successes %v", value(mfs, "pgcloak_config_restart_pending", nil),
			value(mfs, "pgcloak_config_reloads_total", map[string]string{"result": "success"}))
	}
	query(t, old, "SELECT count(*) FROM customers")
	s.cmd.Process.Signal(syscall.SIGHUP)
	s.waitLog(t, `msg="reload done" why=SIGHUP result=success`)
	query(t, old, "SELECT count(*) FROM customers")
	if strings.Contains(s.stderr(), testToken) {
		t.Error("the admin token appears in the log")
	}
	old.Close(context.Background())
	s.stop(t)
}

// TestRuntimeView: the admin API is refused without a token and without
// the right one; with it, sessions show who runs what (fingerprints, no
// values), one can be ended (its statement cancelled, FATAL 57P01), and
// the statements of each role are profiled.
func TestRuntimeView(t *testing.T) {
	pg := crmDB(t)
	bin := buildPgcloak(t)
	rules := writeRules(t, crm.Rules)
	dsn := pg.DSN(pgtest.SuperUser, pgtest.Database)

	off := serveAdmin(t, bin, "--upstream", pg.Addr(), "--rules", rules, "--catalog-dsn", dsn)
	if code, body := off.get(t, "/admin/sessions"); code != http.StatusForbidden || !strings.Contains(body, "admin_token") {
		t.Errorf("without a token configured: %d %s", code, body)
	}
	off.stop(t)

	s := serveAdmin(t, bin, "--upstream", pg.Addr(), "--rules", rules, "--catalog-dsn", dsn, "--admin-token", testToken)
	s.waitStatus(t, "/readyz", 200)
	for _, h := range []string{"", "Bearer wrong-token-wrong-token", "Basic " + testToken} {
		req, _ := http.NewRequest("GET", "http://"+s.admin+"/admin/sessions", nil)
		if h != "" {
			req.Header.Set("Authorization", h)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("Authorization %q: %d", h, resp.StatusCode)
		}
	}

	ctx := context.Background()
	alice, err := s.connect(t, "alice")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		query(t, alice, fmt.Sprintf("SELECT last_name FROM customers WHERE customer_id = %d", 987650+i))
	}
	query(t, alice, "BEGIN")
	dana, err := s.connect(t, "dana")
	if err != nil {
		t.Fatal(err)
	}
	sleeping := make(chan error, 1)
	go func() {
		_, err := dana.Exec(ctx, "SELECT pg_sleep(60)").ReadAll()
		sleeping <- err
	}()

	var list []proxy.SessionView
	var danaView proxy.SessionView
	pgtest.Eventually(t, 10*time.Second, "dana's statement showing as running", func() (bool, string) {
		code, out := s.ctl(t, bin, "sessions", "--json", "list")
		if code != 0 {
			t.Fatalf("sessions list: exit %d\n%s", code, out)
		}
		if strings.Contains(out, "98765") || strings.Contains(out, "pg_sleep(60)") {
			t.Fatalf("the runtime view shows a value:\n%s", out)
		}
		if err := json.Unmarshal([]byte(out), &list); err != nil {
			t.Fatal(err)
		}
		for _, v := range list {
			if v.Login == "dana" {
				danaView = v
			}
		}
		return danaView.State == "active" && danaView.Statement != nil && danaView.Statement.DurationMS > 100, out
	})
	if len(list) != 2 {
		t.Fatalf("%d sessions, want 2: %+v", len(list), list)
	}
	for _, v := range list {
		switch v.Login {
		case "alice":
			if v.Role != "sales_rep" || v.State != "idle in transaction" || v.Client == "" || v.Since.IsZero() {
				t.Errorf("alice: %+v", v)
			}
		case "dana":
			st := v.Statement
			if v.Role != "dba" || st.Fingerprint == "" || !strings.Contains(st.Query, "pg_sleep($1)") || st.Kind != "select" {
				t.Errorf("dana: %+v %+v", v, st)
			}
		}
	}
	_, table := s.ctl(t, bin, "sessions")
	if !strings.Contains(table, "idle in transaction") || !strings.Contains(table, danaView.Statement.Fingerprint) {
		t.Errorf("sessions list:\n%s", table)
	}

	// Ending dana's session cancels its statement and tells the client.
	if code, out := s.ctl(t, bin, "sessions", "kill", danaView.ID); code != 0 || !strings.Contains(out, "terminated "+danaView.ID) {
		t.Fatalf("sessions kill: exit %d\n%s", code, out)
	}
	select {
	case err := <-sleeping:
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "57P01" || pe.Severity != "FATAL" {
			t.Fatalf("the ended session got %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the ended session's statement still runs")
	}
	super, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer super.Close(ctx)
	pgtest.Eventually(t, 10*time.Second, "the backend of the ended session done with its statement", func() bool {
		var n int
		if err := super.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep%' AND state = 'active'").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n == 0
	})
	if code, out := s.ctl(t, bin, "sessions", "kill", "nosuchsession"); code != 1 || !strings.Contains(out, "404") {
		t.Errorf("kill of an unknown session: exit %d\n%s", code, out)
	}
	query(t, alice, "COMMIT")

	// Top: alice's five statements are one fingerprint.
	code, out := s.ctl(t, bin, "sessions", "--json", "--role", "sales_rep", "top")
	var top []proxy.TopEntry
	if code != 0 || json.Unmarshal([]byte(out), &top) != nil {
		t.Fatalf("sessions top: exit %d\n%s", code, out)
	}
	found := false
	for _, e := range top {
		if e.Role != "sales_rep" {
			t.Errorf("top --role sales_rep lists %+v", e)
		}
		if strings.Contains(e.Query, "customer_id = $1") && e.Calls == 5 && e.TotalMS > 0 {
			found = true
		}
	}
	if !found || strings.Contains(out, "98765") {
		t.Errorf("top:\n%s", out)
	}
	alice.Close(ctx)
	s.stop(t)
}

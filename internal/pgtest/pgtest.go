// Package pgtest starts a throwaway PostgreSQL server for tests.
//
// The server is built from the machine's own PostgreSQL binaries (found on
// PATH, through `pg_config --bindir`, or under /usr/lib/postgresql/*/bin),
// lives in a temporary directory, listens on a free loopback port and is
// removed when stopped. It carries one login role per authentication method
// (see the Role constants) and a pg_hba.conf that makes each of them use it.
//
// When the tests run as root (CI does), the server runs as the unprivileged
// system user "nobody", because PostgreSQL refuses to run as root.
//
// There is no skip: when PostgreSQL cannot be found or started, Start
// returns an error that says what to install, and Main fails the package.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// Login roles created in every server. Each authenticates over TCP with the
// method its name says; Password is the password of all of them.
const (
	SuperUser    = "postgres"      // trust
	ScramUser    = "scram_user"    // scram-sha-256
	MD5User      = "md5_user"      // md5
	PasswordUser = "password_user" // password (cleartext)
	TrustUser    = "trust_user"    // trust
	Password     = "pgcloak-test-pw"
	Database     = "postgres"
)

// Options tune a server. The zero value is a plain server without TLS.
type Options struct {
	// TLSCertFile and TLSKeyFile, when set, turn on ssl in the server. The
	// files are copied into the data directory.
	TLSCertFile, TLSKeyFile string
	// Settings are extra postgresql.conf lines, "name = value".
	Settings []string
	// HBA are extra pg_hba.conf lines, put before the ones that make the
	// login roles work (the first matching line wins).
	HBA []string
}

// Server is a running throwaway PostgreSQL.
type Server struct {
	Host   string
	Port   int
	BinDir string
	Dir    string // the temporary directory that holds the data directory

	opts    Options
	dataDir string
	cred    *syscall.Credential

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	log    *os.File
}

// Addr is host:port of the server.
func (s *Server) Addr() string { return net.JoinHostPort(s.Host, strconv.Itoa(s.Port)) }

// DSN returns a connection string for user on the server.
func (s *Server) DSN(user, database string) string {
	return fmt.Sprintf("host=%s port=%d user=%s password=%s dbname=%s sslmode=disable",
		s.Host, s.Port, user, Password, database)
}

// Bin is the path of one of the server's client or server programs (psql,
// pgbench, ...).
func (s *Server) Bin(name string) string { return filepath.Join(s.BinDir, name) }

// FindBinDir locates the directory holding initdb and postgres.
func FindBinDir() (string, error) {
	ok := func(dir string) bool {
		for _, p := range []string{"initdb", "postgres", "pg_ctl"} {
			if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
				return false
			}
		}
		return true
	}
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		if dir := strings.TrimSpace(string(out)); ok(dir) {
			return dir, nil
		}
	}
	if p, err := exec.LookPath("postgres"); err == nil {
		if dir := filepath.Dir(resolve(p)); ok(dir) {
			return dir, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		if dir := filepath.Dir(resolve(p)); ok(dir) {
			return dir, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return versionOf(dirs[i]) > versionOf(dirs[j]) })
	for _, d := range dirs {
		if ok(d) {
			return d, nil
		}
	}
	return "", errors.New("pgtest: no PostgreSQL server binaries (initdb, postgres) found on PATH, " +
		"through pg_config --bindir, or under /usr/lib/postgresql/*/bin; " +
		"install them, on Debian: apt-get install postgresql")
}

func resolve(p string) string {
	if r, err := filepath.EvalSymlinks(p); err == nil {
		return r
	}
	return p
}

func versionOf(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

// Start initialises and starts a new server.
func Start(opts Options) (*Server, error) {
	binDir, err := FindBinDir()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "pgcloak-pg-")
	if err != nil {
		return nil, err
	}
	s := &Server{Host: "127.0.0.1", BinDir: binDir, Dir: dir, opts: opts, dataDir: filepath.Join(dir, "data")}
	if err := s.init(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := s.start(); err != nil {
		s.Stop()
		return nil, err
	}
	if err := s.createRoles(); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

func (s *Server) init() error {
	if os.Geteuid() == 0 {
		u, err := user.Lookup("nobody")
		if err != nil {
			return fmt.Errorf("pgtest: running as root needs an unprivileged user %q to run PostgreSQL: %w", "nobody", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		s.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(s.Dir, uid, gid); err != nil {
			return err
		}
	}
	pwfile := filepath.Join(s.Dir, "pwfile")
	if err := s.writeFile(pwfile, Password+"\n", 0o600); err != nil {
		return err
	}
	out, err := s.run(s.Bin("initdb"), "-D", s.dataDir, "-U", SuperUser, "--pwfile", pwfile,
		"-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync")
	if err != nil {
		return fmt.Errorf("pgtest: initdb: %v\n%s", err, out)
	}
	hba := strings.Join([]string{
		"local all all trust",
		"host all " + ScramUser + " 127.0.0.1/32 scram-sha-256",
		"host all " + MD5User + " 127.0.0.1/32 md5",
		"host all " + PasswordUser + " 127.0.0.1/32 password",
		"host all all 127.0.0.1/32 trust",
		"",
	}, "\n")
	if len(s.opts.HBA) > 0 {
		hba = strings.Join(s.opts.HBA, "\n") + "\n" + hba
	}
	if err := s.writeFile(filepath.Join(s.dataDir, "pg_hba.conf"), hba, 0o600); err != nil {
		return err
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	s.Port = port
	conf := []string{
		"listen_addresses = '127.0.0.1'",
		fmt.Sprintf("port = %d", port),
		"unix_socket_directories = ''",
		"fsync = off",
		"synchronous_commit = off",
		"full_page_writes = off",
		"max_connections = 300",
		"shared_buffers = 64MB",
		"log_min_messages = warning",
	}
	if s.opts.TLSCertFile != "" {
		for src, dst := range map[string]string{s.opts.TLSCertFile: "server.crt", s.opts.TLSKeyFile: "server.key"} {
			b, err := os.ReadFile(src)
			if err != nil {
				return err
			}
			if err := s.writeFile(filepath.Join(s.dataDir, dst), string(b), 0o600); err != nil {
				return err
			}
		}
		conf = append(conf, "ssl = on", "ssl_cert_file = 'server.crt'", "ssl_key_file = 'server.key'")
	}
	conf = append(conf, s.opts.Settings...)
	f, err := os.OpenFile(filepath.Join(s.dataDir, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = f.WriteString("\n" + strings.Join(conf, "\n") + "\n")
	return err
}

// writeFile writes a file owned by the user the server runs as.
func (s *Server) writeFile(path, content string, mode os.FileMode) error {
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		return err
	}
	if s.cred != nil {
		return os.Chown(path, int(s.cred.Uid), int(s.cred.Gid))
	}
	return nil
}

func (s *Server) run(name string, args ...string) ([]byte, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = s.Dir
	if s.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	}
	return cmd.CombinedOutput()
}

func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	logf, err := os.OpenFile(filepath.Join(s.Dir, "server.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(s.Bin("postgres"), "-D", s.dataDir)
	cmd.Dir = s.Dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: s.cred}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("pgtest: starting postgres: %w", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	s.cmd, s.exited, s.log = cmd, exited, logf
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		conn, err := pgx.Connect(ctx, s.DSN(SuperUser, Database))
		cancel()
		if err == nil {
			conn.Close(context.Background())
			return nil
		}
		select {
		case <-exited:
			b, _ := os.ReadFile(filepath.Join(s.Dir, "server.log"))
			return fmt.Errorf("pgtest: postgres exited during start-up:\n%s", b)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(s.Dir, "server.log"))
			return fmt.Errorf("pgtest: postgres not ready after 30s: %v\n%s", err, b)
		}
	}
}

func (s *Server) createRoles() error {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, s.DSN(SuperUser, Database))
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	stmts := []string{
		"SET password_encryption = 'scram-sha-256'",
		fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD '%s'", ScramUser, Password),
		fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD '%s'", PasswordUser, Password),
		fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD '%s'", TrustUser, Password),
		"SET password_encryption = 'md5'",
		fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD '%s'", MD5User, Password),
		fmt.Sprintf("GRANT ALL ON SCHEMA public TO %s, %s, %s, %s", ScramUser, MD5User, PasswordUser, TrustUser),
	}
	for _, q := range stmts {
		if _, err := conn.Exec(ctx, q); err != nil {
			return fmt.Errorf("pgtest: %s: %w", q, err)
		}
	}
	return nil
}

// Stop shuts the server down (fast mode: sessions are terminated) without
// removing its data; Start it again with Restart.
func (s *Server) halt() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	pid := s.cmd.Process.Pid
	syscall.Kill(pid, syscall.SIGINT)
	select {
	case <-s.exited:
	case <-time.After(30 * time.Second):
		syscall.Kill(-pid, syscall.SIGKILL)
		<-s.exited
	}
	s.cmd = nil
	s.log.Close()
}

// Restart stops the server (terminating its sessions) and starts it again on
// the same port.
func (s *Server) Restart() error {
	s.halt()
	return s.start()
}

// Halt stops the server without removing it; Restart brings it back.
func (s *Server) Halt() { s.halt() }

// Stop stops the server and removes its directory.
func (s *Server) Stop() {
	s.halt()
	os.RemoveAll(s.Dir)
}

// Log returns the server's log so far, for failure messages.
func (s *Server) Log() string {
	b, _ := os.ReadFile(filepath.Join(s.Dir, "server.log"))
	return string(b)
}

// Exec runs statements as the superuser.
func (s *Server) Exec(ctx context.Context, sql ...string) error {
	conn, err := pgx.Connect(ctx, s.DSN(SuperUser, Database))
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	for _, q := range sql {
		if _, err := conn.Exec(ctx, q); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Main starts one server for a test package, runs its tests (m is the
// package's *testing.M) and removes the server. A server that cannot start
// fails the package with the reason.
//
//	var pg *pgtest.Server
//	func TestMain(m *testing.M) { pgtest.Main(m, pgtest.Options{}, &pg) }
func Main(m interface{ Run() int }, opts Options, srv **Server) {
	s, err := Start(opts)
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: cannot start the test PostgreSQL server: %v\n", err)
		os.Exit(1)
	}
	*srv = s
	code := m.Run()
	s.Stop()
	os.Exit(code)
}

package proxy_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/pgcloak/pgcloak/internal/pgtest"
	"github.com/pgcloak/pgcloak/proxy"
)

// tlsDSN is a connection string that verifies pgcloak's certificate against
// the test CA (sslmode=verify-full), followed by extra settings.
func tlsDSN(addr, user, extra string) string {
	host, port, _ := net.SplitHostPort(addr)
	return fmt.Sprintf("host=%s port=%s user=%s password=%s dbname=%s sslmode=verify-full sslrootcert=%s connect_timeout=10 %s",
		host, port, user, pgtest.Password, pgtest.Database, certs.CAFile, extra)
}

// tryConnect connects with a connection string and reports whether the
// connection to pgcloak and pgcloak's to the server are encrypted.
func tryConnect(t *testing.T, connString string) (clientTLS, upstreamTLS bool, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, connString)
	if err != nil {
		return false, false, err
	}
	defer conn.Close(context.Background())
	_, clientTLS = conn.PgConn().Conn().(*tls.Conn)
	if err := conn.QueryRow(ctx, "select ssl from pg_stat_ssl where pid = pg_backend_pid()").Scan(&upstreamTLS); err != nil {
		return false, false, fmt.Errorf("query: %w", err)
	}
	return clientTLS, upstreamTLS, nil
}

// wantPgError checks that err is an ErrorResponse with this SQLSTATE whose
// message contains msgPart.
func wantPgError(t *testing.T, err error, code, msgPart string) *pgconn.PgError {
	t.Helper()
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != code || !strings.Contains(pe.Message, msgPart) {
		t.Fatalf("want SQLSTATE %s with %q, got %v", code, msgPart, err)
	}
	return pe
}

// Every authentication method works over every combination of TLS between
// client and pgcloak and between pgcloak and the server, except the one
// combination SCRAM cannot cross: a client that supports channel binding
// (pgx's and libpq's default on TLS) sends the gs2 flag "y", which a server
// on TLS must reject as a downgrade. pgcloak refuses that exchange itself,
// with a message that says what to do, and channel_binding=disable works.
func TestTLSMatrix(t *testing.T) {
	plainUp := proxy.Config{ClientTLS: certs.ServerConfig()}
	_, plainUpAddr := startProxy(t, plainUp)
	tlsUp := proxy.Config{ClientTLS: certs.ServerConfig(), UpstreamTLS: certs.ClientConfig("localhost")}
	_, tlsUpAddr := startProxy(t, tlsUp)

	type combo struct {
		clientTLS, upstreamTLS bool
	}
	combos := []combo{{false, false}, {true, false}, {false, true}, {true, true}}
	for _, c := range combos {
		addr := plainUpAddr
		if c.upstreamTLS {
			addr = tlsUpAddr
		}
		connString := func(user, extra string) string {
			if c.clientTLS {
				return tlsDSN(addr, user, extra)
			}
			return dsn(addr, user) + " " + extra
		}
		name := fmt.Sprintf("client-tls=%v/upstream-tls=%v", c.clientTLS, c.upstreamTLS)
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			check := func(user, extra string) {
				t.Helper()
				gotClient, gotUp, err := tryConnect(t, connString(user, extra))
				if err != nil {
					t.Fatalf("%s %s: %v", user, extra, err)
				}
				if gotClient != c.clientTLS || gotUp != c.upstreamTLS {
					t.Fatalf("%s %s: client TLS %v, upstream TLS %v", user, extra, gotClient, gotUp)
				}
			}
			for _, user := range []string{pgtest.MD5User, pgtest.PasswordUser, pgtest.TrustUser} {
				check(user, "")
			}
			check(pgtest.ScramUser, "channel_binding=disable")

			// pgx's default, channel_binding=prefer: the client sends "y"
			// exactly when it is on TLS.
			if !(c.clientTLS && c.upstreamTLS) {
				check(pgtest.ScramUser, "")
			} else {
				start := time.Now()
				_, _, err := tryConnect(t, connString(pgtest.ScramUser, ""))
				pe := wantPgError(t, err, pgerrcode.InvalidAuthorizationSpecification, "SCRAM channel binding cannot cross pgcloak")
				if pe.Severity != "FATAL" || !strings.Contains(pe.Hint, "channel_binding=disable") {
					t.Fatalf("refusal should be FATAL and name channel_binding=disable: %+v", pe)
				}
				t.Logf("refused in %v: %v (hint: %s)", time.Since(start), err, pe.Hint)
			}

			// channel_binding=require can never be met through pgcloak,
			// which offers no -PLUS mechanism; the client says so itself.
			_, _, err := tryConnect(t, connString(pgtest.ScramUser, "channel_binding=require"))
			if err == nil || !strings.Contains(err.Error(), "channel binding required") {
				t.Fatalf("channel_binding=require: want the client's refusal, got %v", err)
			}
		})
	}

	// pgx's defaults (sslmode=prefer, channel_binding=prefer), as libpq's:
	// the client tries TLS first and, when SCRAM fails on it, tries again
	// in plaintext. Behind a pgcloak with upstream TLS, a default SCRAM
	// client therefore ends up connected without TLS to pgcloak, which is
	// what sslmode=prefer accepts; RequireClientTLS (below) or
	// channel_binding=disable keeps it on TLS.
	t.Run("pgx-defaults", func(t *testing.T) {
		defaults := func(addr, extra string) string {
			host, port, _ := net.SplitHostPort(addr)
			return fmt.Sprintf("host=%s port=%s user=%s password=%s dbname=%s connect_timeout=10 %s",
				host, port, pgtest.ScramUser, pgtest.Password, pgtest.Database, extra)
		}
		for _, c := range []struct {
			addr                   string
			extra                  string
			clientTLS, upstreamTLS bool
		}{
			{plainUpAddr, "", true, false},
			{tlsUpAddr, "", false, true}, // the TLS attempt is refused, the plaintext one works
			{tlsUpAddr, "channel_binding=disable", true, true},
		} {
			gotClient, gotUp, err := tryConnect(t, defaults(c.addr, c.extra))
			if err != nil || gotClient != c.clientTLS || gotUp != c.upstreamTLS {
				t.Fatalf("upstream TLS %v, %q: client TLS %v (want %v), upstream TLS %v (want %v), %v",
					c.addr == tlsUpAddr, c.extra, gotClient, c.clientTLS, gotUp, c.upstreamTLS, err)
			}
		}
		_, reqAddr := startProxy(t, proxy.Config{ClientTLS: certs.ServerConfig(), UpstreamTLS: certs.ClientConfig("localhost"), RequireClientTLS: true})
		_, _, err := tryConnect(t, defaults(reqAddr, ""))
		if err == nil || !strings.Contains(err.Error(), "SCRAM channel binding cannot cross pgcloak") ||
			!strings.Contains(err.Error(), "pgcloak accepts only TLS connections") {
			t.Fatalf("defaults with RequireClientTLS: want both refusals, got %v", err)
		}
	})
}

// A client that insists on TLS (sslmode=require) is refused cleanly by a
// pgcloak without TLS, and one that merely prefers it falls back to
// plaintext.
func TestTLSRequiredByClientNotOffered(t *testing.T) {
	_, addr := startProxy(t, proxy.Config{})
	host, port, _ := net.SplitHostPort(addr)
	base := fmt.Sprintf("host=%s port=%s user=%s password=%s dbname=%s connect_timeout=10",
		host, port, pgtest.ScramUser, pgtest.Password, pgtest.Database)

	_, _, err := tryConnect(t, base+" sslmode=require")
	if err == nil || !strings.Contains(err.Error(), "server refused TLS connection") {
		t.Fatalf("sslmode=require without TLS: want a TLS refusal, got %v", err)
	}
	clientTLS, _, err := tryConnect(t, base+" sslmode=prefer")
	if err != nil || clientTLS {
		t.Fatalf("sslmode=prefer without TLS: client TLS %v, %v", clientTLS, err)
	}
}

// RequireClientTLS refuses a plaintext client with a clear error and accepts
// a TLS one.
func TestRequireClientTLS(t *testing.T) {
	_, addr := startProxy(t, proxy.Config{ClientTLS: certs.ServerConfig(), RequireClientTLS: true})

	_, _, err := tryConnect(t, dsn(addr, pgtest.ScramUser))
	pe := wantPgError(t, err, pgerrcode.InvalidAuthorizationSpecification, "pgcloak accepts only TLS connections")
	if pe.Severity != "FATAL" {
		t.Fatalf("severity %q", pe.Severity)
	}
	if clientTLS, _, err := tryConnect(t, tlsDSN(addr, pgtest.ScramUser, "")); err != nil || !clientTLS {
		t.Fatalf("verify-full client: TLS %v, %v", clientTLS, err)
	}
}

// A client that does not trust pgcloak's certificate does not connect.
func TestTLSUntrustedCertificate(t *testing.T) {
	_, addr := startProxy(t, proxy.Config{ClientTLS: certs.ServerConfig()})
	other, err := pgtest.WriteCerts(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(addr)
	_, _, err = tryConnect(t, fmt.Sprintf("host=%s port=%s user=%s password=%s dbname=%s sslmode=verify-full sslrootcert=%s connect_timeout=10",
		host, port, pgtest.TrustUser, pgtest.Password, pgtest.Database, other.CAFile))
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("want a certificate verification error, got %v", err)
	}
}

// psql (libpq) with sslmode=verify-full, SCRAM, and TLS on both sides of
// pgcloak: libpq's default channel_binding=prefer gets pgcloak's refusal,
// channel_binding=disable connects.
func TestTLSPsqlVerifyFull(t *testing.T) {
	_, addr := startProxy(t, proxy.Config{ClientTLS: certs.ServerConfig(), UpstreamTLS: certs.ClientConfig(pg.Host)})
	psql := func(extra string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, pg.Bin("psql"), "-X", "-At", "-c",
			"select ssl from pg_stat_ssl where pid = pg_backend_pid()",
			tlsDSN(addr, pgtest.ScramUser, extra))
		cmd.Env = append(os.Environ(), "PGPASSWORD="+pgtest.Password)
		cmd.Dir = t.TempDir()
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := psql("channel_binding=disable")
	if err != nil || strings.TrimSpace(out) != "t" {
		t.Fatalf("psql verify-full, channel_binding=disable: %v\n%s", err, out)
	}
	out, err = psql("")
	if err == nil || !strings.Contains(out, "SCRAM channel binding cannot cross pgcloak") {
		t.Fatalf("psql verify-full, default channel_binding: want pgcloak's refusal, got %v\n%s", err, out)
	}
}

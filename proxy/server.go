package proxy

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Config is what a Server needs. cmd/pgcloak builds it from the config file
// and flags.
type Config struct {
	// Upstream is the PostgreSQL server, host:port.
	Upstream string
	// Database, when set, is the only database clients may connect to (the
	// one the rules describe); a client that names none gets it.
	Database string
	// UpstreamTLS, when set, encrypts the upstream connection with it; the
	// server must accept TLS. Nil means plaintext.
	UpstreamTLS *tls.Config

	// ClientTLS, when set, is offered to clients that send SSLRequest.
	ClientTLS *tls.Config
	// RequireClientTLS refuses clients that do not negotiate TLS.
	RequireClientTLS bool

	// MaxClientConns bounds concurrent client sessions; the next one gets
	// SQLSTATE 53300. Zero means no bound.
	MaxClientConns int
	// MaxMessageSize bounds the body of one client message; a larger one
	// gets 08P01 and the connection is closed. Zero means DefaultMaxMessageSize.
	MaxMessageSize int
	// MaxSessionStatements bounds the prepared statements and portals one
	// session keeps (by name), MaxSessionStatementBytes the SQL text of
	// its prepared statements: a session past either is ended with FATAL
	// 54000 (limits.go). Zero means the default.
	MaxSessionStatements     int
	MaxSessionStatementBytes int

	// ConnectTimeout bounds dialing (and TLS with) the upstream.
	ConnectTimeout time.Duration
	// AuthTimeout bounds the whole start-up: TLS, startup packet and the
	// authentication exchange.
	AuthTimeout time.Duration

	// Policy decides on each statement; nil means AllowAll.
	Policy Policy
	// AccessLog, when set, gets a record of every connection event and
	// statement execution, and may refuse new statements (fail_closed).
	// Statements are described by the policy: with a policy that opens no
	// SessionPolicy, records say only what the wire says.
	AccessLog AccessLog
	// GoroutineRelay relays every session with a goroutine per direction.
	// By default (on Linux) a session with no policy, no access log and
	// no TLS is relayed by an event loop instead, with fewer system calls
	// and wake-ups per round trip; this switches that off.
	GoroutineRelay bool

	// Metrics, when set, are kept up to date.
	Metrics *Metrics
	Logger  *slog.Logger
}

// Defaults for zero Config fields.
const (
	DefaultMaxMessageSize           = 64 << 20
	DefaultMaxSessionStatements     = 10000
	DefaultMaxSessionStatementBytes = 256 << 20
	DefaultConnectTimeout           = 10 * time.Second
	DefaultAuthTimeout              = 60 * time.Second
)

// Server accepts client connections and relays each to its own upstream
// connection.
type Server struct {
	cfg    Config
	log    *slog.Logger
	policy Policy

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	sessions  map[*session]struct{}
	closing   bool
	wg        sync.WaitGroup // one per session and per accept loop

	active atomic.Int64
	onLoop atomic.Int64 // sessions on an event loop (evloop_linux.go)
	shapes *shapeCounts // prepared statements of shapes (shapeprep.go)
	top    topStats     // the runtime view's statements (registry.go)
}

// New returns a Server for cfg.
func New(cfg Config) *Server {
	if cfg.MaxMessageSize <= 0 {
		cfg.MaxMessageSize = DefaultMaxMessageSize
	}
	if cfg.MaxSessionStatements <= 0 {
		cfg.MaxSessionStatements = DefaultMaxSessionStatements
	}
	if cfg.MaxSessionStatementBytes <= 0 {
		cfg.MaxSessionStatementBytes = DefaultMaxSessionStatementBytes
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = DefaultConnectTimeout
	}
	if cfg.AuthTimeout <= 0 {
		cfg.AuthTimeout = DefaultAuthTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	p := cfg.Policy
	if p == nil {
		p = AllowAll{}
	}
	return &Server{
		shapes:    newShapeCounts(cfg.Metrics),
		cfg:       cfg,
		log:       cfg.Logger,
		policy:    p,
		listeners: map[net.Listener]struct{}{},
		sessions:  map[*session]struct{}{},
	}
}

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("pgcloak: server closed")

// ActiveSessions is the number of client connections being served.
func (s *Server) ActiveSessions() int { return int(s.active.Load()) }

// Serve accepts connections on l until Shutdown is called or l fails.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		l.Close()
		return ErrServerClosed
	}
	s.listeners[l] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, l)
		s.mu.Unlock()
	}()

	var backoff time.Duration
	for {
		c, err := l.Accept()
		if err != nil {
			s.mu.Lock()
			closing := s.closing
			s.mu.Unlock()
			if closing {
				return ErrServerClosed
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			// Out of file descriptors and the like: keep serving the
			// sessions we have and try again shortly.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.log.Warn("accept failed; retrying", "err", err, "in", backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetNoDelay(true)
			tc.SetKeepAlive(true)
		}
		sess := newSession(s, c)
		s.mu.Lock()
		if s.closing {
			s.mu.Unlock()
			c.Close()
			return ErrServerClosed
		}
		s.sessions[sess] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			sess.run()
			s.mu.Lock()
			delete(s.sessions, sess)
			s.mu.Unlock()
		}()
	}
}

// Shutdown stops accepting connections, waits for sessions to end until ctx
// is done, then terminates the remaining ones with FATAL 57P01 (after
// cancelling their running queries) and waits for them to close.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	for l := range s.listeners {
		l.Close()
	}
	s.mu.Unlock()

	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	s.mu.Lock()
	for sess := range s.sessions {
		sess.terminate()
	}
	s.mu.Unlock()
	<-done
	return ctx.Err()
}

// dialUpstream opens a connection to the upstream and negotiates TLS if the
// config asks for it.
func (s *Server) dialUpstream(ctx context.Context) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ConnectTimeout)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", s.cfg.Upstream)
	if err != nil {
		if m := s.cfg.Metrics; m != nil {
			m.upstreamErrors.Inc()
		}
		return nil, err
	}
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
		tc.SetKeepAlive(true)
	}
	if s.cfg.UpstreamTLS == nil {
		return c, nil
	}
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	var req [8]byte
	binary.BigEndian.PutUint32(req[0:], 8)
	binary.BigEndian.PutUint32(req[4:], sslRequestCode)
	if _, err := c.Write(req[:]); err != nil {
		c.Close()
		return nil, err
	}
	var resp [1]byte
	if _, err := io.ReadFull(c, resp[:]); err != nil {
		c.Close()
		return nil, err
	}
	if resp[0] != encryptionAccepted {
		c.Close()
		return nil, fmt.Errorf("upstream %s does not accept TLS", s.cfg.Upstream)
	}
	tc := tls.Client(c, s.cfg.UpstreamTLS)
	if err := tc.HandshakeContext(ctx); err != nil {
		c.Close()
		return nil, fmt.Errorf("TLS with upstream: %w", err)
	}
	c.SetDeadline(time.Time{})
	return tc, nil
}

// forwardCancel relays a CancelRequest to the upstream. The cancel key a
// client holds is the server's own (BackendKeyData is relayed untouched), so
// any pgcloak replica can forward it without shared state.
func (s *Server) forwardCancel(packet []byte) {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ConnectTimeout)
	defer cancel()
	c, err := s.dialUpstream(ctx)
	if err != nil {
		s.log.Warn("cannot forward cancel request", "err", err)
		return
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(s.cfg.ConnectTimeout))
	if _, err := c.Write(packet); err != nil {
		s.log.Warn("cannot forward cancel request", "err", err)
		return
	}
	// The server closes the connection once it has handled the request;
	// waiting for that keeps the cancel ordered before whatever the client
	// does next.
	io.Copy(io.Discard, c)
}

func newSessionID() string {
	var b [6]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// PingUpstream checks that the upstream accepts connections (and TLS, when
// configured), for readiness probes.
func (s *Server) PingUpstream(ctx context.Context) error {
	c, err := s.dialUpstream(ctx)
	if err != nil {
		return err
	}
	return c.Close()
}

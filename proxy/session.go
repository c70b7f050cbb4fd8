package proxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgcloak/pgcloak/audit"
)

// Codes of the untyped packets a client may send before the StartupMessage.
const (
	sslRequestCode    = 80877103
	gssEncRequestCode = 80877104
	cancelRequestCode = 80877102

	// Limits before authentication, as PostgreSQL's own: an unauthenticated
	// peer cannot make pgcloak allocate more than this.
	maxStartupPacket = 10000
	maxAuthMessage   = 65535 + 1024
)

// session is one client connection and its upstream connection.
type session struct {
	srv      *Server
	id       string
	log      *slog.Logger
	raw      net.Conn // the accepted connection
	since    time.Time
	client   net.Conn // raw, or TLS over it
	upstream net.Conn
	cr, ur   *frameReader // client and upstream message readers
	tls      bool
	params   map[string]string
	// serverParams are the ParameterStatus values of the start-up.
	serverParams map[string]string
	policy       SessionPolicy
	cancel       []byte // CancelRequest packet for this session's backend

	txStatus atomic.Uint32 // last ReadyForQuery status, a txState
	// Requests that expect a ReadyForQuery (Query, Sync, FunctionCall)
	// sent and answered; with dirty (messages sent since the last of
	// them) they tell whether the backend may be busy.
	sent, done atomic.Int64
	dirty      atomic.Bool

	relaying    atomic.Bool           // start-up is over; upstream is set
	clientDone  atomic.Bool           // client terminated or went away
	terminating atomic.Bool           // pgcloak is shutting the session down
	endReason   atomic.Pointer[Error] // error the client gets when the session ends

	// Owned by the server-to-client goroutine.
	serverFatal bool // the last ErrorResponse relayed was FATAL
	midStream   bool // a large message is being copied through
	sout        []byte
	scratch     []byte // a masked DataRow

	wire      *wireState      // nil for sessions without a policy or access log
	errFilter ErrorFilter     // nil unless the policy filters server errors
	settings  SettingsWatcher // nil unless the policy follows settings

	// For the access log.
	appName    string // application_name; owned by the server-to-client side once relaying
	clientAddr string // the client's address
	login      string // from the StartupMessage, set with the first record
	database   string
	identity   *audit.Statement
	authFail   struct{ outcome, code string } // why start-up failed, when known

	// Owned by the client-to-server goroutine (reprepare.go): the
	// statements the client prepared, as it last sent them, for
	// re-preparing after a rules change; those sent since the last Sync;
	// the generation each portal was last bound under, and the portals
	// bound since the last Sync.
	prepared    map[string]*preparedStmt
	batch       map[string]*preparedStmt
	portalGen   map[string]uint64
	portalBatch map[string]bool
	// preparedBytes is the SQL text of prepared, for the session's limit.
	preparedBytes int
	idle          bool // at the message being decided (SessionInfo.Idle)

	cout []byte // owned by the client-to-server goroutine

	// The event-loop relay (evloop_linux.go): the session while a loop
	// relays it, and whether terminate() left ending it to the session's
	// goroutine, which takes the connections back from the loop.
	loopMu      sync.Mutex
	onLoop      *loopSession
	termOnEject bool
}

func newSession(srv *Server, c net.Conn) *session {
	id := newSessionID()
	return &session{srv: srv, id: id, raw: c, since: time.Now(), client: c, clientAddr: c.RemoteAddr().String(), log: srv.log.With("session", id)}
}

// errCancelHandled ends a connection that carried a CancelRequest.
var errCancelHandled = errors.New("cancel request handled")

func (s *session) run() {
	defer s.client.Close()
	cfg := &s.srv.cfg
	s.client.SetDeadline(time.Now().Add(cfg.AuthTimeout))

	packet, err := s.readStartup()
	if err != nil {
		if err != errCancelHandled {
			s.failStartup(err)
		}
		return
	}
	n := s.srv.active.Add(1)
	defer s.srv.active.Add(-1)
	if m := cfg.Metrics; m != nil {
		m.connectionsTotal.Inc()
		m.connectionsActive.Inc()
		defer m.connectionsActive.Dec()
	}
	s.appName = s.params["application_name"]
	began := time.Now()
	s.emit(s.record(audit.TypeConnect))
	defer func() {
		r := s.record(audit.TypeDisconnect)
		r.DurationUS = max(time.Since(began).Microseconds(), 1)
		s.emit(r)
	}()
	if cfg.MaxClientConns > 0 && n > int64(cfg.MaxClientConns) {
		e := errTooManyClients()
		s.sendClient(e)
		s.authRecord(audit.AuthRefused, e.Code)
		return
	}
	if cfg.RequireClientTLS && !s.tls {
		s.sendClient(fatal(pgerrcode.InvalidAuthorizationSpecification, "pgcloak accepts only TLS connections"))
		s.authRecord(audit.AuthRefused, pgerrcode.InvalidAuthorizationSpecification)
		return
	}

	ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(cfg.AuthTimeout))
	defer cancel()
	up, err := s.srv.dialUpstream(ctx)
	if err != nil {
		s.log.Warn("cannot connect upstream", "err", err)
		s.sendClient(errUpstreamUnavailable(err.Error()))
		s.authRecord(audit.AuthError, pgerrcode.SQLClientUnableToEstablishSQLConnection)
		return
	}
	s.upstream = up
	s.serverParams = map[string]string{}
	defer up.Close()
	if dl, ok := ctx.Deadline(); ok {
		up.SetDeadline(dl)
	}
	if err := s.authenticate(ctx, packet); err != nil {
		s.log.Debug("start-up failed", "err", err)
		if s.authFail.outcome == "" {
			s.authFail.outcome = audit.AuthAborted
		}
		s.authRecord(s.authFail.outcome, s.authFail.code)
		return
	}
	s.authRecord(audit.AuthOK, "")
	s.client.SetDeadline(time.Time{})
	up.SetDeadline(time.Time{})
	if s.policy != nil {
		defer s.policy.Close()
	}
	s.log.Debug("session started", "client", s.client.RemoteAddr().String())
	s.relaying.Store(true)
	if s.terminating.Load() { // shut down during start-up
		s.upstream.Write(terminateMsg)
		s.sendClient(errShutdown())
		return
	}
	s.relay()
	if s.wire != nil && s.wire.tracking {
		s.wire.abandon()
		s.emitCompletions()
	}
	s.log.Debug("session ended")
}

// readStartup handles SSLRequest, GSSENCRequest and CancelRequest, and
// returns the StartupMessage packet to forward upstream.
func (s *session) readStartup() ([]byte, error) {
	for {
		var hdr [4]byte
		if _, err := io.ReadFull(s.client, hdr[:]); err != nil {
			return nil, err
		}
		l := int(binary.BigEndian.Uint32(hdr[:]))
		if l < 8 || l > maxStartupPacket {
			return nil, errProtocol(fmt.Sprintf("invalid length of startup packet: %d", l))
		}
		// Read exactly the packet: bytes a client sends after SSLRequest
		// and before the TLS handshake must never be read as plaintext.
		packet := make([]byte, l)
		copy(packet, hdr[:])
		if _, err := io.ReadFull(s.client, packet[4:]); err != nil {
			return nil, errProtocol("incomplete startup packet")
		}
		code := binary.BigEndian.Uint32(packet[4:])
		switch code {
		case sslRequestCode:
			if s.tls {
				return nil, errProtocol("SSLRequest received on an encrypted connection")
			}
			if s.srv.cfg.ClientTLS == nil {
				if _, err := s.client.Write([]byte{encryptionRefused}); err != nil {
					return nil, err
				}
				continue
			}
			if _, err := s.client.Write([]byte{encryptionAccepted}); err != nil {
				return nil, err
			}
			tc := tls.Server(s.client, s.srv.cfg.ClientTLS)
			if err := tc.Handshake(); err != nil {
				return nil, fmt.Errorf("client TLS handshake: %w", err)
			}
			s.client, s.tls = tc, true
		case gssEncRequestCode:
			if _, err := s.client.Write([]byte{encryptionRefused}); err != nil {
				return nil, err
			}
		case cancelRequestCode:
			s.srv.forwardCancel(packet)
			return nil, errCancelHandled
		default:
			if major := code >> 16; major != 3 {
				return nil, errProtocol(fmt.Sprintf("unsupported frontend protocol %d.%d: pgcloak supports 3.x", major, code&0xffff))
			}
			// pgproto3 decodes only versions 3.0 and 3.2, but PostgreSQL
			// answers any 3.x with NegotiateProtocolVersion: read the
			// parameters as 3.0 and forward the version the client asked.
			body := bytes.Clone(packet[4:])
			binary.BigEndian.PutUint32(body, pgproto3.ProtocolVersion30)
			var sm pgproto3.StartupMessage
			if err := sm.Decode(body); err != nil {
				return nil, errProtocol("invalid startup packet: " + strings.TrimSpace(err.Error()))
			}
			sm.ProtocolVersion = code
			s.params = sm.Parameters
			return s.checkDatabase(&sm, packet)
		}
	}
}

// checkDatabase holds clients to the configured database, filling it in for
// clients that name none.
func (s *session) checkDatabase(sm *pgproto3.StartupMessage, packet []byte) ([]byte, error) {
	want := s.srv.cfg.Database
	if want == "" {
		return packet, nil
	}
	db := sm.Parameters["database"]
	if db == "" {
		db = sm.Parameters["user"]
		if _, ok := sm.Parameters["replication"]; !ok || db == want {
			sm.Parameters["database"] = want
			return sm.Encode(nil)
		}
	}
	if db != want {
		return nil, fatal(pgerrcode.InvalidCatalogName, fmt.Sprintf("pgcloak serves only database %q", want))
	}
	return packet, nil
}

// failStartup reports an error that ended the session before it started.
func (s *session) failStartup(err error) {
	var pe *Error
	if errors.As(err, &pe) {
		s.sendClient(asError(err, "FATAL"))
		return
	}
	if !errors.Is(err, io.EOF) {
		s.log.Debug("start-up failed", "err", err)
	}
}

// sendClient writes one pgcloak error to the client; used only while no
// relay goroutine writes to it.
func (s *session) sendClient(e *Error) {
	s.client.SetWriteDeadline(time.Now().Add(5 * time.Second))
	s.client.Write(e.encode(nil))
}

// authenticate relays the authentication exchange between client and server
// until the server's first ReadyForQuery. PostgreSQL verifies the
// credentials; pgcloak only removes what cannot work across a proxy (SCRAM
// channel binding, which binds to the TLS certificate of the peer).
func (s *session) authenticate(ctx context.Context, packet []byte) error {
	s.cr = newFrameReader(s.client, maxAuthMessage)
	s.ur = newFrameReader(s.upstream, 0)
	if _, err := s.upstream.Write(packet); err != nil {
		s.sendClient(errUpstreamLost())
		return err
	}
	var out []byte
	flush := func() error {
		_, err := s.client.Write(out)
		out = out[:0]
		return err
	}
	// relayResponse forwards one authentication response of the client.
	relayResponse := func(sasl bool) error {
		if err := flush(); err != nil {
			return err
		}
		msg, err := s.cr.readMessage()
		if err != nil {
			return s.startupClientError(err)
		}
		if clientMsg(msg[0]) != clientAuthResponse {
			e := errProtocol(fmt.Sprintf("expected an authentication response, got message type %q", msg[0]))
			s.sendClient(e)
			return e
		}
		if sasl && s.srv.cfg.UpstreamTLS != nil {
			if e := checkSASLBinding(msg); e != nil {
				s.sendClient(e)
				return e
			}
		}
		_, err = s.upstream.Write(msg)
		return err
	}
	for {
		msg, err := s.ur.readMessage()
		if err != nil {
			s.sendClient(errUpstreamLost())
			return err
		}
		switch serverMsg(msg[0]) {
		case serverAuthentication:
			if len(msg) < 9 {
				return s.startupUpstreamError("short authentication message")
			}
			switch code := binary.BigEndian.Uint32(msg[5:]); code {
			case authOK: // the server accepted the login
				// The policy decides once the server is ready (at the first
				// ReadyForQuery); until then the client hears nothing more.
				out = append(out, msg...)
			case authSASL: // offer only what can cross a proxy
				out = appendSASLWithoutBinding(out, msg)
				if err := relayResponse(true); err != nil {
					return err
				}
			case authSASLFinal: // no response expected
				out = append(out, msg...)
			case authCleartextPassword, authMD5Password, authSASLContinue:
				out = append(out, msg...)
				if err := relayResponse(false); err != nil {
					return err
				}
			default:
				e := fatal(pgerrcode.FeatureNotSupported,
					fmt.Sprintf("pgcloak cannot relay authentication method %d (only SCRAM-SHA-256, MD5, password and trust)", code))
				flush()
				s.sendClient(e)
				return e
			}
		case serverErrorResponse: // the server refused: its own error goes to the client
			out = append(out, msg...)
			flush()
			s.authFail.outcome, s.authFail.code = audit.AuthRejected, errorCode(msg)
			return errors.New("server refused the connection")
		case serverBackendKeyData:
			s.cancel = cancelPacket(msg[5:])
			out = append(out, msg...)
		case serverReadyForQuery:
			out = append(out, msg...)
			s.txStatus.Store(uint32(msg[5]))
			if err := s.open(ctx); err != nil {
				return err
			}
			if err := flush(); err != nil {
				return err
			}
			s.cr.max = s.srv.cfg.MaxMessageSize
			return nil
		case serverParameterStatus:
			var ps pgproto3.ParameterStatus
			if ps.Decode(msg[5:]) == nil {
				s.serverParams[ps.Name] = ps.Value
			}
			out = append(out, msg...)
		default: // NoticeResponse, NegotiateProtocolVersion
			out = append(out, msg...)
		}
	}
}

func (s *session) startupClientError(err error) error {
	var tooLarge *errMessageTooLarge
	if errors.As(err, &tooLarge) {
		s.sendClient(errProtocol(err.Error()))
	}
	return err
}

func (s *session) startupUpstreamError(msg string) error {
	s.sendClient(errUpstreamLost())
	return errors.New(msg)
}

// open asks the policy for the session's SessionPolicy; a refusal reaches
// the client instead of AuthenticationOk.
func (s *session) open(ctx context.Context) error {
	info := SessionInfo{
		ID:           s.id,
		User:         s.params["user"],
		Database:     s.params["database"],
		Params:       s.params,
		ServerParams: s.serverParams,
		ClientAddr:   s.client.RemoteAddr(),
		TLS:          s.tls,
		Upstream:     upstreamQuerier{s},
		Idle:         func() bool { return s.idle },
	}
	if len(s.cancel) >= 12 {
		info.BackendPID = binary.BigEndian.Uint32(s.cancel[8:])
	}
	if info.Database == "" {
		info.Database = info.User
	}
	sp, err := s.srv.policy.Open(ctx, info)
	if err != nil {
		var pe *Error
		if !errors.As(err, &pe) {
			err = &Error{Code: pgerrcode.InvalidAuthorizationSpecification, Message: err.Error()}
		}
		e := asError(err, "FATAL")
		s.sendClient(e)
		s.upstream.Write(terminateMsg)
		s.authFail.outcome, s.authFail.code = audit.AuthRefused, e.Code
		return err
	}
	s.policy = sp
	if ef, ok := sp.(ErrorFilter); ok {
		s.errFilter = ef
	}
	if sw, ok := sp.(SettingsWatcher); ok {
		s.settings = sw
	}
	if id, ok := sp.(Identity); ok {
		who := id.Identity()
		s.identity = &who
	}
	cfg := &s.srv.cfg
	if sp != nil || cfg.AccessLog != nil {
		wc, _ := sp.(WireChecker)
		s.wire = newWireState(wc, cfg.AccessLog != nil || cfg.Metrics != nil)
		s.wire.follower, _ = sp.(Follower)
		s.wire.counts = s.srv.shapes
	}
	return nil
}

// cancelPacket builds the CancelRequest for a BackendKeyData body.
func cancelPacket(key []byte) []byte {
	p := make([]byte, 8, 8+len(key))
	binary.BigEndian.PutUint32(p[0:], uint32(8+len(key)))
	binary.BigEndian.PutUint32(p[4:], cancelRequestCode)
	return append(p, key...)
}

// appendSASLWithoutBinding appends an AuthenticationSASL message listing the
// server's mechanisms minus the channel-binding (-PLUS) ones.
func appendSASLWithoutBinding(dst, msg []byte) []byte {
	start := len(dst)
	dst = append(dst, byte(serverAuthentication), 0, 0, 0, 0, 0, 0, 0, authSASL)
	for _, m := range bytes.Split(msg[9:], []byte{0}) {
		if len(m) == 0 || bytes.HasSuffix(m, []byte("-PLUS")) {
			continue
		}
		dst = append(append(dst, m...), 0)
	}
	dst = append(dst, 0)
	binary.BigEndian.PutUint32(dst[start+1:], uint32(len(dst)-start-1))
	return dst
}

// checkSASLBinding refuses a SCRAM exchange that cannot succeed: a client on
// TLS that supports channel binding says so ("y" flag), and a server on TLS
// must then fail it as a downgrade attack. The client has to turn channel
// binding off for a proxied connection.
func checkSASLBinding(msg []byte) *Error {
	var ir pgproto3.SASLInitialResponse
	if err := ir.Decode(msg[5:]); err != nil {
		return errProtocol("invalid SASLInitialResponse: " + err.Error())
	}
	if bytes.HasPrefix(ir.Data, []byte("y,")) {
		return &Error{
			Severity: "FATAL",
			Code:     pgerrcode.InvalidAuthorizationSpecification,
			Message:  "SCRAM channel binding cannot cross pgcloak, and the database server would reject this exchange as a downgrade",
			Hint:     "Connect with channel_binding=disable: pgcloak verifies its own certificate to you and the server's to itself.",
		}
	}
	return nil
}

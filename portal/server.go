package portal

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgcloak/pgcloak/audit"
	"github.com/pgcloak/pgcloak/rules"
)

// maxBody bounds a form post.
const maxBody = 16 << 10

// Config configures a portal.
type Config struct {
	Policy *rules.Policy
	// DB connects as the portal's own login (docs/portal.md lists its
	// grants).
	DB *pgxpool.Pool
	// Key signs and verifies links (KeyFromEnv).
	Key []byte
	// Requester is the login of the rules that corrections are recorded
	// for; an approver decides them with pgcloak review. Default: the
	// database login of DB.
	Requester string
	// TLS marks the session cookie Secure.
	TLS bool
	// Audit, if set, gets an access record for everything a visitor does.
	Audit  *audit.Log
	Logger *slog.Logger
	// Now is the clock (tests); default time.Now.
	Now func() time.Time
}

// Server is the portal's HTTP handler.
type Server struct {
	cfg      Config
	m        *model
	sessions sessions
	mux      *http.ServeMux
	log      *slog.Logger
}

// New checks the rules and the database and returns the portal.
func New(ctx context.Context, cfg Config) (*Server, error) {
	if len(cfg.Key) < MinKeyLen {
		return nil, fmt.Errorf("portal: the link key must be at least %d bytes", MinKeyLen)
	}
	if cfg.Requester == "" {
		cfg.Requester = cfg.DB.Config().ConnConfig.User
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	m, err := newModel(ctx, cfg.DB, cfg.Policy, cfg.Requester)
	if err != nil {
		return nil, err
	}
	var ok bool
	if err := cfg.DB.QueryRow(ctx, `SELECT pg_catalog.to_regclass('pgcloak.opt_out_history') IS NOT NULL
		AND pg_catalog.to_regclass('pgcloak.change_requests') IS NOT NULL`).Scan(&ok); err != nil {
		return nil, err
	}
	if !ok {
		return nil, errors.New("portal: pgcloak's tables are missing: run pgcloak setup --database DSN (as the tables' owner)")
	}
	s := &Server{cfg: cfg, m: m, mux: http.NewServeMux(), log: cfg.Logger}
	s.mux.HandleFunc("GET /enter", s.enter)
	s.mux.HandleFunc("GET /{$}", s.withSession(s.page))
	s.mux.HandleFunc("GET /data.json", s.withSession(s.download))
	s.mux.HandleFunc("POST /opt-out", s.withSession(s.post(s.optOut, "purpose", "choice")))
	s.mux.HandleFunc("POST /correct", s.withSession(s.post(s.correct, "column", "value")))
	s.mux.HandleFunc("POST /logout", s.withSession(s.post(s.logout)))
	s.mux.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	s.mux.HandleFunc("GET /style.css", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/css; charset=utf-8")
		w.Header().Set("Cache-Control", "public, max-age=3600")
		w.Write([]byte(styleCSS))
	})
	return s, nil
}

// ServeHTTP sets the headers every answer carries and routes.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	// same-origin, not no-referrer: with no-referrer the browser sends
	// "Origin: null" on the portal's own form posts. No page of the portal
	// links elsewhere, so the link's signature never leaves it.
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
	if s.cfg.TLS {
		h.Set("Strict-Transport-Security", "max-age=31536000")
	}
	if len(r.URL.RawQuery) > 1024 {
		s.fail(w, http.StatusRequestURITooLong, "The address is too long.")
		return
	}
	s.mux.ServeHTTP(w, r)
}

// subjectRef is how the access log names a subject: a keyed hash that
// ties one subject's records together without saying who they are.
func (s *Server) subjectRef(subject string) string {
	m := hmac.New(sha256.New, s.cfg.Key)
	m.Write([]byte("pgcloak-portal-log\n" + subject))
	return "subject:" + hex.EncodeToString(m.Sum(nil))[:16]
}

// record writes one access record of what the portal did for a visitor.
func (s *Server) record(r *http.Request, subject, kind, decision, reason, purpose string, objects ...audit.Object) {
	if s.cfg.Audit == nil {
		return
	}
	rec := &audit.Record{Time: s.cfg.Now(), Type: "portal", Login: s.cfg.DB.Config().ConnConfig.User,
		Client: r.RemoteAddr, TLS: r.TLS != nil,
		Statement: &audit.Statement{Role: s.m.requester.Role.Name, Purpose: purpose, Kind: kind, Objects: objects,
			Decision: decision, Reason: reason}}
	if subject != "" {
		rec.Outcome = s.subjectRef(subject)
	}
	s.cfg.Audit.Emit(rec)
}

// admit refuses a change while the access log cannot take its record.
func (s *Server) admit() error {
	if s.cfg.Audit == nil {
		return nil
	}
	return s.cfg.Audit.Admit()
}

func (s *Server) fail(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	pageTmpl.ExecuteTemplate(w, "error", map[string]any{"Code": code, "Status": http.StatusText(code), "Message": msg})
}

const linkRefused = "This link is not valid, or it has expired. Ask for a new one."

// enter exchanges a signed link for a session cookie.
func (s *Server) enter(w http.ResponseWriter, r *http.Request) {
	now := s.cfg.Now()
	subject, err := VerifyLink(s.cfg.Key, r.URL.Query(), now)
	if err != nil {
		reason := map[error]string{ErrLinkMalformed: "portal.link_malformed", ErrLinkSignature: "portal.link_signature",
			ErrLinkExpired: "portal.link_expired"}[err]
		s.record(r, "", "portal_enter", audit.Denied, reason, "")
		s.fail(w, http.StatusForbidden, linkRefused)
		return
	}
	ok, err := s.m.exists(r.Context(), s.cfg.DB, subject)
	if err != nil {
		s.serverError(w, err)
		return
	}
	if !ok {
		s.record(r, subject, "portal_enter", audit.Denied, "portal.unknown_subject", "")
		s.fail(w, http.StatusForbidden, linkRefused)
		return
	}
	exp, _ := strconv.ParseInt(r.URL.Query().Get("expires"), 10, 64)
	id := s.sessions.start(subject, time.Unix(exp, 0), now)
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: id, Path: "/", HttpOnly: true,
		Secure: s.cfg.TLS, SameSite: http.SameSiteStrictMode})
	s.record(r, subject, "portal_enter", audit.Allowed, "", "")
	// A page of the portal's own, not a redirect, moves the visitor on: a
	// redirect would still count as the cross-site navigation from the
	// e-mail that brought them, and the browser would hold back the
	// SameSite=Strict cookie.
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	pageTmpl.ExecuteTemplate(w, "enter", nil)
}

type handler func(w http.ResponseWriter, r *http.Request, id string, se session)

// withSession runs h for the visitor's live session, or answers 403.
func (s *Server) withSession(h handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c, err := r.Cookie(cookieName)
		if err != nil || len(c.Value) != 2*sessionIDBytes {
			s.fail(w, http.StatusForbidden, "Your session has ended, or you have not opened your link yet. Use the link you were sent.")
			return
		}
		se, ok := s.sessions.get(c.Value, s.cfg.Now())
		if !ok {
			s.fail(w, http.StatusForbidden, "Your session has ended. Use the link you were sent again.")
			return
		}
		h(w, r, c.Value, se)
	}
}

// post checks a form post: size, origin, exactly the fields expected (each
// once) and a CSRF token of this session that was not used yet.
func (s *Server) post(h func(w http.ResponseWriter, r *http.Request, id string, se session, f url.Values), fields ...string) handler {
	return func(w http.ResponseWriter, r *http.Request, id string, se session) {
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		if err := r.ParseForm(); err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				s.fail(w, http.StatusRequestEntityTooLarge, "That was more than the portal accepts.")
				return
			}
			s.fail(w, http.StatusBadRequest, "The form could not be read.")
			return
		}
		if o := r.Header.Get("Origin"); o != "" && o != s.origin(r) {
			s.fail(w, http.StatusForbidden, "The form did not come from this portal.")
			return
		}
		f := r.PostForm
		if len(r.URL.RawQuery) > 0 || len(f) != len(fields)+1 {
			s.fail(w, http.StatusBadRequest, "The form is not one of the portal's.")
			return
		}
		for _, name := range append([]string{csrfField}, fields...) {
			if v, ok := f[name]; !ok || len(v) != 1 {
				s.fail(w, http.StatusBadRequest, "The form is not one of the portal's.")
				return
			}
		}
		if !s.sessions.consume(id, f.Get(csrfField), s.cfg.Now()) {
			s.fail(w, http.StatusForbidden, "This form was already sent, or is from another session. Go back to the portal's page and try again.")
			return
		}
		h(w, r, id, se, f)
	}
}

func (s *Server) origin(r *http.Request) string {
	if s.cfg.TLS || r.TLS != nil {
		return "https://" + r.Host
	}
	return "http://" + r.Host
}

func (s *Server) serverError(w http.ResponseWriter, err error) {
	s.log.Error("portal", "err", err)
	s.fail(w, http.StatusInternalServerError, "Something went wrong on our side. Try again later.")
}

func (s *Server) back(w http.ResponseWriter, r *http.Request, id, flash string) {
	s.sessions.setFlash(id, flash)
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (s *Server) subjectObject(access string, cols ...string) audit.Object {
	o := audit.Object{Relation: s.m.subject.Table.String(), Access: access, Protected: true}
	if len(cols) > 0 {
		o.Columns = map[string]string{}
		tab := s.cfg.Policy.Table(s.m.subject.Table)
		for _, c := range cols {
			if rc := tab.Column(c); rc != nil {
				o.Columns[c] = rc.Class.String()
			}
		}
	}
	return o
}

func (s *Server) readObjects() []audit.Object {
	var out []audit.Object
	for _, t := range s.m.tables {
		out = append(out, audit.Object{Relation: t.name.String(), Access: "read", Protected: true})
	}
	return out
}

func (s *Server) page(w http.ResponseWriter, r *http.Request, id string, se session) {
	x, err := s.m.load(r.Context(), s.cfg.DB, se.subject)
	if err != nil {
		s.serverError(w, err)
		return
	}
	s.record(r, se.subject, "portal_view", audit.Allowed, "", "", s.readObjects()...)
	v := s.view(x)
	v.CSRF = s.sessions.issue(id, s.cfg.Now())
	v.Flash = s.sessions.takeFlash(id)
	v.Expires = se.expires.UTC().Format("2006-01-02 15:04 MST")
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := pageTmpl.ExecuteTemplate(w, "page", v); err != nil {
		s.log.Error("portal: page", "err", err)
	}
}

func (s *Server) download(w http.ResponseWriter, r *http.Request, id string, se session) {
	x, err := s.m.load(r.Context(), s.cfg.DB, se.subject)
	if err != nil {
		s.serverError(w, err)
		return
	}
	s.record(r, se.subject, "portal_export", audit.Allowed, "", "", s.readObjects()...)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="my-data.json"`)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(x)
}

func (s *Server) optOut(w http.ResponseWriter, r *http.Request, id string, se session, f url.Values) {
	purpose, choice := f.Get("purpose"), f.Get("choice")
	if choice != "out" && choice != "in" {
		s.fail(w, http.StatusBadRequest, "The form is not one of the portal's.")
		return
	}
	known := false
	for _, p := range s.m.purposes {
		known = known || p.purpose == purpose
	}
	if !known {
		s.fail(w, http.StatusBadRequest, "The form is not one of the portal's.")
		return
	}
	if err := s.admit(); err != nil {
		s.serverError(w, fmt.Errorf("access log: %w", err))
		return
	}
	changed, err := s.m.setOptOut(r.Context(), s.cfg.DB, se.subject, purpose, choice == "out")
	if err != nil {
		s.serverError(w, err)
		return
	}
	kind, msg := "portal_opt_out", "You opted out of "+purposeLabel(purpose)+". It applies from now on."
	if choice == "in" {
		kind, msg = "portal_opt_in", "You allowed "+purposeLabel(purpose)+" again."
	}
	decision := "applied"
	if !changed {
		decision, msg = "unchanged", "Nothing changed: that was already your choice."
	}
	obj := audit.Object{Access: "write", Protected: true}
	if o := s.m.subject.OptOuts; o != nil && s.m.subject.OptOutFlags[purpose] == "" {
		obj.Relation = o.Table.String()
	} else {
		obj.Relation = s.m.subject.Table.String()
	}
	s.record(r, se.subject, kind, decision, "", purpose, obj,
		audit.Object{Relation: "pgcloak.opt_out_history", Access: "write"})
	s.back(w, r, id, msg)
}

func (s *Server) correct(w http.ResponseWriter, r *http.Request, id string, se session, f url.Values) {
	column, value := f.Get("column"), strings.TrimSpace(f.Get("value"))
	if len(value) > maxValueLen {
		s.fail(w, http.StatusRequestEntityTooLarge, "That value is longer than the portal accepts.")
		return
	}
	if !utf8.ValidString(value) || strings.ContainsFunc(value, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		s.back(w, r, id, "That value has characters the portal does not accept.")
		return
	}
	if value == "" {
		s.back(w, r, id, "Enter the correct value.")
		return
	}
	if err := s.admit(); err != nil {
		s.serverError(w, fmt.Errorf("access log: %w", err))
		return
	}
	rid, err := s.m.requestCorrection(r.Context(), s.cfg.DB, se.subject, column, value)
	switch {
	case errors.Is(err, errUnknownColumn):
		s.fail(w, http.StatusBadRequest, "The form is not one of the portal's.")
		return
	case errors.Is(err, errBadValue):
		s.back(w, r, id, "That is not a valid value for "+columnLabel(column)+".")
		return
	case errors.Is(err, errTooMany):
		s.back(w, r, id, fmt.Sprintf("You have %d corrections waiting for review; send more once they are decided.", maxPending))
		return
	case err != nil:
		s.serverError(w, err)
		return
	}
	s.record(r, se.subject, "portal_correction", "recorded", "", "", s.subjectObject("write", column),
		audit.Object{Relation: "pgcloak.change_requests", Access: "write"})
	s.back(w, r, id, fmt.Sprintf("Thank you. Your correction (request %d) waits for review; its status is below.", rid))
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request, id string, se session, f url.Values) {
	s.sessions.end(id)
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: "/", MaxAge: -1, HttpOnly: true,
		Secure: s.cfg.TLS, SameSite: http.SameSiteStrictMode})
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	pageTmpl.ExecuteTemplate(w, "bye", nil)
}

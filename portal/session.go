package portal

import (
	"crypto/rand"
	"encoding/hex"
	"sync"
	"time"
)

// Session limits.
const (
	sessionTTL     = 30 * time.Minute // idle time after which a session ends
	maxSessions    = 10000
	maxCSRFTokens  = 16 // outstanding form tokens per session (open tabs)
	cookieName     = "pgcloak_portal"
	csrfField      = "csrf"
	sessionIDBytes = 32
)

// session is one visitor's time in the portal, scoped to the one subject
// the link they came with named. It lives only in the portal's memory: a
// restart ends every session, and the visitor uses their link again.
type session struct {
	subject string
	expires time.Time // the link's expiry: a session never outlives its link
	seen    time.Time
	tokens  map[string]time.Time // single-use CSRF tokens and when they were issued
	flash   string
}

// sessions holds the live sessions by id.
type sessions struct {
	mu sync.Mutex
	m  map[string]*session
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return hex.EncodeToString(b)
}

// start makes a new session for subject; a visitor who comes with a link
// again gets a new one, never the old one's id.
func (s *sessions) start(subject string, linkExpires, now time.Time) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string]*session{}
	}
	if len(s.m) >= maxSessions {
		s.pruneLocked(now)
	}
	if len(s.m) >= maxSessions {
		// Drop the session idle the longest.
		var oldest string
		var at time.Time
		for id, se := range s.m {
			if oldest == "" || se.seen.Before(at) {
				oldest, at = id, se.seen
			}
		}
		delete(s.m, oldest)
	}
	id := randomHex(sessionIDBytes)
	s.m[id] = &session{subject: subject, expires: linkExpires, seen: now, tokens: map[string]time.Time{}}
	return id
}

func (s *sessions) pruneLocked(now time.Time) {
	for id, se := range s.m {
		if !s.live(se, now) {
			delete(s.m, id)
		}
	}
}

func (s *sessions) live(se *session, now time.Time) bool {
	return now.Before(se.expires) && now.Sub(se.seen) < sessionTTL
}

// get returns a copy of the live session id names, and marks it used.
func (s *sessions) get(id string, now time.Time) (session, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	se, ok := s.m[id]
	if !ok {
		return session{}, false
	}
	if !s.live(se, now) {
		delete(s.m, id)
		return session{}, false
	}
	se.seen = now
	return session{subject: se.subject, expires: se.expires, seen: se.seen}, true
}

// end removes a session.
func (s *sessions) end(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, id)
}

// issue makes a new CSRF token for one page of the session; the page's
// forms carry it, and the first post with it uses it up.
func (s *sessions) issue(id string, now time.Time) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	se, ok := s.m[id]
	if !ok {
		return ""
	}
	if len(se.tokens) >= maxCSRFTokens {
		var oldest string
		var at time.Time
		for t, issued := range se.tokens {
			if oldest == "" || issued.Before(at) {
				oldest, at = t, issued
			}
		}
		delete(se.tokens, oldest)
	}
	t := randomHex(32)
	se.tokens[t] = now
	return t
}

// consume uses up token of session id; false if the session does not have
// it (never issued, issued to another session, or already used).
func (s *sessions) consume(id, token string, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	se, ok := s.m[id]
	if !ok || token == "" || !s.live(se, now) {
		return false
	}
	if _, ok := se.tokens[token]; !ok {
		return false
	}
	delete(se.tokens, token)
	return true
}

// setFlash keeps a message for the session's next page; takeFlash
// returns and clears it.
func (s *sessions) setFlash(id, msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if se, ok := s.m[id]; ok {
		se.flash = msg
	}
}

func (s *sessions) takeFlash(id string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	se, ok := s.m[id]
	if !ok {
		return ""
	}
	f := se.flash
	se.flash = ""
	return f
}

package engine

import (
	"fmt"
	"strings"

	"github.com/jackc/pgerrcode"

	"github.com/pgcloak/pgcloak/proxy"
)

// ParameterStatus follows, for the whole of a restricted session, the
// settings the session guards checked at start-up (Open): pgcloak parses
// statements as the server will only while standard_conforming_strings is
// on and the client encoding cannot hide a quote in a multibyte character,
// and its principal is the login only while the server runs as it. A
// change by any route ends the session: what pgcloak forwarded after it
// could be read differently by the server.
func (s *session) ParameterStatus(name, value string) *proxy.Error {
	if !s.watching.Load() {
		return nil
	}
	bad := ""
	switch name {
	case "standard_conforming_strings":
		if value != "on" {
			bad = "standard_conforming_strings is off"
		}
	case "client_encoding":
		if unsafeEncodings[strings.ToUpper(value)] {
			bad = "client_encoding is " + value
		}
	case "session_authorization", "is_superuser", "search_path", "role":
		if was, ok := s.startParams[name]; !ok || was != value {
			bad = name + " changed"
		}
	}
	if bad == "" {
		return nil
	}
	return &proxy.Error{Code: pgerrcode.InsufficientPrivilege,
		Message: fmt.Sprintf("pgcloak: %s, so pgcloak can no longer check this session's statements; the session ends (rule: settings)", bad)}
}

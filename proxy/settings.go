package proxy

import "github.com/jackc/pgx/v5/pgproto3"

// SettingsWatcher is implemented by a SessionPolicy whose decisions rest
// on session settings that change how the server reads SQL text
// (standard_conforming_strings, client_encoding) or whom it runs as. The
// server reports every change of such a setting with a ParameterStatus
// message, however it was made (SET, set_config, an UPDATE of pg_settings,
// a function's SET clause); the proxy shows each one to the watcher, so a
// change the policy did not see coming cannot go unnoticed for the rest of
// the session.
type SettingsWatcher interface {
	// ParameterStatus is called, from the goroutine that relays server
	// messages, for every setting the server reports after start-up. A
	// non-nil Error ends the session: the client gets it as a FATAL
	// error in place of the report, and the server connection is closed.
	ParameterStatus(name, value string) *Error
}

// watchSetting shows a ParameterStatus message to the session's watcher and
// returns the error that ends the session, if any.
func (s *session) watchSetting(msg []byte) *Error {
	var ps pgproto3.ParameterStatus
	if err := ps.Decode(msg[5:]); err != nil {
		return errProtocol("pgcloak: the server sent an invalid ParameterStatus message")
	}
	e := s.settings.ParameterStatus(ps.Name, ps.Value)
	if e == nil {
		return nil
	}
	c := *e
	c.Severity = "FATAL"
	return &c
}

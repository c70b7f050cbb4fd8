package engine

import "testing"

func TestParameterStatusWatch(t *testing.T) {
	s := &session{startParams: map[string]string{"session_authorization": "alice", "is_superuser": "off"}}
	cases := []struct {
		name, value string
		ends        bool
	}{
		{"standard_conforming_strings", "on", false},
		{"standard_conforming_strings", "off", true},
		{"client_encoding", "UTF8", false},
		{"client_encoding", "LATIN1", false},
		{"client_encoding", "SJIS", true},
		{"client_encoding", "big5", true},
		{"session_authorization", "alice", false},
		{"session_authorization", "postgres", true},
		{"is_superuser", "on", true},
		{"search_path", "public", true}, // not reported at start: any report is a change
		{"application_name", "x", false},
		{"TimeZone", "UTC", false},
	}
	for _, c := range cases {
		if e := s.ParameterStatus(c.name, c.value); e != nil {
			t.Errorf("unrestricted session ended by %s=%s", c.name, c.value)
		}
	}
	s.watching.Store(true)
	for _, c := range cases {
		e := s.ParameterStatus(c.name, c.value)
		if (e != nil) != c.ends {
			t.Errorf("%s=%s: ends %v, want %v", c.name, c.value, e != nil, c.ends)
		}
		if e != nil && e.Code != "42501" {
			t.Errorf("%s=%s: SQLSTATE %s", c.name, c.value, e.Code)
		}
	}
}

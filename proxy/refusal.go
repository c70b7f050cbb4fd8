package proxy

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"strings"
)

// A refusal travels through the server as a statement that fails during
// parse analysis (the cast of an unknown literal to int4 runs there), with
// the refusal itself encoded in the literal. The server's error echoes the
// literal; the server-to-client relay recognises it, checks its MAC and
// sends the refusal instead. Because the server really failed at that point,
// it keeps the state a real error leaves: transaction block aborted,
// extended-protocol messages discarded until Sync, earlier statements of a
// multi-statement Query executed and later ones not.
//
// The encoding is stateless, so a policy can place refusals anywhere in the
// SQL it sends (one statement of several), and the MAC, keyed per process,
// means a client cannot make pgcloak relay an error it invented.

const refusalMarker = "pgcloak-refusal:"

var refusalKey = func() []byte {
	k := make([]byte, 32)
	rand.Read(k)
	return k
}()

var b64 = base64.RawURLEncoding

// RefusalSQL returns a statement that makes the server fail, and the client
// receive e, at the point where the statement stands.
func RefusalSQL(e *Error) string {
	body := b64.EncodeToString([]byte(e.Code + "\x00" + e.Message + "\x00" + e.Detail + "\x00" + e.Hint))
	return "SELECT '" + refusalMarker + body + "." + refusalMAC(body) + "'::pg_catalog.int4"
}

func refusalMAC(body string) string {
	m := hmac.New(sha256.New, refusalKey)
	m.Write([]byte(body))
	return b64.EncodeToString(m.Sum(nil)[:16])
}

// matchRefusal returns the refusal an ErrorResponse from the server stands
// for, or nil.
func matchRefusal(msg []byte) *Error {
	i := bytes.Index(msg, []byte(refusalMarker))
	if i < 0 {
		return nil
	}
	rest := msg[i+len(refusalMarker):]
	end := bytes.IndexAny(rest, "\"\x00")
	if end < 0 {
		return nil
	}
	body, mac, ok := strings.Cut(string(rest[:end]), ".")
	if !ok || !hmac.Equal([]byte(mac), []byte(refusalMAC(body))) {
		return nil
	}
	raw, err := b64.DecodeString(body)
	if err != nil {
		return nil
	}
	f := strings.SplitN(string(raw), "\x00", 4)
	if len(f) != 4 {
		return nil
	}
	return &Error{Code: f[0], Message: f[1], Detail: f[2], Hint: f[3]}
}

package portal

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// KeyEnv is the environment variable that holds the key links are signed
// with. The CRM that makes links itself needs the same value.
const KeyEnv = "PGCLOAK_PORTAL_KEY"

// MinKeyLen is the shortest key accepted, in bytes.
const MinKeyLen = 32

// MaxLinkTTL is the longest a link may be valid for.
const MaxLinkTTL = 31 * 24 * time.Hour

// maxSubjectLen bounds the subject key a link may carry.
const maxSubjectLen = 200

// linkVersion starts the signed message, so that a signature over anything
// else pgcloak may sign with the same key one day is never a valid link.
const linkVersion = "pgcloak-portal-v1"

// KeyFromEnv reads the link key from PGCLOAK_PORTAL_KEY: its bytes as they
// are (docs/portal.md suggests 64 hex digits from a random source).
func KeyFromEnv() ([]byte, error) {
	k := os.Getenv(KeyEnv)
	if k == "" {
		return nil, fmt.Errorf("%s is not set: set it to a random secret of at least %d bytes (openssl rand -hex 32)", KeyEnv, MinKeyLen)
	}
	if len(k) < MinKeyLen {
		return nil, fmt.Errorf("%s is %d bytes long; it needs at least %d", KeyEnv, len(k), MinKeyLen)
	}
	return []byte(k), nil
}

// Signature is the link signature of subject valid until expires (a Unix
// time in seconds): the lowercase hex HMAC-SHA256, under key, of
//
//	"pgcloak-portal-v1\n" + subject + "\n" + expires in decimal
func Signature(key []byte, subject string, expires int64) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(linkVersion + "\n" + subject + "\n" + strconv.FormatInt(expires, 10)))
	return hex.EncodeToString(m.Sum(nil))
}

// Link is the portal address that lets the subject in until expires:
// base + "/enter?subject=…&expires=…&sig=…".
func Link(base string, key []byte, subject string, expires time.Time) string {
	exp := expires.Unix()
	q := url.Values{}
	q.Set("subject", subject)
	q.Set("expires", strconv.FormatInt(exp, 10))
	q.Set("sig", Signature(key, subject, exp))
	return strings.TrimSuffix(base, "/") + "/enter?" + q.Encode()
}

// Errors of VerifyLink. Their text is for the server log, never for the
// visitor, who sees one 403 page whatever went wrong.
var (
	ErrLinkMalformed = errors.New("portal link: malformed")
	ErrLinkSignature = errors.New("portal link: bad signature")
	ErrLinkExpired   = errors.New("portal link: expired")
)

// VerifyLink checks the query parameters of an /enter request and returns
// the subject key the link is for. The signature is checked before
// anything else is believed, in constant time.
func VerifyLink(key []byte, q url.Values, now time.Time) (string, error) {
	for name, v := range q {
		if len(v) != 1 || (name != "subject" && name != "expires" && name != "sig") {
			return "", ErrLinkMalformed
		}
	}
	subject, expStr, sigHex := q.Get("subject"), q.Get("expires"), q.Get("sig")
	if subject == "" || len(subject) > maxSubjectLen || !utf8.ValidString(subject) || strings.ContainsRune(subject, 0) ||
		len(expStr) == 0 || len(expStr) > 12 || len(sigHex) != 2*sha256.Size {
		return "", ErrLinkMalformed
	}
	exp, err := strconv.ParseInt(expStr, 10, 64)
	if err != nil || exp <= 0 || strconv.FormatInt(exp, 10) != expStr {
		return "", ErrLinkMalformed
	}
	sig, err := hex.DecodeString(sigHex)
	if err != nil {
		return "", ErrLinkMalformed
	}
	want, _ := hex.DecodeString(Signature(key, subject, exp))
	if !hmac.Equal(sig, want) {
		return "", ErrLinkSignature
	}
	t := time.Unix(exp, 0)
	if !now.Before(t) {
		return "", ErrLinkExpired
	}
	if t.Sub(now) > MaxLinkTTL {
		return "", ErrLinkMalformed
	}
	return subject, nil
}

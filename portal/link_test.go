package portal

import (
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"
)

// The worked example of docs/portal.md: whoever implements the algorithm
// in the CRM can check their code against it.
func TestLinkWorkedExample(t *testing.T) {
	key := []byte("7c0c3c1e5a2f4b8d9e6a1b2c3d4e5f60718293a4b5c6d7e8f9a0b1c2d3e4f5a6")
	got := Signature(key, "1042", 1767225600)
	const want = "d8a3701dca5ca07e4245e84d316e08fd65f910bf6e2a54316c4dfec9e51f9a3f"
	if got != want {
		t.Fatalf("Signature = %s, docs/portal.md says %s", got, want)
	}
	link := Link("https://portal.example.com/", key, "1042", time.Unix(1767225600, 0))
	if link != "https://portal.example.com/enter?expires=1767225600&sig="+want+"&subject=1042" {
		t.Fatalf("Link = %s", link)
	}
}

func TestLinkVerify(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	exp := now.Add(time.Hour)
	good := func() url.Values {
		u, _ := url.Parse(Link("https://p", testKey, "42", exp))
		return u.Query()
	}
	if s, err := VerifyLink(testKey, good(), now); err != nil || s != "42" {
		t.Fatalf("good link: %q %v", s, err)
	}
	// A subject key with characters that need escaping survives the trip.
	u, _ := url.Parse(Link("https://p", testKey, "a&b=c d/é", exp))
	if s, err := VerifyLink(testKey, u.Query(), now); err != nil || s != "a&b=c d/é" {
		t.Fatalf("escaped subject: %q %v", s, err)
	}
	flip := func(s string) string {
		b := []byte(s)
		if b[0] == 'a' {
			b[0] = 'b'
		} else {
			b[0] = 'a'
		}
		return string(b)
	}
	cases := []struct {
		name   string
		change func(q url.Values)
		now    time.Time
		want   error
	}{
		{"other subject", func(q url.Values) { q.Set("subject", "43") }, now, ErrLinkSignature},
		{"subject with a suffix", func(q url.Values) { q.Set("subject", "42 ") }, now, ErrLinkSignature},
		{"later expiry", func(q url.Values) { q.Set("expires", "1800007200") }, now, ErrLinkSignature},
		{"expiry with a leading zero", func(q url.Values) { q.Set("expires", "0"+q.Get("expires")) }, now, ErrLinkMalformed},
		{"negative expiry", func(q url.Values) { q.Set("expires", "-1") }, now, ErrLinkMalformed},
		{"flipped signature", func(q url.Values) { q.Set("sig", flip(q.Get("sig"))) }, now, ErrLinkSignature},
		{"upper-case signature", func(q url.Values) { q.Set("sig", strings.ToUpper(q.Get("sig"))) }, now, nil},
		{"short signature", func(q url.Values) { q.Set("sig", q.Get("sig")[:62]) }, now, ErrLinkMalformed},
		{"no signature", func(q url.Values) { q.Del("sig") }, now, ErrLinkMalformed},
		{"no subject", func(q url.Values) { q.Del("subject") }, now, ErrLinkMalformed},
		{"two subjects", func(q url.Values) { q.Add("subject", "43") }, now, ErrLinkMalformed},
		{"extra parameter", func(q url.Values) { q.Set("customer_id", "43") }, now, ErrLinkMalformed},
		{"long subject", func(q url.Values) { q.Set("subject", strings.Repeat("1", 201)) }, now, ErrLinkMalformed},
		{"expired", func(q url.Values) {}, exp, ErrLinkExpired},
		{"expired long ago", func(q url.Values) {}, exp.Add(24 * time.Hour), ErrLinkExpired},
	}
	for _, c := range cases {
		q := good()
		c.change(q)
		_, err := VerifyLink(testKey, q, c.now)
		if c.name == "upper-case signature" {
			// hex decoding accepts either case; the bytes are the same MAC.
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
			}
			continue
		}
		if !errors.Is(err, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, err, c.want)
		}
	}
	// Another key's link is not a link.
	other := []byte(strings.Repeat("k", 40))
	u, _ = url.Parse(Link("https://p", other, "42", exp))
	if _, err := VerifyLink(testKey, u.Query(), now); !errors.Is(err, ErrLinkSignature) {
		t.Errorf("another key's link: %v", err)
	}
	// A link valid for longer than MaxLinkTTL was not made by pgcloak.
	far := now.Add(MaxLinkTTL + time.Hour)
	u, _ = url.Parse(Link("https://p", testKey, "42", far))
	if _, err := VerifyLink(testKey, u.Query(), now); !errors.Is(err, ErrLinkMalformed) {
		t.Errorf("link beyond MaxLinkTTL: %v", err)
	}
}

func TestKeyFromEnv(t *testing.T) {
	t.Setenv(KeyEnv, "")
	if _, err := KeyFromEnv(); err == nil {
		t.Error("no key: no error")
	}
	t.Setenv(KeyEnv, "short")
	if _, err := KeyFromEnv(); err == nil {
		t.Error("short key: no error")
	}
	t.Setenv(KeyEnv, strings.Repeat("x", 32))
	if k, err := KeyFromEnv(); err != nil || len(k) != 32 {
		t.Errorf("32-byte key: %d %v", len(k), err)
	}
}

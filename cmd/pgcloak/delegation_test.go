package main

import (
	"context"
	"encoding/hex"
	"fmt"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pgcloak/pgcloak/audit"
	"github.com/pgcloak/pgcloak/examples/crm"
	"github.com/pgcloak/pgcloak/internal/cloaktest"
	"github.com/pgcloak/pgcloak/rules"
)

// Signed delegation: the signature covers the login, an expiry and the
// session (the server process id); the access log records the end user's
// login, never the value; a value for another session, an expired one,
// and one naming an end user of a role the application may not name are
// refused.
func TestSignedDelegation(t *testing.T) {
	const keyEnv = "PGCLOAK_TEST_DELEGATION_KEY"
	key := "0123456789abcdef-test-key"
	t.Setenv(keyEnv, key)
	src := strings.Replace(string(crm.Rules), "    unsigned: true", "    key_env: "+keyEnv, 1)
	pol, err := rules.Parse("rules.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if f := pol.CheckRules(); len(f) != 0 {
		t.Fatalf("signed delegation still reported: %v", f)
	}
	pg, _ := accessFixture(t)
	eng := cloaktest.Engine(t, pg, pol, slog.New(slog.DiscardHandler))
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "audit.log")
	c := startCloak(t, eng, audit.Options{File: path})
	app := c.connect(t, "crm_app")
	other := c.connect(t, "crm_app")
	sign := func(login string, expiry time.Time, pid uint32) string {
		exp := strconv.FormatInt(expiry.Unix(), 10)
		return login + ":" + exp + ":" + hex.EncodeToString(rules.SignEndUser([]byte(key), login, exp, strconv.FormatUint(uint64(pid), 10)))
	}
	exec := func(sql string) error {
		_, err := app.Exec(ctx, sql).ReadAll()
		return err
	}
	set := func(value string) error { return exec("SET pgcloak.end_user = '" + value + "'") }
	soon := time.Now().Add(time.Hour)

	for _, bad := range []struct{ why, value string }{
		{"unsigned", "alice"},
		{"another session's", sign("alice", soon, other.PID())},
		{"expired", sign("alice", time.Now().Add(-time.Minute), app.PID())},
		{"a role not listed for the application", sign("petra", soon, app.PID())},
		{"a role not listed for the application", sign("connie", soon, app.PID())},
	} {
		if err := set(bad.value); err == nil {
			t.Errorf("%s value accepted", bad.why)
		}
	}
	good := sign("alice", soon, app.PID())
	if err := set(good); err != nil {
		t.Fatal(err)
	}
	if err := exec("SELECT count(*) FROM customers"); err != nil {
		t.Fatal(err)
	}
	c.stop(t)
	sig := good[strings.LastIndex(good, ":")+1:]
	n := 0
	for _, r := range records(t, path) {
		if s := fmt.Sprint(r); strings.Contains(s, sig) {
			t.Errorf("the signed value is in the access log: %v", r)
		}
		if r["type"] == "statement" && r["kind"] == "select" {
			n++
			if r["end_user"] != "alice" {
				t.Errorf("end user %v, want alice", r["end_user"])
			}
		}
	}
	if n != 1 {
		t.Errorf("%d select records", n)
	}
}

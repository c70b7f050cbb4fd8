package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// leafKeys lists the dotted keys of pgcloak.yaml, from fileConfig's tags.
func leafKeys(prefix string, t reflect.Type) []string {
	var keys []string
	for i := range t.NumField() {
		f := t.Field(i)
		key := strings.Split(f.Tag.Get("yaml"), ",")[0]
		if prefix != "" {
			key = prefix + "." + key
		}
		if f.Type.Kind() == reflect.Struct {
			keys = append(keys, leafKeys(key, f.Type)...)
			continue
		}
		keys = append(keys, key)
	}
	return keys
}

func TestEveryKeyHasAFlagAndAnEnv(t *testing.T) {
	byKey := map[string]setting{}
	flags := map[string]bool{}
	for _, s := range settings {
		if _, dup := byKey[s.key]; dup {
			t.Errorf("key %s listed twice", s.key)
		}
		if flags[s.flag] {
			t.Errorf("flag --%s used twice", s.flag)
		}
		byKey[s.key], flags[s.flag] = s, true
	}
	keys := leafKeys("", reflect.TypeFor[fileConfig]())
	for _, k := range keys {
		if _, ok := byKey[k]; !ok {
			t.Errorf("config key %s has no flag and no environment variable (add it to settings)", k)
		}
	}
	for k := range byKey {
		if !slices.Contains(keys, k) {
			t.Errorf("setting %s is not a config key", k)
		}
	}
	// The example config documents every key's flag and variable.
	example, err := os.ReadFile("../../examples/pgcloak.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if table := settingsTable(); !strings.Contains(string(example), table) {
		t.Errorf("examples/pgcloak.yaml does not end with the table of flags and variables; it should hold:\n%s", table)
	}
	if byKey["catalog_dsn"].env() != "PGCLOAK_CATALOG_DSN" || byKey["upstream.tls.ca_file"].env() != "PGCLOAK_UPSTREAM_TLS_CA_FILE" {
		t.Error("environment variable names")
	}
}

// TestSettingsPrecedence: flag over environment over file over default,
// for a value of each kind.
func TestSettingsPrecedence(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pgcloak.yaml")
	file := `admin: "127.0.0.1:9001"
upstream: {address: "file:5432", database: filedb}
timeouts: {auth: 11s, connect: 12s}
limits: {max_client_connections: 11, max_message_size: 2MiB}
audit: {queue_size: 11, stdout: true}
`
	if err := os.WriteFile(path, []byte(file), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PGCLOAK_CONFIG", path)
	t.Setenv("PGCLOAK_UPSTREAM_ADDRESS", "env:5432")
	t.Setenv("PGCLOAK_UPSTREAM_DATABASE", "envdb")
	t.Setenv("PGCLOAK_TIMEOUTS_AUTH", "21s")
	t.Setenv("PGCLOAK_LIMITS_MAX_CLIENT_CONNECTIONS", "21")
	t.Setenv("PGCLOAK_LIMITS_MAX_MESSAGE_SIZE", "3MiB")
	t.Setenv("PGCLOAK_AUDIT_STDOUT", "false")
	t.Setenv("PGCLOAK_TLS_REQUIRED", "")  // empty: not set
	t.Setenv("PGCLOAK_LOG_LEVEL", "warn") // env only
	cfg, err := serveFlags([]string{"--upstream", "flag:5432"})
	if err != nil {
		t.Fatal(err)
	}
	cfg2, err := serveFlags([]string{"--upstream-database", "flagdb", "--max-client-conn", "31", "--audit-stdout"})
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		what      string
		got, want any
	}{
		{"flag over env", cfg.Upstream.Address, "flag:5432"},
		{"env over file", cfg.Upstream.Database, "envdb"},
		{"env over file (duration)", cfg.Timeouts.Auth, duration(21 * time.Second)},
		{"file over default (duration)", cfg.Timeouts.Connect, duration(12 * time.Second)},
		{"env over file (int)", cfg.Limits.MaxClientConnections, 21},
		{"env over file (size)", cfg.Limits.MaxMessageSize, byteSize(3 << 20)},
		{"env over file (bool)", cfg.Audit.Stdout, false},
		{"file over default (int)", cfg.Audit.QueueSize, 11},
		{"file over default", cfg.Admin, "127.0.0.1:9001"},
		{"env over default", cfg.Log.Level, "warn"},
		{"default", cfg.Log.Format, "text"},
		{"empty env is unset", cfg.TLS.Required, false},
		{"flag over env (string)", cfg2.Upstream.Database, "flagdb"},
		{"flag over env (int)", cfg2.Limits.MaxClientConnections, 31},
		{"flag over env (bool)", cfg2.Audit.Stdout, true},
		{"env over file, other run", cfg2.Upstream.Address, "env:5432"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: %v, want %v", c.what, c.got, c.want)
		}
	}

	t.Setenv("PGCLOAK_TIMEOUTS_AUTH", "soon")
	if _, err := serveFlags(nil); err == nil || !strings.Contains(err.Error(), "PGCLOAK_TIMEOUTS_AUTH") {
		t.Errorf("a bad environment value: %v", err)
	}
}

// TestDeprecatedDatabaseFlag: serve's old --database still sets
// upstream.database, with a warning.
func TestDeprecatedDatabaseFlag(t *testing.T) {
	var warn bytes.Buffer
	cfg, err := serveFlagsTo([]string{"--database", "crm"}, &warn)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Upstream.Database != "crm" || !strings.Contains(warn.String(), "--upstream-database") {
		t.Fatalf("database %q, warning %q", cfg.Upstream.Database, warn.String())
	}
}

// settingsTable is the comment block at the end of examples/pgcloak.yaml.
func settingsTable() string {
	var b strings.Builder
	b.WriteString("# Every key has a flag and an environment variable. Precedence: flag, then\n" +
		"# environment, then this file, then the default. The file itself may be named\n" +
		"# by --config or PGCLOAK_CONFIG.\n#\n")
	fmt.Fprintf(&b, "#   %-31s %-23s %s\n", "key", "flag", "environment")
	for _, s := range settings {
		fmt.Fprintf(&b, "#   %-31s %-23s %s\n", s.key, "--"+s.flag, s.env())
	}
	return b.String()
}

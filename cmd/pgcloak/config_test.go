package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

func TestConfigErrorsNameTheKey(t *testing.T) {
	cases := []struct {
		name, yaml string
		args       []string
		want       string
	}{
		{"unknown top key", "listn: [\"x:1\"]\n", nil, ":1:1: listn: unknown key"},
		{"unknown nested key", "upstream:\n  adress: x:1\n", nil, ":2:3: upstream.adress: unknown key"},
		{"bad duration", "timeouts:\n  auth: 5\n", nil, ":2:9: timeouts.auth: \"5\" is not a duration"},
		{"bad size", "limits:\n  max_message_size: lots\n", nil, "limits.max_message_size: \"lots\" is not a size"},
		{"size too small", "limits:\n  max_message_size: 10B\n", nil, "limits.max_message_size: must be between"},
		{"bad tls mode", "upstream:\n  tls:\n    mode: prefer\n", nil, "upstream.tls.mode: \"prefer\" is not one of"},
		{"bad listen", "listen: [\"6432\"]\n", nil, "listen: \"6432\" is not HOST:PORT"},
		{"cert without key", "tls:\n  cert_file: a.crt\n", nil, "tls: cert_file and key_file go together"},
		{"required without cert", "tls:\n  required: true\n", nil, "tls.required: needs tls.cert_file"},
		{"negative conns", "limits:\n  max_client_connections: -1\n", nil, "limits.max_client_connections: must not be negative"},
		{"bad log format", "log:\n  format: xml\n", nil, "log.format: \"xml\" is not text or json"},
		{"wrong type", "limits:\n  max_client_connections: many\n", nil, "cannot unmarshal"},
		{"not yaml", "listen: [\n", nil, "did not find expected"},
		{"flag overrides file", "upstream:\n  address: a:1\n", []string{"--upstream", "nohost"}, "upstream.address: \"nohost\" is not HOST:PORT"},
		{"bad flag size", "", []string{"--max-message-size", "big"}, "-max-message-size: \"big\" is not a size"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "pgcloak.yaml")
			if err := os.WriteFile(path, []byte(c.yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := serveFlags(append([]string{"--config", path}, c.args...))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("want error containing %q, got %v", c.want, err)
			}
		})
	}
}

func TestConfigFlagsAloneAndOverride(t *testing.T) {
	cfg, err := serveFlags([]string{"--listen", "127.0.0.1:7000,127.0.0.1:7001", "--upstream", "db:5432", "--max-message-size", "1MiB"})
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Listen) != 2 || cfg.Upstream.Address != "db:5432" || cfg.Limits.MaxMessageSize != 1<<20 {
		t.Fatalf("%+v", cfg)
	}
	path := filepath.Join(t.TempDir(), "pgcloak.yaml")
	os.WriteFile(path, []byte("upstream:\n  address: file:1\n  database: crm\nlimits:\n  max_client_connections: 5\n"), 0o644)
	cfg, err = serveFlags([]string{"--config", path, "--max-client-conn", "9"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Upstream.Address != "file:1" || cfg.Upstream.Database != "crm" || cfg.Limits.MaxClientConnections != 9 {
		t.Fatalf("%+v", cfg)
	}
}

func TestExampleConfigLoads(t *testing.T) {
	if _, err := serveFlags([]string{"--config", "../../examples/pgcloak.yaml"}); err != nil {
		t.Fatal(err)
	}
}

// The Kubernetes manifest's config (rendered from the Helm chart) is one
// serve accepts.
func TestDeployConfigLoads(t *testing.T) {
	data, err := os.ReadFile("../../deploy/kubernetes/pgcloak.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var config string
	for _, doc := range strings.Split(string(data), "\n---\n") {
		var cm struct {
			Kind string            `yaml:"kind"`
			Data map[string]string `yaml:"data"`
		}
		if err := yaml.Unmarshal([]byte(doc), &cm); err != nil {
			t.Fatal(err)
		}
		if cm.Kind == "ConfigMap" && cm.Data["pgcloak.yaml"] != "" {
			config = cm.Data["pgcloak.yaml"]
		}
	}
	if config == "" {
		t.Fatal("no ConfigMap with pgcloak.yaml")
	}
	path := filepath.Join(t.TempDir(), "pgcloak.yaml")
	if err := os.WriteFile(path, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PGCLOAK_CATALOG_DSN", "host=postgres user=pgcloak")
	if _, err := serveFlags([]string{"--config", path}); err != nil {
		t.Fatal(err)
	}
}

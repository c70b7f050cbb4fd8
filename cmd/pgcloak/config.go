package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"reflect"
	"strings"
	"time"
	"unicode"

	"gopkg.in/yaml.v3"

	"github.com/pgcloak/pgcloak/audit"
	"github.com/pgcloak/pgcloak/engine"
	"github.com/pgcloak/pgcloak/proxy"
)

// fileConfig is pgcloak.yaml, the serve command's configuration file. Flags
// override it; every field has a default, so flags alone are enough.
type fileConfig struct {
	Listen []string `yaml:"listen"`
	Admin  string   `yaml:"admin"`
	// AdminToken is the bearer token of the admin API (runtime view,
	// reload); without one the API is refused.
	AdminToken string `yaml:"admin_token"`
	// InstanceID names this replica in every access record.
	InstanceID string `yaml:"instance_id"`
	Rules      string `yaml:"rules"`
	// CatalogDSN is pgcloak's own connection: catalog snapshots and
	// attribute queries. Needed with rules.
	CatalogDSN     string         `yaml:"catalog_dsn"`
	CatalogRefresh duration       `yaml:"catalog_refresh"`
	Upstream       upstreamConfig `yaml:"upstream"`
	TLS            clientTLS      `yaml:"tls"`
	Limits         limitsConfig   `yaml:"limits"`
	Timeouts       timeoutsConfig `yaml:"timeouts"`
	Log            logConfig      `yaml:"log"`
	Audit          auditConfig    `yaml:"audit"`
}

// auditConfig is the access log (docs/audit.md). It is off unless a file
// or stdout is named.
type auditConfig struct {
	File      string   `yaml:"file"`       // access log file, rotated by size
	MaxSize   byteSize `yaml:"max_size"`   // rotate at this size
	MaxFiles  int      `yaml:"max_files"`  // rotated files kept; 0: all
	Stdout    bool     `yaml:"stdout"`     // also write the log to stdout
	OnFailure string   `yaml:"on_failure"` // fail_closed or fail_open
	QueueSize int      `yaml:"queue_size"` // records waiting for the writer
	// WaitForWrite holds each answer until its record is written
	// (fail_closed): a killed pgcloak loses no record of an answer.
	WaitForWrite bool `yaml:"wait_for_write"`
}

func (a auditConfig) on() bool { return a.File != "" || a.Stdout }

type upstreamConfig struct {
	Address  string      `yaml:"address"`
	Database string      `yaml:"database"`
	TLS      upstreamTLS `yaml:"tls"`
}

type upstreamTLS struct {
	Mode       string `yaml:"mode"` // disable, require, verify-full
	CAFile     string `yaml:"ca_file"`
	ServerName string `yaml:"server_name"`
	CertFile   string `yaml:"cert_file"` // client certificate, optional
	KeyFile    string `yaml:"key_file"`
}

type clientTLS struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	Required bool   `yaml:"required"`
}

type limitsConfig struct {
	MaxClientConnections int      `yaml:"max_client_connections"`
	MaxMessageSize       byteSize `yaml:"max_message_size"`
	// Per session (proxy.Config) and shared (engine.Limits).
	MaxSessionStatements     int      `yaml:"max_session_statements"`
	MaxSessionStatementBytes byteSize `yaml:"max_session_statement_bytes"`
	RewriteCacheBytes        byteSize `yaml:"rewrite_cache_bytes"`
	UnknownRefreshInterval   duration `yaml:"unknown_relation_refresh_interval"`
}

// rewriteLimits are the engine's limits from the configuration.
func (c *fileConfig) rewriteLimits() engine.Limits {
	return engine.Limits{CacheBytes: int64(c.Limits.RewriteCacheBytes),
		UnknownRefreshInterval: time.Duration(c.Limits.UnknownRefreshInterval)}
}

type timeoutsConfig struct {
	Connect       duration `yaml:"connect"`
	Auth          duration `yaml:"auth"`
	ShutdownGrace duration `yaml:"shutdown_grace"`
}

type logConfig struct {
	Format string `yaml:"format"` // text or json
	Level  string `yaml:"level"`  // debug, info, warn, error
}

func defaultConfig() fileConfig {
	return fileConfig{
		Listen:   []string{"127.0.0.1:6432"},
		Upstream: upstreamConfig{Address: "127.0.0.1:5432", TLS: upstreamTLS{Mode: "disable"}},
		Limits: limitsConfig{MaxClientConnections: 1000, MaxMessageSize: proxy.DefaultMaxMessageSize,
			MaxSessionStatements: proxy.DefaultMaxSessionStatements, MaxSessionStatementBytes: proxy.DefaultMaxSessionStatementBytes,
			RewriteCacheBytes: byteSize(engine.DefaultLimits.CacheBytes), UnknownRefreshInterval: duration(engine.DefaultLimits.UnknownRefreshInterval)},
		Timeouts: timeoutsConfig{
			Connect:       duration(proxy.DefaultConnectTimeout),
			Auth:          duration(proxy.DefaultAuthTimeout),
			ShutdownGrace: duration(30 * time.Second),
		},
		CatalogRefresh: duration(time.Minute),
		InstanceID:     defaultInstanceID(),
		Log:            logConfig{Format: "text", Level: "info"},
		Audit: auditConfig{MaxSize: audit.DefaultMaxSize, OnFailure: string(audit.FailClosed),
			QueueSize: audit.DefaultQueueSize, WaitForWrite: true},
	}
}

// defaultInstanceID is the host name: a pod's name in Kubernetes.
func defaultInstanceID() string {
	if h, err := os.Hostname(); err == nil && h != "" {
		return h
	}
	return "pgcloak"
}

// configError names the key at fault, and its place in the file when known.
type configError struct {
	file      string
	line, col int
	key       string
	msg       string
}

func (e *configError) Error() string {
	where := "config"
	if e.file != "" {
		where = e.file
		if e.line > 0 {
			where = fmt.Sprintf("%s:%d:%d", e.file, e.line, e.col)
		}
	}
	if e.key == "" {
		return where + ": " + e.msg
	}
	return fmt.Sprintf("%s: %s: %s", where, e.key, e.msg)
}

// loadConfigFile decodes a config file strictly over the defaults: unknown
// keys and wrongly typed values are errors.
func loadConfigFile(path string, cfg *fileConfig) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return &configError{msg: err.Error()}
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return yamlError(path, err)
	}
	if err := checkKeys(path, &root, "", reflect.TypeFor[fileConfig]()); err != nil {
		return err
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		return yamlError(path, err)
	}
	return nil
}

// yamlError turns a yaml.v3 error ("yaml: line 3: ...") into a configError.
func yamlError(path string, err error) error {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		return &configError{file: path, msg: strings.Join(te.Errors, "; ")}
	}
	return &configError{file: path, msg: strings.TrimPrefix(err.Error(), "yaml: ")}
}

// checkKeys walks the YAML tree beside the struct type it decodes into and
// reports the first unknown key with its dotted name and position, which
// yaml.v3's own message lacks.
func checkKeys(path string, n *yaml.Node, prefix string, t reflect.Type) error {
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return nil
		}
		n = n.Content[0]
	}
	if n.Kind != yaml.MappingNode || t.Kind() != reflect.Struct {
		return nil
	}
	fields := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		fields[strings.Split(f.Tag.Get("yaml"), ",")[0]] = f.Type
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		key := k.Value
		if prefix != "" {
			key = prefix + "." + k.Value
		}
		ft, ok := fields[k.Value]
		if !ok {
			return &configError{file: path, line: k.Line, col: k.Column, key: key, msg: "unknown key"}
		}
		if err := checkValue(v, ft); err != nil {
			return &configError{file: path, line: v.Line, col: v.Column, key: key, msg: err.Error()}
		}
		if err := checkKeys(path, v, key, ft); err != nil {
			return err
		}
	}
	return nil
}

// checkValue parses the scalars with a syntax of their own here, so that
// their errors can name the key.
func checkValue(n *yaml.Node, t reflect.Type) error {
	switch t {
	case reflect.TypeFor[duration]():
		if _, err := time.ParseDuration(n.Value); err != nil {
			return fmt.Errorf("%q is not a duration such as 30s", n.Value)
		}
	case reflect.TypeFor[byteSize]():
		_, err := parseByteSize(n.Value)
		return err
	}
	return nil
}

// validate checks every value and names the key of the first bad one.
func (c *fileConfig) validate() error {
	bad := func(key, format string, args ...any) error {
		return &configError{key: key, msg: fmt.Sprintf(format, args...)}
	}
	if len(c.Listen) == 0 {
		return bad("listen", "at least one address is needed")
	}
	for _, a := range c.Listen {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return bad("listen", "%q is not HOST:PORT", a)
		}
	}
	if c.Admin != "" {
		if _, _, err := net.SplitHostPort(c.Admin); err != nil {
			return bad("admin", "%q is not HOST:PORT", c.Admin)
		}
	}
	if c.InstanceID == "" || len(c.InstanceID) > 128 || strings.ContainsFunc(c.InstanceID, unicode.IsControl) {
		return bad("instance_id", "must be 1 to 128 printable characters")
	}
	if c.AdminToken != "" && len(c.AdminToken) < 16 {
		return bad("admin_token", "must be at least 16 characters")
	}
	if c.Rules != "" && c.CatalogDSN == "" {
		return bad("catalog_dsn", "is needed with rules: pgcloak reads the catalog over its own connection")
	}
	if c.CatalogRefresh <= 0 {
		return bad("catalog_refresh", "must be positive")
	}
	if _, _, err := net.SplitHostPort(c.Upstream.Address); err != nil {
		return bad("upstream.address", "%q is not HOST:PORT", c.Upstream.Address)
	}
	switch c.Upstream.TLS.Mode {
	case "disable", "require", "verify-full":
	default:
		return bad("upstream.tls.mode", "%q is not one of disable, require, verify-full", c.Upstream.TLS.Mode)
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		return bad("tls", "cert_file and key_file go together")
	}
	if c.TLS.Required && c.TLS.CertFile == "" {
		return bad("tls.required", "needs tls.cert_file and tls.key_file")
	}
	if (c.Upstream.TLS.CertFile == "") != (c.Upstream.TLS.KeyFile == "") {
		return bad("upstream.tls", "cert_file and key_file go together")
	}
	if c.Limits.MaxClientConnections < 0 {
		return bad("limits.max_client_connections", "must not be negative")
	}
	if c.Limits.MaxMessageSize < 1024 || c.Limits.MaxMessageSize > 1<<30 {
		return bad("limits.max_message_size", "must be between 1KiB and 1GiB")
	}
	if c.Limits.MaxSessionStatements < 1 {
		return bad("limits.max_session_statements", "must be positive")
	}
	if c.Limits.MaxSessionStatementBytes < 64<<10 {
		return bad("limits.max_session_statement_bytes", "must be at least 64KiB")
	}
	if c.Limits.RewriteCacheBytes < 1<<20 {
		return bad("limits.rewrite_cache_bytes", "must be at least 1MiB")
	}
	if c.Limits.UnknownRefreshInterval <= 0 {
		return bad("limits.unknown_relation_refresh_interval", "must be positive")
	}
	for key, d := range map[string]duration{"timeouts.connect": c.Timeouts.Connect,
		"timeouts.auth": c.Timeouts.Auth, "timeouts.shutdown_grace": c.Timeouts.ShutdownGrace} {
		if d <= 0 {
			return bad(key, "must be positive")
		}
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		return bad("log.format", "%q is not text or json", c.Log.Format)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		return bad("log.level", "%q is not one of debug, info, warn, error", c.Log.Level)
	}
	switch audit.OnFailure(c.Audit.OnFailure) {
	case audit.FailClosed, audit.FailOpen:
	default:
		return bad("audit.on_failure", "%q is not fail_closed or fail_open", c.Audit.OnFailure)
	}
	if c.Audit.MaxSize < 64<<10 {
		return bad("audit.max_size", "must be at least 64KiB")
	}
	if c.Audit.MaxFiles < 0 {
		return bad("audit.max_files", "must not be negative")
	}
	if c.Audit.QueueSize < 1 || c.Audit.QueueSize > 10_000_000 {
		return bad("audit.queue_size", "must be between 1 and 10000000")
	}
	return nil
}

// proxyConfig builds the proxy's Config, loading the upstream
// certificates.
func (c *fileConfig) proxyConfig() (proxy.Config, error) {
	pc := proxy.Config{
		Upstream:         c.Upstream.Address,
		Database:         c.Upstream.Database,
		RequireClientTLS: c.TLS.Required,
		MaxClientConns:   c.Limits.MaxClientConnections,
		MaxMessageSize:   int(c.Limits.MaxMessageSize),

		MaxSessionStatements:     c.Limits.MaxSessionStatements,
		MaxSessionStatementBytes: int(c.Limits.MaxSessionStatementBytes),
		ConnectTimeout:           time.Duration(c.Timeouts.Connect),
		AuthTimeout:              time.Duration(c.Timeouts.Auth),
	}
	// ClientTLS is set by setup: the certificate reloads (certs.go).
	ut := c.Upstream.TLS
	if ut.Mode != "disable" {
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if ut.Mode == "require" {
			// Encrypted, not authenticated: libpq's sslmode=require.
			tc.InsecureSkipVerify = true
		} else {
			host, _, _ := net.SplitHostPort(c.Upstream.Address)
			tc.ServerName = host
			if ut.ServerName != "" {
				tc.ServerName = ut.ServerName
			}
			if ut.CAFile != "" {
				pem, err := os.ReadFile(ut.CAFile)
				if err != nil {
					return pc, &configError{key: "upstream.tls.ca_file", msg: err.Error()}
				}
				pool := x509.NewCertPool()
				if !pool.AppendCertsFromPEM(pem) {
					return pc, &configError{key: "upstream.tls.ca_file", msg: "no PEM certificate in " + ut.CAFile}
				}
				tc.RootCAs = pool
			}
		}
		if ut.CertFile != "" {
			cert, err := tls.LoadX509KeyPair(ut.CertFile, ut.KeyFile)
			if err != nil {
				return pc, &configError{key: "upstream.tls.cert_file", msg: err.Error()}
			}
			tc.Certificates = []tls.Certificate{cert}
		}
		pc.UpstreamTLS = tc
	}
	return pc, nil
}

// duration is a time.Duration written as "30s" in YAML.
type duration time.Duration

func (d *duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration such as 30s", n.Line, n.Value)
	}
	*d = duration(v)
	return nil
}

// byteSize is a size written as 1048576, "64KiB", "16MiB" or "1GiB".
type byteSize int

func (b *byteSize) UnmarshalYAML(n *yaml.Node) error {
	v, err := parseByteSize(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %v", n.Line, err)
	}
	*b = byteSize(v)
	return nil
}

func parseByteSize(s string) (int, error) {
	mult := 1
	num := s
	for _, u := range []struct {
		suffix string
		mult   int
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}} {
		if strings.HasSuffix(s, u.suffix) {
			mult, num = u.mult, strings.TrimSpace(strings.TrimSuffix(s, u.suffix))
			break
		}
	}
	var v int
	if _, err := fmt.Sscanf(num, "%d", &v); err != nil || v < 0 || fmt.Sprint(v) != num {
		return 0, fmt.Errorf("%q is not a size such as 16MiB", s)
	}
	return v * mult, nil
}

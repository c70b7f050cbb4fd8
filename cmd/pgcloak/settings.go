package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
)

// setting is one key of pgcloak.yaml with its command-line flag and its
// environment variable. Every key has both; the environment variable is the
// key in capitals, dots as underscores, after PGCLOAK_
// (upstream.tls.ca_file: PGCLOAK_UPSTREAM_TLS_CA_FILE). A flag wins over
// the environment, the environment over the file, the file over the
// defaults.
type setting struct {
	key, flag, help string
	bool            bool // a flag without a value (--tls-required)
	set             func(c *fileConfig, v string) error
}

func (s setting) env() string {
	return "PGCLOAK_" + strings.ToUpper(strings.ReplaceAll(s.key, ".", "_"))
}

func str(key, flag, help string, field func(*fileConfig) *string) setting {
	return setting{key: key, flag: flag, help: help, set: func(c *fileConfig, v string) error { *field(c) = v; return nil }}
}

func integer(key, flag, help string, field func(*fileConfig) *int) setting {
	return setting{key: key, flag: flag, help: help, set: func(c *fileConfig, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil {
			return fmt.Errorf("%q is not an integer", v)
		}
		*field(c) = n
		return nil
	}}
}

func boolean(key, flag, help string, field func(*fileConfig) *bool) setting {
	return setting{key: key, flag: flag, help: help, bool: true, set: func(c *fileConfig, v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("%q is not true or false", v)
		}
		*field(c) = b
		return nil
	}}
}

func dur(key, flag, help string, field func(*fileConfig) *duration) setting {
	return setting{key: key, flag: flag, help: help, set: func(c *fileConfig, v string) error {
		d, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf("%q is not a duration such as 30s", v)
		}
		*field(c) = duration(d)
		return nil
	}}
}

func size(key, flag, help string, field func(*fileConfig) *byteSize) setting {
	return setting{key: key, flag: flag, help: help, set: func(c *fileConfig, v string) error {
		n, err := parseByteSize(v)
		if err != nil {
			return err
		}
		*field(c) = byteSize(n)
		return nil
	}}
}

// settings lists every key of fileConfig (TestEveryKeyHasAFlagAndAnEnv
// keeps it complete).
var settings = []setting{
	{key: "listen", flag: "listen", help: "client listen address(es), HOST:PORT[,HOST:PORT...] (default 127.0.0.1:6432)",
		set: func(c *fileConfig, v string) error { c.Listen = strings.Split(v, ","); return nil }},
	str("admin", "admin", "admin HTTP listen address for metrics and health, HOST:PORT (default: off)",
		func(c *fileConfig) *string { return &c.Admin }),
	str("rules", "rules", "privacy rules `FILE`", func(c *fileConfig) *string { return &c.Rules }),
	str("catalog_dsn", "catalog-dsn", "connection string pgcloak uses to read the catalog and run attribute queries (needed with --rules)",
		func(c *fileConfig) *string { return &c.CatalogDSN }),
	dur("catalog_refresh", "catalog-refresh", "how often the catalog is re-read (default 1m)",
		func(c *fileConfig) *duration { return &c.CatalogRefresh }),
	str("upstream.address", "upstream", "PostgreSQL server, HOST:PORT (default 127.0.0.1:5432)",
		func(c *fileConfig) *string { return &c.Upstream.Address }),
	str("upstream.database", "upstream-database", "the only database clients may use (default: any)",
		func(c *fileConfig) *string { return &c.Upstream.Database }),
	str("upstream.tls.mode", "upstream-tls", "TLS to the server: disable, require or verify-full (default disable)",
		func(c *fileConfig) *string { return &c.Upstream.TLS.Mode }),
	str("upstream.tls.ca_file", "upstream-ca", "CA `FILE` that signs the server's certificate (verify-full)",
		func(c *fileConfig) *string { return &c.Upstream.TLS.CAFile }),
	str("upstream.tls.server_name", "upstream-server-name", "name the server's certificate must carry (default: the host of --upstream)",
		func(c *fileConfig) *string { return &c.Upstream.TLS.ServerName }),
	str("upstream.tls.cert_file", "upstream-cert", "client certificate `FILE` pgcloak shows the server (optional)",
		func(c *fileConfig) *string { return &c.Upstream.TLS.CertFile }),
	str("upstream.tls.key_file", "upstream-key", "private key `FILE` of --upstream-cert",
		func(c *fileConfig) *string { return &c.Upstream.TLS.KeyFile }),
	str("tls.cert_file", "tls-cert", "certificate `FILE` offered to clients", func(c *fileConfig) *string { return &c.TLS.CertFile }),
	str("tls.key_file", "tls-key", "private key `FILE` of --tls-cert", func(c *fileConfig) *string { return &c.TLS.KeyFile }),
	boolean("tls.required", "tls-required", "refuse clients that do not use TLS", func(c *fileConfig) *bool { return &c.TLS.Required }),
	integer("limits.max_client_connections", "max-client-conn", "maximum concurrent client connections (default 1000)",
		func(c *fileConfig) *int { return &c.Limits.MaxClientConnections }),
	size("limits.max_message_size", "max-message-size", "largest client message, e.g. 64MiB (default 64MiB)",
		func(c *fileConfig) *byteSize { return &c.Limits.MaxMessageSize }),
	dur("timeouts.connect", "connect-timeout", "upstream connect timeout (default 10s)",
		func(c *fileConfig) *duration { return &c.Timeouts.Connect }),
	dur("timeouts.auth", "auth-timeout", "start-up and authentication timeout (default 60s)",
		func(c *fileConfig) *duration { return &c.Timeouts.Auth }),
	dur("timeouts.shutdown_grace", "shutdown-grace", "how long SIGTERM waits for sessions to finish (default 30s)",
		func(c *fileConfig) *duration { return &c.Timeouts.ShutdownGrace }),
	str("log.format", "log-format", "operational log format: text or json (default text)", func(c *fileConfig) *string { return &c.Log.Format }),
	str("log.level", "log-level", "operational log level: debug, info, warn, error (default info)",
		func(c *fileConfig) *string { return &c.Log.Level }),
	str("audit.file", "audit-file", "access log `FILE` (JSON lines, hash-chained, rotated by size; default: off)",
		func(c *fileConfig) *string { return &c.Audit.File }),
	size("audit.max_size", "audit-max-size", "rotate the access log at this size (default 100MiB)",
		func(c *fileConfig) *byteSize { return &c.Audit.MaxSize }),
	integer("audit.max_files", "audit-max-files", "rotated access log files kept; 0 keeps all (default 0)",
		func(c *fileConfig) *int { return &c.Audit.MaxFiles }),
	boolean("audit.stdout", "audit-stdout", "also write the access log to stdout", func(c *fileConfig) *bool { return &c.Audit.Stdout }),
	str("audit.on_failure", "audit-on-failure", "when the access log cannot be written: fail_closed (refuse statements, the default) or fail_open",
		func(c *fileConfig) *string { return &c.Audit.OnFailure }),
	integer("audit.queue_size", "audit-queue-size", "access records waiting for the writer (default 10000)",
		func(c *fileConfig) *int { return &c.Audit.QueueSize }),
}

// serveFlags builds serve's configuration: the defaults, then the config
// file (--config or PGCLOAK_CONFIG), then the PGCLOAK_ environment
// variables, then the flags. warn receives deprecation notices.
func serveFlags(args []string) (fileConfig, error) { return serveFlagsTo(args, os.Stderr) }

func serveFlagsTo(args []string, warn io.Writer) (fileConfig, error) {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	configFile := fs.String("config", "", "config `FILE` (YAML); environment variables and flags override it (env PGCLOAK_CONFIG)")
	type given struct {
		s *setting
		v string
	}
	var flags []given // in command-line order: the last of a repeated flag wins
	for i := range settings {
		s := &settings[i]
		help := fmt.Sprintf("%s (env %s, key %s)", s.help, s.env(), s.key)
		add := func(v string) error { flags = append(flags, given{s, v}); return nil }
		if s.bool {
			fs.BoolFunc(s.flag, help, add)
		} else {
			fs.Func(s.flag, help, add)
		}
	}
	// --database meant "the only database" here and "a connection string"
	// in every other command: it is now --upstream-database.
	fs.Func("database", "deprecated: use --upstream-database", func(v string) error {
		fmt.Fprintln(warn, "pgcloak serve: --database is deprecated, use --upstream-database (in the other commands --database is a connection string)")
		for i := range settings {
			if settings[i].key == "upstream.database" {
				flags = append(flags, given{&settings[i], v})
			}
		}
		return nil
	})
	cfg := defaultConfig()
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if *configFile == "" {
		*configFile = os.Getenv("PGCLOAK_CONFIG")
	}
	if *configFile != "" {
		if err := loadConfigFile(*configFile, &cfg); err != nil {
			return cfg, err
		}
	}
	for _, s := range settings {
		if v := os.Getenv(s.env()); v != "" {
			if err := s.set(&cfg, v); err != nil {
				return cfg, &configError{key: s.env(), msg: err.Error()}
			}
		}
	}
	for _, g := range flags {
		if err := g.s.set(&cfg, g.v); err != nil {
			return cfg, &configError{key: "--" + g.s.flag, msg: err.Error()}
		}
	}
	return cfg, cfg.validate()
}

package main

import (
	"fmt"
	"os"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
)

func init() {
	register("version", "print pgcloak's version, revision and Go version", runVersion)
}

// version is set at build time with -ldflags '-X main.version=v1.2.3'; when
// it is not, the module version Go recorded is used ("(devel)" for a build
// from a checkout).
var version string

// build is what the binary knows about its own build.
type build struct {
	Version, Revision, GoVersion string
	Modified                     bool
}

func buildInfo() build {
	b := build{Version: version, Revision: "unknown", GoVersion: "unknown"}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		if b.Version == "" {
			b.Version = "unknown"
		}
		return b
	}
	b.GoVersion = info.GoVersion
	if b.Version == "" {
		b.Version = info.Main.Version
	}
	if b.Version == "" {
		b.Version = "(devel)"
	}
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Revision = s.Value
		case "vcs.modified":
			b.Modified = s.Value == "true"
		}
	}
	return b
}

func (b build) String() string {
	rev := b.Revision
	if b.Modified {
		rev += " (modified)"
	}
	return fmt.Sprintf("pgcloak %s, revision %s, built with %s", b.Version, rev, b.GoVersion)
}

func runVersion(args []string) int {
	if len(args) > 0 {
		if isHelp(args[0]) {
			fmt.Println("usage: pgcloak version (or pgcloak --version)")
			return 0
		}
		fmt.Fprintln(os.Stderr, "usage: pgcloak version")
		return 2
	}
	fmt.Println(buildInfo())
	return 0
}

// isHelp is a request for help in any of the usual spellings.
func isHelp(arg string) bool {
	switch arg {
	case "-h", "-help", "--help", "help":
		return true
	}
	return false
}

// buildInfoCollector is pgcloak_build_info: a constant 1 whose labels say
// which build runs.
func buildInfoCollector() prometheus.Collector {
	b := buildInfo()
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: namespace, Name: "build_info",
		Help:        "Always 1; the labels name the running build.",
		ConstLabels: prometheus.Labels{"version": b.Version, "revision": b.Revision, "goversion": b.GoVersion}},
		func() float64 { return 1 })
}

package main

import (
	"cmp"
	"errors"
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/pgcloak/pgcloak/audit"
)

func init() {
	register("audit", "check the access log: audit verify FILE...", runAudit)
}

func runAudit(args []string) int {
	if len(args) == 0 || args[0] != "verify" {
		fmt.Fprintln(os.Stderr, "usage: pgcloak audit verify [--open] FILE|DIR...")
		if len(args) > 0 && isHelp(args[0]) {
			return 0
		}
		return 2
	}
	fs := flag.NewFlagSet("audit verify", flag.ContinueOnError)
	open := fs.Bool("open", false, "accept a log without an end record: the live file of a running pgcloak, "+
		"or the last file of one that was killed (an incomplete last line is reported and ignored)")
	fs.Usage = func() {
		fmt.Fprintln(os.Stderr, `usage: pgcloak audit verify [--open] FILE|DIR...

Checks that the access log files hold one unbroken hash chain per pgcloak
instance, in any order (rotated files and the current one), and names the
first record where an edit, deletion, insertion, reordering or truncation
breaks it. A directory stands for the files in it: the logs of several
replicas (each record names its instance) are told apart and each chain
is verified on its own. Exit status: 0 intact, 1 broken, 2 the files
cannot be read.`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return 2
	}
	paths, err := expandDirs(fs.Args())
	if err != nil {
		fmt.Fprintln(os.Stderr, "pgcloak audit verify:", err)
		return 2
	}
	groups, err := audit.GroupByInstance(paths)
	if err != nil {
		fmt.Fprintln(os.Stderr, "pgcloak audit verify:", err)
		return 2
	}
	if len(groups) == 0 {
		fmt.Fprintln(os.Stderr, "pgcloak audit verify: no records in the files given")
		return 2
	}
	instances := slices.Sorted(maps.Keys(groups))
	code := 0
	for _, inst := range instances {
		prefix := ""
		if len(groups) > 1 || inst != "" {
			prefix = fmt.Sprintf("instance %s: ", cmp.Or(inst, "(unnamed)"))
		}
		code = max(code, verifyChain(prefix, groups[inst], *open))
	}
	return code
}

// expandDirs replaces each directory by the regular files in it.
func expandDirs(args []string) ([]string, error) {
	var paths []string
	for _, a := range args {
		fi, err := os.Stat(a)
		if err != nil {
			return nil, err
		}
		if !fi.IsDir() {
			paths = append(paths, a)
			continue
		}
		entries, err := os.ReadDir(a)
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			if e.Type().IsRegular() && !strings.HasPrefix(e.Name(), ".") {
				paths = append(paths, filepath.Join(a, e.Name()))
			}
		}
	}
	return paths, nil
}

// verifyChain verifies one instance's files and prints the outcome.
func verifyChain(prefix string, paths []string, open bool) int {
	rep, err := audit.Verify(paths, audit.VerifyOptions{Open: open})
	var be *audit.BreakError
	switch {
	case errors.As(err, &be):
		fmt.Printf("%sBROKEN: %s\n", prefix, be)
		if rep != nil && rep.Records > 0 {
			fmt.Printf("%sthe chain holds for %d records, seq %d to %d, before that\n", prefix, rep.Records, rep.FirstSeq, rep.LastSeq)
		}
		return 1
	case err != nil:
		fmt.Fprintf(os.Stderr, "pgcloak audit verify: %s%v\n", prefix, err)
		return 2
	}
	for _, n := range rep.Notes {
		fmt.Printf("%snote: %s\n", prefix, n)
	}
	state := "closed"
	if !rep.Closed {
		state = "open"
	}
	fmt.Printf("%sok: %d records, seq %d to %d, in %d file(s); the chain is intact and the log is %s\n",
		prefix, rep.Records, rep.FirstSeq, rep.LastSeq, len(rep.Files), state)
	return 0
}

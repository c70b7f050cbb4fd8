package main

import (
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/pgcloak/pgcloak/audit"
)

func init() {
	register("audit", "check the access log: audit verify FILE...", runAudit)
}

func runAudit(args []string) int {
	if len(args) == 0 || args[0] != "verify" {
		fmt.Fprintln(os.Stderr, "usage: pgcloak audit verify [--open] FILE...")
		if len(args) > 0 && isHelp(args[0]) {
			return 0
		}
		return 2
	}
	fs := flag.NewFlagSet("audit verify", flag.ContinueOnError)
	open := fs.Bool("open", false, "accept a log without an end record: the live file of a running pgcloak, "+
		"or the last file of one that was killed (an incomplete last line is reported and ignored)")
	fs.Usage = func() {
		fmt.Fprintln(os.Stderr, `usage: pgcloak audit verify [--open] FILE...

Checks that the access log files hold one unbroken hash chain, in any order
(rotated files and the current one), and names the first record where an
edit, deletion, insertion, reordering or truncation breaks it. Exit status:
0 intact, 1 broken, 2 the files cannot be read.`)
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
	rep, err := audit.Verify(fs.Args(), audit.VerifyOptions{Open: *open})
	var be *audit.BreakError
	switch {
	case errors.As(err, &be):
		fmt.Printf("BROKEN: %s\n", be)
		if rep != nil && rep.Records > 0 {
			fmt.Printf("the chain holds for %d records, seq %d to %d, before that\n", rep.Records, rep.FirstSeq, rep.LastSeq)
		}
		return 1
	case err != nil:
		fmt.Fprintln(os.Stderr, "pgcloak audit verify:", err)
		return 2
	}
	for _, n := range rep.Notes {
		fmt.Println("note:", n)
	}
	state := "closed"
	if !rep.Closed {
		state = "open"
	}
	fmt.Printf("ok: %d records, seq %d to %d, in %d file(s); the chain is intact and the log is %s\n",
		rep.Records, rep.FirstSeq, rep.LastSeq, len(rep.Files), state)
	return 0
}

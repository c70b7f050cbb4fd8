package rules

import (
	"fmt"
	"sort"
	"strings"
)

// Pos is a position in the rules file, 1-based. The zero Pos means "the
// file as a whole".
type Pos struct {
	Line, Col int
}

// PosError is one mistake in a rules file.
type PosError struct {
	File string
	Pos  Pos
	Msg  string
}

func (e *PosError) Error() string {
	if e.Pos.Line == 0 {
		return fmt.Sprintf("%s: %s", e.File, e.Msg)
	}
	return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Pos.Line, e.Pos.Col, e.Msg)
}

// LoadError is what Parse and Load return for a file that does not compile:
// every mistake found, in file order, one per line.
type LoadError struct {
	Errors []*PosError
}

func (e *LoadError) Error() string {
	var b strings.Builder
	for i, pe := range e.Errors {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(pe.Error())
	}
	return b.String()
}

// maxErrors bounds the list so that a file in the wrong format does not
// produce a wall of text.
const maxErrors = 20

// errList collects mistakes while a file is decoded and compiled.
type errList struct {
	file string
	errs []*PosError
}

func (l *errList) add(p Pos, format string, args ...any) {
	l.errs = append(l.errs, &PosError{File: l.file, Pos: p, Msg: fmt.Sprintf(format, args...)})
}

func (l *errList) err() error {
	if len(l.errs) == 0 {
		return nil
	}
	errs := append([]*PosError(nil), l.errs...)
	sort.SliceStable(errs, func(i, j int) bool {
		a, b := errs[i].Pos, errs[j].Pos
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Col < b.Col
	})
	// The same mistake can be reached twice (a YAML alias); say it once.
	out := errs[:0]
	for i, e := range errs {
		if i > 0 && *e == *errs[i-1] {
			continue
		}
		out = append(out, e)
	}
	if len(out) > maxErrors {
		out = out[:maxErrors]
	}
	return &LoadError{Errors: out}
}

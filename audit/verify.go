package audit

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
)

// VerifyOptions tune Verify.
type VerifyOptions struct {
	// Open accepts a log whose last file has no end record: the file a
	// running pgcloak is writing, or the last file of one that was killed,
	// whose last line may then be incomplete (it is reported and ignored).
	Open bool
}

// Report is what Verify found in an intact log.
type Report struct {
	Files             []string // in chain order
	Records           int
	FirstSeq, LastSeq uint64
	// Closed: the log ends with an end record.
	Closed bool
	// Notes are facts that do not break the chain: a restart after a
	// crash, a chain continued from files not given, a torn last line.
	Notes []string
}

// BreakError names the first place where the chain does not hold.
type BreakError struct {
	File string
	Line int    // 1-based
	Seq  uint64 // of the record at File:Line, 0 if unreadable
	Msg  string
}

func (e *BreakError) Error() string { return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg) }

type verifyEntry struct {
	line     int
	h        header
	hash     string
	ok       bool // a complete line that parses as a record
	complete bool // ends with a newline
}

type verifyFile struct {
	path    string
	entries []verifyEntry
}

func (f *verifyFile) firstSeq() uint64 {
	for _, e := range f.entries {
		if e.ok {
			return *e.h.Seq
		}
	}
	return math.MaxUint64
}

// Verify checks that the files hold one unbroken chain: they may be given
// in any order (they are put in chain order by their first sequence
// number). It returns a *BreakError at the first record where an edit,
// deletion, insertion, reordering or truncation shows.
func Verify(paths []string, opts VerifyOptions) (*Report, error) {
	if len(paths) == 0 {
		return nil, errors.New("no files to verify")
	}
	var files []*verifyFile
	rep := &Report{}
	for _, p := range paths {
		f, err := readVerifyFile(p)
		if err != nil {
			return nil, err
		}
		if len(f.entries) == 0 {
			rep.Notes = append(rep.Notes, p+" is empty")
			continue
		}
		files = append(files, f)
	}
	if len(files) == 0 {
		return nil, errors.New("no records in the files given")
	}
	sort.SliceStable(files, func(i, j int) bool { return files[i].firstSeq() < files[j].firstSeq() })

	type pos struct{ fi, ei int }
	var all []pos
	for fi, f := range files {
		rep.Files = append(rep.Files, f.path)
		for ei := range f.entries {
			all = append(all, pos{fi, ei})
		}
	}
	at := func(p pos) (*verifyFile, *verifyEntry) { return files[p.fi], &files[p.fi].entries[p.ei] }
	brk := func(f *verifyFile, e *verifyEntry, format string, args ...any) error {
		var seq uint64
		if e.ok {
			seq = *e.h.Seq
		}
		return &BreakError{File: f.path, Line: e.line, Seq: seq, Msg: fmt.Sprintf(format, args...)}
	}
	// find says where the record with seq n is, after index i.
	find := func(i int, n uint64) string {
		for _, p := range all[i+1:] {
			f, e := at(p)
			if e.ok && *e.h.Seq == n {
				return fmt.Sprintf("%s:%d", f.path, e.line)
			}
		}
		return ""
	}

	var last *verifyEntry
	var lastFile *verifyFile
	for i, p := range all {
		f, e := at(p)
		lastLineOfFile := p.ei == len(f.entries)-1
		lastFileGiven := p.fi == len(files)-1
		if !e.complete {
			next := p.fi + 1
			switch {
			case lastFileGiven && opts.Open:
				rep.Notes = append(rep.Notes, fmt.Sprintf("%s:%d: the last line is incomplete (pgcloak stopped while writing it); ignored", f.path, e.line))
				continue
			case !lastFileGiven && lastLineOfFile && startsUnclean(files[next]):
				rep.Notes = append(rep.Notes, fmt.Sprintf("%s:%d: the last line is incomplete (pgcloak stopped while writing it; the next file says so); ignored", f.path, e.line))
				continue
			}
			return rep, brk(f, e, "incomplete record: the file was truncated here")
		}
		if !e.ok {
			return rep, brk(f, e, "not a valid access record: the line was edited")
		}
		seq := *e.h.Seq
		if p.ei == 0 && e.h.Type != TypeStart {
			return rep, brk(f, e, "the file does not begin with a start record: records were removed from its beginning")
		}
		if p.ei > 0 && e.h.Type == TypeStart {
			return rep, brk(f, e, "a start record in the middle of a file: records were inserted")
		}
		if last == nil {
			rep.FirstSeq = seq
			if *e.h.Prev == "" {
				if seq != 1 {
					return rep, brk(f, e, "the chain begins at seq %d, not 1", seq)
				}
			} else {
				rep.Notes = append(rep.Notes, fmt.Sprintf("the chain continues from seq %d, in a file not given (rotated away, or pruned by max_files)", seq-1))
			}
		} else {
			want := *last.h.Seq + 1
			switch {
			case seq == want && *e.h.Prev == last.hash:
			case seq == want:
				// Either the record before was changed (its hash no longer
				// matches), or this one (its prev field): if this record's
				// own hash is still what its successor recorded, it was the
				// one before.
				var next *verifyEntry
				if i+1 < len(all) {
					_, next = at(all[i+1])
				}
				if next == nil || !next.ok || *next.h.Prev == e.hash {
					return rep, brk(lastFile, last, "record seq %d was edited: its hash does not match the one recorded by seq %d (%s:%d)",
						want-1, seq, f.path, e.line)
				}
				return rep, brk(f, e, "record seq %d was edited: its prev does not match the record before it", seq)
			case seq > want:
				if where := find(i, want); where != "" {
					return rep, brk(f, e, "records out of order: seq %d stands where seq %d should (seq %d is at %s)", seq, want, want, where)
				}
				if seq == want+1 {
					return rep, brk(f, e, "record seq %d is missing before this one: it was deleted", want)
				}
				return rep, brk(f, e, "records seq %d to %d are missing before this one: they were deleted", want, seq-1)
			default:
				return rep, brk(f, e, "seq %d stands where seq %d should: a record was inserted, or records were reordered", seq, want)
			}
			if p.ei == 0 && last.h.Type != TypeEnd && e.h.Previous != "unclean" {
				return rep, brk(lastFile, last, "the file ends at seq %d without an end record, though the next file says it was closed: records were removed from its end", *last.h.Seq)
			}
			if p.ei == 0 && last.h.Type != TypeEnd {
				rep.Notes = append(rep.Notes, fmt.Sprintf("%s:%d: pgcloak stopped without closing the log after seq %d (killed or crashed); the next run continued the chain", lastFile.path, last.line, *last.h.Seq))
			}
		}
		last, lastFile = e, f
		rep.Records++
		rep.LastSeq = seq
	}
	if last == nil {
		return rep, errors.New("no complete record in the files given")
	}
	rep.Closed = last.h.Type == TypeEnd
	if !rep.Closed && !opts.Open {
		return rep, brk(lastFile, last, "the log ends at seq %d without an end record: records after it were removed (truncated), "+
			"or pgcloak was killed or is still writing this file (check a live log, or one of a killed pgcloak, with --open)", *last.h.Seq)
	}
	if !rep.Closed {
		rep.Notes = append(rep.Notes, fmt.Sprintf("the log is open: it ends at seq %d without an end record", *last.h.Seq))
	}
	return rep, nil
}

// startsUnclean says whether a file begins with a start record that
// reports an unclean stop before it.
func startsUnclean(f *verifyFile) bool {
	for _, e := range f.entries {
		return e.ok && e.h.Type == TypeStart && e.h.Previous == "unclean"
	}
	return false
}

func readVerifyFile(path string) (*verifyFile, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	r := bufio.NewReaderSize(fh, 1<<20)
	f := &verifyFile{path: path}
	for n := 1; ; n++ {
		line, err := r.ReadBytes('\n')
		if len(line) > 0 {
			e := verifyEntry{line: n, complete: line[len(line)-1] == '\n'}
			body := bytes.TrimSuffix(line, []byte{'\n'})
			if e.complete {
				e.h, e.ok = parseHeader(body)
				e.hash = lineHash(body)
			}
			f.entries = append(f.entries, e)
		}
		if err == io.EOF {
			return f, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

package audit

import (
	"bufio"
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
	// Instance is the replica that wrote the chain ("" for logs written
	// before records named it).
	Instance string
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

// verifyFile is one file of the log: its first record (to put the files in
// chain order) and, while it is being read, its reader.
type verifyFile struct {
	path  string
	first verifyEntry // the first line

	fh *os.File
	r  *bufio.Reader
	n  int // lines read
}

func (f *verifyFile) firstSeq() uint64 {
	if f.first.ok {
		return *f.first.h.Seq
	}
	return math.MaxUint64
}

func (f *verifyFile) open() error {
	fh, err := os.Open(f.path)
	if err != nil {
		return err
	}
	f.fh, f.r, f.n = fh, bufio.NewReaderSize(fh, 1<<20), 0
	return nil
}

func (f *verifyFile) close() {
	if f.fh != nil {
		f.fh.Close()
		f.fh = nil
	}
}

// next reads the next line; ok is false at the end of the file.
func (f *verifyFile) next() (verifyEntry, bool, error) {
	line, err := f.r.ReadBytes('\n')
	if len(line) == 0 {
		if err == io.EOF {
			return verifyEntry{}, false, nil
		}
		return verifyEntry{}, false, err
	}
	if err != nil && err != io.EOF {
		return verifyEntry{}, false, err
	}
	f.n++
	e := verifyEntry{line: f.n, complete: line[len(line)-1] == '\n'}
	if e.complete {
		body := line[:len(line)-1]
		e.h, e.ok = parseHeader(body)
		e.hash = lineHash(body)
	}
	return e, true, nil
}

// cursor walks the lines of the files in order, one line ahead.
type cursor struct {
	files []*verifyFile
	fi    int // the file of the line ahead
	ahead verifyEntry
	has   bool
	err   error
}

func newCursor(files []*verifyFile) *cursor {
	c := &cursor{files: files, fi: -1}
	c.advance()
	return c
}

// advance reads the line ahead, moving to the next file at an end.
func (c *cursor) advance() {
	c.has = false
	for c.err == nil {
		if c.fi >= 0 && c.fi < len(c.files) && c.files[c.fi].fh != nil {
			e, ok, err := c.files[c.fi].next()
			if err != nil {
				c.err = err
				return
			}
			if ok {
				c.ahead, c.has = e, true
				return
			}
			c.files[c.fi].close()
		}
		c.fi++
		if c.fi >= len(c.files) {
			return
		}
		c.err = c.files[c.fi].open()
	}
}

// take returns the line ahead, its file, and whether it is the last line
// of that file, and reads the next.
func (c *cursor) take() (e verifyEntry, fi int, lastOfFile bool) {
	e, fi = c.ahead, c.fi
	c.advance()
	return e, fi, !c.has || c.fi != fi
}

func (c *cursor) close() {
	for _, f := range c.files {
		f.close()
	}
}

// Verify checks that the files hold one unbroken chain: they may be given
// in any order (they are put in chain order by their first sequence
// number). It returns a *BreakError at the first record where an edit,
// deletion, insertion, reordering or truncation shows. It reads each file
// once, holding one line at a time, whatever the size of the log.
func Verify(paths []string, opts VerifyOptions) (*Report, error) {
	if len(paths) == 0 {
		return nil, errors.New("no files to verify")
	}
	var files []*verifyFile
	rep := &Report{}
	for _, p := range paths {
		f, e, ok, err := firstRecord(p)
		if err != nil {
			return nil, err
		}
		if !ok {
			rep.Notes = append(rep.Notes, p+" is empty")
			continue
		}
		f.first = e
		files = append(files, f)
	}
	if len(files) == 0 {
		return nil, errors.New("no records in the files given")
	}
	sort.SliceStable(files, func(i, j int) bool { return files[i].firstSeq() < files[j].firstSeq() })
	for _, f := range files {
		rep.Files = append(rep.Files, f.path)
	}
	brk := func(path string, e *verifyEntry, format string, args ...any) error {
		var seq uint64
		if e.ok {
			seq = *e.h.Seq
		}
		return &BreakError{File: path, Line: e.line, Seq: seq, Msg: fmt.Sprintf(format, args...)}
	}
	// find says where the record with seq n is, after line `after` of file
	// fi (read again: only a broken chain needs it).
	find := func(fi, after int, n uint64) string {
		for i := fi; i < len(files); i++ {
			f := &verifyFile{path: files[i].path}
			if f.open() != nil {
				continue
			}
			for {
				e, ok, err := f.next()
				if err != nil || !ok {
					break
				}
				if (i > fi || e.line > after) && e.ok && *e.h.Seq == n {
					f.close()
					return fmt.Sprintf("%s:%d", f.path, e.line)
				}
			}
			f.close()
		}
		return ""
	}

	c := newCursor(files)
	defer c.close()
	var last verifyEntry
	haveLast := false
	lastPath := ""
	for c.has {
		e, fi, lastOfFile := c.take()
		f := files[fi]
		firstOfFile := e.line == 1
		lastFileGiven := fi == len(files)-1
		if !e.complete {
			switch {
			case lastFileGiven && opts.Open:
				rep.Notes = append(rep.Notes, fmt.Sprintf("%s:%d: the last line is incomplete (pgcloak stopped while writing it); ignored", f.path, e.line))
				continue
			case !lastFileGiven && lastOfFile && startsUnclean(files[fi+1]):
				rep.Notes = append(rep.Notes, fmt.Sprintf("%s:%d: the last line is incomplete (pgcloak stopped while writing it; the next file says so); ignored", f.path, e.line))
				continue
			}
			return rep, brk(f.path, &e, "incomplete record: the file was truncated here")
		}
		if !e.ok {
			return rep, brk(f.path, &e, "not a valid access record: the line was edited")
		}
		seq := *e.h.Seq
		if firstOfFile && e.h.Type != TypeStart {
			return rep, brk(f.path, &e, "the file does not begin with a start record: records were removed from its beginning")
		}
		if !firstOfFile && e.h.Type == TypeStart {
			return rep, brk(f.path, &e, "a start record in the middle of a file: records were inserted")
		}
		if firstOfFile {
			rep.Instance = e.h.Instance
		} else if e.h.Instance != rep.Instance {
			return rep, brk(f.path, &e, "a record of instance %q in a file of instance %q: records of another replica were inserted", e.h.Instance, rep.Instance)
		}
		if !haveLast {
			rep.FirstSeq = seq
			if *e.h.Prev == "" {
				if seq != 1 {
					return rep, brk(f.path, &e, "the chain begins at seq %d, not 1", seq)
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
				if !c.has || !c.ahead.ok || *c.ahead.h.Prev == e.hash {
					return rep, brk(lastPath, &last, "record seq %d was edited: its hash does not match the one recorded by seq %d (%s:%d)",
						want-1, seq, f.path, e.line)
				}
				return rep, brk(f.path, &e, "record seq %d was edited: its prev does not match the record before it", seq)
			case seq > want:
				if where := find(fi, e.line, want); where != "" {
					return rep, brk(f.path, &e, "records out of order: seq %d stands where seq %d should (seq %d is at %s)", seq, want, want, where)
				}
				if seq == want+1 {
					return rep, brk(f.path, &e, "record seq %d is missing before this one: it was deleted", want)
				}
				return rep, brk(f.path, &e, "records seq %d to %d are missing before this one: they were deleted", want, seq-1)
			default:
				return rep, brk(f.path, &e, "seq %d stands where seq %d should: a record was inserted, or records were reordered", seq, want)
			}
			if firstOfFile && last.h.Type != TypeEnd && e.h.Previous != "unclean" {
				return rep, brk(lastPath, &last, "the file ends at seq %d without an end record, though the next file says it was closed: records were removed from its end", *last.h.Seq)
			}
			if firstOfFile && (last.h.Type != TypeEnd || last.h.Cause == "rotate" && e.h.Previous == "unclean") {
				rep.Notes = append(rep.Notes, fmt.Sprintf("%s:%d: pgcloak stopped without closing the log after seq %d (killed or crashed); the next run continued the chain", lastPath, last.line, *last.h.Seq))
			}
		}
		last, haveLast, lastPath = e, true, f.path
		rep.Records++
		rep.LastSeq = seq
	}
	if c.err != nil {
		return rep, c.err
	}
	if !haveLast {
		return rep, errors.New("no complete record in the files given")
	}
	// A rotation's end record closes a file, not the log: one that ends
	// there was killed before it wrote to the file it had just opened.
	rep.Closed = last.h.Type == TypeEnd && last.h.Cause != "rotate"
	if !rep.Closed && !opts.Open {
		return rep, brk(lastPath, &last, "the log ends at seq %d without an end record: records after it were removed (truncated), "+
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
	return f.first.ok && f.first.h.Type == TypeStart && f.first.h.Previous == "unclean"
}

// GroupByInstance sorts log files by the instance (replica) that wrote
// them, read from each file's first record, so that each replica's chain
// can be verified on its own. Logs written before records named their
// instance are grouped under "". Empty files are left out.
func GroupByInstance(paths []string) (map[string][]string, error) {
	groups := map[string][]string{}
	for _, p := range paths {
		_, e, ok, err := firstRecord(p)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		if !e.ok {
			return nil, fmt.Errorf("%s: the first line is not an access record", p)
		}
		groups[e.h.Instance] = append(groups[e.h.Instance], p)
	}
	return groups, nil
}

// firstRecord reads the first record of the log file at p; ok is false
// for an empty file.
func firstRecord(p string) (f *verifyFile, e verifyEntry, ok bool, err error) {
	f = &verifyFile{path: p}
	if err = f.open(); err != nil {
		return nil, e, false, err
	}
	e, ok, err = f.next()
	f.close()
	return f, e, ok, err
}

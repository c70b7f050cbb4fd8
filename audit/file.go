package audit

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// sink is where the writer puts lines: a file or a stream.
type sink interface {
	// write writes whole lines. On error nothing of b may remain: a sink
	// that wrote part of b removes it, or reports that it could not.
	write(b []byte) error
	// fresh says whether the sink is empty at this point (a new or
	// re-created file): the chain needs a start record there.
	fresh() bool
	// full says whether the sink wants rotating; room, how many bytes it
	// takes before it does.
	full() bool
	room() int64
	// rotate closes the current file (fsynced) and sets it aside; the next
	// write opens a new one.
	rotate() error
	// close flushes and closes.
	close() error
	name() string
}

// fileSink appends to a file, rotating it by size. Rotated files are
// named after the time of their rotation, base-2006-01-02T15-04-05.000.ext,
// so that names sort in chain order.
type fileSink struct {
	path     string
	maxSize  int64 // rotate at this size; 0: never
	maxFiles int   // rotated files to keep; 0: all
	f        *os.File
	size     int64
	dirty    bool // written since the last fsync
}

func newFileSink(path string, maxSize int64, maxFiles int) *fileSink {
	return &fileSink{path: path, maxSize: maxSize, maxFiles: maxFiles}
}

func (s *fileSink) name() string { return "file" }

// open opens the file for appending if it is not open.
func (s *fileSink) open() error {
	if s.f != nil {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(s.path), 0o750); err != nil {
		return err
	}
	f, err := os.OpenFile(s.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	s.f, s.size = f, fi.Size()
	if !fi.Mode().IsRegular() {
		s.size = 0 // a device (/dev/stdout, /dev/full): never rotated
	}
	return nil
}

func (s *fileSink) fresh() bool {
	if s.open() != nil {
		return false
	}
	return s.size == 0
}

func (s *fileSink) write(b []byte) error {
	if err := s.open(); err != nil {
		return err
	}
	n, err := s.f.Write(b)
	if err == nil {
		s.size += int64(n)
		s.dirty = true
		return nil
	}
	if n > 0 {
		// A torn line would break the chain for every later record: cut it
		// off. If even that fails the file is closed, and reopened (and
		// re-checked) at the next attempt.
		if terr := s.f.Truncate(s.size); terr != nil {
			err = fmt.Errorf("%w (and removing the partial write failed: %v)", err, terr)
		}
	}
	// Reopen at the next attempt: the file may have been replaced, or its
	// volume remounted.
	s.f.Close()
	s.f = nil
	return err
}

func (s *fileSink) full() bool { return s.maxSize > 0 && s.size >= s.maxSize }

func (s *fileSink) room() int64 {
	if s.maxSize <= 0 {
		return math.MaxInt64
	}
	return s.maxSize - s.size
}

func (s *fileSink) rotate() error {
	if s.f != nil {
		if err := s.sync(); err != nil {
			return err
		}
		s.f.Close()
		s.f = nil
	}
	if _, err := setAside(s.path); err != nil {
		return err
	}
	s.size = 0
	s.prune()
	return nil
}

func (s *fileSink) sync() error {
	if s.f == nil || !s.dirty {
		return nil
	}
	if err := s.f.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		return err
	}
	s.dirty = false
	return nil
}

func (s *fileSink) close() error {
	if s.f == nil {
		return nil
	}
	err := s.sync()
	if cerr := s.f.Close(); err == nil {
		err = cerr
	}
	s.f = nil
	return err
}

// prune removes the oldest rotated files beyond maxFiles.
func (s *fileSink) prune() {
	if s.maxFiles <= 0 {
		return
	}
	old := rotatedFiles(s.path)
	for len(old) > s.maxFiles {
		os.Remove(old[0])
		old = old[1:]
	}
}

// rotatedName is the name a file rotated at t gets.
func rotatedName(path string, t time.Time) string {
	ext := filepath.Ext(path)
	return strings.TrimSuffix(path, ext) + "-" + t.UTC().Format("2006-01-02T15-04-05.000") + ext
}

// setAside renames path to its rotated name.
func setAside(path string) (string, error) {
	for {
		to := rotatedName(path, time.Now())
		if _, err := os.Lstat(to); err == nil {
			time.Sleep(time.Millisecond) // two rotations in one millisecond
			continue
		}
		return to, os.Rename(path, to)
	}
}

// rotatedFiles lists the rotated files of path, oldest first.
func rotatedFiles(path string) []string {
	ext := filepath.Ext(path)
	pattern := strings.TrimSuffix(path, ext) + "-????-??-??T??-??-??.???" + ext
	m, _ := filepath.Glob(pattern)
	sort.Strings(m)
	return m
}

// tail is what pgcloak finds of a chain when it starts.
type tail struct {
	found  bool // a record was found to continue from
	chain  chain
	closed bool // the last record is an end record
}

// recoverChain finds where the chain left off in the file at path, or, if
// it is missing or empty, in the newest of its rotated files. An existing
// non-empty file is set aside, so that the new run starts a file of its own
// (after a crash its last line may be torn: nothing is appended to it).
func recoverChain(path string) (tail, error) {
	fi, err := os.Stat(path)
	switch {
	case err == nil && !fi.Mode().IsRegular():
		return tail{}, nil // a device: no chain to continue
	case err == nil && fi.Size() > 0:
		t, err := readTail(path)
		if err != nil {
			return tail{}, err
		}
		if _, err := setAside(path); err != nil {
			return tail{}, err
		}
		return t, nil
	case err != nil && !errors.Is(err, os.ErrNotExist):
		return tail{}, err
	}
	old := rotatedFiles(path)
	if len(old) == 0 {
		return tail{}, nil
	}
	return readTail(old[len(old)-1])
}

// readTail reads the last complete record of a file.
func readTail(path string) (tail, error) {
	f, err := os.Open(path)
	if err != nil {
		return tail{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return tail{}, err
	}
	// Records are a few KiB at most; read more only if no complete line
	// fits in the last block.
	for n := int64(64 << 10); ; n *= 4 {
		off := max(fi.Size()-n, 0)
		buf := make([]byte, fi.Size()-off)
		if _, err := f.ReadAt(buf, off); err != nil && err != io.EOF {
			return tail{}, err
		}
		end := bytes.LastIndexByte(buf, '\n')
		if end >= 0 {
			start := bytes.LastIndexByte(buf[:end], '\n') + 1
			if start > 0 || off == 0 {
				line := buf[start:end]
				h, ok := parseHeader(line)
				if !ok {
					return tail{}, fmt.Errorf("the last record of %s is not a valid record; verify it with `pgcloak audit verify`", path)
				}
				return tail{found: true, chain: chain{seq: *h.Seq, prev: lineHash(line)}, closed: h.Type == TypeEnd && h.Cause != "rotate"}, nil
			}
		}
		if off == 0 {
			return tail{}, fmt.Errorf("%s holds no complete record", path)
		}
	}
}

// streamSink writes to a stream such as stdout. A failed write cannot be
// taken back: a partial line is ended with a newline so that it stands
// alone, and the chain shows the break there.
type streamSink struct {
	w       io.Writer
	started bool
	torn    bool
}

func (s *streamSink) name() string { return "stdout" }

func (s *streamSink) write(b []byte) error {
	if s.torn {
		if _, err := s.w.Write([]byte{'\n'}); err != nil {
			return err
		}
		s.torn = false
	}
	n, err := s.w.Write(b)
	if err != nil && n > 0 {
		s.torn = true
	}
	if err == nil {
		s.started = true
	}
	return err
}

func (s *streamSink) fresh() bool   { return !s.started }
func (s *streamSink) full() bool    { return false }
func (s *streamSink) room() int64   { return math.MaxInt64 }
func (s *streamSink) rotate() error { return nil }
func (s *streamSink) close() error  { return nil }

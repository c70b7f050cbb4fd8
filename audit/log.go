package audit

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// OnFailure is what happens to statements when records cannot be written.
type OnFailure string

const (
	// FailClosed refuses new statements while the log cannot be written
	// (the sink fails, or the queue is full). Records of statements that
	// already ran wait for room in the queue rather than being dropped.
	FailClosed OnFailure = "fail_closed"
	// FailOpen lets statements run; records that cannot be written are
	// counted as lost, and a lost record says how many.
	FailOpen OnFailure = "fail_open"
)

// Defaults for zero Options fields.
const (
	DefaultQueueSize = 10000
	DefaultMaxSize   = 100 << 20
)

// How long a fail_closed Emit waits for room in a full queue before it
// counts the record as lost; how long Close waits for a failing sink.
const (
	emitWait  = 5 * time.Second
	closeWait = 5 * time.Second
	maxBatch  = 256
	gatherFor = time.Millisecond
)

// Options configure one Log: one sink, its queue and its writer.
type Options struct {
	// File is the log file; Stream, if File is empty, a stream (stdout).
	File   string
	Stream io.Writer
	// MaxSize rotates the file when it reaches this many bytes (default
	// DefaultMaxSize); MaxFiles is how many rotated files to keep (0: all).
	MaxSize  int64
	MaxFiles int
	// QueueSize bounds the records waiting for the writer.
	QueueSize int
	OnFailure OnFailure
	// WaitForWrite (fail_closed only) makes Written wait until the
	// records emitted before it are written: pgcloak holds a statement's
	// answer until then, so that no answer reaches a client without its
	// record, even when pgcloak is killed.
	WaitForWrite bool
	// Instance names this pgcloak replica in every record, so that the
	// chains of several replicas can be told apart in one collector.
	Instance string
	// RulesVersion names the rules in force, for start records.
	RulesVersion func() string
	Logger       *slog.Logger
	// Registerer, if set, gets the log's metrics.
	Registerer prometheus.Registerer
}

// Log is an append-only, hash-chained access log with one sink. Emit
// queues a record without blocking (fail_open) or blocking only while the
// queue is full (fail_closed); one writer goroutine encodes, chains and
// writes the records in order, many per write.
type Log struct {
	opts   Options
	log    *slog.Logger
	sink   sink
	ch     chan *Record
	done   chan struct{} // closed by the writer when it has finished
	giveUp chan struct{} // closed by Close when a failing sink holds up shutdown

	mu       sync.RWMutex // Emit holds it shared; Close, exclusive
	isClosed bool

	// Owned by the writer.
	chain     chain
	needStart bool
	cause     string // of the next start record
	previous  string
	retryAt   time.Time
	backoff   time.Duration
	noted     int64 // lost records already written in a lost record
	stmts     statementCache
	buf       []byte // the batch being written

	waiting atomic.Int32 // Written calls waiting for the writer

	failing atomic.Bool
	lastErr atomic.Pointer[string]
	written atomic.Int64
	errs    atomic.Int64
	lost    atomic.Int64
}

// Open starts a log. An existing file is set aside and its chain
// continued in a new file; a sink that cannot be written yet is not an
// error: the log starts failing (and, fail_closed, statements are refused)
// until it can.
func Open(opts Options) (*Log, error) {
	if opts.QueueSize <= 0 {
		opts.QueueSize = DefaultQueueSize
	}
	if opts.MaxSize <= 0 {
		opts.MaxSize = DefaultMaxSize
	}
	if opts.OnFailure == "" {
		opts.OnFailure = FailClosed
	}
	if opts.OnFailure != FailClosed && opts.OnFailure != FailOpen {
		return nil, fmt.Errorf("audit: on_failure %q is not fail_closed or fail_open", opts.OnFailure)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	l := &Log{
		opts:      opts,
		ch:        make(chan *Record, opts.QueueSize),
		done:      make(chan struct{}),
		giveUp:    make(chan struct{}),
		needStart: true,
		stmts:     statementCache{},
		cause:     "new",
		previous:  "none",
	}
	switch {
	case opts.File != "":
		t, err := recoverChain(opts.File)
		if err != nil {
			return nil, fmt.Errorf("audit: continuing the chain of %s: %w", opts.File, err)
		}
		if t.found {
			l.chain, l.cause, l.previous = t.chain, "restart", "unclean"
			if t.closed {
				l.previous = "closed"
			}
		}
		l.sink = newFileSink(opts.File, opts.MaxSize, opts.MaxFiles)
		l.chain.instance = opts.Instance
	case opts.Stream != nil:
		l.sink = &streamSink{w: opts.Stream}
		l.chain.instance = opts.Instance
	default:
		return nil, errors.New("audit: no file and no stream")
	}
	l.log = opts.Logger.With("sink", l.sink.name())
	if opts.Registerer != nil {
		registerMetrics(opts.Registerer, l)
	}
	go l.run()
	return l, nil
}

// Emit queues a record. It never blocks in fail_open; in fail_closed it
// waits while the queue is full, for a few seconds at most, and then
// counts the record as lost. r must not be changed afterwards.
func (l *Log) Emit(r *Record) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.isClosed {
		l.lose(1, "record emitted after the access log was closed")
		return
	}
	select {
	case l.ch <- r:
		return
	default:
	}
	if l.opts.OnFailure == FailOpen {
		l.lose(1, "")
		return
	}
	t := time.NewTimer(emitWait)
	defer t.Stop()
	select {
	case l.ch <- r:
	case <-t.C:
		l.lose(1, "the access log queue stayed full")
	}
}

// Written returns once the records emitted before it (by this goroutine,
// or by any other before the call) are written to the sink, so that a
// kill of pgcloak cannot lose them (the operating system holds them), or
// once the log is closed. It returns at once without WaitForWrite or in
// fail_open. While the sink fails (fail_closed), it waits.
func (l *Log) Written() {
	if !l.opts.WaitForWrite || l.opts.OnFailure != FailClosed {
		return
	}
	m := &Record{written: make(chan struct{})}
	l.waiting.Add(1)
	defer l.waiting.Add(-1)
	l.mu.RLock()
	if l.isClosed {
		l.mu.RUnlock()
		return
	}
	t := time.NewTimer(emitWait)
	select {
	case l.ch <- m:
	case <-t.C:
		// The queue stayed full: the records before were counted as
		// lost by Emit already.
		t.Stop()
		l.mu.RUnlock()
		return
	}
	t.Stop()
	l.mu.RUnlock()
	<-m.written
}

func (l *Log) lose(n int64, why string) {
	l.lost.Add(n)
	if why != "" {
		l.log.Error("access records lost", "count", n, "reason", why)
	}
}

// Admit says whether a new statement may run: nil, or why not. In
// fail_open it is always nil.
func (l *Log) Admit() error {
	if l.opts.OnFailure == FailOpen {
		return nil
	}
	if l.failing.Load() {
		return errors.New("the access log cannot be written")
	}
	if len(l.ch) >= cap(l.ch) {
		return errors.New("the access log queue is full")
	}
	return nil
}

// Healthy says whether the sink is being written: nil, or its last error.
func (l *Log) Healthy() error {
	if !l.failing.Load() {
		return nil
	}
	if e := l.lastErr.Load(); e != nil {
		return errors.New(*e)
	}
	return errors.New("failing")
}

// Stats are the log's counters.
type Stats struct {
	Written, WriteErrors, Lost int64
	Queued                     int
	Failing                    bool
}

func (l *Log) Stats() Stats {
	return Stats{Written: l.written.Load(), WriteErrors: l.errs.Load(), Lost: l.lost.Load(),
		Queued: len(l.ch), Failing: l.failing.Load()}
}

// Close writes what is queued and an end record, fsyncs and closes the
// sink. Records emitted after Close are counted as lost.
func (l *Log) Close() error {
	l.mu.Lock()
	if !l.isClosed {
		l.isClosed = true
		close(l.ch)
	}
	l.mu.Unlock()
	select {
	case <-l.done:
	case <-time.After(closeWait):
		close(l.giveUp)
		<-l.done
	}
	return l.Healthy()
}

// run is the writer.
func (l *Log) run() {
	defer close(l.done)
	l.commit(nil)
	batch := make([]*Record, 0, maxBatch)
	var markers []*Record // Written calls, answered once the batch is written
	for {
		r, ok := <-l.ch
		if !ok {
			break
		}
		if len(l.ch) < maxBatch/4 && l.waiting.Load() == 0 {
			// Let a batch gather: one write for many records, and
			// sessions that emit meanwhile wake no one. Not while an
			// answer waits for its record.
			time.Sleep(gatherFor)
		}
		batch, markers = batch[:0], markers[:0]
		if r.written != nil {
			markers = append(markers, r)
		} else {
			batch = append(batch, r)
		}
		more := true
	drain:
		for len(batch) < maxBatch {
			select {
			case r, ok := <-l.ch:
				if !ok {
					more = false
					break drain
				}
				if r.written != nil {
					markers = append(markers, r)
				} else {
					batch = append(batch, r)
				}
			default:
				break drain
			}
		}
		for rest := batch; len(rest) > 0; {
			n, _ := l.commit(rest)
			rest = rest[n:]
			if l.sink.full() {
				l.rotate()
			}
		}
		for _, m := range markers { // everything queued before them is written
			close(m.written)
		}
		if !more {
			break
		}
	}
	l.commit([]*Record{{Time: time.Now(), Type: TypeEnd, Cause: "shutdown"}})
	if err := l.sink.close(); err != nil {
		l.log.Error("closing the access log", "err", err)
	}
}

// rotate ends the current file and begins the next with a start record.
func (l *Log) rotate() {
	if _, ok := l.commit([]*Record{{Time: time.Now(), Type: TypeEnd, Cause: "rotate"}}); !ok {
		return
	}
	if err := l.sink.rotate(); err != nil {
		l.fail(err)
		return
	}
	l.needStart, l.cause, l.previous = true, "rotate", "closed"
	l.commit(nil)
}

// commit writes batch, or as much of it as fits before the file is due
// for rotation (at least one record), with a start record and a lost
// record before it when they are due. It returns how many records of
// batch it dealt with and whether they were written. On failure,
// fail_closed retries until it succeeds or Close gives up; fail_open
// counts the records as lost.
func (l *Log) commit(batch []*Record) (int, bool) {
	buf := l.buf[:0]
	defer func() {
		if cap(buf) <= 4<<20 {
			l.buf = buf[:0] // kept for the next batch
		}
	}()
	for {
		if l.opts.OnFailure == FailOpen && l.failing.Load() && time.Now().Before(l.retryAt) {
			l.lose(int64(len(batch)), "")
			return len(batch), false
		}
		var (
			next  chain
			n     int
			lines int
			lost  int64
			err   error
		)
		buf, next, n, lines, lost = l.encode(buf[:0], batch)
		err = l.sink.write(buf)
		if err == nil {
			l.chain, l.needStart, l.noted = next, false, lost
			l.written.Add(int64(lines))
			l.recovered()
			return n, true
		}
		l.errs.Add(1)
		l.fail(err)
		if l.opts.OnFailure == FailOpen {
			l.lose(int64(len(batch)), "")
			return len(batch), false
		}
		select {
		case <-l.giveUp:
			l.lose(int64(len(batch)), "the access log could not be written before shutdown")
			return len(batch), false
		case <-time.After(l.backoff):
		}
	}
}

// encode renders one attempt at writing batch: the chain records due
// before it (a start record where the file begins, a lost record when
// records were lost since the last one), then as many records of the
// batch as fit before rotation is due. It returns the chain after the
// last line, the records of batch taken, the lines and the lost count the
// lost record accounts for.
func (l *Log) encode(buf []byte, batch []*Record) (_ []byte, c chain, n, lines int, lost int64) {
	now := time.Now()
	c = l.chain
	if l.needStart || (l.chain.seq > 0 && l.sink.fresh()) {
		cause, previous := l.cause, l.previous
		if !l.needStart { // the file was removed or replaced under us
			cause, previous = "reopen", "unclean"
		}
		v := ""
		if l.opts.RulesVersion != nil {
			v = l.opts.RulesVersion()
		}
		buf, c = c.appendLine(buf, &Record{Time: now, Type: TypeStart, Cause: cause, Previous: previous, RulesVersion: v}, l.stmts)
		lines++
	}
	lost = l.lost.Load()
	if d := lost - l.noted; d > 0 {
		buf, c = c.appendLine(buf, &Record{Time: now, Type: TypeLost, Lost: d}, l.stmts)
		lines++
	}
	room := l.sink.room()
	for _, r := range batch {
		if n > 0 && int64(len(buf)) >= room {
			break
		}
		buf, c = c.appendLine(buf, r, l.stmts)
		n++
		lines++
	}
	return buf, c, n, lines, lost
}

func (l *Log) fail(err error) {
	msg := err.Error()
	l.lastErr.Store(&msg)
	if !l.failing.Swap(true) {
		l.log.Error("the access log cannot be written", "err", err, "on_failure", string(l.opts.OnFailure))
		l.backoff = 50 * time.Millisecond
	} else {
		l.backoff = min(2*l.backoff, time.Second)
	}
	l.retryAt = time.Now().Add(l.backoff)
}

func (l *Log) recovered() {
	if l.failing.Swap(false) {
		l.log.Info("the access log is written again")
	}
	l.backoff = 0
}

//go:build linux

package proxy

import (
	"errors"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"
)

// The event-loop relay: what PgBouncer does, for the sessions that are a
// pure byte relay (no policy, no access log, no TLS). A few loops (one per
// two GOMAXPROCS) each own an epoll set of sockets, level-triggered. On
// readable: one non-blocking read into the session's frameReader, the same
// scan as relay.go's (transaction status, the requests sent and answered),
// one non-blocking write of every complete message to the peer. A short
// write keeps the rest, waits for the peer to be writable and stops reading
// the side that fills it (back pressure).
//
// Against two goroutines per session over Go's netpoller this saves, per
// round trip, the read that finds nothing before each goroutine parks, two
// goroutine wake-ups and the thread hand-offs behind them: reads and writes
// are raw system calls that cannot block, and the loop blocks only in
// epoll_wait.
//
// The loop handles only the steady state. Anything else ejects the session
// back to the goroutine relay for the rest of its life, with the bytes the
// loop read but has not written yet: a Terminate, EOF or an error on either
// socket, an ErrorResponse that must be looked at (a refusal, or one
// arriving while pgcloak ends the session), a server message larger than
// the buffer (streamed by streamLarge), a client message over the size
// limit, and terminate() from outside. The goroutine relay then does what it
// always did, so every way a session ends keeps one implementation.

// eventLoop is one epoll set and the sessions in it. mu is held while the
// loop handles a batch of events, and by anyone adding or ejecting a
// session, so the loop never works on a session being handed over.
//
// A loop blocks in epoll_wait, which keeps its P until sysmon takes it
// back (20 µs to 10 ms later, when other goroutines wait for one). With
// one loop per two Ps the other Ps serve the other goroutines; with
// GOMAXPROCS=1 the loop would hold them all up (an in-process round trip
// took 690 µs instead of 56), so there it waits in Go's netpoller
// instead (an epoll descriptor is readable when its set has events), at
// about twice the system calls per round trip.
type eventLoop struct {
	epfd   int
	noPoll bool // the netpoller cannot wait for epfd
	mu     sync.Mutex
	fds    map[int32]*loopSession
}

var loops struct {
	once sync.Once
	all  []*eventLoop
	next atomic.Uint32
}

// pickLoop returns a loop for a new session, starting all of them on first
// use (all at once, so the set of long-lived goroutines and descriptors
// does not grow with the sessions); nil if epoll is unavailable.
func pickLoop() *eventLoop {
	loops.once.Do(func() {
		for range loopCount() {
			epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
			if err != nil {
				break
			}
			syscall.SetNonblock(epfd, true) // so that os.NewFile puts it in the netpoller
			l := &eventLoop{epfd: epfd, fds: map[int32]*loopSession{}}
			loops.all = append(loops.all, l)
			go l.run()
		}
	})
	if len(loops.all) == 0 {
		return nil
	}
	return loops.all[loops.next.Add(1)%uint32(len(loops.all))]
}

func (l *eventLoop) run() {
	events := make([]syscall.EpollEvent, 256)
	for {
		if runtime.GOMAXPROCS(0) == 1 && !l.noPoll && l.waitInNetpoller(events) {
			continue
		}
		n, err := syscall.EpollWait(l.epfd, events, -1)
		if err == nil { // else EINTR, from the runtime's signals
			l.handle(events[:n])
		}
	}
}

// waitInNetpoller relays with the epoll set in Go's netpoller (a
// duplicate of its descriptor, so that the netpoller forgets it when the
// loop goes back to epoll_wait: in the netpoller, every event would also
// wake the runtime's own epoll_wait). It handles events until there are
// none, then parks until the set has some, and returns when GOMAXPROCS
// is more than 1 again; false if the netpoller cannot take the set.
func (l *eventLoop) waitInNetpoller(events []syscall.EpollEvent) bool {
	fd, err := dupCloexec(uintptr(l.epfd))
	if err != nil {
		return false
	}
	f := os.NewFile(uintptr(fd), "epoll")
	defer f.Close()
	rc, err := f.SyscallConn()
	if err == nil {
		err = rc.Read(func(uintptr) bool {
			for {
				n, err := syscall.EpollWait(l.epfd, events, 0)
				if err == syscall.EINTR {
					continue
				}
				if err != nil || n == 0 {
					return runtime.GOMAXPROCS(0) > 1
				}
				l.handle(events[:n])
			}
		})
	}
	if err != nil {
		l.noPoll = true
		return false
	}
	return true
}

func (l *eventLoop) handle(events []syscall.EpollEvent) {
	l.mu.Lock()
	for _, ev := range events {
		// A session ejected since epoll_wait returned is gone from
		// fds; a descriptor number reused since then gets an event
		// meant for another socket, which costs it a read that finds
		// nothing (or an ejection, for a hang-up).
		if ls := l.fds[ev.Fd]; ls != nil {
			ls.event(int(ev.Fd), ev.Events)
		}
	}
	l.mu.Unlock()
}

// loopSession is a session while an event loop relays it.
type loopSession struct {
	s       *session
	l       *eventLoop
	up      loopDir // client to server
	down    loopDir // server to client
	cEv     uint32  // the events registered for the client's socket
	uEv     uint32  // and for the server's
	gone    bool
	ejected chan struct{} // closed when the loop lets go of the session
}

// loopDir is one direction: its frameReader reads src, and fr.buf[from:fr.r]
// are complete, scanned messages not yet written to dst.
type loopDir struct {
	src, dst int
	fr       *frameReader
	from     int
}

func (d *loopDir) pending() bool { return d.from < d.fr.r }

// flush writes the pending messages; false on an error (not on a full
// socket buffer: the rest stays pending).
func (d *loopDir) flush() bool {
	for d.from < d.fr.r {
		p := d.fr.buf[d.from:d.fr.r]
		n, _, e := syscall.RawSyscall(syscall.SYS_WRITE, uintptr(d.dst), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
		switch {
		case e == 0:
			d.from += int(n)
		case e == syscall.EINTR:
		case e == syscall.EAGAIN:
			return true
		default:
			return false
		}
	}
	return true
}

// fdReader reads a non-blocking socket for a frameReader: EAGAIN when
// nothing is there; at the end of the stream 0 bytes, which fill reports
// as io.ErrNoProgress.
type fdReader int

func (fd fdReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		n, _, e := syscall.RawSyscall(syscall.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
		switch {
		case e == 0:
			return int(n), nil
		case e == syscall.EINTR:
			continue
		default:
			return 0, e
		}
	}
}

// event handles what epoll reported for one of the session's sockets.
func (ls *loopSession) event(fd int, ev uint32) {
	if ls.gone {
		return
	}
	if ev&(syscall.EPOLLERR|syscall.EPOLLHUP) != 0 {
		ls.eject() // the goroutine relay reads what is left, then the error
		return
	}
	in, out := &ls.down, &ls.up // the server's socket feeds down and drains up
	if fd == ls.up.src {
		in, out = &ls.up, &ls.down
	}
	if ev&syscall.EPOLLOUT != 0 && out.pending() && !out.flush() {
		ls.eject()
		return
	}
	if ev&syscall.EPOLLIN != 0 && !in.pending() && !ls.pump(in) {
		ls.eject()
		return
	}
	ls.arm()
}

// pump reads what the source of d has, scans it and writes the complete
// messages on; false when the session must leave the loop.
func (ls *loopSession) pump(d *loopDir) bool {
	err := d.fr.fill()
	d.from = d.fr.r // nothing was pending; fill may have moved what is unscanned
	if err != nil {
		return err == syscall.EAGAIN // anything else: EOF or an error
	}
	var ok bool
	if d == &ls.up {
		ok = ls.scanClient()
	} else {
		ok = ls.scanServer()
	}
	if !ok {
		return false
	}
	return d.flush()
}

// scanClient follows the client's messages as clientToServer does for a
// session without a policy; it stops before a message the goroutine relay
// must handle.
func (ls *loopSession) scanClient() bool {
	s, fr := ls.s, ls.up.fr
	for {
		at := fr.r
		msg, ok, err := fr.next()
		if err != nil {
			return false // over the size limit or malformed: left unread
		}
		if !ok {
			return true
		}
		switch clientMsg(msg[0]) {
		case clientQuery, clientFunctionCall, clientSync:
			s.dirty.Store(false)
			s.sent.Add(1)
		case clientTerminate:
			fr.r = at
			return false
		default:
			s.dirty.Store(true)
		}
	}
}

// scanServer follows the server's messages as serverToClient does for a
// session without a policy.
func (ls *loopSession) scanServer() bool {
	s, fr := ls.s, ls.down.fr
	for {
		at := fr.r
		msg, ok, _ := fr.next()
		if !ok {
			break
		}
		switch serverMsg(msg[0]) {
		case serverReadyForQuery:
			s.txStatus.Store(uint32(msg[5]))
			s.done.Add(1)
		case serverErrorResponse:
			if s.terminating.Load() || matchRefusal(msg) != nil {
				fr.r = at
				return false
			}
			s.serverFatal = isFatal(msg)
		}
	}
	// A message larger than the buffer is streamed, not held.
	_, total, ok := fr.pendingHeader()
	return !ok || total <= len(fr.buf)
}

// arm registers the events the session waits for: readable on a side
// whose messages have all been written, writable on a side with messages
// waiting for it.
func (ls *loopSession) arm() {
	var c, u uint32
	if ls.up.pending() {
		u |= syscall.EPOLLOUT
	} else {
		c |= syscall.EPOLLIN
	}
	if ls.down.pending() {
		c |= syscall.EPOLLOUT
	} else {
		u |= syscall.EPOLLIN
	}
	if c != ls.cEv {
		ls.ctl(ls.up.src, c)
		ls.cEv = c
	}
	if u != ls.uEv {
		ls.ctl(ls.down.src, u)
		ls.uEv = u
	}
}

func (ls *loopSession) ctl(fd int, events uint32) {
	ev := syscall.EpollEvent{Events: events, Fd: int32(fd)}
	if syscall.EpollCtl(ls.l.epfd, syscall.EPOLL_CTL_MOD, fd, &ev) != nil {
		ls.eject()
	}
}

// eject hands the session back to its goroutine; l.mu is held.
func (ls *loopSession) eject() {
	if ls.gone {
		return
	}
	ls.gone = true
	for _, fd := range []int{ls.up.src, ls.down.src} {
		syscall.EpollCtl(ls.l.epfd, syscall.EPOLL_CTL_DEL, fd, nil)
		delete(ls.l.fds, int32(fd))
	}
	close(ls.ejected)
}

// requestEject ejects the session from outside the loop.
func (ls *loopSession) requestEject() {
	ls.l.mu.Lock()
	ls.eject()
	ls.l.mu.Unlock()
}

// relayOnLoop relays the session on an event loop for as long as it can
// and returns, once the loop has let go of it, the bytes the loop read
// and did not write (client to server, server to client), with s.client
// and s.upstream connections again. ok is false when the session cannot go
// on (its sockets could not be taken back). A session the loop cannot take
// returns at once, with nothing pending.
func (s *session) relayOnLoop() (up, down []byte, ok bool) {
	l := pickLoop()
	if l == nil {
		return nil, nil, true
	}
	ls, ok := s.enterLoop(l)
	if !ok {
		return nil, nil, true
	}

	s.srv.onLoop.Add(1)
	<-ls.ejected
	s.srv.onLoop.Add(-1)

	cfd, ufd := ls.up.src, ls.down.src
	client, cerr := fileConn(cfd, "client")
	upstream, uerr := fileConn(ufd, "upstream")
	if cerr != nil || uerr != nil {
		s.log.Warn("cannot take a session back from the event loop", "err", errors.Join(cerr, uerr))
		if cerr == nil {
			client.Close()
		}
		if uerr == nil {
			upstream.Close()
		}
		s.loopMu.Lock()
		s.onLoop = nil
		s.loopMu.Unlock()
		return nil, nil, false
	}
	s.cr.rd, s.ur.rd = client, upstream
	s.loopMu.Lock()
	s.client, s.upstream = client, upstream
	s.onLoop = nil
	term := s.termOnEject
	s.loopMu.Unlock()
	if term {
		s.endFromOutside()
	}
	return ls.up.fr.buf[ls.up.from:ls.up.fr.r], ls.down.fr.buf[ls.down.from:ls.down.fr.r], true
}

// enterLoop hands the session's sockets to l; false if it cannot, the
// connections untouched. A session being terminated stays where it is:
// terminate() has ended, or is ending, its connections as they are.
func (s *session) enterLoop(l *eventLoop) (*loopSession, bool) {
	s.loopMu.Lock()
	defer s.loopMu.Unlock()
	if s.terminating.Load() {
		return nil, false
	}
	cfd, err := dupConn(s.client)
	if err != nil {
		return nil, false
	}
	ufd, err := dupConn(s.upstream)
	if err != nil {
		syscall.Close(cfd)
		return nil, false
	}
	crd, urd := s.cr.rd, s.ur.rd
	s.cr.rd, s.ur.rd = fdReader(cfd), fdReader(ufd)
	ls := &loopSession{s: s, l: l, ejected: make(chan struct{}),
		up:   loopDir{src: cfd, dst: ufd, fr: s.cr, from: s.cr.r},
		down: loopDir{src: ufd, dst: cfd, fr: s.ur, from: s.ur.r}}
	if !l.add(ls) {
		s.cr.rd, s.ur.rd = crd, urd
		syscall.Close(cfd)
		syscall.Close(ufd)
		return nil, false
	}
	s.onLoop = ls
	// The sockets are the loop's now: closing the connections takes them
	// out of Go's netpoller, whose wake-ups are what the loop saves.
	s.client.Close()
	s.upstream.Close()
	return ls, true
}

// add registers the session's two sockets.
func (l *eventLoop) add(ls *loopSession) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(ls.up.src)}
	if syscall.EpollCtl(l.epfd, syscall.EPOLL_CTL_ADD, ls.up.src, &c) != nil {
		return false
	}
	u := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(ls.down.src)}
	if syscall.EpollCtl(l.epfd, syscall.EPOLL_CTL_ADD, ls.down.src, &u) != nil {
		syscall.EpollCtl(l.epfd, syscall.EPOLL_CTL_DEL, ls.up.src, nil)
		return false
	}
	ls.cEv, ls.uEv = syscall.EPOLLIN, syscall.EPOLLIN
	l.fds[int32(ls.up.src)] = ls
	l.fds[int32(ls.down.src)] = ls
	return true
}

// dupConn returns a close-on-exec duplicate of the connection's socket
// (non-blocking, as Go keeps it).
func dupConn(c net.Conn) (int, error) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return -1, errors.New("no socket")
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	var derr error
	err = rc.Control(func(f uintptr) { fd, derr = dupCloexec(f) })
	return fd, errors.Join(err, derr)
}

// dupCloexec duplicates a descriptor, close-on-exec.
func dupCloexec(fd uintptr) (int, error) {
	r, _, e := syscall.Syscall(syscall.SYS_FCNTL, fd, syscall.F_DUPFD_CLOEXEC, 0)
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}

// fileConn makes a net.Conn of a socket again, taking ownership of fd.
func fileConn(fd int, name string) (net.Conn, error) {
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	return net.FileConn(f)
}

// loopCount is one loop per two Ps, at least one. A loop blocked in
// epoll_wait holds its P in a system call; were every P so held, sysmon
// would take them back at each of its ticks and every wake-up would have
// to find a P again (measured on 2 cores: two loops cost 1.3-1.8 times the
// CPU per round trip of one, with 0.4 sysmon nanosleeps per transaction).
func loopCount() int {
	return max(1, runtime.GOMAXPROCS(0)/2)
}

package proxy

import (
	"encoding/binary"
	"fmt"
	"io"
)

const (
	headerLen     = 5 // type byte + int32 length
	initialBufLen = 16 << 10
	// shrinkAbove is the buffer size past which an idle reader gives its
	// buffer back, so one large message does not pin memory for the session.
	shrinkAbove = 1 << 20
)

// errMessageTooLarge is returned by frameReader.next when a message header
// announces more than the reader's limit.
type errMessageTooLarge struct {
	typ  byte
	size int
	max  int
}

func (e *errMessageTooLarge) Error() string {
	return fmt.Sprintf("message of type %q is %d bytes, over the limit of %d", e.typ, e.size, e.max)
}

// frameReader splits a stream of typed protocol messages in place. One read
// fills the buffer with as many messages as the peer has sent; next hands
// them out as slices of that buffer (header included), valid until the
// next call to fill.
type frameReader struct {
	rd   io.Reader
	buf  []byte
	r, w int // unread data is buf[r:w]
	max  int // largest message accepted, 0 for no limit
}

func newFrameReader(rd io.Reader, max int) *frameReader {
	return &frameReader{rd: rd, buf: make([]byte, initialBufLen), max: max}
}

// fill reads at least one more byte from the connection, making room by
// moving unread bytes to the front and growing the buffer when a message
// larger than it is pending.
func (f *frameReader) fill() error {
	if f.r == f.w {
		f.r, f.w = 0, 0
		if len(f.buf) > shrinkAbove {
			f.buf = make([]byte, initialBufLen)
		}
	}
	need := 0
	if f.w-f.r >= headerLen {
		need = headerLen - 1 + int(binary.BigEndian.Uint32(f.buf[f.r+1:]))
	}
	if need > len(f.buf) {
		nb := make([]byte, need)
		f.w = copy(nb, f.buf[f.r:f.w])
		f.r = 0
		f.buf = nb
	} else if f.w == len(f.buf) || (need > 0 && f.r+need > len(f.buf)) {
		f.w = copy(f.buf, f.buf[f.r:f.w])
		f.r = 0
	}
	n, err := f.rd.Read(f.buf[f.w:])
	f.w += n
	if n > 0 {
		return nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return err
}

// next returns the next complete message, or ok == false when more bytes
// must be read first.
func (f *frameReader) next() (msg []byte, ok bool, err error) {
	if f.w-f.r < headerLen {
		return nil, false, nil
	}
	l := int(binary.BigEndian.Uint32(f.buf[f.r+1:]))
	if l < 4 {
		return nil, false, fmt.Errorf("invalid message length %d", l)
	}
	if f.max > 0 && l-4 > f.max {
		return nil, false, &errMessageTooLarge{typ: f.buf[f.r], size: l - 4, max: f.max}
	}
	if f.w-f.r < l+1 {
		return nil, false, nil
	}
	msg = f.buf[f.r : f.r+l+1]
	f.r += l + 1
	return msg, true, nil
}

// pendingHeader returns the type and total length of a message whose header
// is buffered but whose body is not complete yet.
func (f *frameReader) pendingHeader() (typ byte, total int, ok bool) {
	if f.w-f.r < headerLen {
		return 0, 0, false
	}
	return f.buf[f.r], int(binary.BigEndian.Uint32(f.buf[f.r+1:])) + 1, true
}

// take removes and returns all buffered bytes (used to stream the head of a
// message too large to hold).
func (f *frameReader) take() []byte {
	b := f.buf[f.r:f.w]
	f.r, f.w = 0, 0
	return b
}

// readMessage reads one whole message, blocking as needed.
func (f *frameReader) readMessage() ([]byte, error) {
	for {
		msg, ok, err := f.next()
		if err != nil || ok {
			return msg, err
		}
		if err := f.fill(); err != nil {
			return nil, err
		}
	}
}

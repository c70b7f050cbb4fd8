package proxy

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
)

// chunkedReader hands out its data a few bytes at a time, as a network
// connection may.
type chunkedReader struct {
	data  []byte
	chunk int
}

func (r *chunkedReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), r.chunk)], r.data)
	r.data = r.data[n:]
	return n, nil
}

// FuzzFrameReader checks frameReader against a plain reading of the
// protocol's framing, whatever the bytes, the read sizes and the limit:
// every whole message comes out intact and in order, a length below 4 or
// over the limit is an error before anything is allocated for it, and an
// incomplete message at the end is the reader's EOF. The seed corpus is
// testdata/fuzz/FuzzFrameReader; one seed is larger than the reader's first
// buffer, which makes minimizing new inputs slow when fuzzing.
func FuzzFrameReader(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte, chunk uint8, limit uint16) {
		maxBody := int(limit) + 1 // pgcloak always limits what a client may send
		fr := newFrameReader(&chunkedReader{data: data, chunk: int(chunk%64) + 1}, maxBody)
		rest := data
		largest := 0 // the largest message read so far
		for {
			msg, err := fr.readMessage()
			switch {
			case len(rest) < 5:
				if err == nil || !errors.Is(err, io.EOF) {
					t.Fatalf("at the end: %q, %v", msg, err)
				}
				return
			}
			l := int(binary.BigEndian.Uint32(rest[1:]))
			var tooLarge *errMessageTooLarge
			switch {
			case l < 4:
				if err == nil || errors.As(err, &tooLarge) {
					t.Fatalf("length %d: want an error, got %q, %v", l, msg, err)
				}
				return
			case l-4 > maxBody:
				if !errors.As(err, &tooLarge) || tooLarge.size != l-4 || tooLarge.max != maxBody || tooLarge.typ != rest[0] {
					t.Fatalf("length %d over %d: got %q, %v", l, maxBody, msg, err)
				}
				if len(fr.buf) > max(initialBufLen, largest+headerLen) {
					t.Fatalf("buffer grew to %d for a message over the limit", len(fr.buf))
				}
				return
			case len(rest) < l+1:
				if !errors.Is(err, io.EOF) {
					t.Fatalf("incomplete message: got %q, %v", msg, err)
				}
				return
			}
			if err != nil || !bytes.Equal(msg, rest[:l+1]) {
				t.Fatalf("got %q, %v; want %q", msg, err, rest[:l+1])
			}
			rest = rest[l+1:]
			largest = max(largest, l+1)
		}
	})
}

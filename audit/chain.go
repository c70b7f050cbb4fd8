package audit

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strconv"
)

// The hash chain. Every line of the log is one JSON object that begins
// with its sequence number, the hash of the line before it and the
// instance (the pgcloak replica) that wrote it:
//
//	{"seq":42,"prev":"<sha256 of line 41, hex>","instance":"pgcloak-0","time":…,"type":…,…}
//
// Each replica writes a chain of its own; logs written before records
// named their instance have no instance field, and still verify.
//
// The hash is taken over the exact bytes of the previous line, without its
// newline, so verifying needs no canonical re-encoding: the bytes on disk
// are the bytes that were hashed. The first record of a chain has an empty
// prev; a chain continues across rotated files and restarts (the start
// record of the new file carries the hash of the last record of the old).

// chain is the writer's position in the chain: the last record written.
type chain struct {
	seq  uint64
	prev string // hex sha256 of the last line; "" before the first record
	// instance names the pgcloak replica writing the chain, in every
	// record after prev; "" leaves it out (the format before replicas).
	instance string
}

// appendLine appends r as one line (with its newline) after c and returns
// the chain advanced past it.
func (c chain) appendLine(dst []byte, r *Record, stmts statementCache) ([]byte, chain) {
	start := len(dst)
	next := chain{seq: c.seq + 1, instance: c.instance}
	dst = append(dst, `{"seq":`...)
	dst = strconv.AppendUint(dst, next.seq, 10)
	dst = append(dst, `,"prev":"`...)
	dst = append(dst, c.prev...)
	dst = append(dst, `",`...)
	if c.instance != "" {
		dst = append(dst, `"instance":`...)
		dst = appendString(dst, c.instance)
		dst = append(dst, ',')
	}
	dst = r.appendJSON(dst, stmts)
	sum := sha256.Sum256(dst[start:])
	next.prev = hex.EncodeToString(sum[:])
	return append(dst, '\n'), next
}

// lineHash is the hash a record's successor carries as prev.
func lineHash(line []byte) string {
	sum := sha256.Sum256(line)
	return hex.EncodeToString(sum[:])
}

// header is the part of a line that verification and chain recovery read.
type header struct {
	Seq      *uint64 `json:"seq"`
	Prev     *string `json:"prev"`
	Type     string  `json:"type"`
	Cause    string  `json:"cause"`
	Previous string  `json:"previous"`
	Instance string  `json:"instance"`
}

func parseHeader(line []byte) (header, bool) {
	var h header
	if err := json.Unmarshal(line, &h); err != nil || h.Seq == nil || h.Prev == nil || h.Type == "" {
		return h, false
	}
	return h, true
}

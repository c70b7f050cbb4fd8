package audit_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/pgcloak/pgcloak/audit"
)

// BenchmarkRecord measures one statement record through the queue, the
// writer's encoding and chaining, and the file (CPU per record: run with
// -benchtime and compare ns/op with the statement's own cost).
func BenchmarkRecord(b *testing.B) {
	l, err := audit.Open(audit.Options{File: filepath.Join(b.TempDir(), "audit.log"), QueueSize: 100000})
	if err != nil {
		b.Fatal(err)
	}
	st := &audit.Statement{Role: "none", Kind: "select", Fingerprint: "9a0be1e2c3d4f5a6",
		Query: "SELECT abalance FROM pgbench_accounts WHERE aid = $1", Decision: audit.Allowed,
		Objects: []audit.Object{{Relation: "public.pgbench_accounts", Access: "read"}}}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		r := &audit.Record{Time: time.Now(), Type: audit.TypeStatement, Session: "27f292b530a6", Client: "127.0.0.1:48502",
			Login: "bench", Database: "bench", Application: "pgbench", Statement: st, Protocol: "extended", DurationUS: 95}
		r.SetRows(1)
		l.Emit(r)
	}
	l.Close()
}

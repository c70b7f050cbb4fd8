package engine_test

// Tests from the independent review of the prepared shapes: pgcloak's own
// Parse must never run inside the client's unsynced extended-protocol
// work, take a cancel meant for the client, or hide the server's FATAL.

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgcloak/pgcloak/examples/crm"
	"github.com/pgcloak/pgcloak/internal/cloaktest"
	"github.com/pgcloak/pgcloak/internal/pgtest"
)

// rawVia connects as the superuser directly, or as alice through f.
func rawVia(t *testing.T, f *prepFront, direct bool) *cloaktest.Raw {
	t.Helper()
	if !direct {
		return cloaktest.DialRaw(t, f.Addr, "alice")
	}
	pc, err := pgconn.Connect(context.Background(), pg.DSN(pgtest.SuperUser, pgtest.Database))
	if err != nil {
		t.Fatal(err)
	}
	return cloaktest.Hijack(t, pc)
}

func segmentOf(t *testing.T, id int64) string {
	t.Helper()
	var s string
	if err := cloaktest.Admin(t, pg).QueryRow(context.Background(), "SELECT segment FROM customers WHERE customer_id = $1", id).Scan(&s); err != nil {
		t.Fatal(err)
	}
	return s
}

func setSegment(t *testing.T, id int64, s string) {
	t.Helper()
	if _, err := cloaktest.Admin(t, pg).Exec(context.Background(), "UPDATE customers SET segment = $1 WHERE customer_id = $2", s, id); err != nil {
		t.Fatal(err)
	}
}

func tagged(suffix string) func(pgproto3.BackendMessage) bool {
	return func(m pgproto3.BackendMessage) bool {
		return m != nil && strings.HasSuffix(fmt.Sprintf("%T", m), suffix)
	}
}

// A Query that would prepare a shape arrives after the client's
// extended-protocol UPDATE was executed and flushed, not synced (in an
// implicit transaction, or after an extended BEGIN). The UPDATE must end
// as it does on the server directly, whether pgcloak's Parse would fail
// (a template PostgreSQL cannot prepare) or the Query itself fails.
func TestShapePrepareWaitsForSync(t *testing.T) {
	north, _ := northIDs(t)
	id := north[3]
	for _, c := range []struct {
		name  string
		begin bool
		shape func(i int) string
	}{
		{"parse fails", false, func(i int) string {
			return fmt.Sprintf("/* batch */ SELECT 'w%d' IS NULL AS n, first_name FROM customers WHERE customer_id = %d", i, north[i])
		}},
		{"query fails", false, func(i int) string {
			d := 1
			if i == 2 {
				d = 0
			}
			return fmt.Sprintf("/* batch q */ SELECT customer_id, 100 / %d AS q FROM customers WHERE customer_id = %d", d, north[i])
		}},
		{"after BEGIN", true, func(i int) string {
			return fmt.Sprintf("/* begin */ SELECT 'z%d' IS NULL AS n, first_name FROM customers WHERE customer_id = %d", i, north[i])
		}},
	} {
		segs := map[bool]string{}
		for _, direct := range []bool{true, false} {
			setSegment(t, id, "before")
			r := rawVia(t, newPrepFront(t), direct)
			r.RoundTrip(t, 1, &pgproto3.Query{String: c.shape(0)})
			r.RoundTrip(t, 1, &pgproto3.Query{String: c.shape(1)})
			var msgs []pgproto3.FrontendMessage
			if c.begin {
				msgs = append(msgs, &pgproto3.Parse{Query: "BEGIN"}, &pgproto3.Bind{}, &pgproto3.Execute{})
			}
			msgs = append(msgs, &pgproto3.Parse{Query: fmt.Sprintf("UPDATE customers SET segment = 'after' WHERE customer_id = %d", id)},
				&pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Flush{})
			r.Send(t, msgs...)
			got := r.Read(t, func(m pgproto3.BackendMessage) bool {
				cc, ok := m.(*pgproto3.CommandComplete)
				return ok && strings.HasPrefix(string(cc.CommandTag), "UPDATE")
			})
			got += r.RoundTrip(t, 1, &pgproto3.Query{String: c.shape(2)})
			if c.begin {
				got += r.RoundTrip(t, 1, &pgproto3.Query{String: "COMMIT"})
			}
			segs[direct] = segmentOf(t, id)
			t.Logf("%s, direct %v: segment %q\n%s", c.name, direct, segs[direct], got)
		}
		if segs[true] != segs[false] {
			t.Errorf("%s: the client's unsynced UPDATE left segment %q through pgcloak, %q directly", c.name, segs[false], segs[true])
		}
	}
	setSegment(t, id, "standard")
}

// lockCustomers holds an ACCESS EXCLUSIVE lock on customers until the
// returned function (or the test's end) releases it.
func lockCustomers(t *testing.T) (release func()) {
	t.Helper()
	ctx := context.Background()
	tx, err := cloaktest.Admin(t, pg).Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "LOCK TABLE customers IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	release = sync.OnceFunc(func() { tx.Rollback(ctx) })
	t.Cleanup(release)
	return release
}

// waitingOnLock waits until a backend waits for a lock on customers.
func waitingOnLock(t *testing.T) {
	t.Helper()
	admin := cloaktest.Admin(t, pg)
	pgtest.Eventually(t, 10*time.Second, "a backend waiting for the lock on customers", func() bool {
		var n int
		err := admin.QueryRow(context.Background(),
			"SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'customers'::regclass").Scan(&n)
		return err == nil && n > 0
	})
}

// A client's cancel of a Query stuck behind pgcloak's own Parse (both
// waiting for a lock) cancels the Query: the client gets 57014, not the
// rows once the lock is released; also when the cancel reaches the server
// another way (through another pgcloak replica).
func TestShapePrepareCancel(t *testing.T) {
	north, _ := northIDs(t)
	for n, via := range []string{"this pgcloak", "another replica"} {
		q := func(i int) string {
			return fmt.Sprintf("/* cancel %d */ SELECT first_name, email FROM customers WHERE customer_id = %d", n, north[i])
		}
		f := newPrepFront(t)
		pc, err := pgconn.Connect(context.Background(), f.DSN("alice", crm.DemoPassword))
		if err != nil {
			t.Fatal(err)
		}
		pid, secret := pc.PID(), pc.SecretKey()
		r := cloaktest.Hijack(t, pc)
		r.RoundTrip(t, 1, &pgproto3.Query{String: q(0)})
		r.RoundTrip(t, 1, &pgproto3.Query{String: q(1)}) // the shape is now wanted
		prepared := f.prepared()
		release := lockCustomers(t)
		r.Send(t, &pgproto3.Query{String: q(2)}) // behind pgcloak's Parse
		waitingOnLock(t)
		to := f.Addr
		if via == "another replica" {
			to = pg.Addr() // the key is the server's own
		}
		sendCancel(t, to, pid, secret)
		// Released only once the client has its answer, or after a
		// while, so that a lost cancel shows as rows.
		done, released := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(released)
			select {
			case <-done:
			case <-time.After(5 * time.Second):
			}
			release()
		}()
		got := r.Read(t, tagged("ReadyForQuery"))
		close(done)
		<-released
		if !strings.Contains(got, "ErrorResponse 57014") {
			t.Fatalf("via %s: the cancelled Query answered\n%s", via, got)
		}
		if f.prepared() != prepared {
			t.Fatalf("via %s: the Parse the cancel took counted as prepared", via)
		}
		// The session goes on.
		if got := r.RoundTrip(t, 1, &pgproto3.Query{String: q(3)}); strings.Contains(got, "ErrorResponse") {
			t.Fatal(got)
		}
	}
}

func sendCancel(t *testing.T, addr string, pid uint32, secret []byte) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	req := (&pgproto3.CancelRequest{ProcessID: pid, SecretKey: secret})
	b, err := req.Encode(nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var one [1]byte
	c.Read(one[:]) // the server closes once it has handled it
}

// The server's FATAL while pgcloak's own Parse waits (an operator
// terminates the backend) reaches the client as the server sent it.
func TestShapePrepareFatal(t *testing.T) {
	north, _ := northIDs(t)
	q := func(i int) string {
		return fmt.Sprintf("/* fatal */ SELECT first_name, email FROM customers WHERE customer_id = %d", north[i])
	}
	f := newPrepFront(t)
	r := cloaktest.DialRaw(t, f.Addr, "alice")
	r.RoundTrip(t, 1, &pgproto3.Query{String: q(0)})
	r.RoundTrip(t, 1, &pgproto3.Query{String: q(1)})
	lockCustomers(t)
	r.Send(t, &pgproto3.Query{String: q(2)})
	waitingOnLock(t)
	if _, err := cloaktest.Admin(t, pg).Exec(context.Background(),
		"SELECT pg_terminate_backend(pid) FROM pg_locks WHERE NOT granted AND relation = 'customers'::regclass"); err != nil {
		t.Fatal(err)
	}
	got := r.Read(t, func(m pgproto3.BackendMessage) bool { return m == nil })
	if !strings.Contains(got, "ErrorResponse 57P01") {
		t.Fatalf("the client did not get the server's FATAL:\n%s", got)
	}
	// The access log records it against the client's statement.
	pgtest.Eventually(t, 10*time.Second, "the statement's access record", func() bool {
		rec := f.log.last()
		return rec != nil && rec.Statement != nil && rec.SQLState != ""
	})
	if rec := f.log.last(); rec.SQLState != "57P01" {
		t.Fatalf("the statement's record says SQLSTATE %q, want 57P01", rec.SQLState)
	}
}

// After a column's type changes and pgcloak's catalog snapshot follows,
// a shape's statement gets a new name and is prepared again: the client
// never sees "cached plan must not change result type".
func TestShapePreparedAfterAlter(t *testing.T) {
	ctx := context.Background()
	f := newPrepFront(t)
	alice := f.as(t, "alice")
	north, _ := northIDs(t)
	q := func(i int) string {
		return fmt.Sprintf("/* alter */ SELECT first_name, email FROM customers WHERE customer_id = %d", north[i])
	}
	for i := range 5 {
		answer(alice, q(i))
	}
	executed := f.executed()
	if executed == 0 {
		t.Fatal("the shape never ran as a prepared statement")
	}
	admin := cloaktest.Admin(t, pg)
	if _, err := admin.Exec(ctx, "ALTER TABLE customers ALTER COLUMN email TYPE varchar(300)"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := cloaktest.Admin(t, pg).Exec(ctx, "ALTER TABLE customers ALTER COLUMN email TYPE text"); err != nil {
			t.Error(err)
		}
		if err := eng.Refresh(ctx); err != nil {
			t.Error(err)
		}
	})
	if err := eng.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	for i := 4; i < 10; i++ {
		if got := answer(alice, q(i)); strings.Contains(got, "ERROR") {
			t.Fatalf("after the ALTER: %s", got)
		}
	}
	if f.executed() == executed {
		t.Fatal("no statement ran as a prepared statement after the ALTER")
	}
}

// DEALLOCATE ALL in the extended protocol (found by the review): the
// statement that holds it is bound and runs.
func TestExtendedDeallocateAll(t *testing.T) {
	r := cloaktest.DialRaw(t, front.Addr, "alice")
	got := r.RoundTrip(t, 1, &pgproto3.Parse{Query: "DEALLOCATE ALL"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{})
	if !strings.Contains(got, "CommandComplete DEALLOCATE ALL") || strings.Contains(got, "ErrorResponse") {
		t.Fatalf("DEALLOCATE ALL answered\n%s", got)
	}
}

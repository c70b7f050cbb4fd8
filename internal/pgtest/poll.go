package pgtest

import (
	"testing"
	"time"
)

// Eventually waits for cond to hold, asking every 10ms, and fails the test
// if it still does not after within. The deadline bounds correctness ("the
// backend goes away"), not speed: a test waits for what it needs, never for
// a fixed time. state, when given, describes what was seen instead, for
// the failure message.
func Eventually(t testing.TB, within time.Duration, what string, cond func() bool, state ...func() string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			seen := ""
			for _, s := range state {
				seen += " (" + s() + ")"
			}
			t.Fatalf("%s: not after %v%s", what, within, seen)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

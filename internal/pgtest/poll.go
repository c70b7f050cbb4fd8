package pgtest

import "time"

// T is the part of testing.TB that Eventually uses; pgtest does not import
// testing, because the demo links it into pgcloak.
type T interface {
	Helper()
	Fatalf(format string, args ...any)
}

// Condition is what Eventually waits for: a func() bool, or a
// func() (bool, string) that also says what it saw instead, for the
// failure message.
type Condition interface {
	func() bool | func() (bool, string)
}

// Eventually asks cond every 10ms until it holds, and fails the test if it
// still does not after within. The deadline bounds correctness ("the
// backend goes away"), not speed: a test waits for what it needs, never
// for a fixed time.
func Eventually[C Condition](t T, within time.Duration, what string, cond C) {
	t.Helper()
	check := func() (bool, string) {
		switch c := any(cond).(type) {
		case func() bool:
			return c(), ""
		case func() (bool, string):
			return c()
		}
		panic("unreachable")
	}
	deadline := time.Now().Add(within)
	for {
		ok, seen := check()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			if seen != "" {
				seen = " (" + seen + ")"
			}
			t.Fatalf("%s: not after %v%s", what, within, seen)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

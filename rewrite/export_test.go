package rewrite

// Test-only hooks.

// SetVerify switches the verify-before-send check (verify.go) on or off,
// for the tests that show it carries weight; it returns the previous
// setting.
func SetVerify(on bool) bool {
	prev := verifySent
	verifySent = on
	return prev
}

// SetTrim switches the trimming of unread masks (trim.go) on or off; it
// returns the previous setting.
func SetTrim(on bool) bool {
	prev := trimUnread.Load()
	trimUnread.Store(on)
	return prev
}

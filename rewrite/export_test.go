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

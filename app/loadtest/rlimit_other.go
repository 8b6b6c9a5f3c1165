//go:build !(linux || darwin)

package loadtest

// raiseNoFile is a no-op where RLIMIT_NOFILE does not exist; dials fail clearly if files run out.
func raiseNoFile(uint64) error { return nil }

//go:build linux || darwin

package loadtest

import (
	"fmt"
	"syscall"
)

// raiseNoFile makes sure the process may hold need open files, raising RLIMIT_NOFILE if it must.
func raiseNoFile(need uint64) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("read RLIMIT_NOFILE: %w", err)
	}
	if lim.Cur >= need {
		return nil
	}
	want := syscall.Rlimit{Cur: need, Max: max(lim.Max, need)}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err != nil {
		return fmt.Errorf("need %d open files for the connections but RLIMIT_NOFILE is %d (hard limit %d) and raising it failed: %w; raise the limit (ulimit -n) or ask for fewer --idle-conns",
			need, lim.Cur, lim.Max, err)
	}
	return nil
}

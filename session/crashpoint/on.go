//go:build crashpoint

package crashpoint

import (
	"fmt"
	"os"
	"sync"
)

// Enabled says whether this binary stops at crash points: only with the build tag crashpoint.
const Enabled = true

var (
	mu     sync.Mutex
	armed  = map[string]int{} // point → the hit that ends the process
	counts = map[string]int{} // point → hits so far
)

// Arm sets the points at which the process ends: a comma-separated list of names, each optionally
// followed by @N to end at its N-th hit instead of the first (e.g. "archive.after_put@2"). An empty
// spec arms nothing.
func Arm(spec string) error {
	points, err := parse(spec)
	if err != nil {
		return err
	}
	mu.Lock()
	defer mu.Unlock()
	armed, counts = points, map[string]int{}
	return nil
}

// Hit ends the process with ExitCode when name is armed and this is the hit it was armed for.
func Hit(name string) {
	mu.Lock()
	n, ok := armed[name]
	if ok {
		counts[name]++
		ok = counts[name] == n
	}
	mu.Unlock()
	if ok {
		fmt.Fprintf(os.Stderr, "crashpoint: stopped at %s\n", name)
		os.Exit(ExitCode)
	}
}

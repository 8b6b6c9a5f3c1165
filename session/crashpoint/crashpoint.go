// Package crashpoint names the steps of the Store Scheduler's jobs where a crash must leave nothing
// lost or doubled, so that tests can kill a real node exactly there.
//
// Only a binary built with the build tag crashpoint (go build -tags crashpoint) ever stops at a
// point: there, after Arm("flush.after_insert") (the app passes SHOPDESK_CRASHPOINT), the first Hit
// of that name ends the process at once with ExitCode, as a kill would: no deferred call runs, no
// connection is closed, no buffer is flushed. In every other build Hit is an empty function the
// compiler inlines away. The package lives under session, the lowest layer, so that every package
// that has a step to name may import it.
package crashpoint

import (
	"fmt"
	"strconv"
	"strings"
)

// ExitCode is the exit status of a process stopped at a crash point, distinct from the statuses
// shopdesk uses (0, 1, 2) so that a test can tell the crash it asked for from a failure.
const ExitCode = 86

// Hook is Hit as the func(name string) error hooks of the archive package take it.
func Hook(name string) error {
	Hit(name)
	return nil
}

// parse reads a spec of Arm: point → the hit that ends the process. Both builds check the spec, so a
// mistyped one is refused the same way whichever binary is given it.
func parse(spec string) (map[string]int, error) {
	points := map[string]int{}
	for _, p := range strings.Split(spec, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		name, nth, found := strings.Cut(p, "@")
		n := 1
		if found {
			var err error
			if n, err = strconv.Atoi(nth); err != nil || n < 1 {
				return nil, fmt.Errorf("crash point %q: want name or name@N with N ≥ 1", p)
			}
		}
		if name == "" {
			return nil, fmt.Errorf("crash point %q: the name is empty", p)
		}
		points[name] = n
	}
	return points, nil
}

//go:build !unix

package routing

import "time"

// processCPU is unknown here: the benchmark reports 0.
func processCPU() time.Duration { return 0 }

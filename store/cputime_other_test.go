//go:build !unix

package store

import "time"

// cpuTime is unavailable here; benchmarks then skip their CPU-time figure.
func cpuTime() time.Duration { return 0 }

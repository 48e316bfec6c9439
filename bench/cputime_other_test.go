//go:build !unix

package bench

import "time"

// cpuTime is unavailable here; benchmarks then skip their CPU-time figure.
func cpuTime() time.Duration { return 0 }

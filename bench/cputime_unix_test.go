//go:build unix

package bench

import (
	"syscall"
	"time"
)

// cpuTime returns the process's user + system CPU time, so benchmarks can
// report a figure that a busy shared machine does not inflate (time spent
// waiting for a core is not counted; the garbage collector's work is).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

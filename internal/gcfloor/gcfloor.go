// Package gcfloor keeps the garbage collector's heap goal at or above a
// floor.
//
// The collector starts a cycle when the heap grows to about
// live*(1+GOGC/100). A node that holds little state has a live heap of a few
// megabytes, so at thousands of API requests a second it collects several
// times a second, and on a small machine each cycle's marking shows in the
// API's tail latency. A floor trades a bounded amount of memory for far
// fewer cycles: the goal becomes max(floor, live*(1+GOGC/100)). Once the
// live heap is large enough the floor has no effect.
//
// Go has no minimum-heap setting, so Start adjusts GOGC after every cycle
// from the live heap that cycle measured. GOMEMLIMIT still applies, and a
// process started with GOGC=off is left alone. The setting is process-wide:
// only a program that owns its process should start a floor (node exports
// this as node.StartHeapFloor).
package gcfloor

import (
	"math/bits"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

// DaemonDefault is the floor the meshnode agent keeps unless configured
// otherwise: a node's API latency tail on a small heap is the collector's,
// and 64 MiB is little memory for a server process.
const DaemonDefault = 64 << 20

// maxPercent caps the GOGC a floor sets, so that a nearly empty heap does
// not ask for an absurd ratio.
const maxPercent = 100_000

// Percent returns the GOGC that makes the heap goal of a live heap of live
// bytes at least floor, given the process's own GOGC base: base when its
// goal already reaches the floor.
func Percent(live, floor uint64, base int) int {
	if base < 0 || floor <= live {
		return base
	}
	if live == 0 {
		return maxPercent
	}
	// In integers, so that the goal is never a rounding error under the
	// floor: the base suffices if live*(100+base) >= floor*100.
	if mulGE(live, uint64(100+base), floor, 100) {
		return base
	}
	d := floor - live
	if d/live >= maxPercent/100 {
		return maxPercent
	}
	// ceil(d*100/live), with d/live < 1000 and live < 2^64/100 in practice.
	p := d / live * 100
	if r := d % live; r > 0 {
		p += (r*100 + live - 1) / live
	}
	return int(min(p, maxPercent))
}

// mulGE reports whether a*b >= c*d without overflow.
func mulGE(a, b, c, d uint64) bool {
	h1, l1 := bits.Mul64(a, b)
	h2, l2 := bits.Mul64(c, d)
	return h1 > h2 || h1 == h2 && l1 >= l2
}

// The floors started and not stopped. GOGC is process-wide, so is this: the
// highest floor applies, and the GOGC of the process before the first floor
// comes back when the last one stops.
var state struct {
	mu     sync.Mutex
	floors map[*uint64]struct{}
	base   int  // GOGC before the first floor
	set    int  // GOGC in force
	armed  bool // a sentinel waits for the next cycle
	tuned  func(int)
}

// sentinel is the object whose collection tells the floors a cycle ended.
// It holds a pointer so that it is never placed in a tiny-allocation block,
// which would delay its collection.
type sentinel struct {
	_ *int
	_ [8]byte
}

var liveSample = []metrics.Sample{{Name: "/gc/heap/live:bytes"}}

// Start keeps the heap goal at or above bytes until stop is called. A floor
// of 0, or a process running with GOGC=off, starts nothing.
func Start(bytes uint64) (stop func()) {
	if bytes == 0 {
		return func() {}
	}
	state.mu.Lock()
	defer state.mu.Unlock()
	if len(state.floors) == 0 {
		state.base = debug.SetGCPercent(100)
		debug.SetGCPercent(state.base)
		state.set = state.base
	}
	if state.base < 0 {
		return func() {}
	}
	h := &bytes
	if state.floors == nil {
		state.floors = make(map[*uint64]struct{})
	}
	state.floors[h] = struct{}{}
	tuneLocked()
	if !state.armed {
		state.armed = true
		arm()
	}
	return sync.OnceFunc(func() {
		state.mu.Lock()
		defer state.mu.Unlock()
		delete(state.floors, h)
		if len(state.floors) == 0 {
			debug.SetGCPercent(state.base)
			state.set = state.base
		} else {
			tuneLocked()
		}
	})
}

// arm allocates a sentinel whose cleanup, run after the next cycle that
// finds it unreachable, tunes and arms again while any floor is started.
func arm() {
	runtime.AddCleanup(new(sentinel), func(struct{}) {
		state.mu.Lock()
		defer state.mu.Unlock()
		if len(state.floors) == 0 {
			state.armed = false
			return
		}
		// Arm before tuning: whoever learns of the tuning (a test) and
		// collects again must find the next sentinel already there.
		arm()
		tuneLocked()
	}, struct{}{})
}

// tuneLocked sets GOGC for the highest floor from the live heap the last
// cycle measured.
func tuneLocked() {
	var floor uint64
	for h := range state.floors {
		floor = max(floor, *h)
	}
	metrics.Read(liveSample)
	want := Percent(liveSample[0].Value.Uint64(), floor, state.base)
	if want != state.set {
		debug.SetGCPercent(want)
		state.set = want
	}
	if state.tuned != nil {
		state.tuned(want)
	}
}

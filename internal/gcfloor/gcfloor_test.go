package gcfloor

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"
)

func TestPercent(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		live, floor uint64
		base, want  int
	}{
		{live: 4 * mib, floor: 64 * mib, base: 100, want: 1500}, // 4 MiB * 16 = 64 MiB
		{live: 32 * mib, floor: 64 * mib, base: 100, want: 100}, // the base goal reaches the floor
		{live: 40 * mib, floor: 64 * mib, base: 100, want: 100}, // and passes it
		{live: 20 * mib, floor: 64 * mib, base: 200, want: 220}, // a higher base counts
		{live: 100 * mib, floor: 64 * mib, base: 50, want: 50},  // a low base above the floor stays
		{live: 3 * mib, floor: 64 * mib, base: 100, want: 2034}, // rounded up: the goal is never under the floor
		{live: 1, floor: 64 * mib, base: 100, want: maxPercent}, // capped
		{live: 0, floor: 64 * mib, base: 100, want: maxPercent}, // nothing live yet
		{live: 4 * mib, floor: 64 * mib, base: -1, want: -1},    // GOGC=off stays off
		{live: 4 * mib, floor: 0, base: 100, want: 100},         // no floor
	} {
		if got := Percent(tc.live, tc.floor, tc.base); got != tc.want {
			t.Errorf("Percent(%d, %d, %d) = %d, want %d", tc.live, tc.floor, tc.base, got, tc.want)
		}
		if p := Percent(tc.live, tc.floor, tc.base); p > 0 && p < maxPercent && float64(tc.live)*(1+float64(p)/100) < float64(tc.floor) {
			t.Errorf("Percent(%d, %d, %d) = %d leaves the goal under the floor", tc.live, tc.floor, tc.base, p)
		}
	}
}

// gcPercent returns the GOGC in force.
func gcPercent() int {
	p := debug.SetGCPercent(100)
	debug.SetGCPercent(p)
	return p
}

// measuredLive collects and returns the live heap the cycle measured: the
// tests' floors are multiples of it, so that their GOGC is not capped.
func measuredLive() uint64 {
	runtime.GC()
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(sample)
	return sample[0].Value.Uint64()
}

// armed reports whether a sentinel waits for the next cycle.
func armed() bool {
	state.mu.Lock()
	defer state.mu.Unlock()
	return state.armed
}

// watchTunes returns a channel that receives the GOGC of each tuning.
func watchTunes(t *testing.T) <-chan int {
	tuned := make(chan int, 16)
	state.mu.Lock()
	state.tuned = func(p int) {
		select {
		case tuned <- p:
		default:
		}
	}
	state.mu.Unlock()
	t.Cleanup(func() {
		state.mu.Lock()
		state.tuned = nil
		state.mu.Unlock()
	})
	return tuned
}

// TestStartFollowsCycles checks that a floor raises GOGC on this test's small
// heap, retunes after each collection, and restores GOGC when stopped.
func TestStartFollowsCycles(t *testing.T) {
	base := gcPercent()
	if base < 0 {
		t.Skip("GOGC=off: a floor does nothing (checked by TestStartZeroOrOff)")
	}
	tuned := watchTunes(t)
	stop := Start(32 * measuredLive())
	t.Cleanup(stop)
	first := <-tuned // Start tunes at once
	if first <= base || gcPercent() != first {
		t.Fatalf("after Start GOGC is %d (tuned %d), want above the base %d on a heap far below the floor", gcPercent(), first, base)
	}
	for range 3 {
		runtime.GC()
		if p := <-tuned; p <= base {
			t.Fatalf("after a cycle the floor set GOGC %d, want above %d", p, base)
		}
	}
	stop()
	if got := gcPercent(); got != base {
		t.Fatalf("after stop GOGC is %d, want the base %d", got, base)
	}
	// A stopped floor no longer tunes (what was sent before stop returned
	// is drained first). Collect until the pending sentinel's cleanup has
	// run and, seeing no floor, disarmed: only then does the check below
	// say something.
	for len(tuned) > 0 {
		<-tuned
	}
	for i := 0; armed(); i++ {
		if i == 1000 {
			t.Fatal("the sentinel's cleanup did not run in 1000 collections")
		}
		runtime.GC()
		runtime.Gosched()
	}
	select {
	case p := <-tuned:
		t.Fatalf("a cycle after stop tuned GOGC to %d", p)
	default:
	}
	if got := gcPercent(); got != base {
		t.Fatalf("a cycle after stop left GOGC %d, want %d", got, base)
	}
}

// TestOverlappingFloors checks that the highest started floor applies and
// that the process's GOGC returns only when the last one stops.
func TestOverlappingFloors(t *testing.T) {
	base := gcPercent()
	if base < 0 {
		t.Skip("GOGC=off: a floor does nothing (checked by TestStartZeroOrOff)")
	}
	live := measuredLive()
	stopLow := Start(8 * live)
	t.Cleanup(stopLow)
	low := gcPercent() // Start tunes before it returns
	stopHigh := Start(32 * live)
	t.Cleanup(stopHigh)
	high := gcPercent()
	if low <= base || high <= low {
		t.Fatalf("GOGC %d under a floor of 8 live heaps and %d under one of 32, want %d < first < second", low, high, base)
	}
	stopHigh()
	if p := gcPercent(); p >= high || p <= base {
		t.Fatalf("after the high floor stopped GOGC is %d, want the low floor's (about %d)", p, low)
	}
	stopHigh() // a second call does nothing
	if got := gcPercent(); got <= base {
		t.Fatalf("a repeated stop restored GOGC %d while a floor is started", got)
	}
	stopLow()
	if got := gcPercent(); got != base {
		t.Fatalf("after the last stop GOGC is %d, want the base %d", got, base)
	}
}

func TestStartZeroOrOff(t *testing.T) {
	base := gcPercent()
	Start(0)()
	if got := gcPercent(); got != base {
		t.Fatalf("Start(0) changed GOGC to %d", got)
	}
	debug.SetGCPercent(-1)
	defer debug.SetGCPercent(base)
	stop := Start(1 << 30)
	if got := gcPercent(); got != -1 {
		t.Fatalf("Start under GOGC=off set GOGC %d", got)
	}
	stop()
	if got := gcPercent(); got != -1 {
		t.Fatalf("stop under GOGC=off set GOGC %d", got)
	}
}

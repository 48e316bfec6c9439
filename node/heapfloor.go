package node

import (
	"math"
	"math/bits"
	"runtime"
	"runtime/debug"
	rtmetrics "runtime/metrics"
	"sync"
)

// DefaultHeapFloor is the heap floor the meshnode agent keeps unless told
// otherwise (--heap-floor-bytes): a node's API latency tail on a small heap
// is the collector's, and 64 MiB is little memory for a server process.
const DefaultHeapFloor = 64 << 20

// StartHeapFloor keeps the Go garbage collector from running while the
// process's heap is smaller than bytes, until stop is called. A node holding
// little state otherwise collects several times a second under API load,
// and those collections are most of the API's latency tail on a small
// machine (bench/RESULTS.md).
//
// The heap goal is max(bytes, the goal GOGC gives the live heap) from the
// first allocation on, whatever the traffic: the floor never lets the heap
// grow past it, only delays collections below it. A lower GOMEMLIMIT still
// applies, and under GOGC=off (the process asked for GOMEMLIMIT alone) or
// with bytes 0 it does nothing.
//
// How: Go has no minimum heap setting, and a GOGC raised for a small live
// heap lets the heap grow far past the floor when the live heap grows
// between cycles (or before the first one). So the floor runs the collector
// by memory limit instead: GOGC off, and after every cycle the limit is set
// from what that cycle measured to the floor or the GOGC goal, whichever is
// larger, plus the runtime's memory that is not heap. Should that retuning
// lag, the limit is too low, never too high: the cost is an early
// collection, not memory.
//
// The collector's settings belong to the whole process, so a Node never
// calls this itself: the agent does, and so may a program that embeds a
// node and owns its process. Several floors may be started; the highest
// applies, and the process's own GOGC and memory limit return when the last
// one stops.
func StartHeapFloor(bytes uint64) (stop func()) {
	if bytes == 0 {
		return func() {}
	}
	floors.mu.Lock()
	defer floors.mu.Unlock()
	if len(floors.set) == 0 {
		floors.baseGOGC = debug.SetGCPercent(100)
		debug.SetGCPercent(floors.baseGOGC)
		floors.baseLimit = debug.SetMemoryLimit(-1)
	}
	if floors.baseGOGC < 0 {
		return func() {}
	}
	h := &bytes
	if floors.set == nil {
		floors.set = make(map[*uint64]struct{})
	}
	first := len(floors.set) == 0
	floors.set[h] = struct{}{}
	tuneFloorLocked() // the limit first: GOGC is never off without it
	if first {
		debug.SetGCPercent(-1)
	}
	if !floors.armed {
		floors.armed = true
		armFloor()
	}
	return sync.OnceFunc(func() {
		floors.mu.Lock()
		defer floors.mu.Unlock()
		delete(floors.set, h)
		if len(floors.set) == 0 {
			debug.SetGCPercent(floors.baseGOGC)
			debug.SetMemoryLimit(floors.baseLimit)
			return
		}
		tuneFloorLocked()
	})
}

// floors holds the floors started and not stopped. The collector's settings
// are process-wide, so is this: the highest floor applies, and the settings
// of the process before the first floor come back when the last one stops.
var floors struct {
	mu        sync.Mutex
	set       map[*uint64]struct{}
	baseGOGC  int   // GOGC before the first floor
	baseLimit int64 // memory limit before the first floor (GOMEMLIMIT)
	armed     bool  // a sentinel waits for the next cycle
	tuned     func(limit int64)
}

// floorSentinel is the object whose collection tells the floors a cycle
// ended. It holds a pointer so that it is never placed in a tiny-allocation
// block, which would delay its collection.
type floorSentinel struct {
	_ *int
	_ [8]byte
}

// armFloor allocates a sentinel whose cleanup, run after the next cycle that
// finds it unreachable, tunes and arms again while any floor is started.
func armFloor() {
	runtime.AddCleanup(new(floorSentinel), func(struct{}) {
		floors.mu.Lock()
		defer floors.mu.Unlock()
		if len(floors.set) == 0 {
			floors.armed = false
			return
		}
		// Arm before tuning: whoever learns of the tuning (a test) and
		// collects again must find the next sentinel already there.
		armFloor()
		tuneFloorLocked()
	}, struct{}{})
}

// heapSample is what the last cycle measured, and the runtime's memory
// that the memory limit counts but that holds no heap objects.
type heapSample struct {
	live    uint64 // heap marked live by the last cycle (0 before the first)
	roots   uint64 // stacks and globals the collector scans: GOGC's goal counts them
	nonHeap uint64 // mapped, not released, neither heap objects nor free heap
}

// The runtime metrics a tuning reads, in the order of readHeapSample.
var floorMetrics = []string{
	"/gc/heap/live:bytes",
	"/gc/scan/stack:bytes",
	"/gc/scan/globals:bytes",
	"/memory/classes/total:bytes",
	"/memory/classes/heap/released:bytes",
	"/memory/classes/heap/free:bytes",
	"/memory/classes/heap/objects:bytes",
}

func readHeapSample() heapSample {
	s := make([]rtmetrics.Sample, len(floorMetrics))
	for i, name := range floorMetrics {
		s[i].Name = name
	}
	rtmetrics.Read(s)
	v := func(i int) uint64 {
		if s[i].Value.Kind() != rtmetrics.KindUint64 {
			return 0
		}
		return s[i].Value.Uint64()
	}
	ready := v(3) - min(v(3), v(4))
	return heapSample{live: v(0), roots: v(1) + v(2), nonHeap: ready - min(ready, v(5)+v(6))}
}

// tuneFloorLocked sets the memory limit for the highest floor from the last
// cycle's measures.
func tuneFloorLocked() {
	var floor uint64
	for h := range floors.set {
		floor = max(floor, *h)
	}
	limit := floorLimit(readHeapSample(), floor, floors.baseGOGC, floors.baseLimit)
	debug.SetMemoryLimit(limit)
	if floors.tuned != nil {
		floors.tuned(limit)
	}
}

// The runtime keeps this share of the heap's part of the memory limit, and
// at least floorMinHeadroom, as headroom (runtime.memoryLimitHeapGoal).
const (
	floorHeadroomPercent = 3
	floorMinHeadroom     = 1 << 20
)

// floorLimit returns the memory limit whose heap goal is the larger of floor
// and the goal that GOGC gogc gives s (live + (live+roots)*gogc/100): that
// goal plus the runtime's headroom and its non-heap memory, and never above
// userLimit.
func floorLimit(s heapSample, floor uint64, gogc int, userLimit int64) int64 {
	goal := satAdd(s.live, satMulDiv(satAdd(s.live, s.roots), uint64(max(gogc, 0)), 100))
	goal = max(goal, floor)
	// The runtime's goal is share - max(share/100*3, 1 MiB); invert it.
	share := max(satAdd(goal, floorMinHeadroom), satMulDiv(goal, 100, 100-floorHeadroomPercent)+1)
	limit := satAdd(share, s.nonHeap)
	if limit > math.MaxInt64 {
		limit = math.MaxInt64
	}
	return min(int64(limit), userLimit)
}

func satAdd(a, b uint64) uint64 {
	s, c := bits.Add64(a, b, 0)
	if c != 0 {
		return math.MaxUint64
	}
	return s
}

// satMulDiv returns a*b/d, or the largest uint64 if that does not fit.
func satMulDiv(a, b, d uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	if hi >= d {
		return math.MaxUint64
	}
	q, _ := bits.Div64(hi, lo, d)
	return q
}

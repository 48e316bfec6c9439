package node

import "github.com/meshnode/meshnode/internal/gcfloor"

// DefaultHeapFloor is the heap floor the meshnode agent keeps unless told
// otherwise (--heap-floor-bytes).
const DefaultHeapFloor = gcfloor.DaemonDefault

// StartHeapFloor keeps the Go garbage collector from running while the
// process's heap is smaller than bytes, until stop is called; past the floor
// GOGC applies as usual, GOMEMLIMIT still caps the heap, and under GOGC=off
// it does nothing. A node holding little state otherwise collects several
// times a second under API load, and those collections are most of the
// API's latency tail on a small machine (bench/RESULTS.md).
//
// The collector's settings belong to the whole process, so a Node never
// calls this itself: the agent does, and so may a program that embeds a
// node and owns its process. Several floors may be started; the highest
// applies, and the process's own GOGC returns when the last one stops.
func StartHeapFloor(bytes uint64) (stop func()) { return gcfloor.Start(bytes) }

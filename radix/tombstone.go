package radix

import "container/heap"

// tombstones remember, per worker, the removals of event-sourced blocks: the
// block's first page, its engine hash and the removal's ver, so that a late
// store ordered before the removal cannot bring the pages (or the engine map
// entry) back. They are bounded: past the bound, the tombstones with the
// lowest (ver, page) go first, counted. Which ones go depends only on the
// set of removals seen, not on their order, so replicas that saw the same
// removals keep the same tombstones.
type tombstones struct {
	byF     map[uint64]tomb   // first page -> tombstone
	byE     map[uint64]uint64 // engine hash -> first page
	order   tombHeap          // every tombstone, some superseded
	maxVer  uint64
	sum     uint64 // Σ tombMix over byF, for digests
	dropped int64
}

type tomb struct {
	e   uint64
	ver uint64
}

type tombRef struct {
	f   uint64
	ver uint64
}

// DefaultEventTombstones is the default of Config.MaxEventTombstones.
const DefaultEventTombstones = 1024

func tombMix(f uint64, t tomb) uint64 {
	return pageMix(f) * (pageMix(t.e^prime5) | 1) * (pageMix(t.ver+prime1) | 1)
}

func (ts *tombstones) reset() {
	d := ts.dropped
	*ts = tombstones{dropped: d}
}

func (ts *tombstones) len() int { return len(ts.byF) }

// newerThan reports whether any tombstone has a ver above v.
func (ts *tombstones) newerThan(v uint64) bool { return len(ts.byF) > 0 && ts.maxVer > v }

func (ts *tombstones) byPage(f uint64) (tomb, bool) {
	t, ok := ts.byF[f]
	return t, ok
}

func (ts *tombstones) byEngine(e uint64) (tomb, bool) {
	f, ok := ts.byE[e]
	if !ok {
		return tomb{}, false
	}
	t, ok := ts.byF[f]
	if !ok || t.e != e {
		return tomb{}, false
	}
	return t, true
}

// add records the removal of the block (first page f, engine hash e) at
// ver, keeping the greater ver per page, then drops the lowest beyond bound.
func (ts *tombstones) add(f, e, ver uint64, bound int) {
	if bound <= 0 {
		bound = DefaultEventTombstones
	}
	if ts.byF == nil {
		ts.byF = make(map[uint64]tomb)
		ts.byE = make(map[uint64]uint64)
	}
	if old, ok := ts.byF[f]; ok {
		if old.ver > ver || (old.ver == ver && old.e >= e) {
			return
		}
		ts.sum -= tombMix(f, old)
		if ts.byE[old.e] == f {
			delete(ts.byE, old.e)
		}
	}
	t := tomb{e, ver}
	ts.byF[f] = t
	ts.byE[e] = f
	ts.sum += tombMix(f, t)
	ts.maxVer = max(ts.maxVer, ver)
	heap.Push(&ts.order, tombRef{f, ver})
	for len(ts.byF) > bound {
		r := heap.Pop(&ts.order).(tombRef)
		t, ok := ts.byF[r.f]
		if !ok || t.ver != r.ver {
			continue // superseded
		}
		ts.sum -= tombMix(r.f, t)
		delete(ts.byF, r.f)
		if ts.byE[t.e] == r.f {
			delete(ts.byE, t.e)
		}
		ts.dropped++
	}
	if len(ts.order) > 2*bound+16 {
		ts.compact()
	}
}

// compact drops superseded entries from the heap.
func (ts *tombstones) compact() {
	out := ts.order[:0]
	for _, r := range ts.order {
		if t, ok := ts.byF[r.f]; ok && t.ver == r.ver {
			out = append(out, r)
		}
	}
	ts.order = out
	heap.Init(&ts.order)
}

func (ts *tombstones) bytes() int {
	// Go maps: about 40 bytes an entry of byF (16-byte value), 30 of byE.
	return 70*len(ts.byF) + 16*cap(ts.order)
}

// tombHeap orders tombstone references by (ver, page), lowest first.
type tombHeap []tombRef

func (h tombHeap) Len() int { return len(h) }
func (h tombHeap) Less(i, j int) bool {
	if h[i].ver != h[j].ver {
		return h[i].ver < h[j].ver
	}
	return h[i].f < h[j].f
}
func (h tombHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *tombHeap) Push(x any)   { *h = append(*h, x.(tombRef)) }
func (h *tombHeap) Pop() any {
	old := *h
	r := old[len(old)-1]
	*h = old[:len(old)-1]
	return r
}

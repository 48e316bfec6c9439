package radix

import "slices"

// tombstones remember, per worker, the removals of event-sourced blocks:
// the block's first page and the removal's ver, so that a late store
// ordered before the removal cannot bring the pages back. They are bounded:
// past the bound, the tombstones with the lowest (ver, page) go first,
// counted. Which ones go depends only on the set of removals seen, not on
// their order, so replicas that saw the same removals keep the same
// tombstones.
type tombstones struct {
	byF     map[uint64]uint64 // first page -> ver
	order   []tombRef         // a min-heap by (ver, page); some superseded
	maxVer  uint64
	sum     uint64 // Σ tombMix over byF, for digests
	dropped int64
}

type tombRef struct{ f, ver uint64 }

func (a tombRef) less(b tombRef) bool { return a.ver < b.ver || (a.ver == b.ver && a.f < b.f) }

// DefaultEventTombstones is the default of Config.MaxEventTombstones.
const DefaultEventTombstones = 4096

func tombMix(f, ver uint64) uint64 { return pageMix(f^prime5) * (pageMix(ver+prime1) | 1) }

func (ts *tombstones) reset() {
	d := ts.dropped
	*ts = tombstones{dropped: d}
}

func (ts *tombstones) len() int { return len(ts.byF) }

// newerThan reports whether any tombstone has a ver above v.
func (ts *tombstones) newerThan(v uint64) bool { return len(ts.byF) > 0 && ts.maxVer > v }

func (ts *tombstones) get(f uint64) (uint64, bool) {
	v, ok := ts.byF[f]
	return v, ok
}

// add records the removal of the block whose first page is f at ver,
// keeping the greater ver per page, then drops the lowest beyond bound.
func (ts *tombstones) add(f, ver uint64, bound int) {
	if ts.byF == nil {
		ts.byF = make(map[uint64]uint64)
	}
	if old, ok := ts.byF[f]; ok {
		if old >= ver {
			return
		}
		ts.sum -= tombMix(f, old)
	}
	ts.byF[f] = ver
	ts.sum += tombMix(f, ver)
	ts.maxVer = max(ts.maxVer, ver)
	ts.push(tombRef{f, ver})
	for len(ts.byF) > bound {
		r := ts.pop()
		if v, ok := ts.byF[r.f]; !ok || v != r.ver {
			continue // superseded
		}
		ts.sum -= tombMix(r.f, r.ver)
		delete(ts.byF, r.f)
		ts.dropped++
	}
	if len(ts.order) > 2*bound+16 {
		ts.compact()
	}
}

// all returns the tombstones sorted by page.
func (ts *tombstones) all() []tombRef {
	out := make([]tombRef, 0, len(ts.byF))
	for f, v := range ts.byF {
		out = append(out, tombRef{f, v})
	}
	slices.SortFunc(out, func(a, b tombRef) int {
		switch {
		case a.f < b.f:
			return -1
		case a.f > b.f:
			return 1
		}
		return 0
	})
	return out
}

// compact drops superseded references from the heap.
func (ts *tombstones) compact() {
	out := ts.order[:0]
	for _, r := range ts.order {
		if v, ok := ts.byF[r.f]; ok && v == r.ver {
			out = append(out, r)
		}
	}
	ts.order = out
	for i := len(out)/2 - 1; i >= 0; i-- {
		ts.down(i)
	}
}

func (ts *tombstones) push(r tombRef) {
	ts.order = append(ts.order, r)
	h := ts.order
	for i := len(h) - 1; i > 0; {
		p := (i - 1) / 2
		if !h[i].less(h[p]) {
			break
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
}

func (ts *tombstones) pop() tombRef {
	h := ts.order
	r := h[0]
	n := len(h) - 1
	h[0] = h[n]
	ts.order = h[:n]
	ts.down(0)
	return r
}

func (ts *tombstones) down(i int) {
	h := ts.order
	for {
		l := 2*i + 1
		if l >= len(h) {
			return
		}
		m := l
		if r := l + 1; r < len(h) && h[r].less(h[l]) {
			m = r
		}
		if !h[m].less(h[i]) {
			return
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
}

func (ts *tombstones) bytes() int {
	// A Go map of 8-byte keys and values: about 40 bytes an entry.
	return 40*len(ts.byF) + 16*cap(ts.order)
}

package radix

import (
	"cmp"
	"slices"
)

// tombstones remember, per worker, the removals of event-sourced blocks:
// the block's first page and the removal's ver, so that a late store
// ordered before the removal (a reordered or duplicated delta, a second
// subscriber, anti-entropy from a replica that missed the removal) cannot
// bring the pages back. They are a window, not replicated state: bounded
// per worker, the oldest to arrive go first (counted), and digests do not
// cover them. Holdings ship them, so that a replica that missed a removal
// loses the pages at the next anti-entropy exchange.
type tombstones struct {
	byF     engineMap // first page -> ver (the greater kept)
	ring    []uint64  // first pages in arrival order, for the bound
	head    int       // oldest in ring once it is full
	maxVer  uint64
	dropped int64
}

// DefaultEventTombstones is the default of Config.MaxEventTombstones.
const DefaultEventTombstones = 2048

func (ts *tombstones) reset() {
	d := ts.dropped
	*ts = tombstones{dropped: d}
}

func (ts *tombstones) len() int { return ts.byF.len() }

// newerThan reports whether a tombstone may have a ver above v.
func (ts *tombstones) newerThan(v uint64) bool { return ts.byF.n > 0 && ts.maxVer > v }

func (ts *tombstones) get(f uint64) (uint64, bool) { return ts.byF.get(f) }

// add records the removal of the block whose first page is f (not 0) at
// ver, keeping the greater ver per page, and drops the oldest beyond bound.
// Once the window is full, a tombstone no newer than the oldest kept is
// not kept (counted as dropped): anti-entropy ships every tombstone of a
// peer's window, and old ones that this replica let go would otherwise
// push out its recent ones, which are those a reordered store may still
// meet.
func (ts *tombstones) add(f, ver uint64, bound int) {
	if _, had := ts.byF.get(f); !had {
		if len(ts.ring) < bound {
			ts.ring = append(ts.ring, f)
		} else {
			if old, _ := ts.byF.get(ts.ring[ts.head]); ver <= old {
				ts.dropped++
				return
			}
			ts.byF.del(ts.ring[ts.head])
			ts.ring[ts.head] = f
			ts.head = (ts.head + 1) % len(ts.ring)
			ts.dropped++
		}
	}
	ts.byF.set(f, ver)
	ts.maxVer = max(ts.maxVer, ver)
}

// all returns the tombstones sorted by page.
func (ts *tombstones) all() []tombRef {
	out := make([]tombRef, 0, ts.byF.len())
	ts.byF.each(func(f, v uint64) { out = append(out, tombRef{f, v}) })
	slices.SortFunc(out, func(a, b tombRef) int { return cmp.Compare(a.f, b.f) })
	return out
}

type tombRef struct{ f, ver uint64 }

func (ts *tombstones) bytes() int { return ts.byF.bytes() + 8*cap(ts.ring) }

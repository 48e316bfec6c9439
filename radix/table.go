package radix

import "math/bits"

// pageTable maps a lineage hash to the page's place (chain index, offset) in
// an open-addressing table with linear probing. A slot is 8 bytes: chain+1
// (32 bits), a 16-bit tag from the hash's low bits, and the offset in the
// chain (16 bits, so chains are at most maxChainPages long). The full key is
// not stored: it is read back from the chain, and only when the tag matches,
// so a miss rarely touches chain memory. A hash's home slot comes from its
// high bits scaled to the table size (not a power of two), so the table can
// grow by 3/2 and stays between 7/15 and 4/5 full: 10 to 17 bytes per
// distinct page (a map[uint64]uint64 takes about 25-40).
//
// Deletion leaves a tombstone, so it never reads other keys back (unless
// the next slot is empty: then the slot and the tombstones just before it
// become empty); growing (or rebuilding at the same size when tombstones
// pile up) rebuilds the table from the chains, which also drops the
// tombstones.
type pageTable struct {
	slots []uint64 // 0 is empty, tombstone is deleted
	n     int      // live entries
	dead  int      // tombstones
	key   func(slot uint64) uint64
	// each calls fn for every page with its slot. Rebuilding walks the
	// chains through it, sequentially, instead of reading every key back
	// from a random place.
	each func(fn func(h, slot uint64))
	sink uint64 // keeps the loads of rebuild from being optimised away
}

const (
	minTableSlots = 64
	maxChainPages = 1 << 16
	// tombstone can never be a live slot: a live slot's top 32 bits hold
	// chain+1 >= 1.
	tombstone = 1
)

// home returns h's home slot: the high bits of h scaled to the table size.
func (t *pageTable) home(h uint64) uint64 {
	hi, _ := bits.Mul64(h, uint64(len(t.slots)))
	return hi
}

// next returns the slot after i, wrapping around.
func (t *pageTable) next(i uint64) uint64 {
	if i++; i == uint64(len(t.slots)) {
		return 0
	}
	return i
}

func tagOf(h uint64) uint64 { return h & 0xffff }

func packSlot(h uint64, ci, off uint32) uint64 {
	return uint64(ci+1)<<32 | tagOf(h)<<16 | uint64(off)
}

func unpackSlot(s uint64) (ci, off uint32) { return uint32(s>>32) - 1, uint32(s & 0xffff) }

func slotTag(s uint64) uint64 { return s >> 16 & 0xffff }

// get returns the place of h.
func (t *pageTable) get(h uint64) (ci, off uint32, ok bool) {
	if len(t.slots) == 0 {
		return 0, 0, false
	}
	tag := tagOf(h)
	for i := t.home(h); ; i = t.next(i) {
		s := t.slots[i]
		if s == 0 {
			return 0, 0, false
		}
		if s != tombstone && slotTag(s) == tag && t.key(s) == h {
			ci, off = unpackSlot(s)
			return ci, off, true
		}
	}
}

// reserve makes room for k more pages. Callers reserve before they change
// chains, because rebuilding reads the chains.
func (t *pageTable) reserve(k int) {
	if (t.n+t.dead+k)*5 <= len(t.slots)*4 {
		return
	}
	// Grow by 3/2 until the live entries fill at most 7/10 of the slots,
	// which leaves room for new entries and tombstones before the next
	// rebuild; tombstones alone cause a rebuild at the same size. (At 3/5,
	// an index under steady churn, engine events storing and removing as
	// many pages, settled 43 % full.)
	size := max(len(t.slots), minTableSlots)
	for (t.n+k)*10 > size*7 {
		size += size / 2
	}
	t.rebuild(size)
}

// put records the place of h. With replace false it leaves an existing
// place alone; it reports whether h was new. Room must have been reserved.
func (t *pageTable) put(h uint64, ci, off uint32, replace bool) bool {
	tag := tagOf(h)
	free := -1
	for i := t.home(h); ; i = t.next(i) {
		s := t.slots[i]
		if s == 0 {
			if free >= 0 {
				i = uint64(free)
				t.dead--
			}
			t.slots[i] = packSlot(h, ci, off)
			t.n++
			return true
		}
		if s == tombstone {
			if free < 0 {
				free = int(i)
			}
			continue
		}
		if slotTag(s) == tag && t.key(s) == h {
			if replace {
				t.slots[i] = packSlot(h, ci, off)
			}
			return false
		}
	}
}

// del removes h; the chain h points to must still hold h.
func (t *pageTable) del(h uint64) {
	if len(t.slots) == 0 {
		return
	}
	tag := tagOf(h)
	for i := t.home(h); ; i = t.next(i) {
		s := t.slots[i]
		if s == 0 {
			return
		}
		if s != tombstone && slotTag(s) == tag && t.key(s) == h {
			t.n--
			if t.slots[t.next(i)] != 0 {
				t.slots[i] = tombstone
				t.dead++
				return
			}
			// No probe sequence passes this slot to reach a later one, so
			// it can be empty, and so can the tombstones just before it:
			// under churn this keeps most deletions from piling up
			// tombstones (and rebuilds).
			t.slots[i] = 0
			for j := t.prev(i); t.slots[j] == tombstone; j = t.prev(j) {
				t.slots[j] = 0
				t.dead--
			}
			return
		}
	}
}

// prev returns the slot before i, wrapping around.
func (t *pageTable) prev(i uint64) uint64 {
	if i == 0 {
		return uint64(len(t.slots)) - 1
	}
	return i - 1
}

func (t *pageTable) rebuild(size int) {
	t.slots = make([]uint64, size)
	t.dead = 0
	// Entries go in groups: first every home slot of the group is loaded,
	// so that their cache misses overlap, then the group is placed.
	var homes, vals [32]uint64
	n := 0
	var acc uint64
	flush := func() {
		for _, i := range homes[:n] {
			acc += t.slots[i]
		}
		for j, i := range homes[:n] {
			for t.slots[i] != 0 {
				i = t.next(i)
			}
			t.slots[i] = vals[j]
		}
		n = 0
	}
	t.each(func(h, s uint64) {
		homes[n], vals[n] = t.home(h), s
		if n++; n == len(homes) {
			flush()
		}
	})
	flush()
	t.sink = acc
}

// touch loads the home slot of each of hs so that the cache misses of a
// following run of puts overlap instead of queueing one after another.
func (t *pageTable) touch(hs []uint64) uint64 {
	var acc uint64
	for _, h := range hs {
		acc += t.slots[t.home(h)]
	}
	return acc
}

func (t *pageTable) bytes() int { return 8 * len(t.slots) }

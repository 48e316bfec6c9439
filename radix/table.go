package radix

// pageTable maps a lineage hash to the page's place (chain index, offset) in
// an open-addressing table with linear probing. A slot is 8 bytes: chain+1
// (32 bits), a 16-bit tag from the hash's top bits, and the offset in the
// chain (16 bits, so chains are at most maxChainPages long). The full key is
// not stored: it is read back from the chain, and only when the tag matches,
// so a miss rarely touches chain memory. This keeps the table near 10-12
// bytes per distinct page instead of the ~25 of a map[uint64]uint64.
// Deletion shifts later entries back (no tombstones).
type pageTable struct {
	slots []uint64 // 0 is empty
	n     int
	key   func(slot uint64) uint64
	// each calls fn for every page with its slot. Growing walks the
	// chains through it, sequentially, instead of reading every key back
	// from a random place.
	each func(fn func(h, slot uint64))
}

const (
	minTableSlots = 64
	maxChainPages = 1 << 16
)

func (t *pageTable) mask() uint64 { return uint64(len(t.slots) - 1) }

func tagOf(h uint64) uint64 { return h >> 48 }

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
	m := t.mask()
	tag := tagOf(h)
	for i := h & m; ; i = (i + 1) & m {
		s := t.slots[i]
		if s == 0 {
			return 0, 0, false
		}
		if slotTag(s) == tag && t.key(s) == h {
			ci, off = unpackSlot(s)
			return ci, off, true
		}
	}
}

// reserve makes room for k more pages. Callers reserve before they change
// chains, because growing rebuilds the table from the chains.
func (t *pageTable) reserve(k int) {
	for (t.n+k)*4 > len(t.slots)*3 {
		t.grow()
	}
}

// put records the place of h. With replace false it leaves an existing
// place alone; it reports whether h was new. Room must have been reserved.
func (t *pageTable) put(h uint64, ci, off uint32, replace bool) bool {
	m := t.mask()
	tag := tagOf(h)
	for i := h & m; ; i = (i + 1) & m {
		s := t.slots[i]
		if s == 0 {
			t.slots[i] = packSlot(h, ci, off)
			t.n++
			return true
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
	m := t.mask()
	tag := tagOf(h)
	i := h & m
	for {
		s := t.slots[i]
		if s == 0 {
			return
		}
		if slotTag(s) == tag && t.key(s) == h {
			break
		}
		i = (i + 1) & m
	}
	// Backward-shift deletion: move later entries of the probe run into
	// the hole when their home slot does not lie in (hole, j].
	j := i
	for {
		j = (j + 1) & m
		s := t.slots[j]
		if s == 0 {
			break
		}
		home := t.key(s) & m
		if (j-home)&m >= (j-i)&m {
			t.slots[i] = s
			i = j
		}
	}
	t.slots[i] = 0
	t.n--
}

func (t *pageTable) grow() {
	n := 2 * len(t.slots)
	if n < minTableSlots {
		n = minTableSlots
	}
	t.slots = make([]uint64, n)
	m := t.mask()
	t.each(func(h, s uint64) {
		i := h & m
		for t.slots[i] != 0 {
			i = (i + 1) & m
		}
		t.slots[i] = s
	})
}

func (t *pageTable) bytes() int { return 8 * len(t.slots) }

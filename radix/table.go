package radix

// pageTable maps a lineage hash to the page's place (chain index, offset) in
// an open-addressing table with linear probing. A slot is 8 bytes and stores
// no key: the key of a slot is read back from the chain it points to, which
// keeps the table at about 10 bytes per distinct page instead of the ~25 of a
// map[uint64]uint64. Deletion shifts later entries back (no tombstones).
type pageTable struct {
	slots []uint64 // (chain+1)<<32 | offset; 0 is empty
	n     int
	key   func(slot uint64) uint64
}

const minTableSlots = 64

func (t *pageTable) mask() uint64 { return uint64(len(t.slots) - 1) }

func packSlot(ci, off uint32) uint64 { return uint64(ci+1)<<32 | uint64(off) }

func unpackSlot(s uint64) (ci, off uint32) { return uint32(s>>32) - 1, uint32(s) }

// get returns the place of h.
func (t *pageTable) get(h uint64) (ci, off uint32, ok bool) {
	if len(t.slots) == 0 {
		return 0, 0, false
	}
	m := t.mask()
	for i := h & m; ; i = (i + 1) & m {
		s := t.slots[i]
		if s == 0 {
			return 0, 0, false
		}
		if t.key(s) == h {
			ci, off = unpackSlot(s)
			return ci, off, true
		}
	}
}

// put records the place of h, replacing an existing place. It reports
// whether h was new.
func (t *pageTable) put(h uint64, ci, off uint32) bool {
	if (t.n+1)*8 > len(t.slots)*7 {
		t.grow()
	}
	m := t.mask()
	for i := h & m; ; i = (i + 1) & m {
		s := t.slots[i]
		if s == 0 {
			t.slots[i] = packSlot(ci, off)
			t.n++
			return true
		}
		if t.key(s) == h {
			t.slots[i] = packSlot(ci, off)
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
	i := h & m
	for {
		s := t.slots[i]
		if s == 0 {
			return
		}
		if t.key(s) == h {
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
	old := t.slots
	n := 2 * len(old)
	if n < minTableSlots {
		n = minTableSlots
	}
	t.slots = make([]uint64, n)
	m := t.mask()
	for _, s := range old {
		if s == 0 {
			continue
		}
		i := t.key(s) & m
		for t.slots[i] != 0 {
			i = (i + 1) & m
		}
		t.slots[i] = s
	}
}

func (t *pageTable) bytes() int { return 8 * len(t.slots) }

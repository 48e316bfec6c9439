package radix

import "math/bits"

// engineMap maps the lineage hash of the last page of each engine block a
// worker holds to the engine's hash of that block, for one worker. It is
// keyed by page, not by engine hash, so that an entry goes with its page:
// whatever drops the page from the worker (its block's removal, a removal
// above it, eviction, a clear) drops the entry, and the map holds exactly
// the blocks whose pages the worker holds. The subscribing node, which
// needs engine hash -> page, builds the reverse index on demand
// (eventState.rev).
//
// It is an open-addressing table with linear probing and 16-byte slots
// {page, engine hash}: a Go map[uint64]uint64 takes about 40 bytes an
// entry, this one 16 / load. Deletion shifts the following entries back (no
// tombstones), so the table never needs a rebuild but to grow. The home
// slot comes from the page's high bits scaled to the table size, so the
// size need not be a power of two: the table grows by 5/4 at 7/8 full and
// stays between 7/10 and 7/8 full (18-23 bytes an entry). Page 0 never
// occurs (it names the root), so it marks an empty slot.
type engineMap struct {
	slots []engineSlot
	n     int
	sum   uint64 // Σ entryMix(engine hash, page), for digests
}

type engineSlot struct{ key, val uint64 }

const minEngineSlots = 16

func entryMix(e, l uint64) uint64 { return pageMix(e+prime3) * (pageMix(l) | 1) }

func (m *engineMap) len() int { return m.n }

func (m *engineMap) bytes() int { return 16 * len(m.slots) }

func (m *engineMap) reset() { *m = engineMap{} }

func (m *engineMap) home(l uint64) int {
	hi, _ := bits.Mul64(l, uint64(len(m.slots)))
	return int(hi)
}

// get returns the engine hash of the block ending with page l.
func (m *engineMap) get(l uint64) (uint64, bool) {
	if len(m.slots) == 0 {
		return 0, false
	}
	for i := m.home(l); ; {
		s := &m.slots[i]
		if s.key == l {
			return s.val, true
		}
		if s.key == 0 {
			return 0, false
		}
		if i++; i == len(m.slots) {
			i = 0
		}
	}
}

// set records that the block ending with page l (not 0) is e. Two engine
// hashes for one page (the same tokens under different extra keys) keep
// the greater, so replicas agree whatever the order. It returns the hash
// e replaced, if any, and whether e is stored.
func (m *engineMap) set(l, e uint64) (old uint64, replaced, stored bool) {
	if (m.n+1)*5 > len(m.slots)*4 {
		m.grow()
	}
	for i := m.home(l); ; {
		s := &m.slots[i]
		if s.key == l {
			if s.val >= e {
				return 0, false, s.val == e
			}
			old = s.val
			m.sum += entryMix(e, l) - entryMix(old, l)
			s.val = e
			return old, true, true
		}
		if s.key == 0 {
			*s = engineSlot{l, e}
			m.n++
			m.sum += entryMix(e, l)
			return 0, false, true
		}
		if i++; i == len(m.slots) {
			i = 0
		}
	}
}

// del removes the entry of page l and returns its engine hash.
func (m *engineMap) del(l uint64) (uint64, bool) {
	n := len(m.slots)
	if m.n == 0 {
		return 0, false
	}
	i := m.home(l)
	for {
		if m.slots[i].key == l {
			break
		}
		if m.slots[i].key == 0 {
			return 0, false
		}
		if i++; i == n {
			i = 0
		}
	}
	e := m.slots[i].val
	m.sum -= entryMix(e, l)
	m.n--
	// Backward shift: move up every following entry whose home is not in
	// the cyclic range (i, j].
	for j := i; ; {
		if j++; j == n {
			j = 0
		}
		s := m.slots[j]
		if s.key == 0 {
			break
		}
		h := m.home(s.key)
		if (j > i && (h <= i || h > j)) || (j < i && h <= i && h > j) {
			m.slots[i] = s
			i = j
		}
	}
	m.slots[i] = engineSlot{}
	return e, true
}

func (m *engineMap) grow() {
	size := max(len(m.slots)+len(m.slots)/4, minEngineSlots)
	old := m.slots
	m.slots = make([]engineSlot, size)
	for _, s := range old {
		if s.key == 0 {
			continue
		}
		i := m.home(s.key)
		for m.slots[i].key != 0 {
			if i++; i == size {
				i = 0
			}
		}
		m.slots[i] = s
	}
}

// each calls fn for every entry.
func (m *engineMap) each(fn func(l, e uint64)) {
	for _, s := range m.slots {
		if s.key != 0 {
			fn(s.key, s.val)
		}
	}
}

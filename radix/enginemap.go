package radix

import "math/bits"

// engineMap maps an engine's block hash to the lineage hash of the block's
// last page, for one worker. It is an open-addressing table with linear
// probing and 16-byte slots {key, value}: a Go map[uint64]uint64 takes
// about 40 bytes an entry, this one 16 / load. Deletion shifts the following
// entries back (no tombstones), so the table never needs a rebuild but to
// grow. The home slot comes from the key's high bits scaled to the table
// size, so the size need not be a power of two: the table grows by 5/4 at
// 7/8 full and stays between 7/10 and 7/8 full (18-23 bytes an entry).
//
// Key 0 marks an empty slot; the entry of block hash 0, if any, lives
// apart (zero, hasZero).
type engineMap struct {
	slots   []engineSlot
	n       int
	zero    uint64
	hasZero bool
	sum     uint64 // Σ entryMix(key, value), for digests
}

type engineSlot struct{ key, val uint64 }

const minEngineSlots = 16

func entryMix(e, l uint64) uint64 { return pageMix(e+prime3) * (pageMix(l) | 1) }

func (m *engineMap) len() int {
	if m.hasZero {
		return m.n + 1
	}
	return m.n
}

func (m *engineMap) bytes() int { return 16 * len(m.slots) }

func (m *engineMap) reset() { *m = engineMap{} }

func (m *engineMap) home(e uint64) int {
	hi, _ := bits.Mul64(pageMix(e), uint64(len(m.slots)))
	return int(hi)
}

func (m *engineMap) get(e uint64) (uint64, bool) {
	if e == 0 {
		return m.zero, m.hasZero
	}
	if len(m.slots) == 0 {
		return 0, false
	}
	for i := m.home(e); ; {
		s := &m.slots[i]
		if s.key == e {
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

// set records e -> l, replacing an earlier value.
func (m *engineMap) set(e, l uint64) {
	if e == 0 {
		if m.hasZero {
			m.sum -= entryMix(0, m.zero)
		}
		m.zero, m.hasZero = l, true
		m.sum += entryMix(0, l)
		return
	}
	if (m.n+1)*8 > len(m.slots)*7 {
		m.grow()
	}
	for i := m.home(e); ; {
		s := &m.slots[i]
		if s.key == e {
			m.sum += entryMix(e, l) - entryMix(e, s.val)
			s.val = l
			return
		}
		if s.key == 0 {
			*s = engineSlot{e, l}
			m.n++
			m.sum += entryMix(e, l)
			return
		}
		if i++; i == len(m.slots) {
			i = 0
		}
	}
}

// del removes e, shifting back the entries that probed past it.
func (m *engineMap) del(e uint64) {
	if e == 0 {
		if m.hasZero {
			m.sum -= entryMix(0, m.zero)
			m.zero, m.hasZero = 0, false
		}
		return
	}
	if len(m.slots) == 0 {
		return
	}
	n := len(m.slots)
	i := m.home(e)
	for {
		if m.slots[i].key == e {
			break
		}
		if m.slots[i].key == 0 {
			return
		}
		if i++; i == n {
			i = 0
		}
	}
	m.sum -= entryMix(e, m.slots[i].val)
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
func (m *engineMap) each(fn func(e, l uint64)) {
	if m.hasZero {
		fn(0, m.zero)
	}
	for _, s := range m.slots {
		if s.key != 0 {
			fn(s.key, s.val)
		}
	}
}

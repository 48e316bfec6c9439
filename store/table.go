package store

import (
	"hash/maphash"
	"slices"
	"strings"
	"unsafe"
)

// entry is one key of one namespace: its value or tombstone and the dot and
// stamp of the write that set it. Key and value share one allocation, held
// by a bare pointer with both lengths packed beside the actor and
// namespace, so the bookkeeping is 32 bytes; see doc.go for the per-key
// memory budget.
type entry struct {
	p     *byte // key bytes then value bytes
	stamp uint64
	seq   uint64
	lens  uint32 // key length << vlenBits | value length (vlenTomb: tombstone)
	actor uint16
	ns    uint16
}

const (
	vlenBits = 21 // MaxValueBytes fits, and so does the tombstone marker
	vlenMask = 1<<vlenBits - 1
	vlenTomb = vlenMask
)

// newEntry makes an entry; kv is the key followed by the value.
func newEntry(kv string, klen int, tomb bool, stamp, seq uint64, actor uint32, ns uint16) entry {
	vlen := uint32(len(kv) - klen)
	if tomb {
		vlen = vlenTomb
	}
	return entry{p: unsafe.StringData(kv), stamp: stamp, seq: seq, lens: uint32(klen)<<vlenBits | vlen, actor: uint16(actor), ns: ns}
}

func (e *entry) klen() int { return int(e.lens >> vlenBits) }

func (e *entry) vlen() int {
	if v := e.lens & vlenMask; v != vlenTomb {
		return int(v)
	}
	return 0
}

func (e *entry) kv() string    { return unsafe.String(e.p, e.klen()+e.vlen()) }
func (e *entry) key() string   { return unsafe.String(e.p, e.klen()) }
func (e *entry) value() string { return e.kv()[e.klen():] }
func (e *entry) tomb() bool    { return e.lens&vlenMask == vlenTomb }

// size is what the entry counts against Config.MaxBytes.
func (e *entry) size() int64 { return int64(e.klen()+e.vlen()) + entryOverhead }

// entryOverhead is the per-key bookkeeping charged against MaxBytes, so a
// store of many tiny keys is bounded too. It matches the measured overhead.
const entryOverhead = 64

// table is the key index: an open-addressing hash table over the entries
// arena with linear probing and backward-shift deletion. A slot is 32 bits:
// a 7-bit tag from the key's hash (so most probes that miss never touch the
// entry) and the entry index + 1 (0 = empty) in the low 25 bits. That caps a
// store at maxEntries keys and tombstones.
type table struct {
	seed    maphash.Seed
	entries []entry
	slots   []uint32
	mask    uint64
}

const (
	idxBits    = 25
	idxMask    = 1<<idxBits - 1
	maxEntries = idxMask - 1
)

func (t *table) hash(ns uint16, key string) uint64 {
	h := maphash.String(t.seed, key) ^ uint64(ns)*0x9e3779b97f4a7c15
	return h ^ h>>29
}

func tagOf(h uint64) uint32 { return uint32(h>>57) << idxBits }

// lookup returns the index of (ns, key) or -1, and the key's hash for a
// following insert.
func (t *table) lookup(ns uint16, key string) (int, uint64) {
	h := t.hash(ns, key)
	if len(t.slots) == 0 {
		return -1, h
	}
	tag := tagOf(h)
	i := h & t.mask
	for {
		s := t.slots[i]
		if s == 0 {
			return -1, h
		}
		if s&^idxMask == tag {
			e := &t.entries[s&idxMask-1]
			if e.ns == ns && e.key() == key {
				return int(s&idxMask - 1), h
			}
		}
		i = (i + 1) & t.mask
	}
}

// full reports whether the arena has reached maxEntries.
func (t *table) full() bool { return len(t.entries) >= maxEntries }

// insert appends e, whose key hashes to h, to the arena and indexes it;
// the key must be absent and the table not full.
func (t *table) insert(e entry, h uint64) int {
	if (len(t.entries)+1)*8 > len(t.slots)*7 {
		t.grow()
	}
	idx := len(t.entries)
	t.entries = append(t.entries, e)
	t.place(uint32(idx), h)
	return idx
}

func (t *table) place(idx uint32, h uint64) {
	i := h & t.mask
	for t.slots[i] != 0 {
		i = (i + 1) & t.mask
	}
	t.slots[i] = tagOf(h) | (idx + 1)
}

func (t *table) grow() {
	n := 2 * len(t.slots)
	if n < 16 {
		n = 16
	}
	t.slots = make([]uint32, n)
	t.mask = uint64(n - 1)
	for i := range t.entries {
		e := &t.entries[i]
		t.place(uint32(i), t.hash(e.ns, e.key()))
	}
}

// slotOf returns the slot holding idx.
func (t *table) slotOf(idx int) uint64 {
	e := &t.entries[idx]
	i := t.hash(e.ns, e.key()) & t.mask
	for t.slots[i]&idxMask != uint32(idx)+1 {
		i = (i + 1) & t.mask
	}
	return i
}

// setSlot points slot i at idx, keeping its tag.
func (t *table) setSlot(i uint64, idx int) {
	t.slots[i] = t.slots[i]&^idxMask | (uint32(idx) + 1)
}

// unslot removes the slot at i, shifting later members of its probe run
// back so lookups never stop early.
func (t *table) unslot(i uint64) {
	for {
		t.slots[i] = 0
		j := i
		for {
			j = (j + 1) & t.mask
			s := t.slots[j]
			if s == 0 {
				return
			}
			e := &t.entries[s&idxMask-1]
			k := t.hash(e.ns, e.key()) & t.mask
			// Leave s where it is when its home k lies cyclically in (i, j].
			if i <= j {
				if i < k && k <= j {
					continue
				}
			} else if i < k || k <= j {
				continue
			}
			t.slots[i] = s
			i = j
			break
		}
	}
}

// dotIndex lists, for one actor, the entries whose current dot is that
// actor's, ordered by seq, so "entries of A with seq > n" is a range scan.
// Overwritten dots are marked dead and swept when they outnumber the live.
type dotIndex struct {
	seqs []uint64
	idxs []uint32
	dead int
}

const deadIdx = ^uint32(0)

func (d *dotIndex) add(seq uint64, idx uint32) {
	n := len(d.seqs)
	if n == 0 || seq > d.seqs[n-1] {
		d.seqs = append(d.seqs, seq)
		d.idxs = append(d.idxs, idx)
		return
	}
	i, ok := d.search(seq)
	if ok {
		if d.idxs[i] == deadIdx {
			d.dead--
		}
		d.idxs[i] = idx
		return
	}
	d.seqs = slices.Insert(d.seqs, i, seq)
	d.idxs = slices.Insert(d.idxs, i, idx)
}

// search returns the position of seq, or where it would go. Seqs are
// distinct integers, so seq sits at most seq-seqs[0] places in: for the
// dense runs of a writer's own seqs that is a direct hit, and it bounds the
// binary search otherwise.
func (d *dotIndex) search(seq uint64) (int, bool) {
	n := len(d.seqs)
	if n == 0 || seq < d.seqs[0] {
		return 0, false
	}
	if off := seq - d.seqs[0]; off < uint64(n) {
		if d.seqs[off] == seq {
			return int(off), true
		}
		n = int(off) + 1
	}
	return slices.BinarySearch(d.seqs[:n], seq)
}

func (d *dotIndex) find(seq uint64) int {
	i, ok := d.search(seq)
	if !ok || d.idxs[i] == deadIdx {
		return -1
	}
	return i
}

func (d *dotIndex) remove(seq uint64) {
	i := d.find(seq)
	if i < 0 {
		return
	}
	d.idxs[i] = deadIdx
	d.dead++
	if d.dead > 64 && d.dead*2 > len(d.seqs) {
		w := 0
		for r := range d.seqs {
			if d.idxs[r] != deadIdx {
				d.seqs[w], d.idxs[w] = d.seqs[r], d.idxs[r]
				w++
			}
		}
		d.seqs = slices.Clip(d.seqs[:w])
		d.idxs = slices.Clip(d.idxs[:w])
		d.dead = 0
	}
}

// after returns the position of the first seq > seq.
func (d *dotIndex) after(seq uint64) int {
	i, ok := d.search(seq)
	if ok {
		i++
	}
	return i
}

// concatKV returns key and value in one new string: one allocation.
func concatKV(key string, value []byte) string {
	var b strings.Builder
	b.Grow(len(key) + len(value))
	b.WriteString(key)
	b.Write(value)
	return b.String()
}

package radix

import (
	"errors"
	"slices"
)

// noChain is the parent of a root chain and the "no chain" position.
const noChain = ^uint32(0)

// holder says that worker w holds every page of a chain, touched last at
// stamp. ver is 0 for pages from recorded routes and 1 + the greatest event
// version that stored them for event-sourced pages (events.go); like stamps,
// a page's ver is never below its children's. A chain's holders are sorted
// by w.
type holder struct {
	w     uint32
	stamp uint32
	ver   uint64
	// engine holds, for an event-sourced holder, the engine's hash of the
	// block ending at each page of the chain (0: none, not a block's last
	// page); it is nil for recorded holders and may be shorter than the
	// chain. This is the worker's engine map (events.go): it lives with
	// the pages, 8 bytes a page, and goes with them.
	engine []uint64
}

// chain is a run of pages, each the only child of the one before it in this
// chain, stored contiguously so that matching walks memory sequentially.
// Every page of a chain has the same holders with the same stamps: a chain is
// split where a fork starts or where holders or stamps change.
//
// Invariants (checked by checkInvariants in tests):
//   - holders of a child chain are a subset of the parent's, with stamps no
//     greater (a worker holds a prefix-closed set, newest nearest the root);
//   - every chain has at least one holder and one page;
//   - the page table maps each page of each chain back to it.
type chain struct {
	hashes   []uint64
	holders  []holder
	children []uint32
	parent   uint32
	pos      uint32 // index in the parent's children
	depth    uint32 // depth of hashes[0]; a root chain starts at 0
	sum      uint64 // Σ pageMix(h) over hashes, for digests
}

// worker is a worker's replicated state: its epoch, whether that epoch has
// been removed, and the chains it holds.
type worker struct {
	name    string
	epoch   uint64
	removed bool
	budget  int64 // pages; 0 means the index default
	pages   int64
	chains  map[uint32]struct{}
	// minStamp caches the lowest stamp of the worker's pages for the
	// global cap; any change to the worker's holders clears minValid.
	minStamp uint32
	minValid bool
	// ev is the worker's event-sourced state; nil until its first event
	// op of the current epoch.
	ev *eventState
	// shadow is the index+1 of the worker holding this worker's pending
	// pages (0: none yet); owner is the index+1 of the worker a shadow
	// belongs to (0: not a shadow). A shadow shares its owner's name and
	// epoch and is invisible in digests, holdings, snapshots and stats.
	shadow, owner uint32
}

var (
	errNoAnchor = errors.New("radix: anchor page unknown")
)

// core is the single-threaded index. Index wraps it with a lock.
type core struct {
	chains      []chain
	free        []uint32
	table       pageTable
	workers     []worker
	byName      map[string]uint32
	pages       int64 // distinct pages
	holderPages int64
	cfg         Config

	evicted  int64
	sink     uint64   // keeps pageTable.touch from being optimised away
	created  []uint64 // pages created by the current apply, when recording
	record   bool
	evScr    []evCand
	chainScr []uint32
	kidScr   []uint32
	pend     pending
}

func newCore(cfg Config) *core {
	x := &core{cfg: cfg.withDefaults(), byName: make(map[string]uint32)}
	x.table.key = x.slotKey
	x.table.each = x.eachPage
	if cfg.ExpectedPages > 0 {
		x.table.reserve(cfg.ExpectedPages)
	}
	x.pend.init()
	return x
}

func (x *core) slotKey(s uint64) uint64 {
	ci, off := unpackSlot(s)
	return x.chains[ci].hashes[off]
}

// eachPage calls fn for every page in the index with its table slot.
func (x *core) eachPage(fn func(h, slot uint64)) {
	for ci := range x.chains {
		for off, h := range x.chains[ci].hashes {
			fn(h, packSlot(h, uint32(ci), uint32(off)))
		}
	}
}

// pageMix spreads a lineage hash for the digest sums.
func pageMix(h uint64) uint64 {
	h ^= h >> 31
	h *= prime2
	h ^= h >> 29
	return h
}

func sumHashes(hs []uint64) uint64 {
	var s uint64
	for _, h := range hs {
		s += pageMix(h)
	}
	return s
}

func (x *core) alloc() uint32 {
	if n := len(x.free); n > 0 {
		ci := x.free[n-1]
		x.free = x.free[:n-1]
		return ci
	}
	x.chains = append(x.chains, chain{})
	return uint32(len(x.chains) - 1)
}

func findHolder(hs []holder, w uint32) (int, bool) {
	return slices.BinarySearchFunc(hs, w, func(h holder, w uint32) int {
		switch {
		case h.w < w:
			return -1
		case h.w > w:
			return 1
		}
		return 0
	})
}

// setHolder makes w hold chain ci with a stamp of at least stamp and a ver
// of at least ver. It reports false when w already did, in which case the
// ancestors do as well.
func (x *core) setHolder(ci, w uint32, stamp uint32, ver uint64) bool {
	c := &x.chains[ci]
	i, ok := findHolder(c.holders, w)
	if ok {
		h := &c.holders[i]
		if h.stamp >= stamp && h.ver >= ver {
			return false
		}
		h.stamp, h.ver = max(h.stamp, stamp), max(h.ver, ver)
		x.workers[w].minValid = false
		return true
	}
	x.workers[w].minValid = false
	c.holders = slices.Insert(c.holders, i, holder{w: w, stamp: stamp, ver: ver})
	n := int64(len(c.hashes))
	x.workers[w].pages += n
	x.holderPages += n
	x.workers[w].chains[ci] = struct{}{}
	return true
}

func (x *core) removeHolder(ci, w uint32) {
	c := &x.chains[ci]
	i, ok := findHolder(c.holders, w)
	if !ok {
		return
	}
	if ev := x.workers[w].ev; ev != nil {
		// Engine map entries go with their pages.
		ev.dropEntries(c.hashes, c.holders[i].engine)
	}
	c.holders = slices.Delete(c.holders, i, i+1)
	x.workers[w].minValid = false
	n := int64(len(c.hashes))
	x.workers[w].pages -= n
	x.holderPages -= n
	delete(x.workers[w].chains, ci)
}

// split cuts chain ci after k pages (0 < k < len) and returns the index of
// the new chain holding the rest, which becomes ci's only child.
func (x *core) split(ci uint32, k int) uint32 {
	ni := x.alloc()
	c := &x.chains[ci]
	n := &x.chains[ni]
	*n = chain{
		hashes:   c.hashes[k:],
		holders:  slices.Clone(c.holders),
		children: c.children,
		parent:   ci,
		depth:    c.depth + uint32(k),
	}
	n.sum = sumHashes(n.hashes)
	for i := range c.holders {
		if eng := c.holders[i].engine; len(eng) > k {
			n.holders[i].engine = eng[k:]
			c.holders[i].engine = eng[:k:k]
		} else {
			n.holders[i].engine = nil
		}
	}
	for i, h := range n.hashes {
		x.table.put(h, ni, uint32(i), true)
	}
	for _, ch := range n.children {
		x.chains[ch].parent = ni
	}
	for _, h := range n.holders {
		x.workers[h.w].chains[ni] = struct{}{}
	}
	c.hashes = c.hashes[:k:k]
	c.sum -= n.sum
	c.children = []uint32{ni}
	n.pos = 0
	return ni
}

// deleteChain removes chain ci and its subtree from the index.
func (x *core) deleteChain(ci uint32) {
	c := &x.chains[ci]
	for len(c.children) > 0 {
		x.deleteChain(c.children[len(c.children)-1])
		c = &x.chains[ci]
	}
	for len(c.holders) > 0 {
		x.removeHolder(ci, c.holders[len(c.holders)-1].w)
	}
	x.sink += x.table.touch(c.hashes)
	for _, h := range c.hashes {
		x.table.del(h)
	}
	x.pages -= int64(len(c.hashes))
	if p := c.parent; p != noChain {
		// Swap-remove: the order of children does not matter.
		pc := &x.chains[p]
		last := pc.children[len(pc.children)-1]
		pc.children[c.pos] = last
		x.chains[last].pos = c.pos
		pc.children = pc.children[:len(pc.children)-1]
	}
	*c = chain{}
	x.free = append(x.free, ci)
}

// markPath makes worker w hold pages [0, k) of chain ci and all their
// ancestors with a stamp of at least stamp and a ver of at least ver.
func (x *core) markPath(w, stamp uint32, ver uint64, ci uint32, k int) {
	c := &x.chains[ci]
	if k < len(c.hashes) {
		if i, ok := findHolder(c.holders, w); ok && c.holders[i].stamp >= stamp && c.holders[i].ver >= ver {
			return
		}
		x.split(ci, k)
	}
	for ci != noChain {
		if !x.setHolder(ci, w, stamp, ver) {
			return
		}
		ci = x.chains[ci].parent
	}
}

// insertPath makes worker w hold the path ending with pages (anchored
// below the page anchor, 0 for the root), stamping the path with stamp.
// It returns errNoAnchor when the anchor is unknown and ErrConflict when a
// page hash already exists elsewhere in the index.
func (x *core) insertPath(w, stamp uint32, ver uint64, anchor uint64, pages []uint64) error {
	ci, k := noChain, 0
	if anchor != 0 {
		c, off, ok := x.table.get(anchor)
		if !ok {
			return errNoAnchor
		}
		ci, k = c, int(off)+1
	}
	rest := pages
	for len(rest) > 0 {
		if ci != noChain {
			c := &x.chains[ci]
			if k < len(c.hashes) {
				m := 0
				for m < len(rest) && k+m < len(c.hashes) && c.hashes[k+m] == rest[m] {
					m++
				}
				if m > 0 {
					k += m
					rest = rest[m:]
					continue
				}
				x.split(ci, k)
			}
		}
		if nc, off, ok := x.table.get(rest[0]); ok {
			if off != 0 || x.chains[nc].parent != ci {
				return ErrConflict
			}
			ci, k = nc, 0
			continue
		}
		ni, err := x.grow(w, stamp, ver, ci, rest)
		if err != nil {
			return err
		}
		ci, k = ni, len(x.chains[ni].hashes)
		rest = nil
	}
	if ci == noChain {
		return nil
	}
	x.markPath(w, stamp, ver, ci, k)
	return nil
}

// grow adds pages below the end of chain ci (noChain for a new root),
// either by extending ci in place when only w holds it, or as new chains of
// at most maxChainPages pages. It returns the chain holding the last page.
// On a conflict, pages before the conflicting one may remain.
func (x *core) grow(w, stamp uint32, ver uint64, ci uint32, pages []uint64) (uint32, error) {
	for _, h := range pages {
		if h == 0 {
			return 0, ErrConflict
		}
	}
	if ci != noChain {
		c := &x.chains[ci]
		// Only w holds ci and the insert stamps ci at least as new as the
		// pages below it, so the new pages can share ci: markPath raises
		// ci's stamp to stamp afterwards.
		if len(c.children) == 0 && len(c.holders) == 1 && c.holders[0].w == w && c.holders[0].stamp <= stamp && c.holders[0].ver <= ver && len(c.hashes) < maxChainPages {
			base := len(c.hashes)
			add := pages[:min(len(pages), maxChainPages-base)]
			x.table.reserve(len(add))
			c = &x.chains[ci]
			c.hashes = appendTight(c.hashes, add)
			x.sink += x.table.touch(add)
			for i, h := range add {
				if !x.table.put(h, ci, uint32(base+i), false) {
					for _, g := range add[:i] {
						x.table.del(g)
					}
					c = &x.chains[ci]
					c.hashes = c.hashes[:base]
					return 0, ErrConflict
				}
			}
			c.sum += sumHashes(add)
			n := int64(len(add))
			x.pages += n
			x.workers[w].pages += n
			x.holderPages += n
			x.noteCreated(add)
			pages = pages[len(add):]
			if len(pages) == 0 {
				return ci, nil
			}
			if _, _, ok := x.table.get(pages[0]); ok {
				return 0, ErrConflict // the rest would repeat a page
			}
			// The rest goes into new chains; w holds ci through markPath.
		}
	}
	for len(pages) > 0 {
		add := pages[:min(len(pages), maxChainPages)]
		ni, err := x.newChain(ci, add)
		if err != nil {
			return 0, err
		}
		ci, pages = ni, pages[len(add):]
		if len(pages) > 0 {
			x.markPath(w, stamp, ver, ci, len(add))
		}
	}
	return ci, nil
}

// appendTight appends add to hs. Short chains get a slice of exactly the
// new length (append's doubling would waste about a quarter of the memory
// of the hashes, 2 bytes a page); long ones grow as append grows them, so
// that a chain extended one page at a time stays linear.
func appendTight(hs, add []uint64) []uint64 {
	n := len(hs) + len(add)
	if n > cap(hs) && n <= tightChainPages {
		out := make([]uint64, n)
		copy(out, hs)
		copy(out[len(hs):], add)
		return out
	}
	return append(hs, add...)
}

const tightChainPages = 1024

// newChain adds a chain of pages below the end of chain ci.
func (x *core) newChain(ci uint32, pages []uint64) (uint32, error) {
	x.table.reserve(len(pages))
	ni := x.alloc()
	var depth uint32
	if ci != noChain {
		depth = x.chains[ci].depth + uint32(len(x.chains[ci].hashes))
	}
	x.chains[ni] = chain{hashes: slices.Clone(pages), parent: ci, depth: depth}
	x.sink += x.table.touch(pages)
	for i, h := range pages {
		if !x.table.put(h, ni, uint32(i), false) {
			for _, g := range pages[:i] {
				x.table.del(g)
			}
			x.chains[ni] = chain{}
			x.free = append(x.free, ni)
			return 0, ErrConflict
		}
	}
	x.chains[ni].sum = sumHashes(pages)
	if ci != noChain {
		x.chains[ni].pos = uint32(len(x.chains[ci].children))
		x.chains[ci].children = append(x.chains[ci].children, ni)
	}
	x.pages += int64(len(pages))
	x.noteCreated(pages)
	return ni, nil
}

func (x *core) noteCreated(pages []uint64) {
	if x.record {
		x.created = append(x.created, pages...)
	}
}

// dropHoldings removes everything worker w holds.
func (x *core) dropHoldings(w uint32) {
	cs := x.chainScr[:0]
	for ci := range x.workers[w].chains {
		cs = append(cs, ci)
	}
	slices.SortFunc(cs, func(a, b uint32) int { return int(x.chains[b].depth) - int(x.chains[a].depth) })
	for _, ci := range cs {
		c := &x.chains[ci]
		if c.hashes == nil {
			continue
		}
		x.removeHolder(ci, w)
		if len(x.chains[ci].holders) == 0 {
			x.deleteChain(ci)
		}
	}
	x.chainScr = cs[:0]
}

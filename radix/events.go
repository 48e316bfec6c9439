package radix

import (
	"fmt"
	"math"
)

// Event-sourced holdings: a worker whose engine publishes KV events holds
// exactly what the engine reports. Its ops are ordered by (Gen, Ver), not
// by time: Ver is the engine's batch sequence << 16 | the event's index in
// the batch, Gen an event generation the subscribing node bumps on a
// discontinuity. Every op is idempotent and commutative under that order
// (see doc.go, "Engine events", for the exact rules).
//
// Internally a holder's ver is 1 + the greatest Ver that stored the page
// (0: recorded, not event-sourced), max-merged along the path like stamps.

// EngineBlocks is one BlockStored event turned into pages.
type EngineBlocks struct {
	// Anchor is the lineage hash of the parent block's last page (0 =
	// root).
	Anchor uint64
	// Pages are the lineage hashes of the new pages, in order, computed
	// with AppendTokenPages(dst, seed, pageTokens, tokens) where seed is
	// Anchor, or TokenSeed(model) at the root.
	Pages []uint64
	// Hashes are the engine's block hashes, one per block.
	Hashes []uint64
	// PagesPerBlock is the engine's block size / the page size (>= 1).
	PagesPerBlock int
}

// eventState is a worker's event-sourced state besides its holdings.
type eventState struct {
	gen uint32
	ver uint64 // 1 + the greatest Ver applied in gen; 0: none
	ppb int    // pages per block of the last store
	// The engine map itself lives in the worker's holders (holder.engine);
	// entries and sum count it.
	entries int64
	sum     uint64 // Σ entryMix(engine hash, page), for digests
	tombs   tombstones
	// rev is engine hash -> page, the reverse of engine, built when this
	// node first resolves an engine hash (it subscribes to the worker's
	// engine) and kept up to date from then on; nil elsewhere.
	rev *revIndex
}

// revIndex maps engine hashes to pages: an engineMap keyed by engine hash,
// whose key 0 lives apart.
type revIndex struct {
	m       engineMap
	zero    uint64
	hasZero bool
}

func (r *revIndex) get(e uint64) (uint64, bool) {
	if e == 0 {
		return r.zero, r.hasZero
	}
	return r.m.get(e)
}

func (r *revIndex) set(e, l uint64) {
	if e == 0 {
		if !r.hasZero || l > r.zero {
			r.zero, r.hasZero = l, true
		}
		return
	}
	r.m.set(e, l)
}

// del forgets e if it names page l.
func (r *revIndex) del(e, l uint64) {
	if cur, ok := r.get(e); !ok || cur != l {
		return
	}
	if e == 0 {
		r.hasZero = false
		return
	}
	r.m.del(e)
}

func (r *revIndex) bytes() int { return r.m.bytes() }

// setEntry records that w's block e ends with page l, which w holds. Two
// engine hashes for one page (the same tokens under different extra keys)
// keep the greater, so replicas agree whatever the order. Engine hash 0
// cannot be recorded (it marks "none").
func (x *core) setEntry(w uint32, ev *eventState, l, e uint64) {
	if e == 0 {
		return
	}
	ci, off, ok := x.table.get(l)
	if !ok {
		return
	}
	c := &x.chains[ci]
	i, ok := findHolder(c.holders, w)
	if !ok {
		return
	}
	h := &c.holders[i]
	if len(h.engine) <= int(off) {
		h.engine = growEngine(h.engine, len(c.hashes))
	}
	old := h.engine[off]
	if old >= e {
		return
	}
	h.engine[off] = e
	if old == 0 {
		ev.entries++
	} else {
		ev.sum -= entryMix(old, l)
		if ev.rev != nil {
			ev.rev.del(old, l)
		}
	}
	ev.sum += entryMix(e, l)
	if ev.rev != nil {
		ev.rev.set(e, l)
	}
}

// growEngine returns eng extended with zeros to n entries, allocating
// exactly n when it must (chains are extended in place, and an engine
// array follows its chain).
func growEngine(eng []uint64, n int) []uint64 {
	if n <= cap(eng) {
		k := len(eng)
		eng = eng[:n]
		clear(eng[k:])
		return eng
	}
	out := make([]uint64, n)
	copy(out, eng)
	return out
}

// dropEntries forgets the entries of pages, whose engine hashes are eng.
func (ev *eventState) dropEntries(pages, eng []uint64) {
	for off, e := range eng {
		if e == 0 {
			continue
		}
		ev.entries--
		ev.sum -= entryMix(e, pages[off])
		if ev.rev != nil {
			ev.rev.del(e, pages[off])
		}
	}
}

// eachEntry calls fn for every engine map entry of w, in the order of
// chains cs (all of w's chains).
func (x *core) eachEntry(w uint32, cs []uint32, fn func(l, e uint64)) {
	for _, ci := range cs {
		c := &x.chains[ci]
		i, ok := findHolder(c.holders, w)
		if !ok {
			continue
		}
		for off, e := range c.holders[i].engine {
			if e != 0 {
				fn(c.hashes[off], e)
			}
		}
	}
}

// workerChains returns w's chains, in no particular order.
func (x *core) workerChains(w uint32) []uint32 {
	cs := make([]uint32, 0, len(x.workers[w].chains))
	for ci := range x.workers[w].chains {
		cs = append(cs, ci)
	}
	return cs
}

// lookup returns the last page of w's engine block e; the caller holds the
// write lock if ev.rev may be nil.
func (x *core) lookup(w uint32, ev *eventState, e uint64) (uint64, bool) {
	if ev.rev == nil {
		ev.rev = new(revIndex)
		x.eachEntry(w, x.workerChains(w), func(l, e uint64) { ev.rev.set(e, l) })
	}
	return ev.rev.get(e)
}

// maxPagesPerBlock bounds PagesPerBlock: an engine block of more than 4096
// pages is not a real configuration.
const maxPagesPerBlock = 1 << 12

func checkBlocks(b EngineBlocks) error {
	if b.PagesPerBlock < 1 || b.PagesPerBlock > maxPagesPerBlock {
		return fmt.Errorf("%w: %d pages per block", ErrBadDelta, b.PagesPerBlock)
	}
	if len(b.Pages) != len(b.Hashes)*b.PagesPerBlock {
		return fmt.Errorf("%w: %d pages for %d blocks of %d", ErrBadDelta, len(b.Pages), len(b.Hashes), b.PagesPerBlock)
	}
	return nil
}

// StoreEvents applies an engine's BlockStored at (gen, ver): worker holds
// the pages like an insert at stamp (which budgets and eviction use), and
// its engine map records each block hash -> the lineage hash of the
// block's last page. It returns the delta to replicate; its slices alias
// b's.
func (ix *Index) StoreEvents(worker string, epoch uint64, stamp uint32, gen uint32, ver uint64, b EngineBlocks) (Delta, error) {
	if err := checkBlocks(b); err != nil {
		return Delta{}, err
	}
	d := Delta{Op: OpStoreEvents, Worker: worker, Epoch: epoch, Stamp: stamp, Gen: gen, Ver: ver,
		Anchor: b.Anchor, Pages: b.Pages, Hashes: b.Hashes, PagesPerBlock: b.PagesPerBlock}
	return d, ix.Apply(d)
}

// RemoveEvents applies an engine's BlockRemoved at (gen, ver): each hash is
// resolved through worker's engine map to its block's first page (blocks
// of the last store's PagesPerBlock), which the worker stops holding
// together with the pages below it it holds at a lower version; a
// tombstone keeps a later-arriving older store out. A hash the map does not
// know (the worker does not hold the block) changes nothing. It returns the
// delta to replicate, which carries the resolved first pages (0 for the
// unknown).
func (ix *Index) RemoveEvents(worker string, epoch uint64, stamp uint32, gen uint32, ver uint64, engineHashes []uint64) (Delta, error) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	d := Delta{Op: OpRemoveEvents, Worker: worker, Epoch: epoch, Stamp: stamp, Gen: gen, Ver: ver,
		Hashes: engineHashes, Pages: make([]uint64, len(engineHashes))}
	if w, ok := ix.x.byName[worker]; ok {
		if ev := ix.x.workers[w].ev; ev != nil {
			for i, e := range engineHashes {
				if l, ok := ix.x.lookup(w, ev, e); ok {
					d.Pages[i] = ix.x.blockFirst(l, ev.ppb)
				}
			}
		}
	}
	return d, ix.x.apply(d)
}

// ClearEvents sets worker's event generation to gen (AllBlocksCleared, or
// any discontinuity of the stream): when gen is greater than the index's,
// the worker's holdings, engine map and tombstones are dropped. Ops of
// older generations are ignored from then on. Generations start at 1.
func (ix *Index) ClearEvents(worker string, epoch uint64, stamp uint32, gen uint32) (Delta, error) {
	d := Delta{Op: OpClearEvents, Worker: worker, Epoch: epoch, Stamp: stamp, Gen: gen}
	return d, ix.Apply(d)
}

// EngineLineage returns the lineage hash of the last page of the block
// worker's engine calls engineHash, if worker holds that block. The first
// call for a worker builds the engine hash index (the subscriber's).
func (ix *Index) EngineLineage(worker string, engineHash uint64) (uint64, bool) {
	ix.mu.RLock()
	w, ok := ix.x.byName[worker]
	if !ok || ix.x.workers[w].ev == nil {
		ix.mu.RUnlock()
		return 0, false
	}
	if ev := ix.x.workers[w].ev; ev.rev != nil {
		l, ok := ev.rev.get(engineHash)
		ix.mu.RUnlock()
		return l, ok
	}
	ix.mu.RUnlock()
	ix.mu.Lock()
	defer ix.mu.Unlock()
	w, ok = ix.x.byName[worker]
	if !ok || ix.x.workers[w].ev == nil {
		return 0, false
	}
	return ix.x.lookup(w, ix.x.workers[w].ev, engineHash)
}

// EventState returns worker's event generation and the greatest event
// version applied in it; ok is false when no store or removal of that
// generation has been applied. A subscriber taking over resumes from
// batch sequence ver>>16 + 1.
func (ix *Index) EventState(worker string) (gen uint32, ver uint64, ok bool) {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	w, found := ix.x.byName[worker]
	if !found {
		return 0, 0, false
	}
	ev := ix.x.workers[w].ev
	if ev == nil {
		return 0, 0, false
	}
	if ev.ver == 0 {
		return ev.gen, 0, false
	}
	return ev.gen, ev.ver - 1, true
}

// blockFirst returns the first page of the block whose last page is l: l
// itself or its ppb-1'th ancestor; 0 when l is not in the index.
func (x *core) blockFirst(l uint64, ppb int) uint64 {
	ci, off, ok := x.table.get(l)
	if !ok {
		return 0
	}
	up := max(ppb, 1) - 1
	for {
		c := &x.chains[ci]
		if int(off) >= up {
			return c.hashes[int(off)-up]
		}
		up -= int(off) + 1
		if c.parent == noChain {
			return 0
		}
		ci = c.parent
		off = uint32(len(x.chains[ci].hashes) - 1)
	}
}

// events returns w's event state for an op of generation gen, advancing
// the generation (and dropping the worker's holdings) when gen is newer;
// nil when the op is of an older generation.
func (x *core) events(w uint32, gen uint32) *eventState {
	wk := &x.workers[w]
	if wk.ev == nil {
		wk.ev = &eventState{}
	}
	ev := wk.ev
	switch {
	case gen < ev.gen:
		return nil
	case gen > ev.gen:
		x.dropHoldings(w)
		ev.rev = nil
		ev.tombs.reset()
		ev.gen, ev.ver, ev.entries, ev.sum = gen, 0, 0, 0
	}
	return ev
}

func (x *core) applyEvents(w uint32, d Delta) error {
	switch d.Op {
	case OpStoreEvents:
		if d.PagesPerBlock < 0 || d.PagesPerBlock > maxPagesPerBlock ||
			(len(d.Hashes) > 0 && (d.PagesPerBlock == 0 || len(d.Pages) != len(d.Hashes)*d.PagesPerBlock)) ||
			(len(d.Hashes) == 0 && d.PagesPerBlock != 0) || d.Ver == math.MaxUint64 {
			return fmt.Errorf("%w: store of %d pages, %d blocks of %d", ErrBadDelta, len(d.Pages), len(d.Hashes), d.PagesPerBlock)
		}
	case OpRemoveEvents:
		if len(d.Pages) != len(d.Hashes) || d.Ver == math.MaxUint64 {
			return fmt.Errorf("%w: removal of %d hashes with %d pages", ErrBadDelta, len(d.Hashes), len(d.Pages))
		}
	case OpEngineMap:
		if len(d.Pages) != len(d.Hashes) || d.Ver == math.MaxUint64 {
			return fmt.Errorf("%w: engine map of %d hashes with %d pages", ErrBadDelta, len(d.Hashes), len(d.Pages))
		}
	}
	ev := x.events(w, d.Gen)
	if ev == nil {
		return nil
	}
	switch d.Op {
	case OpStoreEvents:
		return x.storeEvents(w, ev, d)
	case OpRemoveEvents:
		x.removeEvents(w, ev, d)
	case OpEngineMap:
		// Entries go with pages: one whose page this replica's worker does
		// not hold (it was removed here) stays out.
		for i, e := range d.Hashes {
			x.setEntry(w, ev, d.Pages[i], e)
		}
	}
	return nil
}

// storeEvents applies an OpStoreEvents. A page that a tombstone of a newer
// version covers (a removal ordered after this store) cuts the store there:
// the removal would have dropped it and everything below it.
func (x *core) storeEvents(w uint32, ev *eventState, d Delta) error {
	v := d.Ver + 1
	pages, err := x.insertCut(w, ev, d.Stamp, v, d.Anchor, d.Pages)
	if err == errNoAnchor {
		x.pend.add(d, x.cfg)
		return nil
	}
	if err != nil {
		return err
	}
	ev.ver = max(ev.ver, v)
	if d.PagesPerBlock > 0 {
		ev.ppb = d.PagesPerBlock
	}
	// The engine map names the blocks the worker now holds whole.
	for i, e := range d.Hashes {
		last := (i+1)*d.PagesPerBlock - 1
		if last >= len(pages) {
			break
		}
		x.setEntry(w, ev, pages[last], e)
	}
	x.enforce(w)
	return nil
}

// insertCut makes w hold the path ending with pages below anchor at stamp
// and ver v, like insertPath, but cut at the topmost page of the path that
// a tombstone newer than v covers: a removal ordered after the op would
// have dropped that page and everything below it, so the op stamps only the
// pages above it. Recorded inserts (v 0) into a worker with events are cut
// at every tombstone, so that a removal and a recorded insert give the same
// holdings in either order. It returns the pages kept and errNoAnchor when
// the anchor is unknown.
func (x *core) insertCut(w uint32, ev *eventState, stamp uint32, v uint64, anchor uint64, pages []uint64) ([]uint64, error) {
	if !ev.tombs.newerThan(v) {
		return pages, x.insertPath(w, stamp, v, anchor, pages)
	}
	if anchor != 0 {
		ci, off, ok := x.table.get(anchor)
		if !ok {
			return nil, errNoAnchor
		}
		// The topmost covered page on the anchor's path.
		cutAbove, cutCi := -1, noChain
		for c := ci; c != noChain; {
			ch := &x.chains[c]
			end := len(ch.hashes) - 1
			if c == ci {
				end = int(off)
			}
			for i := end; i >= 0; i-- {
				if tv, ok := ev.tombs.get(ch.hashes[i]); ok && tv > v {
					cutAbove, cutCi = i, c
				}
			}
			c = ch.parent
		}
		switch {
		case cutAbove > 0:
			x.markPath(w, stamp, v, cutCi, cutAbove)
			return nil, nil
		case cutAbove == 0:
			if p := x.chains[cutCi].parent; p != noChain {
				x.markPath(w, stamp, v, p, len(x.chains[p].hashes))
			}
			return nil, nil
		}
	}
	for i, p := range pages {
		if tv, ok := ev.tombs.get(p); ok && tv > v {
			pages = pages[:i]
			break
		}
	}
	return pages, x.insertPath(w, stamp, v, anchor, pages)
}

// removeEvents applies an OpRemoveEvents.
func (x *core) removeEvents(w uint32, ev *eventState, d Delta) {
	v := d.Ver + 1
	ev.ver = max(ev.ver, v)
	for _, f := range d.Pages {
		if f == 0 {
			continue // the remover's worker did not hold the block
		}
		ev.tombs.add(f, v, x.cfg.MaxEventTombstones)
		x.dropBelow(w, f, v)
	}
}

// heldVer reports whether w holds page h and at which ver.
func (x *core) heldVer(w uint32, h uint64) (uint64, bool) {
	ci, _, ok := x.table.get(h)
	if !ok {
		return 0, false
	}
	i, ok := findHolder(x.chains[ci].holders, w)
	if !ok {
		return 0, false
	}
	return x.chains[ci].holders[i].ver, true
}

// dropBelow makes w stop holding page f and the pages below it that w holds
// at a ver below v. Vers never grow with depth, so what goes is a set of
// subtrees and w's holdings stay prefix-closed.
func (x *core) dropBelow(w uint32, f uint64, v uint64) {
	ci, off, ok := x.table.get(f)
	if !ok {
		return
	}
	i, ok := findHolder(x.chains[ci].holders, w)
	if !ok {
		return
	}
	if x.chains[ci].holders[i].ver >= v {
		x.dropChildren(ci, w, v)
		return
	}
	if off > 0 {
		if len(x.chains[ci].holders) == 1 {
			// Only w holds the chain and what is below it: cut the chain
			// in place rather than split it off and delete it. This is
			// the common case, an engine evicting the tail of a prompt.
			x.dropBelowChain(ci, w)
			x.truncate(ci, w, int(off))
			return
		}
		ci = x.split(ci, int(off))
	}
	x.dropSubtree(ci, w)
}

// dropBelowChain removes w from every chain below ci.
func (x *core) dropBelowChain(ci, w uint32) {
	for len(x.chains[ci].children) > 0 {
		n := len(x.chains[ci].children)
		x.dropSubtree(x.chains[ci].children[n-1], w)
		if len(x.chains[ci].children) == n {
			panic("radix: a child chain outlived its only holder")
		}
	}
}

// truncate drops the pages of chain ci from off on; w is its only holder
// and it has no children.
func (x *core) truncate(ci, w uint32, off int) {
	c := &x.chains[ci]
	tail := c.hashes[off:]
	if eng := c.holders[0].engine; len(eng) > off {
		if ev := x.workers[w].ev; ev != nil {
			ev.dropEntries(tail, eng[off:])
		}
		c.holders[0].engine = eng[:off]
	}
	x.sink += x.table.touch(tail)
	for _, h := range tail {
		x.table.del(h)
	}
	n := int64(len(tail))
	c.sum -= sumHashes(tail)
	c.hashes = c.hashes[:off]
	x.pages -= n
	x.holderPages -= n
	x.workers[w].pages -= n
	x.workers[w].minValid = false
}

// dropChildren applies dropBelow's rule to the chains below ci.
func (x *core) dropChildren(ci, w uint32, v uint64) {
	kids := append(x.kidScr[:0], x.chains[ci].children...)
	x.kidScr = nil // recursion below needs its own
	defer func() { x.kidScr = kids[:0] }()
	for _, k := range kids {
		i, ok := findHolder(x.chains[k].holders, w)
		if !ok {
			continue
		}
		if x.chains[k].holders[i].ver >= v {
			x.dropChildren(k, w, v)
		} else {
			x.dropSubtree(k, w)
		}
	}
}

// dropSubtree removes w from chain ci and every chain below it, deleting
// the chains left without holders.
func (x *core) dropSubtree(ci, w uint32) {
	// Children are removed from the end of the list (deleteChain swaps the
	// last child into a removed one's place), so walk it backwards.
	for i := len(x.chains[ci].children) - 1; i >= 0; i-- {
		if i >= len(x.chains[ci].children) {
			continue
		}
		k := x.chains[ci].children[i]
		if _, ok := findHolder(x.chains[k].holders, w); ok {
			x.dropSubtree(k, w)
		}
	}
	x.removeHolder(ci, w)
	if len(x.chains[ci].holders) == 0 {
		x.deleteChain(ci)
	}
}

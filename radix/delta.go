package radix

import "slices"

// Op is the kind of a Delta.
type Op uint8

// Delta kinds. The values are part of the encoding and never change.
const (
	// OpInsert: Worker holds Pages, the pages below Anchor (0 for the
	// root), and every page above them, stamped at least Stamp.
	OpInsert Op = 1
	// OpTouch: Worker holds the page Anchor and every page above it,
	// stamped at least Stamp. It is an insert without new pages.
	OpTouch Op = 2
	// OpRemove: Worker's holdings at Epoch are dropped; later deltas of
	// that epoch are ignored.
	OpRemove Op = 3
	// OpStoreEvents: the worker's engine stored blocks (events.go): Worker
	// holds Pages below Anchor like an insert, at event version Ver of
	// generation Gen, and Hashes[i] (the engine's block hash) names the
	// block of pages [i*PagesPerBlock, (i+1)*PagesPerBlock). With no
	// Hashes (and PagesPerBlock 0) it only stores pages: anti-entropy
	// ships event-sourced chains so.
	OpStoreEvents Op = 4
	// OpRemoveEvents: the worker's engine evicted the blocks Hashes at Ver
	// of Gen; Pages[i] is the first page of block i (0 when the sender
	// could not resolve it). Each block's pages and the pages below them
	// that the worker holds at a lower Ver are dropped, and a tombstone
	// keeps a late, older store from bringing them back.
	OpRemoveEvents Op = 5
	// OpClearEvents: the worker's event generation becomes Gen; a greater
	// Gen than a replica's drops the worker's holdings, engine map and
	// tombstones. Ops of older generations are ignored from then on.
	OpClearEvents Op = 6
	// OpPending: Worker was chosen for the prompt Anchor+Pages (like an
	// insert), so its pages count for routing until the engine confirms
	// them or they expire (ExpirePending). Pending pages are kept apart
	// from the worker's own holdings.
	OpPending Op = 7
	// OpEngineMap: engine map entries of the worker (anti-entropy):
	// Hashes[i] names the block whose last page is Pages[i], stored at
	// event version Ver or later (Ver 0: unknown).
	OpEngineMap Op = 8
)

// Delta is one self-contained change to the index. It names the worker
// (not a local index) and carries the worker's epoch: a delta of an older
// epoch than a replica has seen is ignored, a newer epoch replaces the
// worker's holdings. Pages may alias the buffer a Delta was decoded from or
// the slice it was built from.
type Delta struct {
	Op     Op
	Worker string
	Epoch  uint64
	Stamp  uint32
	Anchor uint64
	Pages  []uint64
	// Event ops only (OpStoreEvents, OpRemoveEvents, OpClearEvents,
	// OpEngineMap): the event generation and version, the engine's block
	// hashes and, for a store, the pages per engine block.
	Gen           uint32
	Ver           uint64
	Hashes        []uint64
	PagesPerBlock int
}

// Batch collects deltas for one message and coalesces them as they are
// added: an insert that extends the previous insert of the same worker and
// epoch at an equal or newer stamp merges into it (an insert stamps its whole
// path, so this changes nothing), a touch of the last page of an earlier
// delta of the same worker raises that delta's stamp, and a removal drops the
// worker's earlier deltas of the same epoch. The zero value is empty.
type Batch struct {
	Deltas []Delta
}

// Reset empties b, keeping its storage.
func (b *Batch) Reset() { b.Deltas = b.Deltas[:0] }

// Add appends d to b, coalescing it with earlier deltas. Pages are copied
// when two inserts merge, so d.Pages may be reused afterwards only if the
// caller copies it first; Add keeps d.Pages otherwise.
func (b *Batch) Add(d Delta) {
	switch d.Op {
	case OpRemove:
		out := b.Deltas[:0]
		for _, e := range b.Deltas {
			if e.Worker == d.Worker && e.Epoch <= d.Epoch {
				continue
			}
			out = append(out, e)
		}
		clear(b.Deltas[len(out):])
		b.Deltas = append(out, d)
		return
	case OpTouch:
		for i := len(b.Deltas) - 1; i >= 0; i-- {
			e := &b.Deltas[i]
			if e.Worker != d.Worker || e.Epoch != d.Epoch || (e.Op != OpInsert && e.Op != OpTouch) {
				continue
			}
			if last := e.last(); last == d.Anchor {
				e.Stamp = max(e.Stamp, d.Stamp)
				return
			}
		}
	case OpInsert:
		if n := len(b.Deltas); n > 0 {
			e := &b.Deltas[n-1]
			if e.Op == OpInsert && e.Worker == d.Worker && e.Epoch == d.Epoch &&
				d.Stamp >= e.Stamp && len(e.Pages) > 0 && e.last() == d.Anchor {
				e.Pages = append(slices.Clip(e.Pages), d.Pages...)
				e.Stamp = d.Stamp
				return
			}
		}
	}
	b.Deltas = append(b.Deltas, d)
}

// last returns the last page a delta stamps.
func (d *Delta) last() uint64 {
	if d.Op == OpInsert && len(d.Pages) > 0 {
		return d.Pages[len(d.Pages)-1]
	}
	return d.Anchor
}

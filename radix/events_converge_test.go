package radix

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// simEngine is an engine's prefix cache in miniature, publishing what it
// stores and evicts like vLLM: blocks form a tree (a block's hash names it
// with its whole prefix), a request stores the blocks of its path from the
// first one not cached, eviction mostly takes leaves (vLLM frees a
// request's blocks tail first) and sometimes a block with cached children,
// and now and then the cache is cleared (a new event generation).
type simEngine struct {
	worker string
	rng    *rand.Rand
	ppb    int
	cap    int
	cached map[uint64]*simBlock // by engine hash
	gen    uint32
	seq    uint64
	paths  [][]uint64 // every path stored, as pages, for Match checks
	hashes []uint64   // every engine hash stored
}

type simBlock struct {
	e, parent uint64 // engine hashes; parent 0: root
	pages     []uint64
	used      int
}

func (s *simEngine) blockOf(parent *simBlock, content uint64) *simBlock {
	var pe, anchor uint64
	if parent != nil {
		pe, anchor = parent.e, parent.pages[len(parent.pages)-1]
	}
	// The engine hash depends on the worker (as vLLM's hash seed does) and
	// the prefix; the pages only on the prefix, so workers share pages.
	e := pageMix(pe^content*prime3^XXH64([]byte(s.worker), 0)) | 1
	return &simBlock{e: e, parent: pe, pages: blockPages(anchor, content, s.ppb)}
}

// step runs one engine batch and returns the ops it publishes, as the
// subscriber would turn them into index calls.
type simOp struct {
	kind   Op
	ver    uint64
	gen    uint32
	blocks EngineBlocks
	hashes []uint64
	parent uint64 // a store's parent block, 0 at the root
}

func (s *simEngine) step(now int) []simOp {
	s.seq++
	base := s.seq << 16
	var ops []simOp
	if s.rng.IntN(40) == 0 {
		s.gen++
		clear(s.cached)
		return append(ops, simOp{kind: OpClearEvents, gen: s.gen})
	}
	// A request: a path of 1-5 blocks over a small content alphabet, so
	// that requests share prefixes.
	depth := 1 + s.rng.IntN(5)
	var parent *simBlock
	var path []uint64
	var store *simOp
	for range depth {
		b := s.blockOf(parent, uint64(s.rng.IntN(3)))
		path = append(path, b.pages...)
		if c, ok := s.cached[b.e]; ok && store == nil {
			c.used = now
			parent = c
			continue
		}
		if store == nil {
			var anchor uint64
			if parent != nil {
				anchor = parent.pages[len(parent.pages)-1]
			}
			ops = append(ops, simOp{kind: OpStoreEvents, ver: base | uint64(len(ops)), gen: s.gen,
				blocks: EngineBlocks{Anchor: anchor, PagesPerBlock: s.ppb}})
			if parent != nil {
				ops[len(ops)-1].parent = parent.e
			}
			store = &ops[len(ops)-1]
		}
		store.blocks.Pages = append(store.blocks.Pages, b.pages...)
		store.blocks.Hashes = append(store.blocks.Hashes, b.e)
		b.used = now
		s.cached[b.e] = b
		s.hashes = append(s.hashes, b.e)
		parent = b
	}
	s.paths = append(s.paths, path)
	// Evict down to capacity: the least recently used leaf, or sometimes
	// any block.
	var removed []uint64
	for len(s.cached) > s.cap {
		leaves := map[uint64]bool{}
		for e := range s.cached {
			leaves[e] = true
		}
		for _, b := range s.cached {
			delete(leaves, b.parent)
		}
		var victim *simBlock
		keys := slices.Sorted(maps.Keys(s.cached))
		for _, k := range keys {
			b := s.cached[k]
			if (leaves[b.e] || s.rng.IntN(10) == 0) && (victim == nil || b.used < victim.used || (b.used == victim.used && b.e < victim.e)) {
				victim = b
			}
		}
		if victim == nil {
			break
		}
		delete(s.cached, victim.e)
		removed = append(removed, victim.e)
	}
	if len(removed) > 0 {
		ops = append(ops, simOp{kind: OpRemoveEvents, ver: base | uint64(len(ops)), gen: s.gen, hashes: removed})
	}
	return ops
}

// TestEventsConverge feeds engine streams of two workers through a
// subscriber index, which applies them in (Gen, Ver) order and is the
// reference. Its deltas then reach one replica in random order with
// duplicates, which must end equal to the reference without anti-entropy,
// and another replica with losses, which must end equal after
// anti-entropy (and leave the reference unchanged).
func TestEventsConverge(t *testing.T) {
	seeds := 150
	if testing.Short() {
		seeds = 30
	}
	for seed := range uint64(seeds) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { eventsConverge(t, seed) })
	}
}

func eventsConverge(t *testing.T, seed uint64) {
	rng := newTestRand(seed)
	ppb := 1 + rng.IntN(3)
	engines := []*simEngine{
		{worker: "w0", rng: rng, ppb: ppb, cap: 4 + rng.IntN(10), cached: map[uint64]*simBlock{}, gen: 1},
		{worker: "w1", rng: rng, ppb: ppb, cap: 4 + rng.IntN(10), cached: map[uint64]*simBlock{}, gen: 1},
	}
	ref := New(Config{})
	var deltas []Delta
	for now := range 20 + rng.IntN(80) {
		s := engines[rng.IntN(len(engines))]
		for _, op := range s.step(now) {
			var d Delta
			var err error
			switch op.kind {
			case OpStoreEvents:
				if op.blocks.Anchor != 0 {
					// The subscriber finds the anchor through the map. It
					// lacks it only when the engine evicted a block above
					// the parent while keeping the parent (the index keeps
					// holdings prefix-closed): such a store cannot be
					// placed and is skipped, as the node does.
					l, ok := ref.EngineLineage(s.worker, op.parent)
					if !ok {
						continue
					}
					if l != op.blocks.Anchor {
						t.Fatalf("EngineLineage(%s, %#x) = %#x, want %#x", s.worker, op.parent, l, op.blocks.Anchor)
					}
				}
				d, err = ref.StoreEvents(s.worker, 1, uint32(now), op.gen, op.ver, op.blocks)
			case OpRemoveEvents:
				d, err = ref.RemoveEvents(s.worker, 1, uint32(now), op.gen, op.ver, op.hashes)
			case OpClearEvents:
				d, err = ref.ClearEvents(s.worker, 1, uint32(now), op.gen)
			}
			if err != nil {
				t.Fatal(err)
			}
			d.Pages, d.Hashes = slices.Clone(d.Pages), slices.Clone(d.Hashes)
			deltas = append(deltas, d)
		}
	}
	check(t, ref)
	want := snapshotOf(ref, engines)

	// Reordered and duplicated, no loss: equal without anti-entropy.
	var order []Delta
	for _, d := range deltas {
		order = append(order, d)
		if rng.IntN(3) == 0 {
			order = append(order, d)
		}
	}
	rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	r1 := New(Config{})
	deliverAll(t, r1, order, rng)
	check(t, r1)
	if diff := cmp.Diff(want, snapshotOf(r1, engines)); diff != "" && r1.Stats().Pending == 0 {
		// Without anti-entropy, the replica may differ only while a store
		// waits for an anchor a later removal took away (doc.go).
		t.Fatalf("reordered replica differs from the ordered one (-ordered +reordered):\n%s", diff)
	}

	// Lossy: equal after anti-entropy with the others.
	var lossy []Delta
	for _, d := range order {
		if rng.IntN(3) != 0 {
			lossy = append(lossy, d)
		}
	}
	r2 := New(Config{})
	deliverAll(t, r2, lossy, rng)
	antiEntropy(t, []*Index{ref, r1, r2}, 6)
	for i, r := range []*Index{ref, r1, r2} {
		check(t, r)
		if diff := cmp.Diff(want, snapshotOf(r, engines)); diff != "" {
			t.Fatalf("replica %d after anti-entropy (-ordered +got):\n%s", i, diff)
		}
	}
}

// deliverAll applies ds at r in batches of random sizes, encoded.
func deliverAll(t *testing.T, r *Index, ds []Delta, rng *rand.Rand) {
	t.Helper()
	for len(ds) > 0 {
		n := min(len(ds), 1+rng.IntN(4))
		var b Batch
		b.Deltas = append(b.Deltas, ds[:n]...)
		deliver(t, r, &b)
		ds = ds[n:]
	}
}

type indexView struct {
	Digest  Digest
	Matches [][]Hit
	Lineage map[string]uint64
}

func snapshotOf(ix *Index, engines []*simEngine) indexView {
	v := indexView{Digest: ix.Digest(), Lineage: map[string]uint64{}}
	for _, s := range engines {
		for _, p := range s.paths {
			h := ix.MatchPages(nil, p)
			sortHits(h)
			v.Matches = append(v.Matches, h)
		}
		for _, e := range s.hashes {
			if l, ok := ix.EngineLineage(s.worker, e); ok {
				v.Lineage[fmt.Sprintf("%s/%#x", s.worker, e)] = l
			}
		}
	}
	return v
}

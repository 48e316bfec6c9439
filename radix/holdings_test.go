package radix

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// mixedDeltas returns a few deltas of every op for a few workers over a
// universe of 15 pages. With lineage, page p's parent is always p/2, so
// every delta names a real path, as hashed prompts do; without, pages
// repeat anywhere, as hostile or corrupt input may.
func mixedDeltas(rng *rand.Rand, lineage bool) []Delta {
	path := func(end uint64) []uint64 {
		var out []uint64
		for p := end; p != 0; p /= 2 {
			out = append(out, p)
		}
		for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
			out[i], out[j] = out[j], out[i]
		}
		return out
	}
	ds := make([]Delta, 1+rng.IntN(10))
	for i := range ds {
		d := Delta{
			Op:     Op(1 + rng.IntN(int(OpEngineMap))),
			Worker: fmt.Sprint(rng.IntN(3)),
			Epoch:  uint64(1 + rng.IntN(2)),
			Stamp:  uint32(rng.IntN(4)),
			Gen:    uint32(1 + rng.IntN(2)),
			Ver:    uint64(rng.IntN(4)),
		}
		var p []uint64
		if lineage {
			p = path(uint64(1 + rng.IntN(15)))
		} else {
			for range 1 + rng.IntN(4) {
				p = append(p, uint64(1+rng.IntN(8)))
			}
		}
		k := rng.IntN(len(p)) // the anchor is p[k-1]
		if k > 0 {
			d.Anchor = p[k-1]
		}
		d.Pages = p[k:]
		switch d.Op {
		case OpTouch:
			d.Anchor, d.Pages = p[len(p)-1], nil
		case OpPending:
			d.Anchor, d.Pages = 0, p
		case OpStoreEvents:
			if rng.IntN(2) == 0 {
				for range d.Pages {
					d.Hashes = append(d.Hashes, uint64(100+rng.IntN(5)))
				}
				d.PagesPerBlock = 1
			}
		case OpRemoveEvents, OpEngineMap:
			d.Anchor, d.Pages = 0, p[len(p)-1:]
			d.Hashes = []uint64{uint64(rng.IntN(3))}
		case OpClearEvents, OpRemove:
			d.Anchor, d.Pages = 0, nil
		}
		ds[i] = d
	}
	return ds
}

// TestHoldingsReproduceAnyOps: whatever mix of ops a replica applied
// (recorded and event ops on one worker, removals, clears, epochs, pages
// repeated anywhere), its holdings, shipped in small parts, rebuild every
// worker at an empty replica. FuzzRadixBatch checks the same on decoded
// bytes; this walks the ops directly, so it reaches such mixes at once.
func TestHoldingsReproduceAnyOps(t *testing.T) {
	seeds := 4000
	if raceEnabled || testing.Short() {
		seeds = 500
	}
	for seed := range uint64(seeds) {
		for _, lineage := range []bool{true, false} {
			rng := newTestRand(seed)
			ds := mixedDeltas(rng, lineage)
			ix := New(Config{MaxPending: 64})
			for _, d := range ds {
				_ = ix.Apply(d) // conflicts are refused, as at any replica
			}
			ix.ExpirePending(1 << 31)
			rebuilt := New(Config{MaxPending: 64})
			for _, s := range ix.Digest() {
				for from := 0; from >= 0; {
					var b Batch
					from = ix.Holdings(&b, s.Worker, from, 40)
					deliver(t, rebuilt, &b)
				}
			}
			if diff := cmp.Diff(ix.Digest(), rebuilt.Digest()); diff != "" {
				t.Fatalf("seed %d, lineage %v: holdings of %+v do not rebuild the index (-index +copy):\n%s", seed, lineage, ds, diff)
			}
			check(t, ix)
			check(t, rebuilt)
		}
	}
}

// TestExchangeBothWays: two replicas apply the same deltas in different
// orders, then exchange the holdings of the workers they differ on both
// ways at once, as a push-pull does. They agree within a few exchanges
// and never swap a difference back and forth.
func TestExchangeBothWays(t *testing.T) {
	seeds := 4000
	if raceEnabled || testing.Short() {
		seeds = 500
	}
	for seed := range uint64(seeds) {
		rng := newTestRand(seed)
		ds := mixedDeltas(rng, true)
		a, b := New(Config{MaxPending: 64}), New(Config{MaxPending: 64})
		for _, i := range rng.Perm(len(ds)) {
			_ = a.Apply(ds[i])
		}
		for _, i := range rng.Perm(len(ds)) {
			_ = b.Apply(ds[i])
		}
		// Pending pages are each replica's own; anti-entropy leaves them.
		a.ExpirePending(1 << 31)
		b.ExpirePending(1 << 31)
		rounds := 0
		for ; rounds < 4; rounds++ {
			diff := Difference(a.Digest(), b.Digest())
			if len(diff) == 0 {
				break
			}
			var toA, toB []Batch
			for _, w := range diff {
				for from := 0; from >= 0; {
					var hb Batch
					from = b.Holdings(&hb, w, from, 1<<20)
					toA = append(toA, hb)
				}
				for from := 0; from >= 0; {
					var hb Batch
					from = a.Holdings(&hb, w, from, 1<<20)
					toB = append(toB, hb)
				}
			}
			for i := range toA {
				deliver(t, a, &toA[i])
			}
			for i := range toB {
				deliver(t, b, &toB[i])
			}
		}
		if diff := cmp.Diff(a.Digest(), b.Digest()); diff != "" {
			t.Fatalf("seed %d: after %d exchanges of %+v (-a +b):\n%s", seed, rounds, ds, diff)
		}
		check(t, a)
		check(t, b)
	}
}

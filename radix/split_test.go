package radix

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestAppendBatches: a batch cut to a packet budget fits it (but for the
// one kind of delta never cut), and its pieces, applied in order or in
// reverse, leave a replica exactly as the whole batch does: the same
// digest, the same matches, the same event state.
func TestAppendBatches(t *testing.T) {
	for _, ppb := range []int{1, 2, 4} {
		for _, budget := range []int{200, 1100, 1 << 20} {
			t.Run(fmt.Sprintf("ppb=%d/budget=%d", ppb, budget), func(t *testing.T) {
				src := New(Config{})
				ok := mustDelta(t)
				var b Batch
				// Long engine stores (a 120-block prompt, then a branch),
				// a removal of many blocks, a long recorded insert, a
				// pending prompt and a clear of another worker.
				long := engineStore(0, ppb, seq(1, 120)...)
				b.Add(ok(src.StoreEvents("e", 1, 5, 1, 1<<16, long)))
				branch := engineStore(long.Pages[40*ppb-1], ppb, seq(500, 60)...)
				b.Add(ok(src.StoreEvents("e", 1, 6, 1, 2<<16, branch)))
				b.Add(ok(src.RemoveEvents("e", 1, 7, 1, 3<<16, long.Hashes[80:])))
				rec := make([]uint64, 300)
				for i := range rec {
					rec[i] = pageMix(uint64(i)+7) | 1
				}
				b.Add(ok(src.Insert("r", 1, 9, rec)))
				b.Add(ok(src.InsertPending("e", 1, 9, rec[:20])))
				b.Add(ok(src.ClearEvents("f", 1, 9, 2)))

				whole, err := AppendBatch(nil, &b)
				if err != nil {
					t.Fatal(err)
				}
				parts, err := AppendBatches(nil, &b, budget)
				if err != nil {
					t.Fatal(err)
				}
				if len(whole) > budget && len(parts) < 2 {
					t.Fatalf("a batch of %d bytes was not cut to %d", len(whole), budget)
				}
				for i, p := range parts {
					if len(p) <= budget {
						continue
					}
					var d Batch
					if err := DecodeBatch(&d, p, DefaultLimits()); err != nil {
						t.Fatal(err)
					}
					if len(d.Deltas) != 1 || d.Deltas[0].Op != OpPending {
						t.Errorf("batch %d of %d bytes over the budget %d holds %d deltas (op %d)", i, len(p), budget, len(d.Deltas), d.Deltas[0].Op)
					}
				}
				want := replicaOf(t, [][]byte{whole})
				for _, order := range []string{"in order", "reversed"} {
					ps := slices.Clone(parts)
					if order == "reversed" {
						slices.Reverse(ps)
					}
					got := replicaOf(t, ps)
					if diff := cmp.Diff(want.Digest(), got.Digest()); diff != "" {
						t.Errorf("%s: digest (-whole +pieces):\n%s", order, diff)
					}
					for _, prompt := range [][]uint64{long.Pages, append(slices.Clone(long.Pages[:40*ppb]), branch.Pages...), rec} {
						if diff := cmp.Diff(want.MatchPages(nil, prompt), got.MatchPages(nil, prompt)); diff != "" {
							t.Errorf("%s: matches (-whole +pieces):\n%s", order, diff)
						}
					}
					wg, wv, wok := want.EventState("e")
					gg, gv, gok := got.EventState("e")
					if wg != gg || wv != gv || wok != gok {
						t.Errorf("%s: event state %d/%d/%v, want %d/%d/%v", order, gg, gv, gok, wg, wv, wok)
					}
					check(t, got)
				}
			})
		}
	}
}

// TestAppendBatchesRandom: random batches of random deltas cut at random
// budgets apply like the whole, in a random order of pieces.
func TestAppendBatchesRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for iter := range 200 {
		src := New(Config{})
		var b Batch
		ppb := 1 + rng.IntN(3)
		anchor := uint64(0)
		var stored []uint64
		for k := range 1 + rng.IntN(6) {
			ids := seq(uint64(1000*iter+100*k), 1+rng.IntN(150))
			eb := engineStore(anchor, ppb, ids...)
			d, err := src.StoreEvents("e", 1, uint32(k), 1, uint64(k+1)<<16, eb)
			if err != nil {
				t.Fatal(err)
			}
			b.Add(d)
			stored = append(stored, eb.Hashes...)
			if rng.IntN(2) == 0 {
				anchor = eb.Pages[rng.IntN(len(eb.Pages)/ppb)*ppb+ppb-1]
			}
		}
		rm := make([]uint64, 0, len(stored))
		for _, h := range stored {
			if rng.IntN(3) == 0 {
				rm = append(rm, h)
			}
		}
		d, err := src.RemoveEvents("e", 1, 99, 1, 99<<16, rm)
		if err != nil {
			t.Fatal(err)
		}
		b.Add(d)
		whole, err := AppendBatch(nil, &b)
		if err != nil {
			t.Fatal(err)
		}
		budget := 150 + rng.IntN(2000)
		parts, err := AppendBatches(nil, &b, budget)
		if err != nil {
			t.Fatal(err)
		}
		for i, p := range parts {
			if len(p) > budget {
				t.Fatalf("iter %d: batch %d of %d bytes over the budget %d", iter, i, len(p), budget)
			}
		}
		want, got := replicaOf(t, [][]byte{whole}), replicaOf(t, parts)
		if diff := cmp.Diff(want.Digest(), got.Digest()); diff != "" {
			t.Fatalf("iter %d (ppb %d, budget %d, %d pieces): digest (-whole +pieces):\n%s", iter, ppb, budget, len(parts), diff)
		}
		// Out of order, the same pages and engine map. (Not the same
		// stamps and versions: a store that a removal's tombstone keeps
		// out does not raise its anchor's, as it does when it comes
		// first, with or without cutting; anti-entropy evens them.)
		rng.Shuffle(len(parts), func(i, j int) { parts[i], parts[j] = parts[j], parts[i] })
		shuffled := replicaOf(t, parts)
		pagesOnly := func(d Digest) Digest {
			for i := range d {
				d[i].Sum, d[i].MaxStamp = 0, 0
			}
			return d
		}
		if diff := cmp.Diff(pagesOnly(want.Digest()), pagesOnly(shuffled.Digest())); diff != "" {
			t.Fatalf("iter %d (ppb %d, budget %d, %d pieces shuffled): digest (-whole +pieces):\n%s", iter, ppb, budget, len(parts), diff)
		}
		check(t, shuffled)
	}
}

func seq(from uint64, n int) []uint64 {
	out := make([]uint64, n)
	for i := range out {
		out[i] = from + uint64(i)
	}
	return out
}

// replicaOf applies encoded batches to a fresh index.
func replicaOf(t *testing.T, bs [][]byte) *Index {
	t.Helper()
	ix := New(Config{})
	var b Batch
	for _, p := range bs {
		if err := DecodeBatch(&b, p, DefaultLimits()); err != nil {
			t.Fatal(err)
		}
		if err := ix.ApplyBatch(&b); err != nil {
			t.Fatal(err)
		}
	}
	return ix
}

package radix

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"pgregory.net/rapid"
)

func matchSorted(ix *Index, path []uint64) []Hit {
	h := ix.MatchPages(nil, path)
	sortHits(h)
	return h
}

// TestModel checks the index against the naive reference over random
// inserts, touches, removals and budget evictions.
func TestModel(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		budget := rapid.SampledFrom([]int{0, 3, 8, 20}).Draw(rt, "budget")
		capPages := rapid.SampledFrom([]int{0, 10, 40}).Draw(rt, "cap")
		seed := rapid.Uint64().Draw(rt, "seed")
		rng := rand.New(rand.NewPCG(seed, 1))
		u := newUniverse(rng, 12, 4)
		ix := New(Config{WorkerPages: int64(budget), MaxHolderPages: int64(capPages), Models: map[string]ModelConfig{"model": {PageTokens: 4}}})
		ref := newRef(budget, capPages)
		workers := []string{"w0", "w1", "w2", "w3"}
		epoch := map[string]uint64{}
		var stamp uint32
		nops := rapid.IntRange(1, 60).Draw(rt, "ops")
		for op := range nops {
			w := workers[rng.IntN(len(workers))]
			p := u.prompts[rng.IntN(len(u.prompts))]
			stamp += uint32(rng.IntN(3))
			var desc string
			switch k := rng.IntN(10); {
			case k < 6:
				desc = fmt.Sprintf("insert %s@%d len %d", w, stamp, len(p))
				ref.learn(p)
				if _, err := ix.Insert(w, epoch[w], stamp, p); err != nil {
					rt.Fatalf("%s: %v", desc, err)
				}
				if len(p) > 0 {
					ref.insert(w, epoch[w], stamp, p[len(p)-1])
				}
			case k < 8:
				if len(p) == 0 {
					continue
				}
				page := p[rng.IntN(len(p))]
				if !ref.known(page) {
					continue
				}
				desc = fmt.Sprintf("touch %s@%d", w, stamp)
				if _, err := ix.Touch(w, epoch[w], stamp, page); err != nil {
					rt.Fatalf("%s: %v", desc, err)
				}
				ref.insert(w, epoch[w], stamp, page)
			default:
				desc = "remove " + w
				if _, err := ix.RemoveWorker(w, epoch[w]); err != nil {
					rt.Fatalf("%s: %v", desc, err)
				}
				ref.remove(w, epoch[w])
				epoch[w]++
			}
			if err := checkInvariants(ix.x); err != nil {
				rt.Fatalf("op %d %s: %v", op, desc, err)
			}
			if st := ix.Stats(); st.HolderPages != int64(ref.holderPages()) {
				rt.Fatalf("op %d %s: holder-pages %d, reference %d", op, desc, st.HolderPages, ref.holderPages())
			}
			for i, q := range u.prompts {
				if diff := cmp.Diff(ref.match(q), matchSorted(ix, q)); diff != "" {
					rt.Fatalf("op %d %s: prompt %d (-want +got):\n%s", op, desc, i, diff)
				}
			}
			if ix.x.pend.n != 0 {
				rt.Fatalf("local operations left %d deltas pending", ix.x.pend.n)
			}
		}
	})
}

func TestMatchAndInsertDeltas(t *testing.T) {
	ix := New(Config{})
	rng := rand.New(rand.NewPCG(1, 2))
	toks := randTokens(rng, 16*10)
	p := ix.AppendPages(nil, "m", toks)
	hits, d, err := ix.MatchAndInsert(nil, "a", 0, 5, p[:6])
	if err != nil || len(hits) != 0 {
		t.Fatalf("first insert: hits %v err %v", hits, err)
	}
	if diff := cmp.Diff(Delta{Op: OpInsert, Worker: "a", Stamp: 5, Pages: p[:6]}, d); diff != "" {
		t.Errorf("first delta (-want +got):\n%s", diff)
	}
	hits, d, err = ix.MatchAndInsert(nil, "a", 0, 6, p)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]Hit{{"a", 6}}, hits); diff != "" {
		t.Errorf("hits (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(Delta{Op: OpInsert, Worker: "a", Stamp: 6, Anchor: p[5], Pages: p[6:]}, d); diff != "" {
		t.Errorf("extension delta (-want +got):\n%s", diff)
	}
	_, d, _ = ix.MatchAndInsert(nil, "a", 0, 7, p[:3])
	if diff := cmp.Diff(Delta{Op: OpTouch, Worker: "a", Stamp: 7, Anchor: p[2]}, d); diff != "" {
		t.Errorf("touch delta (-want +got):\n%s", diff)
	}
	if got := ix.Match(nil, "m", toks[:16*4+3]); !cmp.Equal(got, []Hit{{"a", 4}}) {
		t.Errorf("Match of 4 pages and a partial page = %v, want a:4", got)
	}
	text := []byte(strings.Repeat("0123456789abcdef", 20))
	mustInsert(t, ix, "t", 1, ix.AppendTextPages(nil, "m", text[:128]))
	if got := ix.MatchText(nil, "m", text[:200]); !cmp.Equal(got, []Hit{{"t", 2}}) {
		t.Errorf("MatchText = %v, want t:2", got)
	}
}

func TestConflictingDeltaRejected(t *testing.T) {
	ix := New(Config{})
	if err := ix.Apply(Delta{Op: OpInsert, Worker: "a", Stamp: 1, Pages: []uint64{10, 11, 12}}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		d    Delta
	}{
		{"page elsewhere", Delta{Op: OpInsert, Worker: "b", Stamp: 1, Pages: []uint64{20, 11}}},
		{"repeated page", Delta{Op: OpInsert, Worker: "b", Stamp: 1, Pages: []uint64{30, 31, 30}}},
		{"zero page", Delta{Op: OpInsert, Worker: "b", Stamp: 1, Pages: []uint64{40, 0}}},
		{"bad op", Delta{Op: 9, Worker: "b"}},
		{"touch of root", Delta{Op: OpTouch, Worker: "b"}},
		{"no name", Delta{Op: OpInsert, Pages: []uint64{50}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := ix.Apply(tc.d); err == nil {
				t.Errorf("Apply(%+v) = nil, want an error", tc.d)
			}
			if err := checkInvariants(ix.x); err != nil {
				t.Fatal(err)
			}
		})
	}
	if got := ix.MatchPages(nil, []uint64{10, 11, 12}); !cmp.Equal(got, []Hit{{"a", 3}}) {
		t.Errorf("after rejected deltas Match = %v, want a:3", got)
	}
}

package radix

import (
	"sync"
	"testing"
)

func TestMatchAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items at random under -race, so allocation counts mean nothing there")
	}
	ix := New(Config{})
	toks := randTokens(newTestRand(5), 16*64)
	pages := ix.AppendPages(nil, "m", toks)
	mustInsert(t, ix, "a", 1, pages)
	mustInsert(t, ix, "b", 1, pages[:10])
	dst := make([]Hit, 0, 8)
	var got []Hit
	allocs := testing.AllocsPerRun(100, func() {
		got = ix.Match(dst[:0], "m", toks)
	})
	if allocs != 0 {
		t.Errorf("Match allocates %v times per call, want 0", allocs)
	}
	if len(got) != 2 || got[0] != (Hit{"a", 64}) || got[1] != (Hit{"b", 10}) {
		t.Errorf("Match = %v", got)
	}
	allocs = testing.AllocsPerRun(100, func() {
		_, _ = ix.RoutePages(pages, []Candidate{{Worker: "a", Load: 1}, {Worker: "b", Load: 2}}, DefaultPolicy())
	})
	if allocs != 0 {
		t.Errorf("RoutePages allocates %v times per call, want 0", allocs)
	}
}

// TestConcurrentReadersAndWriters runs matches, routes and digests against
// inserts, touches and removals; run it with -race.
func TestConcurrentReadersAndWriters(t *testing.T) {
	ix := New(Config{WorkerPages: 50})
	u := newUniverse(newTestRand(11), 40, 16)
	var wg sync.WaitGroup
	for r := range 4 {
		wg.Go(func() {
			dst := make([]Hit, 0, 8)
			for i := range 400 {
				q := u.prompts[(i+r)%len(u.prompts)]
				for _, h := range ix.MatchPages(dst[:0], q) {
					if h.Pages < 1 || h.Pages > len(q) {
						t.Errorf("hit %v outside the prompt's %d pages", h, len(q))
					}
				}
				if _, err := ix.RoutePages(q, []Candidate{{Worker: "w0", Load: 1}, {Worker: "w1", Load: 2}}, DefaultPolicy()); err != nil {
					t.Error(err)
				}
				if i%50 == 0 {
					ix.Digest()
				}
			}
		})
	}
	for wr := range 2 {
		wg.Go(func() {
			rng := newTestRand(uint64(wr))
			for i := range 400 {
				w := []string{"w0", "w1", "w2"}[rng.IntN(3)]
				q := u.prompts[rng.IntN(len(u.prompts))]
				switch rng.IntN(10) {
				case 0:
					_, _ = ix.RemoveWorker(w, 0)
				case 1, 2:
					_, _ = ix.Touch(w, 0, uint32(i), q[0])
				default:
					if _, err := ix.Insert(w, 0, uint32(i), q); err != nil {
						t.Error(err)
					}
				}
			}
		})
	}
	wg.Wait()
	if err := checkInvariants(ix.x); err != nil {
		t.Fatal(err)
	}
}

package radix

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestEvictionOrder walks through the eviction ranking: oldest stamp first,
// then deepest, and a worker's holdings stay prefix-closed.
func TestEvictionOrder(t *testing.T) {
	ix := New(Config{WorkerPages: 4})
	steps := []struct {
		name  string
		stamp uint32
		pages []uint64
		want  map[string][]Hit // prompt -> hits after the step
	}{
		{"fill", 1, []uint64{1, 2, 3}, nil},
		{"older leaf goes first", 2, []uint64{1, 2, 4, 5}, map[string][]Hit{
			"1,2,3": {{"a", 2}}, "1,2,4,5": {{"a", 4}},
		}},
		{"same stamp: deepest goes", 2, []uint64{6}, map[string][]Hit{
			"1,2,4,5": {{"a", 3}}, "6": {{"a", 1}},
		}},
		{"a newer prompt pushes out a whole old branch", 3, []uint64{7, 8, 9}, map[string][]Hit{
			"1,2,4,5": {{"a", 1}}, "6": nil, "7,8,9": {{"a", 3}},
		}},
	}
	prompts := map[string][]uint64{
		"1,2,3": {1, 2, 3}, "1,2,4,5": {1, 2, 4, 5}, "6": {6}, "7,8,9": {7, 8, 9},
	}
	for _, st := range steps {
		if err := ix.Apply(Delta{Op: OpInsert, Worker: "a", Stamp: st.stamp, Pages: st.pages}); err != nil {
			t.Fatal(err)
		}
		if err := checkInvariants(ix.x); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if got := ix.Digest()[0].Pages; got > 4 {
			t.Errorf("%s: worker holds %d pages, budget 4", st.name, got)
		}
		for p, want := range st.want {
			if diff := cmp.Diff(want, ix.MatchPages(nil, prompts[p])); diff != "" {
				t.Errorf("%s: Match(%s) (-want +got):\n%s", st.name, p, diff)
			}
		}
	}
}

func TestRemoveAndEpochs(t *testing.T) {
	ix := New(Config{})
	mustApply := func(d Delta) {
		t.Helper()
		if err := ix.Apply(d); err != nil {
			t.Fatal(err)
		}
	}
	mustApply(Delta{Op: OpInsert, Worker: "a", Epoch: 1, Stamp: 5, Pages: []uint64{1, 2}})
	mustApply(Delta{Op: OpInsert, Worker: "b", Epoch: 1, Stamp: 5, Pages: []uint64{1, 2}})
	mustApply(Delta{Op: OpRemove, Worker: "a", Epoch: 1})
	mustApply(Delta{Op: OpInsert, Worker: "a", Epoch: 1, Stamp: 9, Pages: []uint64{1, 2, 3}}) // late, same epoch: ignored
	if diff := cmp.Diff([]Hit{{"b", 2}}, ix.MatchPages(nil, []uint64{1, 2, 3})); diff != "" {
		t.Errorf("after removal (-want +got):\n%s", diff)
	}
	mustApply(Delta{Op: OpInsert, Worker: "a", Epoch: 2, Stamp: 1, Pages: []uint64{1}})    // re-registered
	mustApply(Delta{Op: OpInsert, Worker: "a", Epoch: 1, Stamp: 9, Pages: []uint64{1, 2}}) // stale epoch
	got := ix.MatchPages(nil, []uint64{1, 2})
	sortHits(got)
	if diff := cmp.Diff([]Hit{{"a", 1}, {"b", 2}}, got); diff != "" {
		t.Errorf("after re-registration (-want +got):\n%s", diff)
	}
	mustApply(Delta{Op: OpRemove, Worker: "b", Epoch: 1})
	if st := ix.Stats(); st.Pages != 1 || st.HolderPages != 1 {
		t.Errorf("after removing b: %d pages, %d holder-pages; want 1, 1", st.Pages, st.HolderPages)
	}
}

func TestPendingAnchor(t *testing.T) {
	ix := New(Config{MaxPending: 2})
	// The extension arrives before the prompt it extends.
	mustOK(t, ix.Apply(Delta{Op: OpInsert, Worker: "a", Stamp: 2, Anchor: 2, Pages: []uint64{3, 4}}))
	mustOK(t, ix.Apply(Delta{Op: OpTouch, Worker: "b", Stamp: 2, Anchor: 4}))
	mustOK(t, ix.Apply(Delta{Op: OpTouch, Worker: "c", Stamp: 2, Anchor: 99})) // over MaxPending
	mustOK(t, ix.Apply(Delta{Op: OpTouch, Worker: "c", Stamp: 2, Anchor: 98})) // and this
	if st := ix.Stats(); st.Pending != 2 || st.PendingDropped != 2 || st.Pages != 0 {
		t.Fatalf("stats %+v, want 2 pending, 2 dropped, no pages", st)
	}
	mustOK(t, ix.Apply(Delta{Op: OpInsert, Worker: "a", Stamp: 1, Pages: []uint64{1, 2}}))
	got := ix.MatchPages(nil, []uint64{1, 2, 3, 4})
	if diff := cmp.Diff([]Hit{{"a", 4}, {"b", 4}}, got); diff != "" {
		t.Errorf("after the anchor arrived (-want +got):\n%s", diff)
	}
	if err := checkInvariants(ix.x); err != nil {
		t.Fatal(err)
	}
}

func mustOK(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestLongChains crosses the page table's per-chain offset limit.
func TestLongChains(t *testing.T) {
	ix := New(Config{})
	p := randPath(newTestRand(4), nil, 2*maxChainPages+100)
	mustInsert(t, ix, "a", 1, p[:maxChainPages-10])
	mustInsert(t, ix, "a", 2, p[:maxChainPages+10]) // extends in place, then a new chain
	mustInsert(t, ix, "b", 3, p)                    // longer than two chains at once
	if err := checkInvariants(ix.x); err != nil {
		t.Fatal(err)
	}
	got := ix.MatchPages(nil, p)
	if diff := cmp.Diff([]Hit{{"b", len(p)}, {"a", maxChainPages + 10}}, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if _, err := ix.RemoveWorker("b", 0); err != nil {
		t.Fatal(err)
	}
	if st := ix.Stats(); st.Pages != maxChainPages+10 || st.HolderPages != maxChainPages+10 {
		t.Errorf("after removing b: %+v", st)
	}
	if err := checkInvariants(ix.x); err != nil {
		t.Fatal(err)
	}
}

package radix

import (
	"errors"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// blockPages returns ppb synthetic lineage hashes of a block named id
// below the page anchor, as a chain of pages from anchor.
func blockPages(anchor, id uint64, ppb int) []uint64 {
	out := make([]uint64, ppb)
	prev := anchor
	for i := range out {
		prev = pageMix(prev^(id*prime1+uint64(i)+prime2)) | 1
		out[i] = prev
	}
	return out
}

// engineStore builds the blocks of ids below anchor (each below the one
// before) as EngineBlocks with engine hashes id+1000.
func engineStore(anchor uint64, ppb int, ids ...uint64) EngineBlocks {
	b := EngineBlocks{Anchor: anchor, PagesPerBlock: ppb}
	for _, id := range ids {
		ps := blockPages(anchor, id, ppb)
		b.Pages = append(b.Pages, ps...)
		b.Hashes = append(b.Hashes, id+1000)
		anchor = ps[ppb-1]
	}
	return b
}

func mustDelta(t testing.TB) func(Delta, error) Delta {
	return func(v Delta, err error) Delta {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// restoreSame snapshots ix and restores the snapshot without budgets; it
// fails unless the restored index has ix's digest, and returns it.
func restoreSame(t testing.TB, ix *Index) *Index {
	t.Helper()
	snap, err := ix.AppendSnapshot(nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err := Restore(Config{}, snap)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(ix.Digest(), r.Digest()); diff != "" {
		t.Fatalf("restored digest (-snapshotted +restored):\n%s", diff)
	}
	return r
}

func check(t testing.TB, ix *Index) {
	t.Helper()
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	if err := checkInvariants(ix.x); err != nil {
		t.Fatal(err)
	}
}

func TestStoreRemoveEvents(t *testing.T) {
	for _, ppb := range []int{1, 2, 4} {
		t.Run(fmt.Sprintf("ppb=%d", ppb), func(t *testing.T) {
			ix := New(Config{})
			ok := mustDelta(t)
			// Blocks 1 -> 2 -> 3, and 4 below 2.
			b := engineStore(0, ppb, 1, 2, 3)
			ok(ix.StoreEvents("w", 1, 10, 1, 5<<16, b))
			l2 := b.Pages[2*ppb-1]
			b4 := engineStore(l2, ppb, 4)
			ok(ix.StoreEvents("w", 1, 11, 1, 6<<16, b4))
			check(t, ix)
			prompt := append(append([]uint64(nil), b.Pages...), 99)
			if diff := cmp.Diff([]Hit{{"w", 3 * ppb}}, ix.MatchPages(nil, prompt)); diff != "" {
				t.Fatalf("match (-want +got):\n%s", diff)
			}
			if l, found := ix.EngineLineage("w", 1002); !found || l != l2 {
				t.Fatalf("EngineLineage(1002) = %#x, %v, want %#x", l, found, l2)
			}
			if gen, ver, found := ix.EventState("w"); !found || gen != 1 || ver != 6<<16 {
				t.Fatalf("EventState = %d, %#x, %v", gen, ver, found)
			}
			// Removing block 2 drops 2, 3 and 4 (below it), keeps 1.
			d := ok(ix.RemoveEvents("w", 1, 12, 1, 7<<16, []uint64{1002}))
			if diff := cmp.Diff([]uint64{b.Pages[ppb]}, d.Pages); diff != "" {
				t.Fatalf("removal's resolved first pages (-want +got):\n%s", diff)
			}
			check(t, ix)
			if diff := cmp.Diff([]Hit{{"w", ppb}}, ix.MatchPages(nil, prompt)); diff != "" {
				t.Fatalf("match after removal (-want +got):\n%s", diff)
			}
			if _, found := ix.EngineLineage("w", 1002); found {
				t.Fatal("engine map still has the removed block")
			}
			st := ix.Stats()
			if st.HolderPages != int64(ppb) || st.EventWorkers != 1 || st.Tombstones != 1 {
				t.Fatalf("stats %+v", st)
			}
			// A late store of block 3 (ver before the removal) stays out.
			ok(ix.StoreEvents("w", 1, 13, 1, 5<<16|1, engineStore(l2, ppb, 3)))
			if diff := cmp.Diff([]Hit{{"w", ppb}}, ix.MatchPages(nil, prompt)); diff != "" {
				t.Fatalf("match after a late store (-want +got):\n%s", diff)
			}
			// A store after the removal brings block 2 back.
			ok(ix.StoreEvents("w", 1, 14, 1, 8<<16, engineStore(b.Pages[ppb-1], ppb, 2)))
			if diff := cmp.Diff([]Hit{{"w", 2 * ppb}}, ix.MatchPages(nil, prompt)); diff != "" {
				t.Fatalf("match after re-store (-want +got):\n%s", diff)
			}
			// An older generation is ignored; a clear drops everything.
			ok(ix.StoreEvents("w", 1, 15, 0, 9<<16, engineStore(0, ppb, 7)))
			ok(ix.ClearEvents("w", 1, 16, 2))
			check(t, ix)
			if got := ix.MatchPages(nil, prompt); len(got) != 0 {
				t.Fatalf("match after clear = %v", got)
			}
			if st := ix.Stats(); st.HolderPages != 0 || st.EngineEntries != 0 || st.Tombstones != 0 {
				t.Fatalf("stats after clear %+v", st)
			}
			if gen, _, found := ix.EventState("w"); found || gen != 2 {
				t.Fatalf("EventState after clear = %d, %v", gen, found)
			}
			// A store of generation 1 after the clear changes nothing.
			ok(ix.StoreEvents("w", 1, 17, 1, 10<<16, b))
			if got := ix.MatchPages(nil, prompt); len(got) != 0 {
				t.Fatalf("match after an old generation's store = %v", got)
			}
		})
	}
}

func TestRemoveBeforeStore(t *testing.T) {
	// The replica receives the removal (ver 7) before the store (ver 5) it
	// follows: the store must not bring the block back.
	src := New(Config{})
	ok := mustDelta(t)
	b := engineStore(0, 2, 1, 2)
	st := ok(src.StoreEvents("w", 1, 10, 1, 5, b))
	rm := ok(src.RemoveEvents("w", 1, 11, 1, 7, []uint64{1002}))
	dst := New(Config{})
	for _, d := range []Delta{rm, st, rm, st} {
		if err := dst.Apply(d); err != nil {
			t.Fatal(err)
		}
	}
	check(t, dst)
	if diff := cmp.Diff(src.Digest(), dst.Digest()); diff != "" {
		t.Fatalf("digests (-src +dst):\n%s", diff)
	}
	if diff := cmp.Diff([]Hit{{"w", 2}}, dst.MatchPages(nil, b.Pages)); diff != "" {
		t.Fatalf("match (-want +got):\n%s", diff)
	}
	if _, found := dst.EngineLineage("w", 1002); found {
		t.Fatal("a late store brought the engine map entry back")
	}
}

func TestStoreEventsRejects(t *testing.T) {
	ix := New(Config{})
	for _, b := range []EngineBlocks{
		{Pages: []uint64{1, 2}, Hashes: []uint64{1}, PagesPerBlock: 1},
		{Pages: []uint64{1, 2}, Hashes: []uint64{1}, PagesPerBlock: 0},
		{Pages: []uint64{1}, Hashes: []uint64{1}, PagesPerBlock: maxPagesPerBlock + 1},
	} {
		if _, err := ix.StoreEvents("w", 1, 1, 1, 1, b); !errors.Is(err, ErrBadDelta) {
			t.Errorf("StoreEvents(%+v) = %v, want ErrBadDelta", b, err)
		}
	}
}

func TestPendingAndSources(t *testing.T) {
	ix := New(Config{})
	ok := mustDelta(t)
	b := engineStore(0, 1, 1, 2, 3, 4)
	prompt := append(append([]uint64(nil), b.Pages...), blockPages(b.Pages[3], 9, 4)...) // 8 pages
	// e holds 2 pages through events, r 3 recorded, p 5 pending.
	ok(ix.StoreEvents("e", 1, 10, 1, 1, engineStore(0, 1, 1, 2)))
	ok(ix.Insert("r", 1, 10, prompt[:3]))
	pd := ok(ix.InsertPending("p", 1, 10, prompt[:5]))
	if pd.Op != OpPending || pd.Anchor != 0 || len(pd.Pages) != 5 {
		t.Fatalf("pending delta %+v", pd)
	}
	cands := []Candidate{{Worker: "e", Load: 0}, {Worker: "r", Load: 0}, {Worker: "p", Load: 0}}
	pol := DefaultPolicy()
	pol.CacheThreshold = 0.1
	tests := []struct {
		name  string
		cands []Candidate
		want  Decision
	}{
		{"pending wins", cands, Decision{Worker: "p", Rule: RuleCacheHit, MatchedPages: 5, MatchRatio: 5.0 / 8, Sources: SourcePending}},
		{"recorded", cands[:2], Decision{Worker: "r", Rule: RuleCacheHit, MatchedPages: 3, MatchRatio: 3.0 / 8, Sources: SourceRecorded}},
		{"events", cands[:1], Decision{Worker: "e", Rule: RuleCacheHit, MatchedPages: 2, MatchRatio: 2.0 / 8, Sources: SourceEvents}},
	}
	for _, tc := range tests {
		got, err := ix.RoutePages(prompt, tc.cands, pol)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.name, diff)
		}
	}
	// Events confirm 5 pages of e, pending 4: both sources at 5? No: e's
	// own depth 5, its pending 4, so events alone.
	ok(ix.InsertPending("e", 1, 11, prompt[:4]))
	ok(ix.StoreEvents("e", 1, 12, 1, 2, EngineBlocks{Anchor: prompt[1], Pages: prompt[2:5], Hashes: []uint64{3, 4, 5}, PagesPerBlock: 1}))
	got, err := ix.RoutePages(prompt, cands[:1], pol)
	if err != nil {
		t.Fatal(err)
	}
	if got.MatchedPages != 5 || got.Sources != SourceEvents {
		t.Errorf("e after confirmation: %+v", got)
	}
	ok(ix.InsertPending("e", 1, 13, prompt[:5]))
	got, _ = ix.RoutePages(prompt, cands[:1], pol)
	if got.Sources != SourceEvents|SourcePending || got.Sources.String() != "events+pending" {
		t.Errorf("e with equal pending: %+v (%v)", got, got.Sources)
	}
	// Match merges pending into the worker's depth, each worker once.
	want := []Hit{{"e", 5}, {"p", 5}, {"r", 3}}
	gotHits := ix.MatchPages(nil, prompt)
	sortHits(gotHits)
	sortHits(want)
	if diff := cmp.Diff(want, gotHits); diff != "" {
		t.Errorf("match (-want +got):\n%s", diff)
	}
	st := ix.Stats()
	if st.Workers != 3 || st.PendingPages != 5+5 {
		t.Errorf("stats %+v", st)
	}
	// Pending pages are not in digests.
	for _, s := range ix.Digest() {
		if s.Worker == "p" && s.Pages != 0 {
			t.Errorf("digest counts pending pages: %+v", s)
		}
	}
	// Expiry drops pages stamped before 11: p's 5; e's pending are at 13.
	if n := ix.ExpirePending(11); n != 5 {
		t.Errorf("ExpirePending(11) = %d, want 5", n)
	}
	if n := ix.ExpirePending(14); n != 5 {
		t.Errorf("ExpirePending(14) = %d, want 5", n)
	}
	check(t, ix)
	if st := ix.Stats(); st.PendingPages != 0 {
		t.Errorf("pending pages after expiry: %d", st.PendingPages)
	}
	// Removing the worker drops its pending pages too.
	ok(ix.InsertPending("p", 1, 20, prompt))
	ok(ix.RemoveWorker("p", 1))
	if st := ix.Stats(); st.PendingPages != 0 {
		t.Errorf("pending pages after removal: %d", st.PendingPages)
	}
	if diff := cmp.Diff([]string{"events", "pending"}, (SourceEvents | SourcePending).Names()); diff != "" {
		t.Error(diff)
	}
}

func TestTieSpread(t *testing.T) {
	ix := New(Config{})
	cands := []Candidate{{Worker: "w0", Load: 3}, {Worker: "w1", Load: 3}, {Worker: "w2", Load: 3}, {Worker: "w3", Load: 3}}
	counts := map[string]int{}
	const n = 400
	for i := range n {
		pages := blockPages(0, uint64(i), 3)
		d, err := ix.RoutePages(pages, cands, DefaultPolicy())
		if err != nil {
			t.Fatal(err)
		}
		counts[d.Worker]++
		// The same prompt goes to the same worker, whatever the order.
		rev := []Candidate{cands[3], cands[2], cands[1], cands[0]}
		d2, _ := ix.RoutePages(pages, rev, DefaultPolicy())
		if d2.Worker != d.Worker {
			t.Fatalf("prompt %d: %s, reversed candidates %s", i, d.Worker, d2.Worker)
		}
	}
	for _, c := range cands {
		// Each gets its share: 100 expected, far from 0 or all.
		if counts[c.Worker] < n/8 {
			t.Errorf("%s got %d of %d prompts: %v", c.Worker, counts[c.Worker], n, counts)
		}
	}
	// Equal matches at equal load spread too.
	for _, c := range cands {
		mustInsert(t, ix, c.Worker, 1, blockPages(0, 7, 4))
	}
	counts = map[string]int{}
	for i := range n {
		pages := append(blockPages(0, 7, 4), blockPages(1, uint64(i), 1)...)
		_ = pages
		d, _ := ix.RoutePages(pages, cands, DefaultPolicy())
		if d.Rule != RuleCacheHit {
			t.Fatalf("rule %v", d.Rule)
		}
		counts[d.Worker]++
	}
	// All those prompts share their first page, so one worker takes them
	// all: the prefix stays on one worker.
	if len(counts) != 1 {
		t.Errorf("one shared first page spread over %v", counts)
	}
}

func TestEventBatchRoundTrip(t *testing.T) {
	var b Batch
	ds := []Delta{
		{Op: OpStoreEvents, Worker: "w", Epoch: 2, Stamp: 100, Gen: 3, Ver: 7<<16 | 2, Anchor: 5, Pages: []uint64{1, 2, 3, 4}, Hashes: []uint64{0, 99}, PagesPerBlock: 2},
		{Op: OpStoreEvents, Worker: "w", Epoch: 2, Stamp: 101, Gen: 3, Ver: 0, Pages: []uint64{8}},
		{Op: OpRemoveEvents, Worker: "w", Epoch: 2, Gen: 3, Ver: 9, Hashes: []uint64{99, 0}, Pages: []uint64{3, 0}},
		{Op: OpClearEvents, Worker: "v", Epoch: 1, Gen: 4},
		{Op: OpPending, Worker: "v", Epoch: 1, Stamp: 102, Pages: []uint64{1, 2}},
		{Op: OpEngineMap, Worker: "w", Epoch: 2, Gen: 3, Hashes: []uint64{99}, Pages: []uint64{4}},
	}
	for _, d := range ds {
		b.Add(d)
	}
	buf, err := AppendBatch(nil, &b)
	if err != nil {
		t.Fatal(err)
	}
	var got Batch
	if err := DecodeBatch(&got, buf, DefaultLimits()); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(ds, got.Deltas, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("decoded (-want +got):\n%s", diff)
	}
	// Every truncation fails cleanly.
	for i := range len(buf) {
		if err := DecodeBatch(&got, buf[:i], DefaultLimits()); !errors.Is(err, ErrDecode) {
			t.Fatalf("truncated at %d: %v", i, err)
		}
	}
	// Limits bound hashes too.
	if err := DecodeBatch(&got, buf, Limits{MaxWorkers: 4, MaxDeltas: 16, MaxPages: 1}); !errors.Is(err, ErrDecode) {
		t.Errorf("over the page limit: %v", err)
	}
}

func TestEventAntiEntropy(t *testing.T) {
	// a applies everything; b misses the removal and the re-store; then
	// anti-entropy makes them equal, and b loses the removed pages.
	a, b := New(Config{}), New(Config{})
	ok := mustDelta(t)
	st := engineStore(0, 2, 1, 2, 3)
	d1 := ok(a.StoreEvents("w", 1, 10, 1, 1, st))
	ok(a.RemoveEvents("w", 1, 11, 1, 2, []uint64{1003}))
	ok(a.StoreEvents("w", 1, 12, 1, 3, engineStore(st.Pages[1], 2, 5)))
	ok(a.InsertPending("w", 1, 13, st.Pages))
	if err := b.Apply(d1); err != nil {
		t.Fatal(err)
	}
	antiEntropy(t, []*Index{a, b}, 4)
	if diff := cmp.Diff(a.Digest(), b.Digest()); diff != "" {
		t.Fatalf("digests (-a +b):\n%s", diff)
	}
	a.ExpirePending(100) // pending pages are local: b has none
	if diff := cmp.Diff(a.MatchPages(nil, st.Pages), b.MatchPages(nil, st.Pages)); diff != "" {
		t.Fatalf("match (-a +b):\n%s", diff)
	}
	if got := b.MatchPages(nil, st.Pages); len(got) != 1 || got[0].Pages != 4 {
		t.Fatalf("b's match %v, want 4 pages", got)
	}
	for _, e := range []uint64{1001, 1002, 1005} {
		la, _ := a.EngineLineage("w", e)
		lb, found := b.EngineLineage("w", e)
		if !found || la != lb {
			t.Errorf("engine hash %d: a %#x, b %#x %v", e, la, lb, found)
		}
	}
	check(t, b)
	// Snapshots keep the event state.
	r := restoreSame(t, a)
	if st := r.Stats(); st.Tombstones != 1 || st.EngineEntries != 3 {
		t.Fatalf("restored stats %+v", st)
	}
}

func TestTombstoneBound(t *testing.T) {
	// With room for 2 tombstones, the third removal pushes out the first
	// to arrive: a late store older than it comes back, older than the
	// others it does not.
	ix := New(Config{MaxEventTombstones: 2})
	ok := mustDelta(t)
	var stores []Delta
	for i := range uint64(3) {
		stores = append(stores, ok(ix.StoreEvents("w", 1, 1, 1, 10+i, engineStore(0, 1, 1+i))))
	}
	for i := range uint64(3) {
		ok(ix.RemoveEvents("w", 1, 2, 1, 20+i, []uint64{1001 + i}))
	}
	st := ix.Stats()
	if st.Tombstones != 2 || st.TombstonesDropped != 1 || st.HolderPages != 0 {
		t.Fatalf("stats %+v", st)
	}
	for _, d := range stores {
		if err := ix.Apply(d); err != nil {
			t.Fatal(err)
		}
	}
	check(t, ix)
	want := []Hit{{"w", 1}}
	for i, d := range stores {
		got := ix.MatchPages(nil, d.Pages)
		if i > 0 {
			if len(got) != 0 {
				t.Errorf("store %d came back past its tombstone: %v", i, got)
			}
			continue
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("store 0, its tombstone gone (-want +got):\n%s", diff)
		}
	}
}

func TestEngineMapSharedPage(t *testing.T) {
	// Two engine hashes for one page (same tokens, different extra keys)
	// keep the greater in any order.
	b := engineStore(0, 1, 1)
	for _, order := range [][]uint64{{5, 9}, {9, 5}} {
		ix := New(Config{})
		for i, e := range order {
			bb := b
			bb.Hashes = []uint64{e}
			if _, err := ix.StoreEvents("w", 1, 1, 1, uint64(i), bb); err != nil {
				t.Fatal(err)
			}
		}
		if l, ok := ix.EngineLineage("w", 9); !ok || l != b.Pages[0] {
			t.Errorf("order %v: EngineLineage(9) = %#x, %v", order, l, ok)
		}
		if _, ok := ix.EngineLineage("w", 5); ok {
			t.Errorf("order %v: the smaller hash kept", order)
		}
		check(t, ix)
	}
}

func TestPendingNotInSnapshot(t *testing.T) {
	ix := New(Config{})
	if _, err := ix.InsertPending("w", 1, 5, blockPages(0, 1, 4)); err != nil {
		t.Fatal(err)
	}
	if _, err := ix.Insert("v", 1, 5, blockPages(0, 2, 3)); err != nil {
		t.Fatal(err)
	}
	r := restoreSame(t, ix)
	if st := r.Stats(); st.PendingPages != 0 || st.HolderPages != 3 {
		t.Errorf("restored stats %+v", st)
	}
}

// TestTombstoneWindowKeepsTheNewest: once the window is full, a tombstone
// older than every one kept (anti-entropy shipping a peer's window) is not
// kept and pushes none of the recent ones out; a newer one still does.
func TestTombstoneWindowKeepsTheNewest(t *testing.T) {
	ix := New(Config{MaxEventTombstones: 2})
	ok := mustDelta(t)
	var stores []Delta
	for i := range uint64(4) {
		stores = append(stores, ok(ix.StoreEvents("w", 1, 1, 1, 10+i, engineStore(0, 1, 1+i))))
	}
	// Removals at vers 21 and 22 fill the window; one at 20 (older than
	// both) arrives late; one at 23 is newer.
	ok(ix.RemoveEvents("w", 1, 2, 1, 21, []uint64{1002}))
	ok(ix.RemoveEvents("w", 1, 2, 1, 22, []uint64{1003}))
	ok(ix.RemoveEvents("w", 1, 2, 1, 20, []uint64{1001}))
	if st := ix.Stats(); st.Tombstones != 2 || st.TombstonesDropped != 1 {
		t.Fatalf("after an older removal: stats %+v", st)
	}
	// The recent tombstones are still there: late stores of their blocks
	// stay out.
	for _, i := range []int{1, 2} {
		if err := ix.Apply(stores[i]); err != nil {
			t.Fatal(err)
		}
		if got := ix.MatchPages(nil, stores[i].Pages); len(got) != 0 {
			t.Errorf("store %d came back past its tombstone: %v", i, got)
		}
	}
	ok(ix.RemoveEvents("w", 1, 2, 1, 23, []uint64{1004}))
	if st := ix.Stats(); st.Tombstones != 2 || st.TombstonesDropped != 2 {
		t.Fatalf("after a newer removal: stats %+v", st)
	}
	if err := ix.Apply(stores[3]); err != nil {
		t.Fatal(err)
	}
	if got := ix.MatchPages(nil, stores[3].Pages); len(got) != 0 {
		t.Errorf("store 3 came back past its tombstone: %v", got)
	}
	check(t, ix)
}

// TestRecordedInsertAgainstTombstones: a recorded insert into a worker
// with events stops at its tombstones, so an insert and a removal give the
// same holdings in either order. It used to hold the pages when it came
// after the removal, and holdings, which ship the tombstones after the
// chains, did not reproduce that worker at the receiver; two replicas
// exchanging holdings both ways at once could swap the difference forever.
func TestRecordedInsertAgainstTombstones(t *testing.T) {
	ok := mustDelta(t)
	st := engineStore(0, 2, 1, 2, 3)
	store, err := New(Config{}).StoreEvents("w", 1, 10, 1, 1, st)
	if err != nil {
		t.Fatal(err)
	}
	a, b := New(Config{}), New(Config{})
	ok(a.StoreEvents("w", 1, 10, 1, 1, st))
	rm := ok(a.RemoveEvents("w", 1, 11, 1, 2, []uint64{1002}))
	ins := ok(a.Insert("w", 1, 12, st.Pages[:4]))
	for _, d := range []Delta{store, ins, rm} {
		if err := b.Apply(d); err != nil {
			t.Fatal(err)
		}
	}
	want := a.Digest()
	if diff := cmp.Diff(want, b.Digest()); diff != "" {
		t.Fatalf("insert before and after the removal (-after +before):\n%s", diff)
	}
	for _, ix := range []*Index{a, b} {
		if got := ix.MatchPages(nil, st.Pages); len(got) != 1 || got[0].Pages != 2 {
			t.Fatalf("match %v, want the 2 pages above the removed block", got)
		}
		check(t, ix)
	}
	// An insert below the removed block's first page stops there too.
	ok(a.Insert("w", 1, 13, st.Pages[2:6]))
	if got := a.MatchPages(nil, st.Pages); len(got) != 1 || got[0].Pages != 2 {
		t.Fatalf("match %v after an insert below the tombstone, want 2 pages", got)
	}
	// Holdings in parts of any size, and a snapshot, reproduce the worker.
	want = a.Digest()
	for _, maxBytes := range []int{1, 40, 1 << 20} {
		c := New(Config{})
		for from := 0; from >= 0; {
			var hb Batch
			from = a.Holdings(&hb, "w", from, maxBytes)
			deliver(t, c, &hb)
		}
		if diff := cmp.Diff(want, c.Digest()); diff != "" {
			t.Fatalf("holdings, maxBytes %d (-a +copy):\n%s", maxBytes, diff)
		}
		check(t, c)
	}
	restoreSame(t, a)
}

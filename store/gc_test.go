package store

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// collectAll runs two stability rounds among ss with live members live.
func collectAll(t *testing.T, ss []*Store, live []Actor, now time.Time, horizon time.Duration) {
	t.Helper()
	for range 2 {
		antiEntropy(t, ss, now, 1<<20)
		for _, s := range ss {
			s.Collect(live, now, horizon)
		}
	}
	antiEntropy(t, ss, now, 1<<20)
}

func TestCollectWaitsForEveryLiveMember(t *testing.T) {
	a, b := newTestStore(t, "a", 1), newTestStore(t, "b", 1)
	now := t0
	must(t, a.Put("ns", "k", []byte("v"), now))
	must(t, a.Delete("ns", "k", now))
	antiEntropy(t, []*Store{a, b}, now, 1<<20)
	live := []Actor{a.Self(), b.Self(), {Name: "c", Gen: 1}}
	for range 3 {
		if n := a.Collect(live, now, time.Minute); n != 0 {
			t.Fatalf("collected %d tombstones while member c's context is unknown", n)
		}
	}
	// c departs unheard: it still counts, unknown, until the horizon.
	live = live[:2]
	for range 3 {
		if n := a.Collect(live, now.Add(time.Minute), time.Minute); n != 0 {
			t.Fatalf("collected %d tombstones within the horizon of departed, unheard c", n)
		}
	}
	now = now.Add(time.Minute + time.Second)
	a.Collect(live, now, time.Minute)
	if n := a.Collect(live, now, time.Minute); n != 1 {
		t.Fatalf("second stable round past c's horizon collected %d tombstones, want 1", n)
	}
	if _, ok := a.Get("ns", "k"); ok {
		t.Fatal("collected key readable")
	}
}

// TestCollectForgetsSupersededGeneration: a member restarted with a new
// generation stops holding back collection at once, heard from or not,
// while the new generation counts like any member.
func TestCollectForgetsSupersededGeneration(t *testing.T) {
	for _, heard := range []bool{false, true} {
		t.Run(fmt.Sprintf("heard=%v", heard), func(t *testing.T) {
			a, b1 := newTestStore(t, "a", 1), newTestStore(t, "b", 1)
			now := t0
			peers := []Peer{{Actor: a.Self(), Live: true}, {Actor: b1.Self(), Live: true}}
			a.CollectPeers(peers, now, time.Minute)
			if heard {
				antiEntropy(t, []*Store{a, b1}, now, 1<<20)
			}
			must(t, a.Put("ns", "k", []byte("v"), now))
			must(t, a.Delete("ns", "k", now))
			// b restarts as generation 2 before it saw the delete.
			b2 := newTestStore(t, "b", 2)
			ab := []*Store{a, b2}
			peers = []Peer{{Actor: a.Self(), Live: true}, {Actor: b2.Self(), Live: true}}
			if n := a.CollectPeers(peers, now, time.Minute); n != 0 {
				t.Fatalf("collected %d before b/2's context is known", n)
			}
			for range 2 {
				antiEntropy(t, ab, now, 1<<20)
				a.CollectPeers(peers, now, time.Minute)
			}
			if st := a.Stats(); st.Tombstones != 0 || st.Collected != 1 {
				t.Fatalf("tombstones %d, collected %d within the horizon of b/1, want 0 and 1", st.Tombstones, st.Collected)
			}
		})
	}
}

// TestPartitionSidesDoNotCollectOverEachOther pins the cause of issue 10,
// item 1. A partition cuts {a, b} from {c, d} before any digest crossed the
// cut; each side declares the other dead. Each side must keep counting the
// other (dead, never heard from, within the horizon), so neither raises a
// floor over writes the other never saw. Counting only the live members, a
// and b raise a floor over their writes, c and d over theirs; on the heal
// a adopts c's floor, then d resynchronises against a's merged floor and
// drops c's and d's writes under it, which a does not hold: acknowledged
// writes lost, and the older write of the shared key wins.
func TestPartitionSidesDoNotCollectOverEachOther(t *testing.T) {
	a, b, c, d := newTestStore(t, "a", 1), newTestStore(t, "b", 1), newTestStore(t, "c", 1), newTestStore(t, "d", 1)
	all := []*Store{a, b, c, d}
	now := t0
	cut := now
	sides := [][]*Store{{a, b}, {c, d}}
	peersOf := func(side []*Store, now time.Time) []Peer {
		var ps []Peer
		for _, s := range all {
			live := slices.Contains(side, s)
			ps = append(ps, Peer{Actor: s.Self(), Live: live, LastLive: cut})
		}
		return ps
	}
	for i, side := range sides {
		for j, s := range side {
			now = now.Add(time.Millisecond)
			must(t, s.Put("ns", fmt.Sprintf("k-%d-%d", i, j), []byte(s.Self().Name), now))
			must(t, s.Put("ns", fmt.Sprintf("gone-%d-%d", i, j), []byte("x"), now))
			must(t, s.Delete("ns", fmt.Sprintf("gone-%d-%d", i, j), now))
		}
	}
	must(t, a.Put("ns", "same", []byte("older"), now.Add(time.Second)))
	must(t, c.Put("ns", "same", []byte("newer"), now.Add(2*time.Second)))
	now = now.Add(10 * time.Second)
	for range 3 {
		for _, side := range sides {
			antiEntropy(t, side, now, 1<<20)
			for _, s := range side {
				s.CollectPeers(peersOf(side, now), now, time.Minute)
			}
			now = now.Add(10 * time.Second)
		}
	}
	for _, s := range all {
		if f := s.Floor(); len(f) != 0 {
			t.Errorf("%s raised its floor to %v during the cut, over writes the other side never saw", s.Self(), f)
		}
	}
	// Heal, in the order that lost writes: a hears c, d hears a, c hears a.
	exchange(t, c, a, now, 1<<20)
	exchange(t, a, d, now, 1<<20)
	exchange(t, a, c, now, 1<<20)
	antiEntropy(t, all, now, 1<<20)
	want := map[string]string{"ns/k-0-0": "a", "ns/k-0-1": "b", "ns/k-1-0": "c", "ns/k-1-1": "d", "ns/same": "newer"}
	for _, s := range all {
		if diff := cmp.Diff(want, liveView(s)); diff != "" {
			t.Errorf("%s after the heal (-want +got):\n%s", s.Self(), diff)
		}
		if st := s.Stats(); st.Resyncs != 0 {
			t.Errorf("%s resynchronised %d times", s.Self(), st.Resyncs)
		}
	}
	// Once healed, the tombstones are collected.
	for range 3 {
		antiEntropy(t, all, now, 1<<20)
		for _, s := range all {
			s.CollectPeers(peersOf(all, now), now, time.Minute)
		}
	}
	for _, s := range all {
		if st := s.Stats(); st.Tombstones != 0 {
			t.Errorf("%s holds %d tombstones after the heal, want 0", s.Self(), st.Tombstones)
		}
	}
}

func TestCollectKeepsDepartedMemberUntilHorizon(t *testing.T) {
	a, b, c := newTestStore(t, "a", 1), newTestStore(t, "b", 1), newTestStore(t, "c", 1)
	now := t0
	antiEntropy(t, []*Store{a, b, c}, now, 1<<20) // a learns c's (empty) context
	must(t, a.Put("ns", "k", []byte("v"), now))
	must(t, a.Delete("ns", "k", now))
	ab := []*Store{a, b}
	live := []Actor{a.Self(), b.Self()}
	collectAll(t, ab, live, now.Add(time.Second), time.Minute)
	if got := a.Stats().Tombstones; got != 1 {
		t.Fatalf("tombstones = %d within the horizon of departed c, want 1", got)
	}
	collectAll(t, ab, live, now.Add(2*time.Minute), time.Minute)
	if got := a.Stats().Tombstones; got != 0 {
		t.Fatalf("tombstones = %d after c's horizon, want 0", got)
	}
}

// TestNoResurrection: a replica restored from a snapshot taken before a key
// was deleted rejoins after the tombstone was collected. Whatever it sends,
// the key stays deleted everywhere, including at a new replica it meets
// first.
func TestNoResurrection(t *testing.T) {
	a, b, c := newTestStore(t, "a", 1), newTestStore(t, "b", 1), newTestStore(t, "c", 1)
	now := t0
	must(t, a.Put("ns", "doomed", []byte("old"), now))
	must(t, a.Put("ns", "kept", []byte("ok"), now))
	oldDelta, _, _ := a.AppendDeltas(nil, 1<<20)
	antiEntropy(t, []*Store{a, b, c}, now, 1<<20)
	snap := c.AppendSnapshot(nil)

	// c goes away; a deletes; a and b collect once c is past the horizon.
	now = now.Add(time.Second)
	must(t, a.Delete("ns", "doomed", now))
	must(t, b.Put("ns", "later", []byte("new"), now))
	now = now.Add(10 * time.Minute)
	collectAll(t, []*Store{a, b}, []Actor{a.Self(), b.Self()}, now, time.Minute)
	for _, s := range []*Store{a, b} {
		if st := s.Stats(); st.Tombstones != 0 || st.Collected != 1 {
			t.Fatalf("%s: stats %+v, want the tombstone collected", s.Self(), st)
		}
	}

	// c restarts from its old snapshot with a new generation.
	c2 := newTestStore(t, "c", 2)
	must(t, c2.Restore(snap))
	if v, ok := c2.Get("ns", "doomed"); !ok || v != "old" {
		t.Fatalf("restored snapshot lacks the old key: %q %v", v, ok)
	}
	must(t, c2.Put("ns", "fresh", []byte("from c2"), now))
	d := newTestStore(t, "d", 1) // a new replica that meets c2 first

	// Everything the returning replica might send, before it hears of the
	// collection.
	exchange(t, c2, d, now, 1<<20)
	if _, ok := d.Get("ns", "doomed"); !ok {
		t.Fatal("setup: d should first hear the stale key from c2")
	}
	stale := fullState(t, c2)
	for _, s := range []*Store{a, b} {
		must(t, s.Apply(oldDelta, now))
		must(t, s.Apply(stale, now))
		exchange(t, c2, s, now, 1<<20)
	}
	all := []*Store{a, b, c2, d}
	antiEntropy(t, all, now, 1<<20)
	requireConverged(t, all, nil, time.Minute, now)
	for _, s := range all {
		if v, ok := s.Get("ns", "doomed"); ok {
			t.Errorf("%s: deleted key came back with %q", s.Self(), v)
		}
		for k, want := range map[string]string{"kept": "ok", "later": "new", "fresh": "from c2"} {
			if v, ok := s.Get("ns", k); !ok || v != want {
				t.Errorf("%s: %s = %q, %v; want %q", s.Self(), k, v, ok, want)
			}
		}
	}
	if c2.Stats().Resyncs == 0 || d.Stats().Resyncs == 0 {
		t.Errorf("resyncs: c2 %d, d %d; want both > 0", c2.Stats().Resyncs, d.Stats().Resyncs)
	}
	// Late copies of the old write stay out.
	for _, s := range all {
		must(t, s.Apply(oldDelta, now))
		if _, ok := s.Get("ns", "doomed"); ok {
			t.Errorf("%s: replayed delta resurrected the key", s.Self())
		}
	}
}

func must(t tb, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestLateConcurrentWrite: a put concurrent with a delete, and losing to
// it, is still in flight when every member's context covers the
// tombstone. Collecting then would let the put in afterwards; the second
// stability phase waits until every member has seen the put.
func TestLateConcurrentWrite(t *testing.T) {
	a, b, c := newTestStore(t, "a", 1), newTestStore(t, "b", 1), newTestStore(t, "c", 1)
	now := t0
	must(t, a.Put("ns", "k", []byte("base"), now))
	antiEntropy(t, []*Store{a, b, c}, now, 1<<20)

	must(t, a.Put("ns", "k", []byte("late"), now.Add(time.Millisecond)))
	put, _, _ := a.AppendDeltas(nil, 1<<20)
	must(t, c.Delete("ns", "k", now.Add(2*time.Millisecond))) // concurrent, and wins
	del, _, _ := c.AppendDeltas(nil, 1<<20)
	must(t, a.Apply(del, now))
	must(t, b.Apply(del, now))
	// a's put reaches nobody yet. Contexts travel without entries.
	live := []Actor{a.Self(), b.Self(), c.Self()}
	gossip := func() {
		for _, x := range []*Store{a, b, c} {
			for _, y := range []*Store{a, b, c} {
				if x != y {
					must(t, x.ObserveDigest(digestOf(t, y), now))
				}
			}
		}
	}
	for range 3 {
		gossip()
		if n := c.Collect(live, now, time.Minute); n != 0 {
			t.Fatalf("collected %d tombstones while a concurrent write is in flight", n)
		}
	}
	must(t, c.Apply(put, now))
	must(t, b.Apply(put, now))
	if v, ok := c.Get("ns", "k"); ok {
		t.Fatalf("late concurrent put resurrected k = %q", v)
	}
	// Once everyone has seen the put, the tombstone goes.
	gossip()
	if n := c.Collect(live, now, time.Minute); n != 1 {
		t.Fatalf("collected %d tombstones once stable, want 1", n)
	}
	must(t, c.Apply(put, now))
	if _, ok := c.Get("ns", "k"); ok {
		t.Fatal("replayed put resurrected k after collection")
	}
}

package store

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/google/go-cmp/cmp"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func newTestStore(t tb, name string, gen uint64) *Store {
	t.Helper()
	s, err := New(Config{Actor: Actor{Name: name, Gen: gen}})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// ctxView is one actor's column of a context, by identity.
type ctxView struct {
	Max   uint64
	Cloud []Run
}

// view is everything a replica answers, by actor identity, so replicas
// with different local actor indices compare equal.
type view struct {
	Entries map[string]string
	Ctx     map[Actor]ctxView
	Floor   map[Actor]uint64
}

func viewOf(s *Store) view {
	v := view{Entries: map[string]string{}, Ctx: map[Actor]ctxView{}, Floor: s.Floor()}
	for i := range s.t.entries {
		e := &s.t.entries[i]
		val := "=" + e.value()
		if e.tomb() {
			val = "deleted"
		}
		v.Entries[s.nsNames[e.ns]+"/"+e.key()] = fmt.Sprintf("%s @%d by %s#%d", val, e.stamp, s.actors[e.actor], e.seq)
	}
	for a := range s.ctx {
		if c := s.ctx[a]; c.max > 0 || len(c.cloud) > 0 {
			v.Ctx[s.actors[a]] = ctxView{Max: c.max, Cloud: slices.Clip(append([]Run(nil), c.cloud...))}
		}
	}
	return v
}

// liveView is what clients see: live keys only.
func liveView(s *Store) map[string]string {
	out := map[string]string{}
	for _, ns := range s.Namespaces() {
		for _, kv := range s.List(ns, "") {
			out[ns+"/"+kv.Key] = kv.Value
		}
	}
	return out
}

func digestOf(t tb, s *Store) *Digest {
	t.Helper()
	var d Digest
	if err := DecodeDigest(s.AppendDigest(nil), &d); err != nil {
		t.Fatalf("decode own digest: %v", err)
	}
	return &d
}

// fullState returns a page holding all of s (what a peer with an empty
// context would get).
func fullState(t tb, s *Store) []byte {
	t.Helper()
	empty := &Digest{Actors: []Actor{{Name: "nobody", Gen: 0}}}
	page, more := s.AppendMissing(nil, empty, math.MaxInt)
	if more {
		t.Fatal("unbounded page cut short")
	}
	return page
}

// clone copies a store through a snapshot.
func clone(t tb, s *Store) *Store {
	t.Helper()
	c, err := New(s.cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Restore(s.AppendSnapshot(nil)); err != nil {
		t.Fatalf("restore: %v", err)
	}
	return c
}

// exchange runs one anti-entropy exchange from a to b: b sends its digest,
// a answers with pages until b lacks nothing a can give, or a page makes no
// progress (b holds its writes back for clock skew).
func exchange(t tb, a, b *Store, now time.Time, budget int) {
	t.Helper()
	var last []byte
	for range 10000 {
		raw := b.AppendDigest(nil)
		if bytes.Equal(raw, last) {
			return
		}
		last = raw
		d := digestOf(t, b)
		if err := a.ObserveDigest(d, now); err != nil {
			t.Fatalf("observe digest: %v", err)
		}
		page, more := a.AppendMissing(nil, d, budget)
		if err := b.Apply(page, now); err != nil {
			t.Fatalf("apply page: %v", err)
		}
		if !more {
			return
		}
	}
	t.Fatal("exchange did not finish")
}

// antiEntropy runs exchanges between every ordered pair until a full pass
// changes nothing, and returns the number of passes.
func antiEntropy(t tb, ss []*Store, now time.Time, budget int) int {
	t.Helper()
	for pass := 1; pass <= 50; pass++ {
		before := make([]view, len(ss))
		for i, s := range ss {
			before[i] = viewOf(s)
		}
		for i, a := range ss {
			for j, b := range ss {
				if i != j {
					exchange(t, a, b, now, budget)
				}
			}
		}
		quiet := true
		for i, s := range ss {
			if cmp.Diff(before[i], viewOf(s)) != "" {
				quiet = false
			}
		}
		if quiet {
			return pass
		}
	}
	t.Fatal("anti-entropy did not quiesce in 50 passes")
	return 0
}

// requireConverged fails unless every store has the same context, floor,
// entries and counter totals.
func requireConverged(t tb, ss []*Store, limiters []string, window time.Duration, now time.Time) {
	t.Helper()
	want := viewOf(ss[0])
	for i, s := range ss[1:] {
		if d := cmp.Diff(want, viewOf(s)); d != "" {
			t.Fatalf("replica %d differs from replica 0 (-0 +%d):\n%s", i+1, i+1, d)
		}
	}
	for _, l := range limiters {
		c := ss[0].Count(l, window, now)
		for i, s := range ss[1:] {
			if got := s.Count(l, window, now); got != c {
				t.Fatalf("limiter %q: replica %d counts %d, replica 0 counts %d", l, i+1, got, c)
			}
		}
	}
}

// net is a lossy, duplicating, reordering network of eager deltas.
type net struct {
	rng      *rand.Rand
	inflight []msg
}

type msg struct {
	to int
	b  []byte
}

func (n *net) send(to int, b []byte) {
	switch r := n.rng.IntN(10); {
	case r == 0: // lost
	case r == 1: // duplicated
		n.inflight = append(n.inflight, msg{to, b}, msg{to, b})
	default:
		n.inflight = append(n.inflight, msg{to, b})
	}
}

// deliver hands some in-flight messages over, in random order; now gives
// each receiver's local time.
func (n *net) deliver(t tb, ss []*Store, now func(int) time.Time, all bool) {
	t.Helper()
	n.rng.Shuffle(len(n.inflight), func(i, j int) { n.inflight[i], n.inflight[j] = n.inflight[j], n.inflight[i] })
	k := len(n.inflight)
	if !all {
		k = n.rng.IntN(k + 1)
	}
	for _, m := range n.inflight[:k] {
		if err := ss[m.to].Apply(m.b, now(m.to)); err != nil {
			t.Fatalf("apply delta: %v", err)
		}
	}
	n.inflight = slices.Delete(n.inflight, 0, k)
}

// tb is what the helpers need of *testing.T and *rapid.T.
type tb interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
}

package store

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// write is one write made anywhere, for the reference answer: each key
// ends with the greatest (stamp, actor) of all its writes.
type write struct {
	stamp uint64
	actor Actor
	value string
	tomb  bool
}

func (w write) beats(o write) bool {
	if w.stamp != o.stamp {
		return w.stamp > o.stamp
	}
	if c := strings.Compare(w.actor.Name, o.actor.Name); c != 0 {
		return c > 0
	}
	return w.actor.Gen > o.actor.Gen
}

// history drives random puts, deletes and takes at n replicas over a lossy
// network, with garbage collection along the way, and keeps the reference.
type history struct {
	t        *testing.T
	rng      *rand.Rand
	ss       []*Store
	net      net
	now      time.Time
	want     map[string]write
	admitted map[string]uint64
	gc       bool
	held     uint64
	skew     []time.Duration // each replica's clock error
	up       []bool
	horizon  time.Duration
}

// nowOf is replica i's local time.
func (h *history) nowOf(i int) time.Time { return h.now.Add(h.skew[i]) }

const histWindow = time.Hour

func newHistory(t *testing.T, seed uint64, n int, gc bool) *history {
	h := &history{t: t, rng: rand.New(rand.NewPCG(seed, 1)), now: t0,
		want: map[string]write{}, admitted: map[string]uint64{}, gc: gc}
	h.net.rng = h.rng
	h.horizon = time.Minute
	for i := range n {
		h.ss = append(h.ss, newTestStore(t, fmt.Sprintf("n%d", i), 1))
		h.up = append(h.up, true)
		// Clocks up to 1.5s apart either way, so some writes are more than
		// MaxSkew ahead of their receivers and are held back.
		h.skew = append(h.skew, time.Duration(h.rng.IntN(3001)-1500)*time.Millisecond)
	}
	return h
}

// live returns the replicas that are up.
func (h *history) live() []*Store {
	var ss []*Store
	for i, s := range h.ss {
		if h.up[i] {
			ss = append(ss, s)
		}
	}
	return ss
}

func (h *history) step() {
	i := h.rng.IntN(len(h.ss))
	if !h.up[i] {
		return
	}
	s := h.ss[i]
	h.now = h.now.Add(time.Duration(h.rng.IntN(20)) * time.Millisecond)
	now := h.nowOf(i)
	ns := []string{"workers", "config"}[h.rng.IntN(2)]
	key := fmt.Sprintf("k%d", h.rng.IntN(12))
	switch r := h.rng.IntN(10); {
	case r < 5:
		v := fmt.Sprintf("v%d", h.rng.IntN(1000))
		if err := s.Put(ns, key, []byte(v), now); err != nil {
			h.t.Fatal(err)
		}
		h.record(s, ns, key)
	case r < 8:
		if err := s.Delete(ns, key, now); err != nil {
			h.t.Fatal(err)
		}
		h.record(s, ns, key)
	default:
		name := []string{"rpm", "tpm"}[h.rng.IntN(2)]
		n := uint64(h.rng.IntN(3) + 1)
		if ok, _, _ := s.Take(name, n, 60, histWindow, now); ok {
			h.admitted[name] += n
		}
	}
	if b, ok, _ := s.AppendDeltas(nil, 1<<20); ok {
		for j := range h.ss {
			if j != i && h.up[j] {
				h.net.send(j, b)
			}
		}
	}
	switch h.rng.IntN(20) {
	case 0:
		h.net.deliver(h.t, h.ss, h.nowOf, false)
	case 1:
		a, b := h.rng.IntN(len(h.ss)), h.rng.IntN(len(h.ss))
		if a != b && h.up[a] && h.up[b] {
			exchange(h.t, h.ss[a], h.ss[b], h.nowOf(b), 1+h.rng.IntN(400))
		}
	case 2:
		if h.gc {
			s.Collect(h.actors(), now, h.horizon)
		}
	case 3:
		for j, s := range h.ss {
			if h.up[j] {
				s.Tick(h.nowOf(j))
			}
		}
	}
}

// actors returns the live replicas' actors.
func (h *history) actors() []Actor {
	var as []Actor
	for _, s := range h.live() {
		as = append(as, s.Self())
	}
	return as
}

// settle delivers what is in flight, lets every clock pass every held
// stamp, and runs anti-entropy among the live replicas until quiet.
func (h *history) settle() {
	h.t.Helper()
	h.net.deliver(h.t, h.ss, h.nowOf, true)
	h.now = h.now.Add(5 * time.Second)
	for i, s := range h.ss {
		s.Tick(h.nowOf(i))
	}
	antiEntropy(h.t, h.live(), h.now, 1+h.rng.IntN(2000))
}

func (h *history) record(s *Store, ns, key string) {
	idx, _ := s.t.lookup(s.nsIdx[ns], key)
	e := &s.t.entries[idx]
	w := write{stamp: e.stamp, actor: s.Self(), value: e.value(), tomb: e.tomb()}
	if old, ok := h.want[ns+"/"+key]; !ok || w.beats(old) {
		h.want[ns+"/"+key] = w
	}
}

// check asserts convergence and the reference answers.
func (h *history) check() {
	h.t.Helper()
	requireConverged(h.t, h.ss, []string{"rpm", "tpm"}, histWindow, h.now)
	held := uint64(0)
	for _, s := range h.ss {
		held += s.Stats().Held
	}
	h.held += held
	want := map[string]string{}
	for k, w := range h.want {
		if !w.tomb {
			want[k] = w.value
		}
	}
	for i, s := range h.ss {
		if d := cmp.Diff(want, liveView(s)); d != "" {
			h.t.Fatalf("replica %d answers differ from the reference (-want +got):\n%s", i, d)
		}
	}
	for name, n := range h.admitted {
		if got := h.ss[0].Count(name, histWindow, h.now); got != n {
			h.t.Fatalf("limiter %q counts %d, admitted %d", name, got, n)
		}
	}
}

func TestConvergence(t *testing.T) {
	var held uint64
	defer func() {
		if !t.Failed() && held == 0 {
			t.Error("no write was ever held back for clock skew: the skew path went untested")
		}
	}()
	for _, gc := range []bool{false, true} {
		for seed := range uint64(12) {
			n := 3 + int(seed%5)
			t.Run(fmt.Sprintf("gc=%v/seed=%d/n=%d", gc, seed, n), func(t *testing.T) {
				h := newHistory(t, seed, n, gc)
				for range 400 {
					h.step()
				}
				h.settle()
				h.check()
				held += h.held
				if !gc {
					return
				}
				tombs := h.ss[0].Stats().Tombstones
				if tombs == 0 {
					t.Fatal("history left no tombstones to collect")
				}
				// Two stability rounds collect every tombstone; the floor
				// then spreads with anti-entropy.
				for range 2 {
					for i, s := range h.ss {
						s.Collect(h.actors(), h.nowOf(i), time.Minute)
					}
					antiEntropy(t, h.ss, h.now, 1<<20)
				}
				h.check()
				for i, s := range h.ss {
					if st := s.Stats(); st.Tombstones != 0 {
						t.Errorf("replica %d keeps %d tombstones after two stable rounds", i, st.Tombstones)
					}
				}
			})
		}
	}
}

// TestRejoinAfterHorizon: a replica goes down (its last snapshot holds only
// writes everyone has), the others go on writing, deleting and collecting
// past the horizon, and it comes back from that snapshot with a new
// generation. Nothing deleted comes back and everything converges.
func TestRejoinAfterHorizon(t *testing.T) {
	for seed := range uint64(8) {
		n := 3 + int(seed%4)
		t.Run(fmt.Sprintf("seed=%d/n=%d", seed, n), func(t *testing.T) {
			h := newHistory(t, 100+seed, n, true)
			h.horizon = time.Second
			for range 150 {
				h.step()
			}
			h.settle()
			down := n - 1
			snap := h.ss[down].AppendSnapshot(nil)
			h.up[down] = false
			for range 600 {
				h.step()
			}
			h.settle()
			collected := uint64(0)
			for range 2 {
				for i, s := range h.live() {
					s.Collect(h.actors(), h.nowOf(i), h.horizon)
				}
				antiEntropy(t, h.live(), h.now, 1<<20)
			}
			for _, s := range h.live() {
				collected += s.Stats().Collected
			}
			if collected == 0 {
				t.Fatal("nothing was collected while the replica was away")
			}
			back := newTestStore(t, h.ss[down].Self().Name, 2)
			must(t, back.Restore(snap))
			h.ss[down], h.up[down] = back, true
			h.settle()
			h.check()
			for range 100 {
				h.step()
			}
			h.settle()
			h.check()
		})
	}
}

package store

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"pgregory.net/rapid"
)

// genReplicas draws three replicas with a random shared history: local
// writes interleaved with partial anti-entropy. It also returns every eager
// delta the replicas emitted.
func genReplicas(t *rapid.T) ([]*Store, [][]byte) {
	ss := []*Store{newTestStore(t, "a", 1), newTestStore(t, "b", 1), newTestStore(t, "c", 2)}
	var deltas [][]byte
	now := t0
	steps := rapid.IntRange(0, 40).Draw(t, "steps")
	for range steps {
		i := rapid.IntRange(0, 2).Draw(t, "replica")
		s := ss[i]
		now = now.Add(time.Duration(rapid.IntRange(0, 3).Draw(t, "ms")) * time.Millisecond)
		key := fmt.Sprintf("k%d", rapid.IntRange(0, 5).Draw(t, "key"))
		switch rapid.IntRange(0, 4).Draw(t, "op") {
		case 4:
			// Occasionally everyone syncs and collects: floors appear, and
			// later writes and partial syncs build on them.
			if rapid.IntRange(0, 3).Draw(t, "gc") == 0 {
				antiEntropy(t, ss, now, 1<<20)
				live := []Actor{ss[0].Self(), ss[1].Self(), ss[2].Self()}
				for range 2 {
					for _, x := range ss {
						x.Collect(live, now, time.Minute)
					}
					antiEntropy(t, ss, now, 1<<20)
				}
			}
		case 0, 1:
			must(t, s.Put("ns", key, []byte(rapid.StringN(0, 4, 4).Draw(t, "value")), now))
		case 2:
			must(t, s.Delete("ns", key, now))
		case 3:
			j := rapid.IntRange(0, 2).Draw(t, "peer")
			if j != i {
				exchange(t, s, ss[j], now, rapid.IntRange(1, 200).Draw(t, "budget"))
			}
		}
		for {
			b, ok, more := s.AppendDeltas(nil, rapid.IntRange(1, 300).Draw(t, "deltaBudget"))
			if ok {
				deltas = append(deltas, b)
			}
			if !more {
				break
			}
		}
	}
	return ss, deltas
}

func merge(t tb, a, b *Store) *Store {
	m := clone(t, a)
	must(t, m.Apply(fullState(t, b), t0))
	return m
}

func sameState(t tb, what string, x, y *Store) {
	t.Helper()
	if d := cmp.Diff(viewOf(x), viewOf(y)); d != "" {
		t.Fatalf("%s (-left +right):\n%s", what, d)
	}
}

func TestMergeLaws(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		ss, _ := genReplicas(t)
		a, b, c := ss[0], ss[1], ss[2]
		sameState(t, "merge is not commutative", merge(t, a, b), merge(t, b, a))
		sameState(t, "merge is not associative", merge(t, merge(t, a, b), c), merge(t, a, merge(t, b, c)))
		sameState(t, "merge is not idempotent", merge(t, a, a), a)
		sameState(t, "merging twice differs from merging once", merge(t, merge(t, a, b), b), merge(t, a, b))
	})
}

// TestDeltasEqualFullStates: applying every delta, in any order and with
// duplicates, gives the state of merging the replicas' full states.
func TestDeltasEqualFullStates(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		ss, deltas := genReplicas(t)
		dup := rapid.SliceOfN(rapid.IntRange(0, max(len(deltas)-1, 0)), 0, len(deltas)).Draw(t, "dups")
		for _, i := range dup {
			if i < len(deltas) {
				deltas = append(deltas, deltas[i])
			}
		}
		deltas = rapid.Permutation(deltas).Draw(t, "order")
		x, y := newTestStore(t, "x", 1), newTestStore(t, "x", 1)
		for _, d := range deltas {
			must(t, x.Apply(d, t0))
		}
		gc := false
		for _, s := range ss {
			must(t, y.Apply(fullState(t, s), t0))
			gc = gc || len(s.Floor()) > 0
		}
		if !gc {
			sameState(t, "deltas and full states disagree", x, y)
			return
		}
		// Eager deltas carry no floor, so x keeps tombstones y never got:
		// collection saves space and changes no answer.
		if d := cmp.Diff(liveView(x), liveView(y)); d != "" {
			t.Fatalf("deltas and full states answer differently (-deltas +full):\n%s", d)
		}
		if d := cmp.Diff(viewOf(x).Ctx, viewOf(y).Ctx); d != "" {
			t.Fatalf("deltas and full states have different contexts (-deltas +full):\n%s", d)
		}
	})
}

package radix

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// antiEntropy exchanges digests between every pair of replicas and ships
// the differing workers' holdings both ways, encoded, until all digests
// agree. It returns the number of rounds it took.
func antiEntropy(t *testing.T, reps []*Index, maxRounds int) int {
	t.Helper()
	for round := 1; round <= maxRounds; round++ {
		quiet := true
		for i := range reps {
			for j := range reps {
				if i == j {
					continue
				}
				// j asks i for what differs; i answers (a pull by j).
				di, dj := reps[i].Digest(), reps[j].Digest()
				for _, w := range Difference(di, dj) {
					quiet = false
					for from := 0; from >= 0; {
						var b Batch
						from = reps[i].Holdings(&b, w, from, 80)
						deliver(t, reps[j], &b)
					}
				}
			}
		}
		if quiet {
			return round
		}
	}
	t.Fatalf("replicas still differ after %d anti-entropy rounds", maxRounds)
	return 0
}

// deliver encodes b, decodes it and applies it at r, as the network would.
func deliver(t *testing.T, r *Index, b *Batch) {
	t.Helper()
	buf, err := AppendBatch(nil, b)
	if err != nil {
		t.Fatal(err)
	}
	var got Batch
	if err := DecodeBatch(&got, buf, DefaultLimits()); err != nil {
		t.Fatal(err)
	}
	if err := r.ApplyBatch(&got); err != nil {
		t.Fatal(err)
	}
}

// TestConvergence runs random operations at 3-5 replicas whose deltas are
// lost, duplicated and reordered, then anti-entropy until quiet, and checks
// that every replica has the same digest and answers every prompt alike.
func TestConvergence(t *testing.T) {
	repaired := 0 // runs where deltas alone left replicas apart
	defer func() {
		if !t.Failed() && repaired == 0 {
			t.Error("no run needed anti-entropy: loss is not exercised")
		}
	}()
	for _, lim := range []struct{ budget, capPages int64 }{{0, 0}, {6, 0}, {0, 20}} {
		budget := lim.budget
		evicted := int64(0)
		for seed := range uint64(12) {
			t.Run(fmt.Sprintf("budget=%d/cap=%d/seed=%d", budget, lim.capPages, seed), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(seed, 7))
				nrep := 3 + rng.IntN(3)
				cfg := Config{WorkerPages: budget, MaxHolderPages: lim.capPages, Models: map[string]ModelConfig{"model": {PageTokens: 4}}}
				reps := make([]*Index, nrep)
				for i := range reps {
					reps[i] = New(cfg)
				}
				u := newUniverse(rng, 30, 4)
				workers := []string{"a", "b", "c", "d", "e"}
				epoch := map[string]uint64{}
				type msg struct {
					to  int
					buf []byte
				}
				var inflight []msg
				send := func(from int, d Delta) {
					var b Batch
					b.Add(d)
					buf, err := AppendBatch(nil, &b)
					if err != nil {
						t.Fatal(err)
					}
					for to := range reps {
						if to == from || rng.IntN(5) == 0 { // 20% loss
							continue
						}
						inflight = append(inflight, msg{to, buf})
						if rng.IntN(10) == 0 { // 10% duplication
							inflight = append(inflight, msg{to, buf})
						}
					}
				}
				deliverOne := func() {
					k := rng.IntN(len(inflight)) // random order
					m := inflight[k]
					inflight[k] = inflight[len(inflight)-1]
					inflight = inflight[:len(inflight)-1]
					var b Batch
					if err := DecodeBatch(&b, m.buf, DefaultLimits()); err != nil {
						t.Fatal(err)
					}
					if err := reps[m.to].ApplyBatch(&b); err != nil {
						t.Fatal(err)
					}
				}
				for step := range 300 {
					r := rng.IntN(nrep)
					w := workers[rng.IntN(len(workers))]
					stamp := uint32(step + rng.IntN(5))
					p := u.prompts[rng.IntN(len(u.prompts))]
					var d Delta
					var err error
					switch k := rng.IntN(20); {
					case k < 14:
						d, err = reps[r].Insert(w, epoch[w], stamp, p)
					case k < 19:
						d, err = reps[r].Touch(w, epoch[w], stamp, p[rng.IntN(len(p))])
					default:
						d, err = reps[r].RemoveWorker(w, epoch[w])
						epoch[w]++
					}
					if err != nil {
						t.Fatal(err)
					}
					send(r, d)
					for len(inflight) > 0 && rng.IntN(3) > 0 {
						deliverOne()
					}
				}
				for len(inflight) > 0 {
					deliverOne()
				}
				if antiEntropy(t, reps, 20) > 1 {
					repaired++
				}
				want := reps[0].Digest()
				for i, r := range reps[1:] {
					if diff := cmp.Diff(want, r.Digest()); diff != "" {
						t.Fatalf("replica %d digest (-r0 +r%d):\n%s", i+1, i+1, diff)
					}
					if err := checkInvariants(r.x); err != nil {
						t.Fatal(err)
					}
				}
				for _, q := range u.prompts {
					want := matchSorted(reps[0], q)
					for i, r := range reps[1:] {
						if diff := cmp.Diff(want, matchSorted(r, q)); diff != "" {
							t.Fatalf("replica %d Match (-r0 +r%d):\n%s", i+1, i+1, diff)
						}
					}
				}
				if budget > 0 {
					for _, s := range want {
						if s.Pages > budget {
							t.Errorf("worker %s holds %d pages, budget %d", s.Worker, s.Pages, budget)
						}
					}
				}
				if st := reps[0].Stats(); lim.capPages > 0 && st.HolderPages > lim.capPages {
					t.Errorf("index holds %d holder-pages, cap %d", st.HolderPages, lim.capPages)
				}
				for _, r := range reps {
					evicted += r.Stats().Evicted
				}
			})
		}
		if (budget > 0 || lim.capPages > 0) && evicted == 0 && !t.Failed() {
			t.Errorf("budget %d cap %d: nothing was evicted, the runs do not exercise eviction", budget, lim.capPages)
		}
	}
}

// TestOrderInsensitive applies one set of deltas in different orders, with
// duplicates, and with no anti-entropy: without budget pressure any order
// must give the same index; with small budgets, so must any order of
// root-anchored inserts (eviction is a function of the merged state).
func TestOrderInsensitive(t *testing.T) {
	tests := []struct {
		name     string
		budget   int64
		capPages int64
		rooted   bool
	}{
		{"no budget, anchored deltas", 0, 0, false},
		{"small budgets, rooted inserts", 5, 0, true},
		{"small budgets and cap, rooted inserts", 7, 18, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(3, 4))
			u := newUniverse(rng, 40, 4)
			src := New(Config{})
			var deltas []Delta
			workers := []string{"a", "b", "c", "d"}
			for step := range 200 {
				w := workers[rng.IntN(len(workers))]
				p := u.prompts[rng.IntN(len(u.prompts))]
				stamp := uint32(rng.IntN(1000))
				var d Delta
				switch {
				case tc.rooted:
					d = Delta{Op: OpInsert, Worker: w, Stamp: stamp, Pages: p}
				case rng.IntN(4) == 0:
					d = Delta{Op: OpTouch, Worker: w, Stamp: stamp, Anchor: p[rng.IntN(len(p))]}
				default:
					var err error
					if d, err = src.Insert(w, 0, stamp, p); err != nil {
						t.Fatal(err)
					}
				}
				if err := src.Apply(d); err != nil {
					t.Fatalf("step %d: %v", step, err)
				}
				deltas = append(deltas, d)
			}
			var first *Index
			for perm := range 6 {
				cfg := Config{WorkerPages: tc.budget, MaxHolderPages: tc.capPages}
				r := New(cfg)
				order := rng.Perm(len(deltas))
				for _, k := range order {
					if err := r.Apply(deltas[k]); err != nil {
						t.Fatal(err)
					}
					if rng.IntN(5) == 0 {
						_ = r.Apply(deltas[order[rng.IntN(len(order))]]) // a duplicate
					}
				}
				if err := checkInvariants(r.x); err != nil {
					t.Fatal(err)
				}
				if r.x.pend.n != 0 {
					t.Fatalf("permutation %d: %d deltas still pending", perm, r.x.pend.n)
				}
				if first == nil {
					first = r
					continue
				}
				if diff := cmp.Diff(first.Digest(), r.Digest()); diff != "" {
					t.Fatalf("permutation %d digest (-first +got):\n%s", perm, diff)
				}
				for _, q := range u.prompts {
					if diff := cmp.Diff(matchSorted(first, q), matchSorted(r, q)); diff != "" {
						t.Fatalf("permutation %d Match (-first +got):\n%s", perm, diff)
					}
				}
			}
			if st := first.Stats(); tc.budget > 0 && st.Evicted == 0 {
				t.Errorf("budget %d evicted nothing: the test does not exercise eviction", tc.budget)
			}
		})
	}
}

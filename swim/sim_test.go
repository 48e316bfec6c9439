package swim_test

import (
	"flag"
	"slices"
	"testing"
	"time"

	"github.com/meshnode/meshnode/internal/simnet/swimsim"
	"github.com/meshnode/meshnode/swim"
)

// The simulation properties of issue 3. Each runs over several fixed seeds
// in virtual time. The default run uses reduced sizes (N of 30 to 200,
// minutes instead of an hour) with the same assertions; -swim.full runs the
// sizes of the issue (N=100 and 1000, one simulated hour), and bench/ has
// them as benchmarks reporting the figures. Both run the scenarios of
// internal/simnet/swimsim.

var full = flag.Bool("swim.full", false, "run the simulation properties at full size (N=100, 1000, one simulated hour)")

// size returns small in the default run and big with -swim.full.
func size[T any](small, big T) T {
	if *full {
		return big
	}
	return small
}

var seeds = []uint64{1, 2, 3}

// sweep runs the bad-node property over seeds 1 to N instead (its failures
// are rare runs: bench/RESULTS.md gives the sweep's figures).
var sweep = flag.Int("swim.sweep", 0, "run TestPropBadNode over seeds 1..N")

// booted returns a scenario of n LAN nodes bootstrapped within 20 s.
func booted(t testing.TB, seed uint64, n int, edit ...func(*swim.Config)) *swimsim.Scenario {
	t.Helper()
	s := swimsim.NewScenario(t, seed, n, swimsim.LAN, edit...)
	s.Boot(t, 20*time.Second)
	return s
}

// Property 1: N nodes bootstrap through 3 seeds: all see all alive within
// 20 s simulated.
func TestPropBootstrap(t *testing.T) {
	n := size(40, 100)
	for _, seed := range seeds {
		s := swimsim.NewScenario(t, seed, n, swimsim.LAN)
		d := s.Boot(t, 20*time.Second)
		t.Logf("seed %d: %d nodes converged in %v", seed, n, d)
		if s.Oversize != 0 {
			t.Errorf("seed %d: %d packets over the budget", seed, s.Oversize)
		}
	}
}

// Property 2: one member crashes: every survivor marks it dead; the median
// time to the first suspicion is at most 2.5 s and the median time until it
// is dead at every survivor at most 12 s (over 3 crashes per seed).
func TestPropCrashDetection(t *testing.T) {
	n := size(40, 100)
	var firstSuspect, allDead []time.Duration
	for _, seed := range seeds {
		s := booted(t, seed, n)
		s.Settle()
		var victims []int
		for k := range 3 {
			victims = append(victims, 3+(int(seed)*7+k*11)%(n-3))
		}
		for _, d := range s.Crashes(victims, 20*time.Second).Detections {
			name := s.Nodes[d.Victim].Name
			if !d.Suspected {
				t.Fatalf("seed %d: crash of %s never suspected", seed, name)
			}
			if len(d.Missing) > 0 {
				t.Fatalf("seed %d: survivor %d never marked %s dead", seed, d.Missing[0], name)
			}
			firstSuspect = append(firstSuspect, d.ToSuspect)
			allDead = append(allDead, d.ToDeadEverywhere)
		}
	}
	t.Logf("first suspicion: median %v, all: %v", swimsim.Median(firstSuspect), firstSuspect)
	t.Logf("dead at every survivor: median %v, max %v, all: %v", swimsim.Median(allDead), slices.Max(allDead), allDead)
	if m := swimsim.Median(firstSuspect); m > 2500*time.Millisecond {
		t.Errorf("median time to first suspicion %v, want <= 2.5s", m)
	}
	if m := swimsim.Median(allDead); m > 12*time.Second {
		t.Errorf("median time to dead at every survivor %v, want <= 12s", m)
	}
}

// Property 3: 10% uniform loss on every link: no healthy node is declared
// dead anywhere, and false suspicions stay at or below 5 per node-hour.
func TestPropUniformLoss(t *testing.T) {
	n := size(30, 100)
	d := size(10*time.Minute, time.Hour)
	for _, seed := range seeds {
		s := booted(t, seed, n)
		res := s.UniformLoss(0.10, d)
		t.Logf("seed %d: %d false suspicions (%.2f per node-hour), %d TCP-only probes, %d refutations", seed, res.Suspicions, res.PerNodeHour, res.Stats.TCPOnlyProbes, res.Stats.Refutations)
		if len(res.Deaths) > 0 {
			t.Errorf("seed %d: %d death events of healthy nodes, first %+v", seed, len(res.Deaths), res.Deaths[0])
		}
		if res.PerNodeHour > 5 {
			t.Errorf("seed %d: %.2f false suspicions per node-hour, want <= 5", seed, res.PerNodeHour)
		}
	}
}

// Property 4: a node paused 5 s draws no death verdict at all; paused 30 s
// it is declared dead at most once (per observer), is alive everywhere
// within 3 s of resuming, and issues no death verdict itself after resuming.
func TestPropPause(t *testing.T) {
	n := size(40, 100)
	for _, seed := range seeds {
		s := booted(t, seed, n)
		s.Settle()
		victim := 3 + int(seed)%(n-3)
		name := s.Nodes[victim].Name

		short := s.Pause(victim, 5*time.Second, 0, 60*time.Second)
		if len(short.Deaths) > 0 {
			t.Errorf("seed %d: pause of 5s: %d death events, first %+v", seed, len(short.Deaths), short.Deaths[0])
		}

		long := s.Pause(victim, 30*time.Second, 3*time.Second, 60*time.Second)
		if !long.BackInTime {
			t.Errorf("seed %d: %s not alive everywhere 3s after resuming", seed, name)
		}
		perObs := long.Deaths.About(name).PerObserver()
		for obs, k := range perObs {
			if k > 1 {
				t.Errorf("seed %d: observer %d saw %s die %d times", seed, obs, name, k)
			}
		}
		if long.VerdictsAfterResume != 0 {
			t.Errorf("seed %d: %s issued %d death verdicts after resuming", seed, name, long.VerdictsAfterResume)
		}
		if dead := long.DeathsAfterResume; len(dead) > 0 {
			t.Errorf("seed %d: %d death events after resuming, first %+v", seed, len(dead), dead[0])
		}
		t.Logf("seed %d: paused 30s: dead at %d observers, alive everywhere %v after resuming", seed, len(perObs), long.Back)
	}
}

// Property 5: 5% of the nodes slowed (every packet they send or receive is
// delayed 200-500 ms): no node is declared dead. The same runs with the
// local health multiplier disabled show the false suspicions it prevents.
// With the default adaptive timeouts the RTT estimates absorb the delay and
// neither run raises any. With fixed timeouts (no RTT adaptation, not a
// shipped configuration) the multiplier lowers the count; there, slowed
// nodes that are suspected more than three times a minute stop defending
// themselves and are removed, which is logged, not asserted.
func TestPropSlowNodes(t *testing.T) {
	n := size(40, 100)
	d := size(5*time.Minute, 30*time.Minute)
	for _, adaptive := range []bool{true, false} {
		var with, without uint64
		for _, seed := range seeds {
			for _, lhm := range []bool{true, false} {
				s := booted(t, seed, n, swimsim.SlowConfig(lhm, adaptive))
				res := s.SlowNodes(d)
				t.Logf("adaptive=%v seed %d lhm=%v: %d false suspicions, %d death events", adaptive, seed, lhm, res.Suspicions, len(res.Deaths))
				if lhm {
					with += res.Suspicions
					if adaptive && len(res.Deaths) > 0 {
						t.Errorf("adaptive=%v seed %d: %d death events, first %+v", adaptive, seed, len(res.Deaths), res.Deaths[0])
					}
				} else {
					without += res.Suspicions
				}
			}
		}
		t.Logf("adaptive=%v: false suspicions over %d seeds: %d with the health multiplier, %d without", adaptive, len(seeds), with, without)
		if with > without {
			t.Errorf("adaptive=%v: the health multiplier raised false suspicions: %d with, %d without", adaptive, with, without)
		}
	}
}

// Property 6: a 50/50 partition for 5 minutes, then healed: full
// membership everywhere within 60 s after healing.
func TestPropPartitionHeal(t *testing.T) {
	n := size(30, 100)
	for _, seed := range seeds {
		s := booted(t, seed, n)
		res := s.PartitionHeal(5*time.Minute, 60*time.Second)
		if !res.Detected {
			t.Fatalf("seed %d: partition not detected in 5 minutes", seed)
		}
		if !res.Remerged {
			t.Errorf("seed %d: not re-merged 60s after healing", seed)
		}
		t.Logf("seed %d: re-merged %v after healing", seed, res.Remerge)
	}
}

// Property 7: every node restarts with a new generation within 60 s: every
// node sees every other alive within 60 s after the last start, and no
// stale dead entries (or old generations) remain.
func TestPropRollingRestart(t *testing.T) {
	n := size(30, 100)
	for _, seed := range seeds {
		s := booted(t, seed, n)
		s.Settle()
		res := s.RollingRestart(60 * time.Second)
		if res.Err != nil {
			t.Error(res.Err)
		}
		if !res.OK {
			t.Errorf("seed %d: not converged 60s after the last restart (%d stale entries)", seed, res.Stale)
		}
		t.Logf("seed %d: converged %v after the last restart", seed, res.Converged)
	}
}

// Property 8: one node at 80% packet loss (and, separately, one whose
// inbound traffic is cut) among N: it is removed once within 60 s, does not
// flap, and no healthy node is removed.
func TestPropBadNode(t *testing.T) {
	n := size(40, 100)
	// At the default size, seeds 56, 80 and 91 are runs where the lossy
	// node's one early refutation used to escape only after the cluster had
	// declared it dead, reviving it so that it was removed twice (before
	// refutations were sent three times as often as other news).
	ss := seeds
	switch {
	case *sweep > 0:
		ss = nil
		for seed := range uint64(*sweep) {
			ss = append(ss, seed+1)
		}
	case !*full:
		ss = append(slices.Clone(seeds), 56, 80, 91)
	}
	for _, mode := range []swimsim.Fault{swimsim.Loss80, swimsim.InboundCut} {
		for _, seed := range ss {
			s := booted(t, seed, n)
			s.Settle()
			bad := 3 + int(seed)%(n-3)
			name := s.Nodes[bad].Name
			res := s.BadNode(bad, mode, 60*time.Second, 5*time.Minute)
			if !res.RemovedInTime {
				t.Errorf("%s seed %d: %s not removed everywhere within 60s", mode, seed, name)
			}
			for obs, k := range res.Deaths.About(name).PerObserver() {
				if k > 1 {
					t.Errorf("%s seed %d: observer %d removed %s %d times", mode, seed, obs, name, k)
				}
			}
			if len(res.AliveAgain) > 0 {
				t.Errorf("%s seed %d: observer %d sees %s alive again", mode, seed, res.AliveAgain[0], name)
			}
			for _, e := range res.Deaths {
				if e.Name != name && e.Obs != bad {
					t.Errorf("%s seed %d: healthy %s declared dead at %d", mode, seed, e.Name, e.Obs)
					break
				}
			}
			t.Logf("%s seed %d: removed everywhere after %v", mode, seed, res.Removed)
		}
	}
}

// Property 9: at scale, a membership change (new metadata) reaches every
// node within 3 s, p99 over the changes, at 0% and 10% loss.
func TestPropDissemination(t *testing.T) {
	n := size(120, 1000)
	changes := size(8, 20)
	for _, loss := range []float64{0, 0.10} {
		for _, seed := range seeds[:size(2, 3)] {
			s := swimsim.NewScenario(t, seed, n, swimsim.LAN)
			s.Boot(t, 30*time.Second)
			s.SetLinkLoss(loss)
			s.Settle()
			var srcs []int
			for k := range changes {
				srcs = append(srcs, (k*37+int(seed))%n)
			}
			spreads, err := s.Disseminate(srcs, 4, 10*time.Second, 2*time.Second)
			var times []time.Duration
			for k, sp := range spreads {
				if !sp.OK {
					t.Errorf("loss %v seed %d: change %d reached %d of %d nodes in 10s", loss, seed, k, sp.Reached, n-1)
				}
				times = append(times, sp.Took)
			}
			if err != nil {
				t.Fatal(err)
			}
			p99 := swimsim.Quantile(times, 0.99)
			t.Logf("loss %v seed %d: p99 %v, median %v", loss, seed, p99, swimsim.Median(times))
			if p99 > 3*time.Second {
				t.Errorf("loss %v seed %d: p99 dissemination %v, want <= 3s", loss, seed, p99)
			}
		}
	}
}

// Property 10 (issue 10, item 5): k members of N crash at the same instant
// (k up to N-2): every survivor marks every victim dead, no survivor is
// declared dead, and where the survivors can probe the victims fast enough
// (k up to N/2) that takes at most twice the median time of a single crash
// at the same N. At N-2 of 20 the two survivors need one probe interval per
// victim to find them all; there the bound is only that the verdicts come
// (the self-isolation guard does not hold them back for good). Times are
// compared as medians over the seeds; bench/RESULTS.md gives the spread.
func TestPropCorrelatedCrash(t *testing.T) {
	type tc struct {
		n     int
		ks    []int
		bound []bool // per k: whether the 2x single-crash bound applies
	}
	cases := []tc{
		{5, []int{2, 3}, []bool{true, true}},
		{20, []int{5, 10, 18}, []bool{true, true, false}},
		{100, []int{10, 25}, []bool{true, true}},
	}
	for _, c := range cases {
		var single []time.Duration
		for _, seed := range seeds {
			s := booted(t, seed, c.n)
			s.Settle()
			res := s.CrashTogether([]int{c.n - 1}, time.Minute)
			if !res.OK {
				t.Fatalf("n=%d seed %d: a single crash not dead everywhere in a minute", c.n, seed)
			}
			single = append(single, res.DeadEverywhere)
		}
		base := swimsim.Median(single)
		t.Logf("n=%d: single crash dead everywhere, median %v (%v)", c.n, base, single)
		for i, k := range c.ks {
			var all []time.Duration
			for _, seed := range seeds {
				s := booted(t, seed, c.n)
				s.Settle()
				var victims []int
				for v := range k {
					victims = append(victims, c.n-1-v)
				}
				res := s.CrashTogether(victims, 3*time.Minute)
				t.Logf("n=%d k=%d seed %d: all dead everywhere %v (%d verdicts withheld)", c.n, k, seed, res.DeadEverywhere, res.Withheld)
				if !res.OK {
					t.Errorf("n=%d k=%d seed %d: victims still alive somewhere after 3 minutes", c.n, k, seed)
				}
				if len(res.FalseDeaths) > 0 {
					t.Errorf("n=%d k=%d seed %d: survivor %s declared dead", c.n, k, seed, res.FalseDeaths[0].Name)
				}
				all = append(all, res.DeadEverywhere)
			}
			if m := swimsim.Median(all); c.bound[i] && m > 2*base {
				t.Errorf("n=%d k=%d: all dead everywhere after %v (median; all %v), want <= 2x the single crash (%v)", c.n, k, m, all, 2*base)
			}
		}
	}
}

// Property 11 (issue 10, items 5 and 6): a node cut off from everyone (in
// and out) for 40 s declares no one dead, is removed by the others, reports
// its isolation as an event, and once its links are back the membership is
// whole on every node within 3 s.
func TestPropCutOffNode(t *testing.T) {
	for _, n := range []int{5, 20} {
		for _, seed := range seeds {
			s := booted(t, seed, n)
			s.Settle()
			victim := 1 + int(seed)%(n-1)
			isolated, recovered := 0, 0
			prev := s.OnEvent
			s.OnEvent = func(obs int, ev swim.Event) {
				prev(obs, ev)
				if obs == victim && ev.Kind == swim.EventIsolated {
					isolated++
				}
				if obs == victim && ev.Kind == swim.EventRecovered {
					recovered++
				}
			}
			res := s.CutOff(victim, 40*time.Second, 10*time.Second)
			t.Logf("n=%d seed %d: whole %v after the cut ended", n, seed, res.Back)
			if len(res.Verdicts) > 0 {
				t.Errorf("n=%d seed %d: the cut-off node declared %s dead", n, seed, res.Verdicts[0].Name)
			}
			if !res.Removed {
				t.Errorf("n=%d seed %d: the cut-off node not removed by every other node", n, seed)
			}
			if isolated == 0 || recovered == 0 {
				t.Errorf("n=%d seed %d: the cut-off node reported %d isolated and %d recovered events, want some of each", n, seed, isolated, recovered)
			}
			if !res.BackInTime || res.Back > 3*time.Second {
				t.Errorf("n=%d seed %d: membership whole %v after the cut ended, want <= 3s", n, seed, res.Back)
			}
		}
	}
}

// Property 11b (issue 10, item 6, as real processes showed it): a node cut
// off alone is back within 3 s even when the first datagrams it sends after
// the heal are lost, as on a real link, where the neighbour entries (ARP)
// that failed during the cut drop them until they are resolved again,
// while the others' re-dials over TCP reach it at once; and even when it
// stalled for a few seconds during the cut (a busy host: the pause resets
// its count of failed probes). The node hears from the others before its
// answers get through: that must not cost it the health the cut took,
// which kept it from refuting its death for about 35 s, on real processes
// and here.
func TestPropCutOffNodeLossyHeal(t *testing.T) {
	for _, n := range []int{5, 20} {
		for _, cut := range []time.Duration{29 * time.Second, 40 * time.Second} {
			for _, opts := range []swimsim.CutOffOpts{
				{Lossy: 300 * time.Millisecond},
				{Lossy: time.Second},
				{Lossy: time.Second, Pause: 3 * time.Second},
			} {
				var worst time.Duration
				for seed := range uint64(size(10, 40)) {
					s := booted(t, seed+1, n)
					s.Net.RunFor(time.Duration(seed%3) * time.Second)
					victim := 1 + int(seed)%(n-1)
					res := s.CutOffWith(victim, cut, 60*time.Second, opts)
					if len(res.Verdicts) > 0 {
						t.Errorf("n=%d cut %v %+v seed %d: the cut-off node declared %s dead", n, cut, opts, seed+1, res.Verdicts[0].Name)
					}
					if !res.BackInTime || res.Back > 3*time.Second {
						t.Errorf("n=%d cut %v %+v seed %d: membership whole %v after the cut ended, want <= 3s", n, cut, opts, seed+1, res.Back)
					}
					worst = max(worst, res.Back)
				}
				t.Logf("n=%d cut %v, %+v: whole within %v", n, cut, opts, worst)
			}
		}
	}
}

// healSeeds is the number of seeds per shape and length of
// TestPropHealWhole (-swim.full: 60).
var healSeeds = flag.Int("swim.healseeds", 0, "seeds per case of TestPropHealWhole (default 20, 60 with -swim.full)")

// Property 12 (issue 10, item 6): after a partition of 5 members heals,
// the membership is whole (every node sees every other alive, none
// suspect) within 3 s, every time: 3+2, 2+3 (the sides interleaved) and a
// single node alone, cut 40 s and 2 minutes, the cut starting 0-6 s after
// the cluster formed.
func TestPropHealWhole(t *testing.T) {
	ns := *healSeeds
	if ns == 0 {
		ns = size(20, 60)
	}
	shapes := map[string][][]int{
		"3+2": {{0, 1, 2}, {3, 4}},
		"2+3": {{0, 3}, {1, 2, 4}},
		"1+4": {{4}},
	}
	for name, groups := range shapes {
		for _, split := range []time.Duration{40 * time.Second, 2 * time.Minute} {
			var worst time.Duration
			for seed := range uint64(ns) {
				s := booted(t, seed+1, 5)
				s.Net.RunFor(time.Duration(seed%7) * time.Second)
				res := s.SplitHeal(groups, split, 30*time.Second)
				if !res.Detected {
					t.Errorf("%s for %v, seed %d: the split was not detected", name, split, seed+1)
				}
				if !res.OK || res.Whole > 3*time.Second {
					t.Errorf("%s for %v, seed %d: whole %v after the heal (ok %v), want <= 3s; lagging (observer, member): %v", name, split, seed+1, res.Whole, res.OK, res.Lagging)
				}
				worst = max(worst, res.Whole)
			}
			t.Logf("%s for %v: whole within %v of the heal over %d seeds", name, split, worst, ns)
		}
	}
}

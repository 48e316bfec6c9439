//go:build linux

package faults

import (
	"fmt"
	"math"
	"strings"
	"syscall"
	"testing"
	"time"
)

// variant is one cluster shape a scenario runs with.
type variant struct {
	profile string
	n       int
	run     int
}

func (v variant) String() string { return fmt.Sprintf("%s/n=%d/run=%d", v.profile, v.n, v.run) }

// variants runs f for each shape of the mode: lan at N = 5 in short mode;
// lan and local at N = 5 and 20, suite.runs times each, in full mode.
// sizes limits the sizes (nil: both).
func variants(t *testing.T, sizes []int, f func(t *testing.T, bin string, v variant)) {
	bin := need(t, modeShort)
	profiles, ns := []string{"lan"}, []int{5}
	if suite.mode == modeFull {
		profiles, ns = []string{"lan", "local"}, []int{5, 20}
	}
	if sizes != nil {
		ns = sizes
	}
	for _, p := range profiles {
		for _, n := range ns {
			for r := range suite.runs {
				v := variant{profile: p, n: n, run: r + 1}
				t.Run(v.String(), func(t *testing.T) { f(t, bin, v) })
			}
		}
	}
}

// figure logs a measured figure in one greppable line ("FIGURE ...").
func figure(t *testing.T, format string, args ...any) {
	t.Helper()
	t.Logf("FIGURE %s: %s", t.Name(), fmt.Sprintf(format, args...))
}

// hold lets a fault last for d: a duration of the scenario, not a wait for
// an event (every wait for an event polls with a deadline).
func hold(d time.Duration) { time.Sleep(d) }

// profileTimes are the swim timings of a profile, for bounds.
type profileTimes struct {
	probe       time.Duration
	suspicionMx int // SuspicionMult
	// singleCrash is the time a single crash of N = 5 takes to be dead
	// everywhere (issue 10, "What held": 5.2-6.4 s in lan); the target of
	// item 5 is twice that for correlated crashes.
	singleCrash time.Duration
}

func timesOf(profile string) profileTimes {
	if profile == "local" {
		// 200 ms probes; min suspicion 0.6 s at N = 5, max 3.6 s.
		return profileTimes{probe: 200 * time.Millisecond, suspicionMx: 3, singleCrash: 2 * time.Second}
	}
	return profileTimes{probe: time.Second, suspicionMx: 4, singleCrash: 6400 * time.Millisecond}
}

// suspicionMax is the longest a suspicion lasts without confirmations:
// 6 * SuspicionMult * max(1, log10 n) * probe.
func (p profileTimes) suspicionMax(n int) time.Duration {
	return time.Duration(6 * float64(p.suspicionMx) * max(1, math.Log10(float64(n))) * float64(p.probe))
}

// noFalseDeaths checks that every observer sees every one of alive alive.
func noFalseDeaths(t *testing.T, observers, alive []*agent) {
	t.Helper()
	for _, o := range observers {
		ms, err := o.members()
		if err != nil {
			t.Error(err)
			continue
		}
		for _, a := range alive {
			if s := stateOf(ms, a.name); s != "alive" {
				t.Errorf("false verdict: %s sees %s %s", o.name, a.name, s)
			}
		}
	}
}

// TestKillOne: kill -9 of one agent is dead everywhere, with no false
// deaths (issue 10, "What held").
func TestKillOne(t *testing.T) {
	variants(t, nil, func(t *testing.T, bin string, v variant) {
		c := newCluster(t, bin, clusterOpts{n: v.n, profile: v.profile})
		victim := c.agents[v.n-1]
		rest := c.except(victim)
		victim.kill9()
		pt := timesOf(v.profile)
		bound := pt.suspicionMax(v.n) + 5*pt.probe
		took, err := waitState(rest, []*agent{victim}, []string{"dead"}, bound+10*time.Second, nil)
		if err != nil {
			t.Fatalf("kill -9 of 1 of %d: %v", v.n, err)
		}
		figure(t, "kill -9 of 1 of %d (%s): dead everywhere in %.2f s", v.n, v.profile, took.Seconds())
		if took > bound {
			t.Errorf("dead everywhere after %v, more than the suspicion maximum plus 5 probes (%v)", took, bound)
		}
		noFalseDeaths(t, rest, rest)
	})
}

// TestKillMany: kill -9 of 3 of 5 (and of 12 of 20) at once is dead
// everywhere within twice the single-crash time (issue 10, item 5).
func TestKillMany(t *testing.T) {
	variants(t, nil, func(t *testing.T, bin string, v variant) {
		c := newCluster(t, bin, clusterOpts{n: v.n, profile: v.profile})
		k := v.n * 3 / 5
		victims := c.agents[v.n-k:]
		rest := c.agents[:v.n-k]
		for _, a := range victims {
			a.signal(syscall.SIGKILL)
		}
		for _, a := range victims {
			a.reap(startWait)
		}
		pt := timesOf(v.profile)
		target := 2 * pt.singleCrash
		seen := map[[2]string]time.Duration{}
		took, err := waitState(rest, victims, []string{"dead"}, 2*pt.suspicionMax(v.n)+30*time.Second, seen)
		var per []string
		for _, a := range victims {
			worst, missing := time.Duration(0), 0
			for _, o := range rest {
				d, ok := seen[[2]string{o.name, a.name}]
				if !ok {
					missing++
				}
				worst = max(worst, d)
			}
			if missing > 0 {
				per = append(per, fmt.Sprintf("%s not dead on %d of %d", a.name, missing, len(rest)))
			} else {
				per = append(per, fmt.Sprintf("%s %.1f s", a.name, worst.Seconds()))
			}
		}
		if err != nil {
			t.Fatalf("item 5: kill -9 of %d of %d: %v (per victim: %s)", k, v.n, err, strings.Join(per, ", "))
		}
		figure(t, "kill -9 of %d of %d (%s): all dead everywhere in %.2f s (per victim: %s)", k, v.n, v.profile, took.Seconds(), strings.Join(per, ", "))
		if overTarget(t, took, target, "simultaneous crashes dead everywhere") {
			t.Errorf("item 5: %d simultaneous crashes of %d dead everywhere after %.1f s, target %.1f s (twice the single-crash time)",
				k, v.n, took.Seconds(), target.Seconds())
		}
		noFalseDeaths(t, rest, rest)
	})
}

// TestStop: SIGSTOP for 5 s gets the agent suspected, never dead, and
// alive again soon after SIGCONT; in full mode, SIGSTOP for 30 s gets it
// declared dead, and it refutes on return (issue 10, "What held"). Both
// are lan cases: the local profile's suspicion (0.6-3.6 s) is shorter than
// a 5 s stop.
func TestStop(t *testing.T) {
	stops := []struct {
		d        time.Duration
		wantDead bool
		back     time.Duration // alive everywhere within this after SIGCONT
	}{{5 * time.Second, false, 3 * time.Second}}
	if suite.mode == modeFull {
		stops = append(stops, struct {
			d        time.Duration
			wantDead bool
			back     time.Duration
		}{30 * time.Second, true, 10 * time.Second})
	}
	for _, st := range stops {
		t.Run(st.d.String(), func(t *testing.T) {
			variants(t, []int{5}, func(t *testing.T, bin string, v variant) {
				if v.profile != "lan" {
					t.Skip("a lan case: the local profile's suspicion is shorter than the stop")
				}
				stopFor(t, bin, v, st.d, st.wantDead, st.back)
			})
		})
	}
}

func stopFor(t *testing.T, bin string, v variant, d time.Duration, wantDead bool, back time.Duration) {
	c := newCluster(t, bin, clusterOpts{n: v.n, profile: v.profile})
	victim := c.agents[v.n-1]
	rest := c.except(victim)
	victim.signal(syscall.SIGSTOP)
	stopped := true
	defer func() {
		if stopped {
			victim.signal(syscall.SIGCONT)
		}
	}()
	end := time.Now().Add(d)
	suspected, dead := false, map[string]bool{}
	for time.Now().Before(end) {
		for _, o := range rest {
			ms, err := o.members()
			if err != nil {
				t.Fatal(err)
			}
			switch stateOf(ms, victim.name) {
			case "suspect":
				suspected = true
			case "dead":
				dead[o.name] = true
			}
		}
		hold(pollEvery)
	}
	victim.signal(syscall.SIGCONT)
	stopped = false
	took, err := waitState(rest, []*agent{victim}, []string{"alive"}, 60*time.Second, nil)
	if err != nil {
		t.Fatalf("after SIGCONT: %v", err)
	}
	figure(t, "SIGSTOP %v (%s, n=%d): suspected %t, dead on %d of %d observers, alive everywhere %.2f s after SIGCONT",
		d, v.profile, v.n, suspected, len(dead), len(rest), took.Seconds())
	if !suspected && len(dead) == 0 {
		t.Errorf("stopped for %v and never suspected", d)
	}
	if !wantDead && len(dead) > 0 {
		t.Errorf("stopped for %v, declared dead by %d observers", d, len(dead))
	}
	if wantDead && len(dead) == 0 {
		t.Errorf("stopped for %v, longer than the suspicion maximum, and never declared dead", d)
	}
	if took > back {
		t.Errorf("alive everywhere %.1f s after SIGCONT, want within %v", took.Seconds(), back)
	}
	if _, err := c.waitWhole(c.agents, 30*time.Second); err != nil {
		t.Error(err)
	}
}

// TestRestartDataDir: an agent killed with -9 and restarted with its data
// directory comes back with a new generation, one entry everywhere, and
// every key (issue 10, "What held").
func TestRestartDataDir(t *testing.T) {
	variants(t, []int{5}, func(t *testing.T, bin string, v variant) {
		c := newCluster(t, bin, clusterOpts{n: v.n, profile: v.profile, data: true})
		victim := c.agents[v.n-1]
		h := newHistory()
		const keys = 1000
		for i := range keys {
			if err := h.put(victim, "restart", fmt.Sprintf("k%04d", i), fmt.Sprintf("v%d", i)); err != nil {
				t.Fatal(err)
			}
		}
		// Graceful stop first (final snapshot), then a kill -9 of the
		// restarted one: both paths come back.
		before, err := victim.members()
		if err != nil {
			t.Fatal(err)
		}
		gen0 := generationOf(before, victim.name)
		victim.signal(syscall.SIGTERM)
		victim.reap(startWait)
		victim.start(c.agents[0].gossip)
		victim.kill9()
		victim.start(c.agents[0].gossip)
		took, err := poll(60*time.Second, func() error {
			got, err := victim.list("restart")
			if err != nil {
				return err
			}
			if p := h.check(got); len(p) > 0 {
				return fmt.Errorf("%d problems, first: %s", len(p), p[0])
			}
			return nil
		})
		if err != nil {
			t.Fatalf("restarted agent's keys: %v", err)
		}
		figure(t, "restart with --data-dir (%s, n=%d): %d keys back %.2f s after the ready line", v.profile, v.n, keys, took.Seconds())
		if _, err := c.waitWhole(c.agents, 60*time.Second); err != nil {
			t.Fatal(err)
		}
		for _, o := range c.agents {
			ms, err := o.members()
			if err != nil {
				t.Fatal(err)
			}
			entries := 0
			for _, m := range ms {
				if m.Name == victim.name {
					entries++
					if m.Generation <= gen0 {
						t.Errorf("%s sees %s at generation %d, want above %d", o.name, victim.name, m.Generation, gen0)
					}
				}
			}
			if entries != 1 {
				t.Errorf("%s lists %s %d times, want once", o.name, victim.name, entries)
			}
		}
	})
}

func generationOf(ms []member, name string) uint64 {
	for _, m := range ms {
		if m.Name == name {
			return m.Generation
		}
	}
	return 0
}

// TestLeave: SIGTERM makes the agent leave: "left" everywhere at once
// (issue 10, "What held": 0.1 s).
func TestLeave(t *testing.T) {
	variants(t, nil, func(t *testing.T, bin string, v variant) {
		c := newCluster(t, bin, clusterOpts{n: v.n, profile: v.profile})
		victim := c.agents[v.n-1]
		rest := c.except(victim)
		victim.signal(syscall.SIGTERM)
		took, err := waitState(rest, []*agent{victim}, []string{"left"}, 30*time.Second, nil)
		if err != nil {
			t.Fatal(err)
		}
		victim.reap(startWait)
		figure(t, "SIGTERM (%s, n=%d): left everywhere in %.2f s", v.profile, v.n, took.Seconds())
		if took > 2*time.Second {
			t.Errorf("left everywhere after %.1f s, want within 2 s", took.Seconds())
		}
		noFalseDeaths(t, rest, rest)
	})
}

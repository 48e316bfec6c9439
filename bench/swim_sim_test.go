package bench

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/meshnode/meshnode/internal/simnet/swimsim"
	"github.com/meshnode/meshnode/swim"
)

// Full-size swim simulations (issue 3): each benchmark iteration runs one
// whole scenario in virtual time and reports its domain figures with
// ReportMetric. The scenarios are internal/simnet/swimsim's, the same the
// property tests of swim/sim_test.go run at reduced size. Run them once
// each:
//
//	go test -run '^$' -bench 'Swim' -benchtime 1x -count 3 ./bench/
//
// Seeds differ per iteration and per -count run (a process-wide counter),
// so repeated runs sample different schedules.

var benchSeed uint64 = 100

func nextSeed() uint64 {
	benchSeed++
	return benchSeed
}

// booted returns a scenario of n LAN nodes with the next seed,
// bootstrapped within 30 s.
func booted(b *testing.B, n int, edit ...func(*swim.Config)) *swimsim.Scenario {
	b.Helper()
	s := swimsim.NewScenario(b, nextSeed(), n, swimsim.LAN, edit...)
	s.Boot(b, 30*time.Second)
	return s
}

// pct returns the q-quantile of ds in seconds (NaN if there are none).
func pct(ds []time.Duration, q float64) float64 {
	if len(ds) == 0 {
		return math.NaN()
	}
	return swimsim.Quantile(ds, q).Seconds()
}

// reportTraffic reports messages and bytes sent per node per second, UDP
// and TCP together, and the simulator's cost.
func reportTraffic(b *testing.B, t swimsim.Traffic) {
	b.ReportMetric(t.MsgsPerNodeSec, "msgs/node/s")
	b.ReportMetric(t.BytesPerNodeSec, "B/node/s")
	b.ReportMetric(t.WallPerSimMin, "wall-s/sim-min")
}

func BenchmarkSwimBootstrap(b *testing.B) {
	var ds []time.Duration
	for b.Loop() {
		s := swimsim.NewScenario(b, nextSeed(), 100, swimsim.LAN)
		ds = append(ds, s.Boot(b, 30*time.Second))
	}
	b.ReportMetric(pct(ds, 0.5), "converge-s")
}

func BenchmarkSwimCrash(b *testing.B) {
	var first, all []time.Duration
	var tr swimsim.Traffic
	for b.Loop() {
		s := booted(b, 100)
		s.Settle()
		var victims []int
		for k := range 5 {
			victims = append(victims, 3+k*19)
		}
		res := s.Crashes(victims, 30*time.Second)
		for _, d := range res.Detections {
			if len(d.Missing) > 0 || !d.Suspected {
				b.Fatalf("crash of %s marked dead at %d survivors, want %d (suspected: %v)",
					s.Nodes[d.Victim].Name, d.Survivors-len(d.Missing), d.Survivors, d.Suspected)
			}
			first = append(first, d.ToSuspect)
			all = append(all, d.ToDeadEverywhere)
		}
		tr = res.Traffic
	}
	b.ReportMetric(pct(first, 0.5), "suspect-p50-s")
	b.ReportMetric(pct(first, 0.99), "suspect-p99-s")
	b.ReportMetric(pct(all, 0.5), "dead-all-p50-s")
	b.ReportMetric(pct(all, 0.99), "dead-all-p99-s")
	reportTraffic(b, tr)
}

func BenchmarkSwimUniformLoss(b *testing.B) {
	var res swimsim.LossResult
	for b.Loop() {
		res = booted(b, 100).UniformLoss(0.10, time.Hour)
	}
	b.ReportMetric(res.PerNodeHour, "false-suspicions/node-h")
	b.ReportMetric(float64(len(res.Deaths)), "deaths")
	reportTraffic(b, res.Traffic)
}

func BenchmarkSwimPause(b *testing.B) {
	for _, pause := range []time.Duration{5 * time.Second, 30 * time.Second} {
		b.Run("pause="+pause.String(), func(b *testing.B) {
			var back []time.Duration
			var res swimsim.PauseResult
			for b.Loop() {
				s := booted(b, 100)
				s.Settle()
				res = s.Pause(50, pause, time.Minute, time.Minute)
				back = append(back, res.Back)
			}
			b.ReportMetric(pct(back, 0.5), "alive-again-s")
			b.ReportMetric(float64(len(res.Deaths)), "death-events")
			b.ReportMetric(float64(res.Deaths.MaxPerObserver()), "max-deaths/observer")
			b.ReportMetric(float64(res.VerdictsAfterResume), "verdicts-by-paused")
		})
	}
}

func BenchmarkSwimSlowNodes(b *testing.B) {
	for _, lhm := range []bool{true, false} {
		for _, adaptive := range []bool{true, false} {
			name := map[bool]string{true: "lhm=on", false: "lhm=off"}[lhm] + map[bool]string{true: "/rtt=adaptive", false: "/rtt=fixed"}[adaptive]
			b.Run(name, func(b *testing.B) {
				var res swimsim.SlowResult
				for b.Loop() {
					res = booted(b, 100, swimsim.SlowConfig(lhm, adaptive)).SlowNodes(30 * time.Minute)
				}
				b.ReportMetric(float64(res.Suspicions), "false-suspicions")
				b.ReportMetric(float64(len(res.Deaths)), "death-events")
			})
		}
	}
}

func BenchmarkSwimPartitionHeal(b *testing.B) {
	var ds []time.Duration
	for b.Loop() {
		res := booted(b, 100).PartitionHeal(5*time.Minute, 5*time.Minute)
		if !res.Remerged {
			b.Fatal("not re-merged in 5 minutes")
		}
		ds = append(ds, res.Remerge)
	}
	b.ReportMetric(pct(ds, 0.5), "remerge-s")
}

func BenchmarkSwimRollingRestart(b *testing.B) {
	var ds []time.Duration
	for b.Loop() {
		res := booted(b, 100).RollingRestart(5 * time.Minute)
		if res.Err != nil {
			b.Error(res.Err)
		}
		if !res.OK {
			b.Fatalf("not converged 5 minutes after the last restart (%d stale entries)", res.Stale)
		}
		ds = append(ds, res.Converged)
	}
	b.ReportMetric(pct(ds, 0.5), "converge-after-last-start-s")
}

func BenchmarkSwimBadNode(b *testing.B) {
	for _, mode := range []swimsim.Fault{swimsim.Loss80, swimsim.InboundCut} {
		b.Run(string(mode), func(b *testing.B) {
			var ds []time.Duration
			var maxPer, healthyDeaths float64
			for b.Loop() {
				s := booted(b, 100)
				s.Settle()
				const bad = 42
				res := s.BadNode(bad, mode, 5*time.Minute, 5*time.Minute)
				if !res.RemovedInTime {
					b.Fatal("bad node not removed in 5 minutes")
				}
				ds = append(ds, res.Removed)
				mine := res.Deaths.About(s.Nodes[bad].Name)
				maxPer = float64(mine.MaxPerObserver())
				healthyDeaths = float64(len(res.Deaths) - len(mine))
			}
			b.ReportMetric(pct(ds, 0.5), "removed-s")
			b.ReportMetric(maxPer, "max-removals/observer")
			b.ReportMetric(healthyDeaths, "healthy-deaths")
		})
	}
}

func BenchmarkSwimDissemination(b *testing.B) {
	for _, loss := range []float64{0, 0.10} {
		b.Run("n=1000/loss="+map[bool]string{true: "0", false: "10%"}[loss == 0], func(b *testing.B) {
			var times []time.Duration
			for b.Loop() {
				s := booted(b, 1000)
				s.SetLinkLoss(loss)
				s.Settle()
				var srcs []int
				for k := range 20 {
					srcs = append(srcs, (k*37+11)%1000)
				}
				spreads, err := s.Disseminate(srcs, 2, 30*time.Second, 2*time.Second)
				for k, sp := range spreads {
					if !sp.OK {
						b.Errorf("change %d reached %d of 999", k, sp.Reached)
					}
					times = append(times, sp.Took)
				}
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(pct(times, 0.5), "spread-p50-s")
			b.ReportMetric(pct(times, 0.99), "spread-p99-s")
		})
	}
}

// BenchmarkSwimSteadyState runs 1000 converged nodes for three simulated
// minutes (a full push-pull period at this size): bandwidth sent per node,
// UDP and TCP (mean, and p99 over every node's per-second figures), and the
// simulator's wall time per simulated minute.
func BenchmarkSwimSteadyState(b *testing.B) {
	var bw swimsim.Bandwidth
	for b.Loop() {
		s := booted(b, 1000)
		s.Net.RunFor(30 * time.Second) // let the join traffic settle
		bw = s.SteadyState(3 * time.Minute)
	}
	b.ReportMetric(bw.MeanKBPerNodeSec, "KB/node/s-mean")
	b.ReportMetric(bw.P99KBPerNodeSec, "KB/node/s-p99")
	b.ReportMetric(bw.WallPerSimMin, "wall-s/sim-min")
}

// BenchmarkSwimCorrelatedCrash crashes k of N members at the same instant
// (issue 10, item 5) and reports the time until every survivor had marked
// every victim dead, next to a single crash at the same N (k=1). Each
// iteration is one run with a new seed; the figures are over iterations.
func BenchmarkSwimCorrelatedCrash(b *testing.B) {
	for _, c := range []struct{ n, k int }{
		{5, 1}, {5, 2}, {5, 3},
		{20, 1}, {20, 5}, {20, 10}, {20, 18},
		{100, 1}, {100, 10}, {100, 25}, {100, 50}, {100, 98},
	} {
		b.Run(fmt.Sprintf("n=%d/k=%d", c.n, c.k), func(b *testing.B) {
			var ds []time.Duration
			var missed, falseDeaths, withheld float64
			for b.Loop() {
				s := booted(b, c.n)
				s.Settle()
				var victims []int
				for v := range c.k {
					victims = append(victims, c.n-1-v)
				}
				res := s.CrashTogether(victims, 5*time.Minute)
				if !res.OK {
					missed++
				}
				ds = append(ds, res.DeadEverywhere)
				falseDeaths += float64(len(res.FalseDeaths))
				withheld += float64(res.Withheld)
			}
			b.ReportMetric(pct(ds, 0.5), "dead-all-p50-s")
			b.ReportMetric(pct(ds, 1), "dead-all-max-s")
			b.ReportMetric(missed, "runs-not-done-5min")
			b.ReportMetric(falseDeaths, "false-deaths")
			b.ReportMetric(withheld/float64(len(ds)), "verdicts-withheld/run")
		})
	}
}

// BenchmarkSwimHeal partitions the cluster for split, heals it and reports
// the time until every node sees every other alive, none suspect (issue
// 10, item 6). Each iteration is one run with a new seed.
func BenchmarkSwimHeal(b *testing.B) {
	for _, c := range []struct {
		name   string
		n      int
		groups [][]int
	}{
		{"n=5/3+2", 5, [][]int{{0, 1, 2}, {3, 4}}},
		{"n=5/2+3", 5, [][]int{{0, 3}, {1, 2, 4}}},
		{"n=5/1+4", 5, [][]int{{4}}},
		{"n=20/10+10", 20, [][]int{{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}}},
		{"n=20/2+18", 20, [][]int{{0, 1}}},
		{"n=20/3+4+13", 20, [][]int{{5, 6, 7}, {8, 9, 10, 11}}},
	} {
		for _, split := range []time.Duration{10 * time.Second, 40 * time.Second, 2 * time.Minute} {
			b.Run(c.name+"/split="+split.String(), func(b *testing.B) {
				var ds []time.Duration
				var over float64
				for b.Loop() {
					s := booted(b, c.n)
					s.Net.RunFor(time.Duration(benchSeed%7) * time.Second)
					res := s.SplitHeal(c.groups, split, time.Minute)
					if !res.OK || res.Whole > 3*time.Second {
						over++
					}
					ds = append(ds, res.Whole)
				}
				b.ReportMetric(pct(ds, 0.5), "whole-p50-s")
				b.ReportMetric(pct(ds, 1), "whole-max-s")
				b.ReportMetric(over/float64(len(ds)), "share-over-3s")
			})
		}
	}
}

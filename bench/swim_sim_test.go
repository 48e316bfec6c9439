package bench

import (
	"math"
	"slices"
	"testing"
	"time"

	"github.com/meshnode/meshnode/internal/simnet"
	"github.com/meshnode/meshnode/internal/simnet/swimsim"
	"github.com/meshnode/meshnode/swim"
)

// Full-size swim simulations (issue 3): each benchmark iteration runs one
// whole scenario in virtual time and reports its domain figures with
// ReportMetric. Run them once each:
//
//	go test -run '^$' -bench 'Swim' -benchtime 1x -count 3 ./bench/
//
// Seeds differ per iteration and per -count run (a process-wide counter),
// so repeated runs sample different schedules.

var lanLink = simnet.Link{Delay: 500 * time.Microsecond, Jitter: time.Millisecond}

var benchSeed uint64 = 100

func nextSeed() uint64 {
	benchSeed++
	return benchSeed
}

func swimCluster(b *testing.B, n int, l simnet.Link, edit ...func(*swim.Config)) *swimsim.Cluster {
	b.Helper()
	cfg := swim.LANConfig()
	for _, e := range edit {
		e(&cfg)
	}
	c, err := swimsim.New(nextSeed(), n, cfg, l)
	if err != nil {
		b.Fatal(err)
	}
	return c
}

func boot(b *testing.B, c *swimsim.Cluster) time.Duration {
	b.Helper()
	d, ok := c.Bootstrap(30*time.Second, 0, 1, 2)
	if !ok {
		b.Fatalf("%d nodes did not converge in 30s", len(c.Nodes))
	}
	return d
}

func pct(ds []time.Duration, q float64) float64 {
	if len(ds) == 0 {
		return math.NaN()
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(int(q*float64(len(s))), len(s)-1)].Seconds()
}

// traffic reports messages and bytes sent per node per second over a
// window, UDP and TCP together, and the simulator's cost.
type traffic struct {
	c     *swimsim.Cluster
	start time.Time
	wall  time.Time
	pkts  uint64
	bytes uint64
}

func measure(c *swimsim.Cluster) *traffic {
	t := &traffic{c: c, start: c.Net.Now(), wall: time.Now()}
	t.pkts, t.bytes = t.totals()
	return t
}

func (t *traffic) totals() (pkts, bytes uint64) {
	for i := range t.c.Nodes {
		s := t.c.Net.Stats(i)
		pkts += s.PacketsSent + s.StreamsOpened
		bytes += s.BytesSent + s.StreamBytesSent
	}
	return pkts, bytes
}

func (t *traffic) report(b *testing.B) {
	p, by := t.totals()
	secs := t.c.Net.Now().Sub(t.start).Seconds() * float64(len(t.c.Nodes))
	b.ReportMetric(float64(p-t.pkts)/secs, "msgs/node/s")
	b.ReportMetric(float64(by-t.bytes)/secs, "B/node/s")
	b.ReportMetric(time.Since(t.wall).Seconds()/(t.c.Net.Now().Sub(t.start).Minutes()), "wall-s/sim-min")
}

// deadEvents counts death events (at any observer) about name since t, and
// the largest number of deaths one observer saw.
type recorder struct {
	evs []swim.Event
	obs []int
}

func record(c *swimsim.Cluster) *recorder {
	r := &recorder{}
	c.OnEvent = func(obs int, ev swim.Event) {
		if ev.Kind == swim.EventSuspect || ev.Kind == swim.EventDead || ev.Kind == swim.EventAlive {
			r.evs = append(r.evs, ev)
			r.obs = append(r.obs, obs)
		}
	}
	return r
}

func (r *recorder) count(kind swim.EventKind, name string, since time.Time) (total, maxPerObs int) {
	per := map[int]int{}
	for i, e := range r.evs {
		if e.Kind == kind && (name == "" || e.Member.Name == name) && !e.At.Before(since) {
			total++
			per[r.obs[i]]++
			maxPerObs = max(maxPerObs, per[r.obs[i]])
		}
	}
	return total, maxPerObs
}

func BenchmarkSwimBootstrap(b *testing.B) {
	var ds []time.Duration
	for b.Loop() {
		ds = append(ds, boot(b, swimCluster(b, 100, lanLink)))
	}
	b.ReportMetric(pct(ds, 0.5), "converge-s")
}

func BenchmarkSwimCrash(b *testing.B) {
	var first, all []time.Duration
	var tr *traffic
	for b.Loop() {
		c := swimCluster(b, 100, lanLink)
		r := record(c)
		boot(b, c)
		c.Net.RunFor(10 * time.Second)
		tr = measure(c)
		for k := range 5 {
			victim := 3 + k*19
			at := c.Net.Now()
			name := c.Nodes[victim].Name
			c.Crash(victim)
			c.Net.RunFor(30 * time.Second)
			var firstSus, lastDead time.Time
			seen := map[int]bool{}
			for i, e := range r.evs {
				if e.Member.Name != name || e.At.Before(at) {
					continue
				}
				if e.Kind == swim.EventSuspect && firstSus.IsZero() {
					firstSus = e.At
				}
				if e.Kind == swim.EventDead && !seen[r.obs[i]] {
					seen[r.obs[i]] = true
					lastDead = e.At
				}
			}
			if len(seen) != 100-1-k {
				b.Fatalf("crash of %s marked dead at %d survivors, want %d", name, len(seen), 99-k)
			}
			first = append(first, firstSus.Sub(at))
			all = append(all, lastDead.Sub(at))
		}
	}
	b.ReportMetric(pct(first, 0.5), "suspect-p50-s")
	b.ReportMetric(pct(first, 0.99), "suspect-p99-s")
	b.ReportMetric(pct(all, 0.5), "dead-all-p50-s")
	b.ReportMetric(pct(all, 0.99), "dead-all-p99-s")
	tr.report(b)
}

func BenchmarkSwimUniformLoss(b *testing.B) {
	const n = 100
	d := time.Hour
	var sus, dead float64
	var tr *traffic
	for b.Loop() {
		c := swimCluster(b, n, lanLink)
		r := record(c)
		boot(b, c)
		l := lanLink
		l.Loss = 0.10
		c.Net.SetDefault(l)
		start := c.Net.Now()
		before := c.SumStats(c.All()).SuspicionsRaised
		tr = measure(c)
		c.Net.RunFor(d)
		sus = float64(c.SumStats(c.All()).SuspicionsRaised-before) / (n * d.Hours())
		t, _ := r.count(swim.EventDead, "", start)
		dead = float64(t)
	}
	b.ReportMetric(sus, "false-suspicions/node-h")
	b.ReportMetric(dead, "deaths")
	tr.report(b)
}

func BenchmarkSwimPause(b *testing.B) {
	for _, pause := range []time.Duration{5 * time.Second, 30 * time.Second} {
		b.Run("pause="+pause.String(), func(b *testing.B) {
			var back []time.Duration
			var deaths, maxPer, ownVerdicts float64
			for b.Loop() {
				c := swimCluster(b, 100, lanLink)
				r := record(c)
				boot(b, c)
				c.Net.RunFor(10 * time.Second)
				v := 50
				start := c.Net.Now()
				c.Net.Pause(v)
				c.Net.RunFor(pause)
				before := c.Nodes[v].Core.Stats().DeathVerdicts
				c.Net.Resume(v)
				d, _ := c.RunUntil(time.Minute, func() bool {
					for o := range c.Nodes {
						if o != v && !c.SeesAlive(o, v) {
							return false
						}
					}
					return true
				})
				back = append(back, d)
				c.Net.RunFor(time.Minute)
				t, m := r.count(swim.EventDead, "", start)
				deaths, maxPer = float64(t), float64(m)
				ownVerdicts = float64(c.Nodes[v].Core.Stats().DeathVerdicts - before)
			}
			b.ReportMetric(pct(back, 0.5), "alive-again-s")
			b.ReportMetric(deaths, "death-events")
			b.ReportMetric(maxPer, "max-deaths/observer")
			b.ReportMetric(ownVerdicts, "verdicts-by-paused")
		})
	}
}

func BenchmarkSwimSlowNodes(b *testing.B) {
	for _, lhm := range []bool{true, false} {
		for _, adaptive := range []bool{true, false} {
			name := map[bool]string{true: "lhm=on", false: "lhm=off"}[lhm] + map[bool]string{true: "/rtt=adaptive", false: "/rtt=fixed"}[adaptive]
			b.Run(name, func(b *testing.B) {
				var sus, deaths float64
				for b.Loop() {
					c := swimCluster(b, 100, lanLink, func(cfg *swim.Config) {
						cfg.DisableHealth = !lhm
						if !adaptive {
							cfg.MinRTTSamples = math.MaxInt32
						}
					})
					r := record(c)
					boot(b, c)
					for i := range 5 {
						c.Net.SetSlow(99-i, 200*time.Millisecond, 500*time.Millisecond)
					}
					start := c.Net.Now()
					before := c.SumStats(c.All()).SuspicionsRaised
					c.Net.RunFor(30 * time.Minute)
					sus = float64(c.SumStats(c.All()).SuspicionsRaised - before)
					t, _ := r.count(swim.EventDead, "", start)
					deaths = float64(t)
				}
				b.ReportMetric(sus, "false-suspicions")
				b.ReportMetric(deaths, "death-events")
			})
		}
	}
}

func BenchmarkSwimPartitionHeal(b *testing.B) {
	var ds []time.Duration
	for b.Loop() {
		c := swimCluster(b, 100, lanLink)
		boot(b, c)
		var x, y []int
		for i := range 100 {
			if i%2 == 0 {
				x = append(x, i)
			} else {
				y = append(y, i)
			}
		}
		c.Net.Partition(x, y)
		c.Net.RunFor(5 * time.Minute)
		c.Net.Heal()
		d, ok := c.RunUntil(5*time.Minute, func() bool { return c.Converged(c.All()) })
		if !ok {
			b.Fatal("not re-merged in 5 minutes")
		}
		ds = append(ds, d)
	}
	b.ReportMetric(pct(ds, 0.5), "remerge-s")
}

func BenchmarkSwimRollingRestart(b *testing.B) {
	var ds []time.Duration
	for b.Loop() {
		c := swimCluster(b, 100, lanLink)
		boot(b, c)
		rng := c.Net.Rand()
		var last time.Time
		for i := range 100 {
			down := c.Net.Now().Add(time.Duration(rng.Int64N(int64(55 * time.Second))))
			up := down.Add(time.Duration(rng.Int64N(int64(5 * time.Second))))
			if up.After(last) {
				last = up
			}
			c.Net.At(down, func() { c.Crash(i) })
			c.Net.At(up, func() {
				if err := c.Start(i, c.Nodes[i].Gen+1); err != nil {
					b.Error(err)
				}
				c.Join(i, 0, 1, 2)
			})
		}
		c.Net.RunUntil(last)
		d, ok := c.RunUntil(5*time.Minute, func() bool { return c.Converged(c.All()) && c.StaleDead() == 0 })
		if !ok {
			b.Fatal("not converged 5 minutes after the last restart")
		}
		ds = append(ds, d)
	}
	b.ReportMetric(pct(ds, 0.5), "converge-after-last-start-s")
}

func BenchmarkSwimBadNode(b *testing.B) {
	for _, mode := range []string{"loss80", "inbound-cut"} {
		b.Run(mode, func(b *testing.B) {
			var ds []time.Duration
			var maxPer, healthyDeaths float64
			for b.Loop() {
				c := swimCluster(b, 100, lanLink)
				r := record(c)
				boot(b, c)
				c.Net.RunFor(10 * time.Second)
				bad := 42
				if mode == "loss80" {
					c.Net.SetLoss(bad, 0.8)
				} else {
					c.Net.CutInbound(bad, true)
				}
				start := c.Net.Now()
				d, ok := c.RunUntil(5*time.Minute, func() bool {
					for o := range c.Nodes {
						if o != bad && c.SeesAlive(o, bad) {
							return false
						}
					}
					return true
				})
				if !ok {
					b.Fatal("bad node not removed in 5 minutes")
				}
				ds = append(ds, d)
				c.Net.RunFor(5 * time.Minute)
				_, m := r.count(swim.EventDead, c.Nodes[bad].Name, start)
				maxPer = float64(m)
				all, _ := r.count(swim.EventDead, "", start)
				mine, _ := r.count(swim.EventDead, c.Nodes[bad].Name, start)
				healthyDeaths = float64(all - mine)
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
				c := swimCluster(b, 1000, lanLink)
				boot(b, c)
				l := lanLink
				l.Loss = loss
				c.Net.SetDefault(l)
				c.Net.RunFor(10 * time.Second)
				for k := range 20 {
					src := (k*37 + 11) % 1000
					name := c.Nodes[src].Name
					seen := map[int]bool{}
					c.OnEvent = func(obs int, ev swim.Event) {
						if ev.Kind == swim.EventUpdate && ev.Member.Name == name {
							seen[obs] = true
						}
					}
					if err := c.Nodes[src].Core.SetMeta(c.Net.Now(), []byte{byte(k), 1}); err != nil {
						b.Fatal(err)
					}
					c.Nodes[src].Flush()
					c.Net.Wake(src)
					d, ok := c.RunUntil(30*time.Second, func() bool { return len(seen) == 999 })
					if !ok {
						b.Errorf("change %d reached %d of 999", k, len(seen))
					}
					times = append(times, d)
					c.Net.RunFor(2 * time.Second)
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
	var mean, p99, wall float64
	for b.Loop() {
		c := swimCluster(b, 1000, lanLink)
		boot(b, c)
		c.Net.RunFor(30 * time.Second) // let the join traffic settle
		prev := make([]uint64, len(c.Nodes))
		for i := range c.Nodes {
			s := c.Net.Stats(i)
			prev[i] = s.BytesSent + s.StreamBytesSent
		}
		var samples []float64
		var total uint64
		start := time.Now()
		const secs = 180
		for range secs {
			c.Net.RunFor(time.Second)
			for i := range c.Nodes {
				s := c.Net.Stats(i)
				cur := s.BytesSent + s.StreamBytesSent
				samples = append(samples, float64(cur-prev[i]))
				total += cur - prev[i]
				prev[i] = cur
			}
		}
		wall = time.Since(start).Seconds() / (secs / 60)
		slices.Sort(samples)
		mean = float64(total) / float64(len(samples)) / 1024
		p99 = samples[int(0.99*float64(len(samples)))] / 1024
	}
	b.ReportMetric(mean, "KB/node/s-mean")
	b.ReportMetric(p99, "KB/node/s-p99")
	b.ReportMetric(wall, "wall-s/sim-min")
}

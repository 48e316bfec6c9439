package bench

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/meshnode/meshnode/internal/simnet"
	"github.com/meshnode/meshnode/internal/simnet/replsim"
	"github.com/meshnode/meshnode/node"
	"github.com/meshnode/meshnode/replica"
	"github.com/meshnode/meshnode/wire"
)

// The replication simulation runs, for every member, the product's code
// (internal/simnet/replsim): a real swim core with node's configuration
// (node.SwimConfig("lan")) for membership and gossip, and a real store
// driven by the replication core (replica.Engine) with node's
// configuration, on simnet in virtual time. Only store keys are written
// here: the index is exercised by the trace replay (replay).

const simNS = "kv"

// replSim is one simulated cluster.
type replSim struct {
	tb testing.TB
	*replsim.Cluster
}

// newReplSim forms a cluster of n members at link l (no loss), then lets
// the join news drain.
func newReplSim(tb testing.TB, seed uint64, n int) *replSim {
	budget, err := node.DeltaBudget(wire.Config{})
	if err != nil {
		tb.Fatal(err)
	}
	c, err := replsim.New(seed, n, replsim.Config{
		Swim: node.SwimConfig("lan"),
		Replica: func(i int) replica.Config {
			return node.ReplicaConfig(node.Config{}, rand.New(rand.NewPCG(seed, uint64(i)|1<<40)))
		},
		DataBytes:     budget,
		StreamTimeout: node.DefaultStreamTimeout,
		Link:          simnet.Link{Delay: 200 * time.Microsecond, Jitter: 300 * time.Microsecond},
	})
	if err != nil {
		tb.Fatal(err)
	}
	if err := c.Form(90 * time.Second); err != nil {
		tb.Fatalf("n=%d: %v", n, err)
	}
	return &replSim{tb: tb, Cluster: c}
}

// replResult is what one run measured.
type replResult struct {
	lat                   []time.Duration // per write: until the last member had it
	converged             time.Duration   // from the last write until every write was everywhere
	deltaBPS, aeBPS, swim float64         // bytes per node per second
	exchanges, failed     int
}

// run sets the loss, writes writes keys (64-byte values) at rate per
// second from random members, and runs until every member has every write
// or limit has passed since the last write.
func (s *replSim) run(loss float64, writes int, rate float64, limit time.Duration) replResult {
	net := s.Net
	net.SetDefault(simnet.Link{Delay: 200 * time.Microsecond, Jitter: 300 * time.Microsecond, Loss: loss})
	n := len(s.Members)
	rng := net.Rand()
	type write struct {
		key   string
		at    time.Time
		have  []bool
		count int
		last  time.Time
	}
	var ws []*write
	sent0 := s.SentBytes()
	d0, a0 := s.DeltaBytes, s.AEBytes
	start := net.Now()
	for k := range writes {
		at := start.Add(time.Duration(float64(k) / rate * float64(time.Second)))
		w := &write{key: fmt.Sprintf("k%d", k), at: at, have: make([]bool, n)}
		ws = append(ws, w)
		net.At(at, func() {
			o := rng.IntN(n)
			m := s.Members[o]
			if err := m.Eng.Store().Put(simNS, w.key, make([]byte, 64), net.Now()); err != nil {
				s.tb.Fatal(err)
			}
			m.Disseminate()
		})
	}
	end := start.Add(time.Duration(float64(writes) / rate * float64(time.Second))).Add(limit)
	pending := slices.Clone(ws)
	for len(pending) > 0 && net.Now().Before(end) {
		net.RunFor(10 * time.Millisecond)
		now := net.Now()
		pending = slices.DeleteFunc(pending, func(w *write) bool {
			if now.Before(w.at) {
				return false
			}
			for i, m := range s.Members {
				if !w.have[i] {
					if _, ok := m.Eng.Store().Get(simNS, w.key); ok {
						w.have[i], w.count, w.last = true, w.count+1, now
					}
				}
			}
			return w.count == n
		})
	}
	if err := s.Err(); err != nil {
		s.tb.Fatal(err)
	}
	if len(pending) > 0 {
		s.tb.Fatalf("n=%d loss=%v: %d of %d writes not everywhere %v after the last", n, loss, len(pending), writes, limit)
	}
	var r replResult
	var last time.Time
	for _, w := range ws {
		r.lat = append(r.lat, w.last.Sub(w.at))
		if w.last.After(last) {
			last = w.last
		}
	}
	r.converged = last.Sub(ws[len(ws)-1].at)
	secs := net.Now().Sub(start).Seconds() * float64(n)
	r.deltaBPS = float64(s.DeltaBytes-d0) / secs
	r.aeBPS = float64(s.AEBytes-a0) / secs
	r.swim = float64(s.SentBytes()-sent0-(s.DeltaBytes-d0)-(s.AEBytes-a0)) / secs
	r.exchanges, r.failed = s.Exchanges, s.Failed
	return r
}

// TestReplicationConverges is the simulation's CI size: 64 members, with
// and without 10 % loss; every write reaches every member within the
// target for N = 64 (1 s of virtual time, so deterministic: a delta must
// spread by gossip, not wait for anti-entropy).
func TestReplicationConverges(t *testing.T) {
	const target = time.Second
	for _, loss := range []float64{0, 0.1} {
		t.Run(fmt.Sprintf("loss=%v", loss), func(t *testing.T) {
			s := newReplSim(t, 1, 64)
			r := s.run(loss, 50, 10, 10*time.Second)
			slices.Sort(r.lat)
			t.Logf("p50 %v, p99 %v, max %v; deltas %.0f B/node/s, anti-entropy %.0f B/node/s, swim %.0f B/node/s; %d exchanges, %d failed",
				r.lat[len(r.lat)/2], r.lat[len(r.lat)*99/100], r.lat[len(r.lat)-1], r.deltaBPS, r.aeBPS, r.swim, r.exchanges, r.failed)
			if worst := r.lat[len(r.lat)-1]; worst > target {
				t.Errorf("a write took %v to reach every member, target %v", worst, target)
			}
		})
	}
}

// BenchmarkSimReplication measures how fast writes reach every member of a
// cluster of N, and what replication costs each member, with the real
// replication core, store and swim cores on simnet (delay 0.2 ms + jitter
// 0.3 ms, the given loss on every packet; streams are lossless but pay
// retransmission delays). One iteration forms the cluster with no loss,
// sets the loss, writes 100 keys at 10 per second from random members, and
// runs until every member has every key. Figures: the p50, p99 and max of
// the time until the last member had a write, the time from the last write
// until all writes were everywhere, and the bytes each member sent per second for deltas,
// for anti-entropy and for swim itself.
func BenchmarkSimReplication(b *testing.B) {
	for _, n := range []int{64, 256, 1000} {
		for _, loss := range []float64{0, 0.1} {
			b.Run(fmt.Sprintf("n=%d/loss=%v", n, loss), func(b *testing.B) {
				var lat []time.Duration
				var r replResult
				seed := uint64(0)
				for b.Loop() {
					seed++
					s := newReplSim(b, seed, n)
					r = s.run(loss, 100, 10, 30*time.Second)
					lat = append(lat, r.lat...)
				}
				slices.Sort(lat)
				b.ReportMetric(float64(lat[len(lat)/2])/1e6, "p50-ms")
				b.ReportMetric(float64(lat[len(lat)*99/100])/1e6, "p99-ms")
				b.ReportMetric(float64(lat[len(lat)-1])/1e6, "max-ms")
				b.ReportMetric(float64(r.converged)/1e6, "converge-ms")
				b.ReportMetric(r.deltaBPS, "delta-B/node/s")
				b.ReportMetric(r.aeBPS, "ae-B/node/s")
				b.ReportMetric(r.swim, "swim-B/node/s")
			})
		}
	}
}

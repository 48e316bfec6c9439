package bench

import (
	"encoding/binary"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/meshnode/meshnode/internal/simnet"
	"github.com/meshnode/meshnode/internal/simnet/swimsim"
	"github.com/meshnode/meshnode/node"
	"github.com/meshnode/meshnode/swim"
	"github.com/meshnode/meshnode/wire"
)

// BenchmarkSimDeltaSpread measures how long a delta takes to reach every
// member of a large cluster under the node's dissemination policy for
// clusters above node.DefaultEagerMembers: the writer gossips the delta
// (piggybacked on probes and gossip packets), and every member that sees it
// for the first time gossips it on; anti-entropy, every
// node.DefaultAntiEntropyInterval with a random member, is modelled as an instant
// pull. The swim cores and their configuration (node.SwimConfig) are the
// real ones; the network is simnet with LAN-like delay, jitter and 1% loss,
// in virtual time.
//
// One iteration bootstraps a cluster, runs until the join news has been
// gossiped out, and then spreads deltas written by random members one after
// another; the figures are the p50 and p99 of the time until the last member
// has a delta, and the bytes each member sent per second meanwhile.
func BenchmarkSimDeltaSpread(b *testing.B) {
	for _, tc := range []struct{ n, deltas int }{{64, 200}, {1000, 20}} {
		b.Run(fmt.Sprintf("n=%d", tc.n), func(b *testing.B) {
			var lat []time.Duration
			var bytesPerNode float64
			for b.Loop() {
				l, bpn := simSpread(b, tc.n, tc.deltas, uint64(len(lat)+1))
				lat = append(lat, l...)
				bytesPerNode = bpn
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2])/1e6, "p50-ms")
			b.ReportMetric(float64(lat[len(lat)*99/100])/1e6, "p99-ms")
			b.ReportMetric(float64(lat[len(lat)-1])/1e6, "max-ms")
			b.ReportMetric(bytesPerNode, "B/node/s")
		})
	}
}

func simSpread(b *testing.B, n, deltas int, seed uint64) ([]time.Duration, float64) {
	cfg := node.SwimConfig("lan")
	link := simnet.Link{Loss: 0.01, Delay: 200 * time.Microsecond, Jitter: 300 * time.Microsecond}
	c, err := swimsim.New(seed, n, cfg, link)
	if err != nil {
		b.Fatal(err)
	}
	if _, ok := c.Bootstrap(60*time.Second, 0); !ok {
		b.Fatalf("n=%d did not converge", n)
	}
	// Measure in steady state: after a bootstrap every member still has
	// the join news of the others queued, ahead of Data in priority.
	c.RunUntil(60*time.Second, func() bool {
		for _, nd := range c.Nodes {
			if nd.Core.Pending() > 0 {
				return false
			}
		}
		return true
	})
	var (
		cur   uint64 // the delta being spread
		seen  = make([]uint64, n)
		count int
		last  time.Time
	)
	see := func(obs int, payload []byte) {
		id := binary.LittleEndian.Uint64(payload)
		if id != cur || seen[obs] == id {
			return
		}
		seen[obs] = id
		count++
		last = c.Net.Now()
		// Infection: a member gossips a delta on the first time it sees it.
		_ = c.Nodes[obs].Core.Broadcast(wire.Data{Kind: 1, Payload: payload})
	}
	c.OnData = func(obs int, d swim.Received) { see(obs, d.Data.Payload) }
	rng := c.Net.Rand()
	// Anti-entropy: each member pulls from a random member once per
	// period, at its own phase.
	period := node.DefaultAntiEntropyInterval
	nextAE := make([]time.Time, n)
	for i := range nextAE {
		nextAE[i] = c.Net.Now().Add(time.Duration(rng.Int64N(int64(period))))
	}
	antiEntropy := func(payload []byte) {
		now := c.Net.Now()
		for i := range n {
			if now.Before(nextAE[i]) {
				continue
			}
			nextAE[i] = now.Add(period/2 + time.Duration(rng.Int64N(int64(period))))
			if peer := rng.IntN(n); seen[peer] == cur {
				see(i, payload)
			}
		}
	}
	var sent0 uint64
	for i := range n {
		sent0 += c.Net.Stats(i).BytesSent
	}
	start := c.Net.Now()
	var lat []time.Duration
	for k := range deltas {
		cur = uint64(k + 1)
		origin := rng.IntN(n)
		payload := make([]byte, 120) // a typical small store delta
		binary.LittleEndian.PutUint64(payload, cur)
		seen[origin], count = cur, 1
		t0 := c.Net.Now()
		if err := c.Nodes[origin].Core.Broadcast(wire.Data{Kind: 1, Payload: payload}); err != nil {
			b.Fatal(err)
		}
		c.Nodes[origin].Flush()
		c.Net.Wake(origin)
		for count < n && c.Net.Now().Sub(t0) < 30*time.Second {
			c.Net.RunFor(5 * time.Millisecond)
			antiEntropy(payload)
		}
		if count < n {
			b.Fatalf("n=%d: delta %d reached %d members in 30s", n, k, count)
		}
		lat = append(lat, last.Sub(t0))
	}
	var sent uint64
	for i := range n {
		sent += c.Net.Stats(i).BytesSent
	}
	secs := c.Net.Now().Sub(start).Seconds()
	return lat, float64(sent-sent0) / float64(n) / secs
}

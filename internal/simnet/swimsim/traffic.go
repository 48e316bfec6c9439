package swimsim

import (
	"slices"
	"time"
)

// Traffic is what the nodes sent over a window, UDP and TCP together, and
// what simulating it cost.
type Traffic struct {
	MsgsPerNodeSec  float64 // packets sent plus streams opened, per node per simulated second
	BytesPerNodeSec float64 // bytes sent in packets and streams, per node per simulated second
	WallPerSimMin   float64 // wall-clock seconds per simulated minute
}

// Meter measures traffic from the moment it was made.
type Meter struct {
	c     *Cluster
	start time.Time
	wall  time.Time
	pkts  uint64
	bytes uint64
}

// Measure starts a meter of the cluster's traffic.
func (c *Cluster) Measure() *Meter {
	m := &Meter{c: c, start: c.Net.Now(), wall: time.Now()}
	m.pkts, m.bytes = m.totals()
	return m
}

func (m *Meter) totals() (pkts, bytes uint64) {
	for i := range m.c.Nodes {
		s := m.c.Net.Stats(i)
		pkts += s.PacketsSent + s.StreamsOpened
		bytes += s.BytesSent + s.StreamBytesSent
	}
	return pkts, bytes
}

// Traffic returns the traffic since Measure.
func (m *Meter) Traffic() Traffic {
	p, by := m.totals()
	sim := m.c.Net.Now().Sub(m.start)
	secs := sim.Seconds() * float64(len(m.c.Nodes))
	return Traffic{
		MsgsPerNodeSec:  float64(p-m.pkts) / secs,
		BytesPerNodeSec: float64(by-m.bytes) / secs,
		WallPerSimMin:   time.Since(m.wall).Seconds() / sim.Minutes(),
	}
}

// Bandwidth is what the nodes of a converged cluster send when nothing
// happens.
type Bandwidth struct {
	MeanKBPerNodeSec float64 // KiB sent per node per second, mean over the run
	P99KBPerNodeSec  float64 // p99 over every node's per-second figures
	WallPerSimMin    float64 // wall-clock seconds per simulated minute
}

// SteadyState runs for d (whole seconds), sampling every node's bytes sent
// (UDP and TCP) every simulated second. The mean can exceed the p99: a
// push-pull second is rarer than 1%.
func (s *Scenario) SteadyState(d time.Duration) Bandwidth {
	prev := make([]uint64, len(s.Nodes))
	for i := range s.Nodes {
		st := s.Net.Stats(i)
		prev[i] = st.BytesSent + st.StreamBytesSent
	}
	var samples []float64
	var total uint64
	start := time.Now()
	for range int(d / time.Second) {
		s.Net.RunFor(time.Second)
		for i := range s.Nodes {
			st := s.Net.Stats(i)
			cur := st.BytesSent + st.StreamBytesSent
			samples = append(samples, float64(cur-prev[i]))
			total += cur - prev[i]
			prev[i] = cur
		}
	}
	wall := time.Since(start).Seconds() / d.Minutes()
	slices.Sort(samples)
	return Bandwidth{
		MeanKBPerNodeSec: float64(total) / float64(len(samples)) / 1024,
		P99KBPerNodeSec:  samples[int(0.99*float64(len(samples)))] / 1024,
		WallPerSimMin:    wall,
	}
}

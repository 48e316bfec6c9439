package swimsim

import (
	"math"
	"time"

	"github.com/meshnode/meshnode/swim"
)

// LossResult is what UniformLoss saw.
type LossResult struct {
	// Suspicions counts the suspicions raised during the run (all false:
	// every node is healthy); PerNodeHour is that per node per hour.
	Suspicions  uint64
	PerNodeHour float64
	// Deaths are the death events during the run (all of healthy nodes).
	Deaths Records
	// Stats are the cores' counters summed at the end (since the start).
	Stats   swim.Stats
	Traffic Traffic
}

// UniformLoss sets the given loss on every link and runs for d.
func (s *Scenario) UniformLoss(loss float64, d time.Duration) LossResult {
	s.SetLinkLoss(loss)
	start := s.Net.Now()
	before := s.SumStats(s.All()).SuspicionsRaised
	m := s.Measure()
	s.Net.RunFor(d)
	var res LossResult
	res.Stats = s.SumStats(s.All())
	res.Suspicions = res.Stats.SuspicionsRaised - before
	res.PerNodeHour = float64(res.Suspicions) / (float64(len(s.Nodes)) * d.Hours())
	res.Deaths = s.Rec.Filter("", swim.EventDead, start)
	res.Traffic = m.Traffic()
	return res
}

// SlowConfig is the configuration edit of the slow-node scenario: the local
// health multiplier on or off (lhm), and RTT-adaptive probe timeouts or
// fixed ones (adaptive; fixed is not a shipped configuration).
func SlowConfig(lhm, adaptive bool) func(*swim.Config) {
	return func(cfg *swim.Config) {
		cfg.DisableHealth = !lhm
		if !adaptive {
			cfg.MinRTTSamples = math.MaxInt32
		}
	}
}

// SlowResult is what SlowNodes saw.
type SlowResult struct {
	Suspicions uint64  // raised during the run (all false)
	Deaths     Records // death events during the run
}

// SlowNodes slows 5% of the nodes (at least one; the last IDs): every
// packet they send or receive is delayed 200-500 ms. Then it runs for d.
func (s *Scenario) SlowNodes(d time.Duration) SlowResult {
	n := len(s.Nodes)
	for i := range max(1, n/20) {
		s.Net.SetSlow(n-1-i, 200*time.Millisecond, 500*time.Millisecond)
	}
	start := s.Net.Now()
	before := s.SumStats(s.All()).SuspicionsRaised
	s.Net.RunFor(d)
	return SlowResult{
		Suspicions: s.SumStats(s.All()).SuspicionsRaised - before,
		Deaths:     s.Rec.Filter("", swim.EventDead, start),
	}
}

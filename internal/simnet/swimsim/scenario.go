package swimsim

import (
	"fmt"
	"slices"
	"time"

	"github.com/meshnode/meshnode/internal/simnet"
	"github.com/meshnode/meshnode/swim"
)

// LAN is a LAN link: 0.5 to 1.5 ms one way.
var LAN = simnet.Link{Delay: 500 * time.Microsecond, Jitter: time.Millisecond}

// seedNodes are the members every scenario joins (and rejoins) through.
var seedNodes = []int{0, 1, 2}

// TB is the part of testing.TB the set-up uses to stop a test or benchmark
// whose cluster cannot be built or does not converge.
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
}

// Scenario is a cluster of swim cores with the LAN profile, set up for one
// of the simulation scenarios, and a recorder of its membership events.
// Its methods run from the current virtual time and return what happened;
// several may run one after another on the same cluster.
type Scenario struct {
	*Cluster
	// Rec records every suspect, alive, dead and leave event (it is the
	// cluster's OnEvent; a caller that replaces OnEvent stops it).
	Rec *Recorder
	// Link is the default link the cluster was built with; UniformLoss and
	// SetLinkLoss derive their lossy link from it.
	Link simnet.Link
}

// NewScenario builds n nodes on link l, each with swim.LANConfig edited by
// edit in order, and starts recording their events. The nodes have not
// joined yet: call Boot. It stops tb if a core cannot be built.
func NewScenario(tb TB, seed uint64, n int, l simnet.Link, edit ...func(*swim.Config)) *Scenario {
	tb.Helper()
	cfg := swim.LANConfig()
	for _, e := range edit {
		e(&cfg)
	}
	c, err := New(seed, n, cfg, l)
	if err != nil {
		tb.Fatalf("swimsim: %v", err)
	}
	return &Scenario{Cluster: c, Rec: NewRecorder(c), Link: l}
}

// Boot makes every node join through nodes 0, 1 and 2, each at a random
// time within 2 s, and runs until every node sees every other alive. It
// returns the time that took, and stops tb if it takes longer than limit.
func (s *Scenario) Boot(tb TB, limit time.Duration) time.Duration {
	tb.Helper()
	d, ok := s.Bootstrap(limit, seedNodes...)
	if !ok {
		tb.Fatalf("swimsim: %d nodes not converged %v after the first join", len(s.Nodes), limit)
	}
	return d
}

// Settle runs 10 s, after a bootstrap, so that the join news has spread
// before a fault is injected.
func (s *Scenario) Settle() { s.Net.RunFor(10 * time.Second) }

// SetLinkLoss makes every link the scenario's link with the given loss.
func (s *Scenario) SetLinkLoss(loss float64) {
	l := s.Link
	l.Loss = loss
	s.Net.SetDefault(l)
}

// others returns every node ID but skip.
func (s *Scenario) others(skip int) []int {
	return slices.DeleteFunc(s.All(), func(i int) bool { return i == skip })
}

// seenAliveByAll reports whether every node of obs sees node i alive.
func (s *Scenario) seenAliveByAll(obs []int, i int) bool {
	for _, o := range obs {
		if !s.SeesAlive(o, i) {
			return false
		}
	}
	return true
}

// Quantile returns the q-quantile of ds: the element at index q·len(ds) of
// the sorted samples, clamped to the last. ds must not be empty; it is not
// modified.
func Quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		panic(fmt.Sprintf("swimsim: quantile %v of no samples", q))
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(int(q*float64(len(s))), len(s)-1)]
}

// Median returns Quantile(ds, 0.5), the upper median.
func Median(ds []time.Duration) time.Duration { return Quantile(ds, 0.5) }

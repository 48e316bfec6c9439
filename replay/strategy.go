package replay

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/meshnode/meshnode/radix"
)

// Strategy is a way to route requests. The strategies are this package's
// own (Strategies lists them); a run takes them by name.
type Strategy interface {
	// Name is the strategy's name in flags and reports.
	Name() string
	// init prepares the strategy for a run (per-gateway state).
	init(s *sim)
	// route picks the engine for request i arriving at gateway g at now.
	route(s *sim, g, i int, now time.Duration) int
	// routed tells the strategy that request i went to engine w.
	routed(s *sim, g, i, w int, now time.Duration)
}

// Strategy names, in the order reports list them.
const (
	StrategyRandom     = "random"
	StrategyRoundRobin = "round-robin"
	StrategyLeastLoad  = "least-loaded"
	StrategyHash       = "hash"
	StrategyLocal      = "local-index"
	StrategyRecorded   = "meshnode-recorded"
	StrategyEvents     = "meshnode-events"
	StrategyOracle     = "oracle"
)

// Strategies returns the names of every strategy, in report order.
func Strategies() []string {
	return []string{StrategyRandom, StrategyRoundRobin, StrategyLeastLoad, StrategyHash,
		StrategyLocal, StrategyRecorded, StrategyEvents, StrategyOracle}
}

// newStrategy returns a fresh strategy by name.
func newStrategy(name string) (Strategy, error) {
	switch name {
	case StrategyRandom:
		return &random{}, nil
	case StrategyRoundRobin:
		return &roundRobin{}, nil
	case StrategyLeastLoad:
		return &leastLoaded{}, nil
	case StrategyHash:
		return &hashFirst{}, nil
	case StrategyLocal:
		return &indexed{name: StrategyLocal}, nil
	case StrategyRecorded:
		return &indexed{name: StrategyRecorded, shared: true}, nil
	case StrategyEvents:
		return newEventsStrategy(), nil
	case StrategyOracle:
		return &oracle{}, nil
	}
	return nil, fmt.Errorf("replay: unknown strategy %q (known: %s)", name, strings.Join(Strategies(), ", "))
}

type noRecord struct{}

func (noRecord) routed(*sim, int, int, int, time.Duration) {}

// random sends each request to an engine drawn uniformly.
type random struct{ noRecord }

func (*random) Name() string { return StrategyRandom }
func (*random) init(*sim)    {}
func (*random) route(s *sim, _, _ int, _ time.Duration) int {
	return s.rng.IntN(len(s.engines))
}

// roundRobin: each gateway cycles over the engines, gateway g starting at
// engine g.
type roundRobin struct {
	noRecord
	next []int
}

func (*roundRobin) Name() string { return StrategyRoundRobin }
func (r *roundRobin) init(s *sim) {
	r.next = make([]int, len(s.gws))
	for g := range r.next {
		r.next[g] = g % s.cfg.Workers
	}
}
func (r *roundRobin) route(s *sim, g, _ int, _ time.Duration) int {
	w := r.next[g]
	r.next[g] = (w + 1) % len(s.engines)
	return w
}

// leastLoaded sends each request to the engine with the fewest requests in
// flight, ties drawn at random.
type leastLoaded struct {
	noRecord
	ties []int
}

func (*leastLoaded) Name() string { return StrategyLeastLoad }
func (*leastLoaded) init(*sim)    {}
func (l *leastLoaded) route(s *sim, _, _ int, _ time.Duration) int {
	l.ties = l.ties[:0]
	best := -1
	for w := range s.engines {
		n := s.inFlight(w)
		switch {
		case best < 0 || n < best:
			best = n
			l.ties = append(l.ties[:0], w)
		case n == best:
			l.ties = append(l.ties, w)
		}
	}
	return l.ties[s.rng.IntN(len(l.ties))]
}

// hashFirst is consistent hashing on the prompt's first block: rendezvous
// hashing of the block's id over the engines, blind to load.
type hashFirst struct{ noRecord }

func (*hashFirst) Name() string { return StrategyHash }
func (*hashFirst) init(*sim)    {}
func (*hashFirst) route(s *sim, _, i int, _ time.Duration) int {
	key := blockLineage(0, s.reqs[i].Blocks[0])
	best, bestH := 0, uint64(0)
	for w := range s.engines {
		if h := blockLineage(key, uint64(w)+1); w == 0 || h > bestH {
			best, bestH = w, h
		}
	}
	return best
}

// indexed routes with a radix.Index per gateway and the cache-aware policy
// (radix.Index.RoutePages), recording each route in the gateway's index.
// Shared (meshnode recorded): every recorded route is replicated to the
// other gateways as a radix delta. Not shared (local index): each gateway
// knows only its own routes, a fleet without a working mesh.
type indexed struct {
	name   string
	shared bool
	cands  []radix.Candidate
}

func (x *indexed) Name() string { return x.name }

// sharesIndex: the gateways' indexes replicate over a mesh (meshes).
func (x *indexed) sharesIndex() bool { return x.shared }

func newIndex(s *sim) *radix.Index {
	return radix.New(radix.Config{
		WorkerPages: int64(s.cfg.CacheTokens / s.cfg.PageTokens),
		Models:      map[string]radix.ModelConfig{Model: {PageTokens: s.cfg.PageTokens}},
	})
}

func (x *indexed) init(s *sim) {
	for _, gw := range s.gws {
		gw.ix = newIndex(s)
	}
}

func (x *indexed) route(s *sim, g, i int, _ time.Duration) int {
	x.cands = s.candidates(x.cands[:0])
	d, err := s.gws[g].ix.RoutePages(s.pages[i], x.cands, s.cfg.Policy)
	if err != nil {
		panic(err) // candidates are never empty
	}
	s.expected = d.MatchedPages * s.cfg.PageTokens
	return s.workerIndex(d.Worker)
}

func (x *indexed) routed(s *sim, g, i, w int, now time.Duration) {
	d, err := s.gws[g].ix.Insert(s.workers[w], 1, stamp(now), s.pages[i])
	if err != nil || !x.shared {
		return
	}
	s.replicate(g, d)
}

// workerIndex maps a worker name back to its engine.
func (s *sim) workerIndex(name string) int {
	i := slices.Index(s.workers, name)
	if i < 0 {
		panic("replay: unknown worker " + name)
	}
	return i
}

// oracle is one global router that sees every engine's exact cache and
// queue with no delay and picks the lowest estimated time to first token:
// the wait before prefill starts plus the uncached tokens' prefill time.
// Ties go to the fewest requests in flight, then the lowest engine.
type oracle struct{ noRecord }

func (*oracle) Name() string { return StrategyOracle }
func (*oracle) init(*sim)    {}
func (*oracle) route(s *sim, _, i int, now time.Duration) int {
	in := s.reqs[i].InputTokens
	best, bestT, bestL := 0, time.Duration(0), 0
	for w, e := range s.engines {
		t := e.m.EstimateTTFT(now, s.hashes[i], in)
		l := e.inFlight()
		if w == 0 || t < bestT || t == bestT && l < bestL {
			best, bestT, bestL = w, t, l
		}
	}
	return best
}

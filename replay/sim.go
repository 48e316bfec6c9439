package replay

import (
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"time"

	"github.com/meshnode/meshnode/engine"
	"github.com/meshnode/meshnode/internal/simnet"
	"github.com/meshnode/meshnode/internal/simnet/replsim"
	"github.com/meshnode/meshnode/kvevents"
	"github.com/meshnode/meshnode/radix"
	"github.com/meshnode/meshnode/replica"
)

// sim is one run of one strategy at one fleet size. It is driven by a
// simnet.Net: the trace's arrivals, the engines' timers and the gateways'
// replication are its events, in virtual time.
type sim struct {
	cfg     Config
	reqs    []Request
	pages   [][]uint64 // each request's page lineage hashes
	net     *simnet.Net
	rng     *rand.Rand
	strat   Strategy
	engines []*engineNode
	gws     []*gateway
	workers []string // worker names, "w0".."wN"
	// hashes are each request's engine block hashes; withTokens makes the
	// engines see the prompts' tokens too (for BlockStored token ids).
	hashes     [][]uint64
	withTokens bool

	// Per request: filled when its first token comes.
	first []engine.Result
	seen  []bool
	done  int

	// The gateways' mesh (nil: none); forming is set while the fleet is
	// built, early holds the gateways' changes made meanwhile, scratch is
	// the batch being encoded.
	mesh    *replsim.Cluster
	forming bool
	early   []earlyBatch
	scratch radix.Batch
	// t0 is the virtual time at which the trace starts: after the mesh
	// has formed.
	t0 time.Time
	// Loads through the mesh (loads.go), nil without: per gateway, and
	// the gateway that routed each request.
	mloads []meshLoad
	reqGw  []int32

	// queued is, per engine, the prompt tokens routed to it whose first
	// token has not come, less the tokens each route expected cached:
	// the prefill work a gateway's proxy sees queued (the load of the cost
	// rule). est holds each request's share; expected is what the last
	// route expected cached.
	queued   []int
	est      []int
	expected int
	// seenQueued and seenInFlight are the loads as the strategies see
	// them: a snapshot (Config.LoadInterval), taken again at loadAt.
	seenQueued, seenInFlight []int
	loadAt                   time.Duration
	// own[g] and ownTokens[g] are gateway g's routes since the snapshot,
	// per engine, in requests and in queued tokens (LoadOwnRoutes).
	own, ownTokens [][]int
	curG           int // the gateway routing now

	decisions int
	routeWall time.Duration
	wallNow   func() time.Time // wall clock for decisions per second; nil: not measured
}

func (s *sim) at(i int) time.Duration {
	return time.Duration(float64(s.reqs[i].At) / s.cfg.Speedup)
}

// since is virtual time t as a time since the trace's start; vtime the
// reverse.
func (s *sim) since(t time.Time) time.Duration { return t.Sub(s.t0) }

func (s *sim) vtime(d time.Duration) time.Time { return s.t0.Add(d) }

// stamp is the index stamp of virtual time d: milliseconds (the index keeps
// uint32 stamps; 49 days of trace fit).
func stamp(d time.Duration) uint32 { return uint32(d / time.Millisecond) }

func addrOf(i int) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, byte(i >> 16), byte(i >> 8), byte(i)}), 7946)
}

// newSim builds the fleet for one run. Gateways of a strategy that shares
// its index form their mesh first (newMesh); the trace starts when it has.
func newSim(cfg Config, reqs []Request, pages, hashes [][]uint64, strat Strategy) (*sim, error) {
	s := &sim{
		cfg:    cfg,
		reqs:   reqs,
		pages:  pages,
		hashes: hashes,
		rng:    rand.New(rand.NewPCG(cfg.Seed, 0x5eed)),
		strat:  strat,
		first:  make([]engine.Result, len(reqs)),
		seen:   make([]bool, len(reqs)),
		queued: make([]int, cfg.Workers),
		est:    make([]int, len(reqs)),
		t0:     simnet.Start,
	}
	_, s.withTokens = strat.(eventSink)
	for w := range cfg.Workers {
		s.workers = append(s.workers, fmt.Sprintf("w%d", w))
	}
	if cfg.LoadInterval > 0 && cfg.LoadOwnRoutes {
		s.own = make([][]int, cfg.Gateways)
		s.ownTokens = make([][]int, cfg.Gateways)
		for g := range s.own {
			s.own[g] = make([]int, cfg.Workers)
			s.ownTokens[g] = make([]int, cfg.Workers)
		}
	}
	for g := range cfg.Gateways {
		s.gws = append(s.gws, &gateway{s: s, g: g})
	}
	m, ok := strat.(meshes)
	s.forming = ok && m.sharesIndex() && cfg.Gateways > 1
	strat.init(s)
	if s.forming {
		if err := s.newMesh(); err != nil {
			return nil, err
		}
		s.forming = false
		s.t0 = s.net.Now()
		for _, b := range s.early {
			s.gws[b.g].member.Broadcast(replica.KindIndexBatch, b.data)
		}
		s.early = nil
		s.initMeshLoads()
	} else {
		s.net = simnet.New(cfg.Seed, cfg.Net.Link)
	}
	s.net.Add(addrOf(0), &driver{s: s})
	for w := range cfg.Workers {
		m, err := newEngine(cfg, len(reqs))
		if err != nil {
			return nil, err
		}
		e := &engineNode{s: s, w: w, m: m}
		e.id = s.net.Add(addrOf(1+w), e)
		s.engines = append(s.engines, e)
	}
	if s.mesh == nil {
		for _, gw := range s.gws {
			gw.id = s.net.Add(addrOf(1+cfg.Workers+gw.g), gw)
		}
	}
	for _, gw := range s.gws {
		for _, e := range s.engines {
			s.net.SetLink(e.id, gw.id, cfg.Net.EventLink)
		}
	}
	return s, nil
}

// run replays every request and returns when each has its first token.
func (s *sim) run() error {
	last := s.at(len(s.reqs) - 1)
	s.net.RunUntil(s.vtime(last))
	// Drain: engines finish what they hold. Bounded by the work queued.
	for step := 0; s.done < len(s.reqs); step++ {
		if step > 1_000_000 {
			return fmt.Errorf("replay: %d of %d requests never got a first token", len(s.reqs)-s.done, len(s.reqs))
		}
		next := time.Duration(math.MaxInt64)
		for _, e := range s.engines {
			if t, ok := e.m.Next(); ok && t < next {
				next = t
			}
		}
		if next == time.Duration(math.MaxInt64) {
			return fmt.Errorf("replay: %d of %d requests never got a first token and the engines are idle", len(s.reqs)-s.done, len(s.reqs))
		}
		s.net.RunUntil(s.vtime(max(next, s.since(s.net.Now()))))
	}
	if s.mesh != nil {
		return s.mesh.Err()
	}
	return nil
}

// arrive routes request i at now.
func (s *sim) arrive(now time.Duration, i int) {
	for _, e := range s.engines {
		e.advance(now)
	}
	g := i % len(s.gws)
	var t0 time.Time
	if s.wallNow != nil {
		t0 = s.wallNow()
	}
	if s.mloads != nil {
		s.meshLoadsAt(g)
	} else if iv := s.cfg.LoadInterval; iv > 0 && now >= s.loadAt {
		s.seenQueued = append(s.seenQueued[:0], s.queued...)
		s.seenInFlight = s.seenInFlight[:0]
		for _, e := range s.engines {
			s.seenInFlight = append(s.seenInFlight, e.inFlight())
		}
		s.loadAt = (now/iv + 1) * iv
		for g := range s.own {
			clear(s.own[g])
			clear(s.ownTokens[g])
		}
	}
	s.expected = 0
	s.curG = g
	w := s.strat.route(s, g, i, now)
	if s.wallNow != nil {
		s.routeWall += s.wallNow().Sub(t0)
	}
	s.decisions++
	s.est[i] = max(s.reqs[i].InputTokens-s.expected, 1)
	s.queued[w] += s.est[i]
	if s.mloads != nil {
		s.routedLoad(g, i, w)
	}
	if s.own != nil {
		s.own[g][w]++
		s.ownTokens[g][w] += s.est[i]
	}
	s.strat.routed(s, g, i, w, now)
	e := s.engines[w]
	s.submit(e, now, i)
	s.net.Wake(e.id)
}

// candidates appends the engines as radix candidates with their loads:
// queued prefill tokens under the cost rule, requests in flight otherwise.
func (s *sim) candidates(dst []radix.Candidate) []radix.Candidate {
	for w := range s.engines {
		dst = append(dst, radix.Candidate{Worker: s.workers[w], Load: s.load(w)})
	}
	return dst
}

// load is engine w's load as the strategies see it: queued prefill tokens
// under the cost rule, requests in flight otherwise, exact or a snapshot.
func (s *sim) load(w int) int {
	snap := s.cfg.LoadInterval > 0
	var own, ownTokens int
	if s.own != nil {
		own, ownTokens = s.own[s.curG][w], s.ownTokens[s.curG][w]
	}
	switch {
	case s.cfg.Policy.CostWeight > 0 && snap:
		return s.seenQueued[w] + ownTokens
	case s.cfg.Policy.CostWeight > 0:
		return s.queued[w]
	case snap:
		return s.seenInFlight[w] + own
	}
	return s.engines[w].inFlight()
}

// inFlight is engine w's requests in flight as the strategies see them.
func (s *sim) inFlight(w int) int {
	if s.cfg.LoadInterval > 0 {
		n := s.seenInFlight[w]
		if s.own != nil {
			n += s.own[s.curG][w]
		}
		return n
	}
	return s.engines[w].inFlight()
}

// driver feeds the trace's requests in at their arrival times.
type driver struct {
	s    *sim
	next int
}

func (d *driver) Receive(time.Time, netip.AddrPort, any)          {}
func (d *driver) Serve(time.Time, netip.AddrPort, any) (any, int) { return nil, 0 }
func (d *driver) StreamDone(time.Time, uint64, any, error)        {}
func (d *driver) Tick(now time.Time) {
	t := d.s.since(now)
	for d.next < len(d.s.reqs) && d.s.at(d.next) <= t {
		d.s.arrive(t, d.next)
		d.next++
	}
}

func (d *driver) Next() time.Time {
	if d.next >= len(d.s.reqs) {
		return time.Time{}
	}
	return d.s.vtime(d.s.at(d.next))
}

// engineNode runs one engine model on the network: its timers are simnet
// ticks, and its KV events travel to the gateway that subscribes to them.
type engineNode struct {
	s   *sim
	w   int
	id  int
	m   *engine.Model
	ids []int // request index by engine ID - 1
}

func (e *engineNode) Receive(time.Time, netip.AddrPort, any)          {}
func (e *engineNode) Serve(time.Time, netip.AddrPort, any) (any, int) { return nil, 0 }
func (e *engineNode) StreamDone(time.Time, uint64, any, error)        {}
func (e *engineNode) Tick(now time.Time)                              { e.advance(e.s.since(now)) }

func (e *engineNode) Next() time.Time {
	if t, ok := e.m.Next(); ok {
		return e.s.vtime(t)
	}
	return time.Time{}
}

// advance runs the engine to now and hands out what it produced.
func (e *engineNode) advance(now time.Duration) {
	s := e.s
	out := e.m.Advance(now)
	for _, r := range out.Results {
		i := e.ids[r.ID-1]
		if !s.seen[i] {
			s.seen[i] = true
			s.done++
			s.queued[e.w] -= s.est[i]
			if s.mloads != nil {
				s.prefilledLoad(i, e.w, r.Done)
			}
		}
		s.first[i] = r
	}
	if len(out.Events) == 0 {
		return
	}
	if es, ok := s.strat.(eventSink); ok {
		g := es.subscriber(s, e.w)
		m, size := es.publish(s, e.w, out.Events, now)
		s.net.Host(e.id).Send(s.net.Addr(s.gws[g].id), engineEvents{w: e.w, m: m}, size)
	}
}

// engineEvents is a batch of an engine's KV events on its way to the
// gateway that subscribes to them.
type engineEvents struct {
	w int
	m kvevents.Message
}

// eventSink is a strategy that consumes engine KV events.
type eventSink interface {
	// subscriber returns the gateway that subscribes to engine w's events.
	subscriber(s *sim, w int) int
	// publish turns engine w's events of one instant into the message
	// its engine publishes, and its size.
	publish(s *sim, w int, evs []engine.Event, now time.Duration) (kvevents.Message, int)
	// events hands gateway g a message of engine w's event stream.
	events(s *sim, g, w int, m kvevents.Message, now time.Duration)
}

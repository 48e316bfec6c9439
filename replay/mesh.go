package replay

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"time"

	"github.com/meshnode/meshnode/internal/simnet"
	"github.com/meshnode/meshnode/internal/simnet/replsim"
	"github.com/meshnode/meshnode/node"
	"github.com/meshnode/meshnode/radix"
	"github.com/meshnode/meshnode/replica"
	"github.com/meshnode/meshnode/wire"
)

// gateway is one gateway replica. Strategies with an index give each
// gateway its own radix.Index. In a fleet of more than one gateway, the
// shared ones (meshnode-recorded, meshnode-events) make each gateway a
// member of a mesh that runs the product's replication code
// (internal/simnet/replsim): a swim core with node's configuration for the
// Network.Profile, and a replication core (replica.Engine, node's
// configuration) over the gateway's index and a store. Each local change
// to a gateway's index is encoded as a radix batch (radix.AppendBatch) and
// handed to the replication core, which addresses it as a node's does:
// in one packet to every live member while the fleet has at most
// node.DefaultEagerMembers (16) gateways, by swim's gossip above, over a
// stream when too large for a packet, and anti-entropy exchanges (store
// and index pages) run at the core's pace. Receivers decode and apply
// with the core's own code. Delays, and the bytes, come from simnet's
// link model; the mesh forms (swim's join) before the trace starts.
type gateway struct {
	s  *sim
	g  int
	id int
	ix *radix.Index
	// member is the gateway's mesh member; nil without a mesh.
	member *replsim.Member
	// next timer of the strategy (pending expiry), 0 for none.
	timer time.Duration
}

// meshes reports whether a strategy replicates its gateways' indexes.
type meshes interface{ sharesIndex() bool }

// newMesh makes the gateways members of a mesh and forms it: swim joins
// every gateway through gateway 0, and the run starts once every gateway
// sees every other alive and swim has no news left to gossip.
func (s *sim) newMesh() error {
	cfg := s.cfg
	budget, err := node.DeltaBudget(wire.Config{})
	if err != nil {
		return err
	}
	c, err := replsim.New(cfg.Seed, len(s.gws), replsim.Config{
		Swim: node.SwimConfig(cfg.Net.Profile),
		Replica: func(i int) replica.Config {
			return node.ReplicaConfig(node.Config{EagerMembers: cfg.Net.EagerMembers}, rand.New(rand.NewPCG(cfg.Seed, uint64(i)|1<<40)))
		},
		Index:         func(i int) *radix.Index { return s.gws[i].ix },
		DataBytes:     budget,
		StreamTimeout: node.DefaultStreamTimeout,
		Link:          cfg.Net.Link,
	})
	if err != nil {
		return err
	}
	for g, gw := range s.gws {
		gw.id = g
		gw.member = c.Members[g]
		gw.member.App = gw
	}
	s.mesh = c
	s.net = c.Net
	if err := c.Form(formLimit); err != nil {
		return fmt.Errorf("replay: the mesh of %d gateways: %w", len(s.gws), err)
	}
	return nil
}

// formLimit bounds the mesh's formation in virtual time.
const formLimit = 5 * time.Minute

// replicate hands gateway g's local deltas to its replication core as one
// radix batch, as a node's flush does.
func (s *sim) replicate(g int, ds ...radix.Delta) {
	if len(ds) == 0 || s.mesh == nil && !s.forming {
		return
	}
	s.scratch.Reset()
	for _, d := range ds {
		s.scratch.Add(d)
	}
	if s.mesh == nil {
		// Changes made while the fleet is built go out once it has formed.
		data, err := radix.AppendBatch(nil, &s.scratch)
		if err != nil {
			panic(fmt.Sprintf("replay: encode a delta: %v", err)) // our own deltas
		}
		s.early = append(s.early, earlyBatch{g: g, data: data})
		return
	}
	if err := s.gws[g].member.BroadcastIndex(&s.scratch); err != nil {
		panic(fmt.Sprintf("replay: encode a delta: %v", err)) // our own deltas
	}
}

// earlyBatch is a gateway's local change made before its mesh formed.
type earlyBatch struct {
	g    int
	data []byte
}

// Receive hands engine events to the strategy.
func (gw *gateway) Receive(now time.Time, _ netip.AddrPort, p any) {
	s := gw.s
	if p, ok := p.(engineEvents); ok {
		if es, ok := s.strat.(eventSink); ok {
			es.events(s, gw.g, p.w, p.m, s.since(now))
		}
	}
}

func (gw *gateway) Serve(time.Time, netip.AddrPort, any) (any, int) { return nil, 0 }
func (gw *gateway) StreamDone(time.Time, uint64, any, error)        {}

// Tick runs the strategy's timer and publishes the gateway's load.
func (gw *gateway) Tick(now time.Time) {
	s := gw.s
	t := s.since(now)
	if gw.timer > 0 && t >= gw.timer {
		gw.timer = 0
		if tk, ok := s.strat.(ticker); ok {
			gw.timer = tk.tick(s, gw.g, t)
		}
	}
	if s.mloads != nil && t >= s.mloads[gw.g].next {
		s.mloads[gw.g].next = s.publishLoad(gw.g, t)
	}
}

// Next is the strategy's timer or the next publication of the gateway's
// load; neither runs while the mesh forms, before the trace's time starts.
func (gw *gateway) Next() time.Time {
	s := gw.s
	if s.forming {
		return time.Time{}
	}
	next := gw.timer
	if s.mloads != nil && (next == 0 || s.mloads[gw.g].next < next) {
		next = s.mloads[gw.g].next
	}
	if next == 0 {
		return time.Time{}
	}
	return s.vtime(next)
}

// ticker is a strategy with a per-gateway timer (pending expiry).
type ticker interface {
	// tick runs gateway g's timer at now and returns when it is next due
	// (0: never).
	tick(s *sim, g int, now time.Duration) time.Duration
}

var _ simnet.Node = (*gateway)(nil)

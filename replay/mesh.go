package replay

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/meshnode/meshnode/radix"
)

// gateway is one gateway replica on the network. Strategies with an index
// give each gateway its own radix.Index; the shared ones replicate every
// local change to the others as radix deltas:
//
//   - in a fleet of at most Network.EagerGateways, a delta goes in one
//     packet to every other gateway, as replica sends deltas while the
//     cluster is small;
//   - above, it is gossiped: every GossipInterval (each gateway with its
//     own phase) a gateway sends what it has to gossip to GossipFanout
//     random others, each delta in at most max(6, RetransmitMult *
//     ceil(log10(G+1))) packets, and a gateway that learns a delta gossips
//     it on, as swim disseminates replica's deltas.
//
// Each delta travels encoded (radix.AppendBatch) and is decoded
// (radix.DecodeBatch, radix.DefaultLimits) and applied (radix.Index.ApplyBatch)
// at each receiver, as node does; simnet counts the encoded bytes. Delays
// come from simnet's link model. Nothing is lost (the links have no loss),
// so anti-entropy, which repairs losses, is not modelled.
type gateway struct {
	s    *sim
	g    int
	id   int
	host interface {
		Send(netip.AddrPort, any, int)
	}
	ix    *radix.Index
	batch radix.Batch // decoding scratch
	seen  map[uint64]struct{}
	queue []gossipItem
	phase time.Duration
	tick  time.Duration // next gossip round, when queue is not empty
	// next timer of the strategy (pending expiry), 0 for none.
	timer time.Duration
}

// gossipItem is one delta on its way between gateways.
type gossipItem struct {
	id   uint64
	data []byte // the delta as a radix batch, encoded
	left int    // packets still to carry it from this gateway
}

// replicate sends gateway g's local delta d to the other gateways.
func (s *sim) replicate(g int, d radix.Delta) {
	if len(s.gws) == 1 {
		return
	}
	s.scratch.Reset()
	s.scratch.Add(d)
	data, err := radix.AppendBatch(nil, &s.scratch)
	if err != nil {
		panic(fmt.Sprintf("replay: encode a delta: %v", err)) // our own delta
	}
	s.nextDelta++
	it := gossipItem{id: s.nextDelta, data: data}
	gw := s.gws[g]
	if len(s.gws) <= s.cfg.Net.EagerGateways {
		for o := range s.gws {
			if o != g {
				gw.host.Send(s.net.Addr(s.gwBase+o), []gossipItem{it}, len(data))
			}
		}
		return
	}
	gw.enqueue(it)
}

func (gw *gateway) enqueue(it gossipItem) {
	s := gw.s
	if gw.seen == nil {
		gw.seen = make(map[uint64]struct{})
	}
	gw.seen[it.id] = struct{}{}
	it.left = s.limit
	if len(gw.queue) == 0 {
		// The next round of this gateway's gossip clock.
		now := since(s.net.Now())
		iv := s.cfg.Net.GossipInterval
		k := (now - gw.phase + iv) / iv
		gw.tick = gw.phase + k*iv
		if gw.tick <= now {
			gw.tick += iv
		}
	}
	gw.queue = append(gw.queue, it)
	s.net.Wake(gw.id)
}

// Receive applies the deltas it has not seen and, when gossiping, passes
// them on; or hands engine events to the strategy.
func (gw *gateway) Receive(now time.Time, _ netip.AddrPort, p any) {
	s := gw.s
	switch p := p.(type) {
	case []gossipItem:
		gossip := len(s.gws) > s.cfg.Net.EagerGateways
		for _, it := range p {
			if gossip {
				if _, ok := gw.seen[it.id]; ok {
					continue
				}
			}
			if gw.ix != nil {
				// A replica drops what it cannot decode or apply, as node
				// does (the index keeps deltas whose anchor it lacks).
				if err := radix.DecodeBatch(&gw.batch, it.data, radix.DefaultLimits()); err == nil {
					_ = gw.ix.ApplyBatch(&gw.batch)
				}
			}
			if gossip {
				gw.enqueue(it)
			}
		}
	case engineEvents:
		if es, ok := s.strat.(eventSink); ok {
			es.events(s, gw.g, p.w, p.m, since(now))
		}
	}
}

func (gw *gateway) Serve(time.Time, netip.AddrPort, any) (any, int) { return nil, 0 }
func (gw *gateway) StreamDone(time.Time, uint64, any, error)        {}

// Tick runs a gossip round when one is due, and the strategy's timer.
func (gw *gateway) Tick(now time.Time) {
	s := gw.s
	t := since(now)
	if gw.timer > 0 && t >= gw.timer {
		gw.timer = 0
		if tk, ok := s.strat.(ticker); ok {
			gw.timer = tk.tick(s, gw.g, t)
		}
	}
	if len(gw.queue) == 0 || t < gw.tick {
		return
	}
	gw.tick += s.cfg.Net.GossipInterval
	n := len(s.gws) - 1
	f := min(s.cfg.Net.GossipFanout, n)
	// f distinct random peers other than gw.
	var picked [16]int
	for k := 0; k < f && k < len(picked); {
		o := s.rng.IntN(len(s.gws))
		if o == gw.g || contains(picked[:k], o) {
			continue
		}
		picked[k] = o
		k++
	}
	size := 0
	for i := range gw.queue {
		size += len(gw.queue[i].data)
	}
	for _, o := range picked[:min(f, len(picked))] {
		pkt := append([]gossipItem(nil), gw.queue...)
		gw.host.Send(s.net.Addr(s.gwBase+o), pkt, size)
	}
	out := gw.queue[:0]
	for _, it := range gw.queue {
		it.left -= f
		if it.left > 0 {
			out = append(out, it)
		}
	}
	clear(gw.queue[len(out):])
	gw.queue = out
}

func contains(xs []int, x int) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// Next is the next gossip round or strategy timer.
func (gw *gateway) Next() time.Time {
	var next time.Duration
	if len(gw.queue) > 0 {
		next = gw.tick
	}
	if gw.timer > 0 && (next == 0 || gw.timer < next) {
		next = gw.timer
	}
	if next == 0 {
		return time.Time{}
	}
	return vtime(next)
}

// ticker is a strategy with a per-gateway timer (pending expiry).
type ticker interface {
	// tick runs gateway g's timer at now and returns when it is next due
	// (0: never).
	tick(s *sim, g int, now time.Duration) time.Duration
}

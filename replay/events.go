package replay

import (
	"fmt"
	"time"

	"github.com/meshnode/meshnode/engine"
	"github.com/meshnode/meshnode/engine/server"
	"github.com/meshnode/meshnode/kvevents"
	"github.com/meshnode/meshnode/node"
	"github.com/meshnode/meshnode/radix"
)

// eventsStrategy is meshnode with engine KV events, on the real event
// path: each engine's events of one instant become one vLLM-format batch
// (the emulator's conversion, server.AppendKVEvents, encoded with
// kvevents.AppendBatch and numbered per engine), which travels over the
// network model to the one gateway that subscribes to the engine
// (rendezvous hashing of the engine over the gateways, as nodes pick a
// subscriber). There node's KV-event applier (node.KVApplier) decodes it
// and turns it into event-sourced index deltas, which replicate like
// recorded routes. Routes are not recorded as holdings: the routing
// gateway inserts the prompt's pages as pending on the chosen engine
// (radix.Index.InsertPending), replicated too, as node does for
// event-sourced workers, until the engine's events confirm them or
// PendingTimeout passes (each gateway expires them on its own clock, every
// second). Stamps of pending pages are in seconds, like node's.
type eventsStrategy struct {
	indexed
	appliers []*node.KVApplier // per engine, at its subscribing gateway
	seq      []int64           // per engine, the last batch's number
	kv       []kvevents.Event
	// errs counts what the appliers refused or could not place (orphans,
	// malformed events, index errors); the simulation has none.
	errs int
}

func newEventsStrategy() Strategy {
	return &eventsStrategy{indexed: indexed{name: StrategyEvents, shared: true}}
}

// secondStamp is the pending pages' stamp of virtual time d.
func secondStamp(d time.Duration) uint32 { return uint32(d/time.Second) + 1 }

func (x *eventsStrategy) init(s *sim) {
	// Event-sourced holdings are what the engines hold, no budget: a
	// budget equal to the cache evicts by stamp (seconds) when a batch
	// stores before it removes, which is not the engine's LRU order.
	for _, gw := range s.gws {
		gw.ix = radix.New(radix.Config{Models: map[string]radix.ModelConfig{Model: {PageTokens: s.cfg.PageTokens}}})
	}
	x.seq = make([]int64, s.cfg.Workers)
	for w := range s.cfg.Workers {
		g := x.subscriber(s, w)
		a := node.NewKVApplier(s.gws[g].ix, s.workers[w], Model, 1)
		// No replay in the simulation: the applier starts a generation.
		_, _, res := a.Begin(s.vtime(0), false)
		x.keep(s, g, res)
		x.appliers = append(x.appliers, a)
	}
	for _, gw := range s.gws {
		gw.timer = time.Second
	}
}

// routed records the prompt's pages as pending on engine w.
func (x *eventsStrategy) routed(s *sim, g, i, w int, now time.Duration) {
	d, err := s.gws[g].ix.InsertPending(s.workers[w], 1, secondStamp(now), s.pages[i])
	if err != nil {
		return
	}
	s.replicate(g, d)
}

// tick expires pending pages older than PendingTimeout, every second.
func (x *eventsStrategy) tick(s *sim, g int, now time.Duration) time.Duration {
	if now > s.cfg.PendingTimeout {
		s.gws[g].ix.ExpirePending(secondStamp(now - s.cfg.PendingTimeout))
	}
	return now + time.Second
}

// subscriber is the gateway of highest rendezvous rank for engine w.
func (x *eventsStrategy) subscriber(s *sim, w int) int {
	best, bestH := 0, uint64(0)
	for g := range s.gws {
		if h := blockLineage(uint64(w)+1, uint64(g)+1); g == 0 || h > bestH {
			best, bestH = g, h
		}
	}
	return best
}

// publish encodes engine w's events of one instant as the engine would
// publish them.
func (x *eventsStrategy) publish(s *sim, w int, evs []engine.Event, now time.Duration) (kvevents.Message, int) {
	x.kv = server.AppendKVEvents(x.kv[:0], evs)
	b := kvevents.Batch{TS: now.Seconds(), Events: x.kv}
	payload, err := kvevents.AppendBatch(nil, &b)
	clear(x.kv)
	if err != nil {
		panic(fmt.Sprintf("replay: encode engine %d's events: %v", w, err)) // the engine's own events
	}
	x.seq[w]++
	return kvevents.Message{Seq: x.seq[w], Payload: payload}, len(payload)
}

// events applies one message of engine w's stream at its subscribing
// gateway g with node's applier and replicates the deltas.
func (x *eventsStrategy) events(s *sim, g, w int, m kvevents.Message, now time.Duration) {
	x.keep(s, g, x.appliers[w].Apply(m, s.vtime(now), false))
}

func (x *eventsStrategy) keep(s *sim, g int, res node.KVResult) {
	if res.Err != nil || res.Orphans > 0 || res.Malformed > 0 || res.BlockSize > 0 {
		x.errs++
	}
	s.replicate(g, res.Deltas...)
}

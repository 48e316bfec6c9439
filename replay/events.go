package replay

import (
	"time"

	"github.com/meshnode/meshnode/engine"
	"github.com/meshnode/meshnode/radix"
)

// eventsStrategy is meshnode with engine KV events: each engine's events
// go to the one gateway that subscribes to it (rendezvous hashing of the
// engine over the gateways, as nodes pick a subscriber), which turns them
// into event-sourced index deltas (radix.Index.StoreEvents, RemoveEvents,
// ClearEvents) and replicates them like recorded routes. Routes are not
// recorded as holdings: the routing gateway inserts the prompt's pages as
// pending on the chosen engine (radix.Index.InsertPending), replicated
// too, until the engine's events confirm them or PendingTimeout passes
// (each gateway expires them on its own clock, every second).
type eventsStrategy struct {
	indexed
	ver   []uint64 // per engine: batches seen, the seq of the next
	buf   []uint64
	pages []uint64
}

func newEventsStrategy() Strategy {
	return &eventsStrategy{indexed: indexed{name: StrategyEvents, shared: true}}
}

// eventGen is the event generation of every engine: the simulation has no
// restarts, gaps or clears but the ones the engine reports.
const eventGen = 1

func (x *eventsStrategy) init(s *sim) {
	x.indexed.init(s)
	x.ver = make([]uint64, len(s.engines))
	for _, gw := range s.gws {
		gw.timer = time.Second
	}
}

// routed records the prompt's pages as pending on engine w.
func (x *eventsStrategy) routed(s *sim, g, i, w int, now time.Duration) {
	d, err := s.gws[g].ix.InsertPending(s.workers[w], 1, stamp(now), s.pages[i])
	if err != nil {
		return
	}
	s.replicate(g, d)
}

// tick expires pending pages older than PendingTimeout, every second.
func (x *eventsStrategy) tick(s *sim, g int, now time.Duration) time.Duration {
	if now > s.cfg.PendingTimeout {
		s.gws[g].ix.ExpirePending(stamp(now - s.cfg.PendingTimeout))
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

// events applies one batch of engine w's events at its subscribing
// gateway g, as node's applier does, and replicates the deltas.
func (x *eventsStrategy) events(s *sim, g, w int, evs []engine.Event, now time.Duration) {
	ix := s.gws[g].ix
	worker := s.workers[w]
	seq := x.ver[w]
	x.ver[w]++
	ppb := s.cfg.BlockTokens / s.cfg.PageTokens
	for k, ev := range evs {
		ver := seq<<16 | uint64(k)
		var d radix.Delta
		var err error
		switch ev.Kind {
		case engine.KindBlockStored:
			anchor, seed := uint64(0), radix.TokenSeed(Model)
			if ev.HasParent {
				l, ok := ix.EngineLineage(worker, ev.ParentHash)
				if !ok {
					// A parent the index no longer knows (removed since):
					// node's applier treats it as a gap; the pages cannot
					// be placed.
					continue
				}
				anchor, seed = l, l
			}
			x.pages = radix.AppendTokenPages(x.pages[:0], seed, s.cfg.PageTokens, ev.TokenIDs)
			pages := append([]uint64(nil), x.pages...)
			d, err = ix.StoreEvents(worker, 1, stamp(now), eventGen, ver, radix.EngineBlocks{
				Anchor: anchor, Pages: pages, Hashes: ev.BlockHashes, PagesPerBlock: ppb,
			})
		case engine.KindBlockRemoved:
			d, err = ix.RemoveEvents(worker, 1, stamp(now), eventGen, ver, ev.BlockHashes)
		case engine.KindAllBlocksCleared:
			d, err = ix.ClearEvents(worker, 1, stamp(now), eventGen+1)
		default:
			continue
		}
		if err == nil {
			s.replicate(g, d)
		}
	}
}

package server

import (
	"context"

	"github.com/meshnode/meshnode/engine"
	"github.com/meshnode/meshnode/kvevents"
)

// kvState is the KV-event publisher of a started server.
type kvState struct {
	pub *kvevents.Publisher
}

func startKV(ctx context.Context, cfg Config) (*kvState, error) {
	pub, err := kvevents.NewPublisher(ctx, cfg.KVEvents, cfg.KVReplay, cfg.KVTopic, cfg.KVKeep)
	if err != nil {
		return nil, err
	}
	return &kvState{pub: pub}, nil
}

func (k *kvState) addr() string { return "tcp://" + k.pub.Addr().String() }

func (k *kvState) replayAddr() string {
	if a := k.pub.ReplayAddr(); a != nil {
		return "tcp://" + a.String()
	}
	return ""
}

// publishLoop publishes the model's events in order, one batch per
// instant (vLLM publishes one batch per engine step), until events is
// closed.
func (s *Server) publishLoop(events <-chan []engine.Event) {
	var b kvevents.Batch
	for evs := range events {
		for len(evs) > 0 {
			n := 1
			for n < len(evs) && evs[n].At == evs[0].At {
				n++
			}
			b.TS = float64(s.origin.Add(evs[0].At).UnixNano()) / 1e9
			b.Events = AppendKVEvents(b.Events[:0], evs[:n])
			if _, err := s.kv.pub.Publish(&b); err != nil {
				s.log.Warn("engine: publishing KV events", "err", err)
			}
			evs = evs[n:]
		}
	}
}

// AppendKVEvents appends the vLLM-format form of the model's events to
// dst: GPU medium, no LoRA. The slices are shared, not copied.
func AppendKVEvents(dst []kvevents.Event, evs []engine.Event) []kvevents.Event {
	for _, e := range evs {
		k := kvevents.Event{BlockHashes: e.BlockHashes}
		switch e.Kind {
		case engine.KindBlockStored:
			k.Kind = kvevents.KindBlockStored
			k.ParentHash, k.HasParent = e.ParentHash, e.HasParent
			k.TokenIDs, k.BlockSize = e.TokenIDs, e.BlockSize
			k.Medium = kvevents.MediumGPU
		case engine.KindBlockRemoved:
			k.Kind = kvevents.KindBlockRemoved
			k.Medium = kvevents.MediumGPU
		case engine.KindAllBlocksCleared:
			k.Kind = kvevents.KindAllBlocksCleared
		default:
			continue
		}
		dst = append(dst, k)
	}
	return dst
}

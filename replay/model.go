package replay

import (
	"fmt"
	"time"

	"github.com/meshnode/meshnode/engine"
)

// This file adapts package engine's Model, the engine core shared with the
// emulator (`meshnode engine`), to the simulation. It adds no engine
// behaviour of its own: queueing, prefill, decode, the LRU prefix cache
// and its KV events are the core's.

// newEngine returns an engine model for cfg. Its queue is unbounded for
// the trace (no admission control: every request is served).
func newEngine(cfg Config, requests int) (*engine.Model, error) {
	m, err := engine.NewModel(engine.Config{
		Blocks:      cfg.CacheTokens / cfg.BlockTokens,
		BlockTokens: cfg.BlockTokens,
		PrefillTPS:  cfg.PrefillTokensPerSecond,
		DecodeTPS:   cfg.DecodeTokensPerSecond,
		MaxBatch:    cfg.MaxBatch,
		MaxQueue:    requests + 1,
	})
	if err != nil {
		return nil, fmt.Errorf("replay: engine: %w", err)
	}
	return m, nil
}

// engineHashes returns the engine block hashes of every request, as the
// engine's cache computes them from the prompt's tokens.
func engineHashes(reqs []Request, blockTokens int) [][]uint64 {
	out := make([][]uint64, len(reqs))
	var buf []uint32
	for i := range reqs {
		buf = appendTokens(buf[:0], &reqs[i], blockTokens)
		out[i] = engine.AppendBlockHashes(make([]uint64, 0, len(buf)/blockTokens), 0, blockTokens, buf)
	}
	return out
}

// submit hands request i to engine e at now. With tokens (the events
// strategy, whose BlockStored events carry token ids), the engine keeps a
// fresh copy of the prompt's tokens until the request is done.
func (s *sim) submit(e *engineNode, now time.Duration, i int) {
	r := &s.reqs[i]
	req := engine.Request{BlockHashes: s.hashes[i], InputTokens: r.InputTokens, OutputTokens: max(r.OutputTokens, 1)}
	if s.withTokens {
		req.Tokens = appendTokens(make([]uint32, 0, r.InputTokens), r, s.cfg.BlockTokens)
	}
	id, err := e.m.Submit(now, req)
	if err != nil {
		// The queue holds the whole trace and requests were checked: a
		// broken invariant.
		panic(fmt.Sprintf("replay: engine %d refused request %d: %v", e.w, i, err))
	}
	if int(id) != len(e.ids)+1 {
		panic("replay: engine IDs out of order")
	}
	e.ids = append(e.ids, i)
}

// inFlight is the requests queued or running on e: the load gateways see.
func (e *engineNode) inFlight() int { return e.m.Queued() + e.m.Running() }

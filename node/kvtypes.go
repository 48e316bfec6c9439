package node

import (
	"context"

	"github.com/meshnode/meshnode/kvevents"
	"github.com/meshnode/meshnode/radix"
)

// Event kinds.
const (
	kvStored  = kvevents.KindBlockStored
	kvRemoved = kvevents.KindBlockRemoved
	kvCleared = kvevents.KindAllBlocksCleared
)

// decodeKVBatch decodes a payload with the codec's default limits.
func decodeKVBatch(b *kvevents.Batch, payload []byte) error {
	return kvevents.DecodeBatch(b, payload, kvevents.DefaultLimits())
}

// dialKVEvents subscribes with a ZMQ SUB socket.
func dialKVEvents(ctx context.Context, endpoint, topic string) (EventStream, error) {
	s, err := kvevents.Subscribe(ctx, endpoint, topic)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// replayKVEvents replays from the engine's ZMQ ROUTER socket.
func replayKVEvents(ctx context.Context, endpoint string, startSeq int64, fn func(kvevents.Message) error) error {
	return kvevents.Replay(ctx, endpoint, startSeq, fn)
}

// sourceNames holds each set of route sources' names, computed once, so
// that answering a route allocates none ([] in JSON for none).
var sourceNames = func() (t [8][]string) {
	for i := range t {
		t[i] = radix.Source(i).Names()
		if t[i] == nil {
			t[i] = []string{}
		}
	}
	return t
}()

// decisionSources names the sources a decision matched.
func decisionSources(d radix.Decision) []string { return sourceNames[d.Sources&7] }

// The index is what an applier feeds.
var _ EventIndex = (*radix.Index)(nil)

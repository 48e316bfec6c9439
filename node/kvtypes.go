package node

import (
	"context"

	"github.com/meshnode/meshnode/kvevents"
	"github.com/meshnode/meshnode/radix"
)

// The engine KV event types as the node uses them (package kvevents).
type (
	kvKind    = kvevents.Kind
	kvEvent   = kvevents.Event
	kvBatch   = kvevents.Batch
	kvMessage = kvevents.Message
)

// Event kinds.
const (
	kvStored  = kvevents.KindBlockStored
	kvRemoved = kvevents.KindBlockRemoved
	kvCleared = kvevents.KindAllBlocksCleared
)

// engineBlocks is one BlockStored event turned into pages.
type engineBlocks = radix.EngineBlocks

// decodeKVBatch decodes a payload with the codec's default limits.
func decodeKVBatch(b *kvBatch, payload []byte) error {
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
func replayKVEvents(ctx context.Context, endpoint string, startSeq int64, fn func(kvMessage) error) error {
	return kvevents.Replay(ctx, endpoint, startSeq, fn)
}

// pendingIndex is the index's pending side (radix.Index's InsertPending
// and ExpirePending).
type pendingIndex interface {
	InsertPending(worker string, epoch uint64, stamp uint32, pages []uint64) (radix.Delta, error)
	ExpirePending(olderThan uint32) int
}

// decisionSources names the sources a decision matched
// (radix.Decision.Sources.Names()).
func decisionSources(d radix.Decision) []string { return d.Sources.Names() }

// The index implements what the applier and the pending routes need.
var (
	_ EventIndex   = (*radix.Index)(nil)
	_ pendingIndex = (*radix.Index)(nil)
)

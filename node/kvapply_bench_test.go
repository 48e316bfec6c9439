package node

import (
	"testing"
	"time"

	"github.com/meshnode/meshnode/kvevents"
	"github.com/meshnode/meshnode/radix"
)

// BenchmarkKVApplier measures the node's side of an engine's stream on one
// core: decode (kvevents), turn into pages, apply to a real index and copy
// out the deltas, per batch of vLLM-like events. Each batch stores blocks
// and removes those the previous one stored, so that the index stays the
// size of a warm engine cache. blocks/s counts stored and removed blocks.
func BenchmarkKVApplier(b *testing.B) {
	const (
		events    = 8  // BlockStored events per batch
		blocks    = 16 // blocks per event
		blockSize = 16
	)
	ix := radix.New(radix.Config{})
	a := NewKVApplier(ix, "w", "m", 1)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	a.Begin(now, false)
	// Two alternating sets of prompts: batch i stores set i%2 and removes
	// set (i+1)%2.
	var payloads [2][]byte
	var hashes [2][]uint64
	for set := range 2 {
		for e := range events {
			for k := range blocks {
				hashes[set] = append(hashes[set], mix64(uint64(set*1_000_000+e*1000+k+1))) // engines hash blocks: spread bits
			}
		}
	}
	for set := range 2 {
		var batch kvevents.Batch
		batch.TS = 1
		for e := range events {
			ev := kvevents.Event{Kind: kvevents.KindBlockStored, BlockSize: blockSize, Medium: "GPU",
				BlockHashes: hashes[set][e*blocks : (e+1)*blocks]}
			for t := range blocks * blockSize {
				ev.TokenIDs = append(ev.TokenIDs, uint32(set*100000+e*5000+t))
			}
			batch.Events = append(batch.Events, ev)
		}
		batch.Events = append(batch.Events, kvevents.Event{Kind: kvevents.KindBlockRemoved, Medium: "GPU", BlockHashes: hashes[1-set]})
		p, err := kvevents.AppendBatch(nil, &batch)
		if err != nil {
			b.Fatal(err)
		}
		payloads[set] = p
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(payloads[0])))
	seq := int64(0)
	for b.Loop() {
		res := a.Apply(kvevents.Message{Seq: seq, Payload: payloads[seq%2]}, now, false)
		if res.Status != KVApplied || res.Err != nil {
			b.Fatalf("seq %d: %v %v", seq, res.Status, res.Err)
		}
		seq++
	}
	b.ReportMetric(float64(seq*2*events*blocks)/b.Elapsed().Seconds(), "blocks/s")
}

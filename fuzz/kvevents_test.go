package fuzz

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/meshnode/meshnode/kvevents"
)

// kvLimits are small so that a decoder exceeding a limit shows up at once.
var kvLimits = kvevents.Limits{MaxPayloadBytes: fuzzMaxFrame, MaxEvents: 64, MaxHashesPerEvent: 256, MaxTokensPerBatch: 1024}

var kvCmp = cmp.Options{cmpopts.EquateEmpty(), cmpopts.EquateNaNs()}

// kvSeeds are batches in every form the decoder accepts: the encoders'
// array and map forms, SGLang's short arrays with signed hashes, byte-string
// hashes, unknown events and fields, and a mixed array batch of map events.
func kvSeeds(t testing.TB) [][]byte {
	b := kvevents.Batch{TS: 1.5, DPRank: 1, HasDPRank: true, Events: []kvevents.Event{
		{Kind: kvevents.KindBlockStored, BlockHashes: []uint64{1, 1<<64 - 1}, ParentHash: 300, HasParent: true,
			TokenIDs: []uint32{7, 70000, 1, 2}, BlockSize: 2, LoRAID: -40, HasLoRA: true, LoRAName: "a", Medium: "GPU", GroupIdx: 2},
		{Kind: kvevents.KindBlockRemoved, BlockHashes: []uint64{1}, Medium: "CPU"},
		{Kind: kvevents.KindAllBlocksCleared},
	}}
	arr, err := kvevents.AppendBatch(nil, &b)
	if err != nil {
		t.Fatal(err)
	}
	m, err := kvevents.AppendBatchMap(nil, &b)
	if err != nil {
		t.Fatal(err)
	}
	return [][]byte{arr, m,
		// SGLang: [1.0, [["BlockStored", [MinInt64], -1, [128], 1, nil], ["BlockRemoved", [MinInt64]]]]
		[]byte("\x92\xcb\x3f\xf0\x00\x00\x00\x00\x00\x00\x92" +
			"\x96\xabBlockStored\x91\xd3\x80\x00\x00\x00\x00\x00\x00\x00\xd2\xff\xff\xff\xff\x91\xcc\x80\x01\xc0" +
			"\x92\xacBlockRemoved\x91\xd3\x80\x00\x00\x00\x00\x00\x00\x00"),
		// {"ts": 0, "events": [{"type": "BlockRemoved", "block_hashes": [bin 3], "extra": [[1]]}, {"type": "X"}], "attn_dp_rank": 2}
		[]byte("\x83\xa2ts\x00\xa6events\x92" +
			"\x83\xa4type\xacBlockRemoved\xacblock_hashes\x91\xc4\x03abc\xa5extra\x91\x91\x01" +
			"\x81\xa4type\xa1X\xacattn_dp_rank\x02"),
		// [0.5f, [{"type": "AllBlocksCleared"}, ["Next", {"k": nil}]], nil]
		[]byte("\x93\xca\x3f\x00\x00\x00\x92\x81\xa4type\xb0AllBlocksCleared\x92\xa4Next\x81\xa1k\xc0\xc0"),
	}
}

// FuzzKVEventsDecode feeds arbitrary bytes to kvevents.DecodeBatch: no
// panic, every error wraps ErrDecode, allocation bounded by the input's
// size, limits respected, and whatever decodes re-encodes (in both forms)
// to bytes that decode to the same batch.
func FuzzKVEventsDecode(f *testing.F) {
	for _, s := range kvSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var b kvevents.Batch
		var err error
		bounded(t, len(data), func() {
			b = kvevents.Batch{}
			err = kvevents.DecodeBatch(&b, data, kvLimits)
		})
		if err != nil {
			if !errors.Is(err, kvevents.ErrDecode) {
				t.Fatalf("error %v does not wrap ErrDecode", err)
			}
			return
		}
		if len(b.Events)+b.Skipped > kvLimits.MaxEvents {
			t.Fatalf("%d events and %d skipped, limit %d", len(b.Events), b.Skipped, kvLimits.MaxEvents)
		}
		tokens := 0
		for _, e := range b.Events {
			if len(e.BlockHashes) > kvLimits.MaxHashesPerEvent {
				t.Fatalf("%d hashes, limit %d", len(e.BlockHashes), kvLimits.MaxHashesPerEvent)
			}
			tokens += len(e.TokenIDs)
		}
		if tokens > kvLimits.MaxTokensPerBatch {
			t.Fatalf("%d tokens, limit %d", tokens, kvLimits.MaxTokensPerBatch)
		}
		want := b
		want.Skipped = 0 // skipped events are not re-encoded
		for _, enc := range []func([]byte, *kvevents.Batch) ([]byte, error){kvevents.AppendBatch, kvevents.AppendBatchMap} {
			out, err := enc(nil, &b)
			if err != nil {
				t.Fatalf("decoded batch does not encode: %v", err)
			}
			var again kvevents.Batch
			if err := kvevents.DecodeBatch(&again, out, kvevents.Limits{}); err != nil {
				t.Fatalf("re-encoded batch %x does not decode: %v", out, err)
			}
			if d := cmp.Diff(want, again, kvCmp); d != "" {
				t.Fatalf("round trip (-want +got):\n%s", d)
			}
		}
	})
}

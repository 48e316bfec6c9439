package kvevents

import (
	"bytes"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/vmihailenco/msgpack/v5"
	"pgregory.net/rapid"
)

// encodeBatch is the batch of the encoder's golden outputs: every field
// set, a negative LoRA id, a group index (which brings extra_keys along in
// the array form), and a batch rank.
var encodeBatch = Batch{TS: 1.5, DPRank: 1, HasDPRank: true, Events: []Event{
	{Kind: KindBlockStored, BlockHashes: []uint64{1, 1<<64 - 1}, ParentHash: 300, HasParent: true,
		TokenIDs: []uint32{7, 70000}, BlockSize: 1, LoRAID: -40, HasLoRA: true, LoRAName: "a", Medium: "GPU", GroupIdx: 2},
	{Kind: KindBlockStored, BlockHashes: []uint64{2}, TokenIDs: []uint32{1}, BlockSize: 1},
	{Kind: KindBlockRemoved, BlockHashes: []uint64{1}},
	{Kind: KindAllBlocksCleared},
}}

func TestAppendBatchGolden(t *testing.T) {
	for _, tc := range []struct {
		name   string
		append func([]byte, *Batch) ([]byte, error)
		hex    string
	}{{
		name:   "array",
		append: AppendBatch,
		hex: `
		93 cb 3ff8000000000000 94
		9a ab 426c6f636b53746f726564     # BlockStored, 9 fields
		92 01 cf ffffffffffffffff cd 012c 92 07 ce 00011170 01
		d0 d8 a3 475055 a1 61 c0 02      # lora_id -40, "GPU", "a", extra_keys nil, group_idx 2
		98 ab 426c6f636b53746f726564     # BlockStored, 7 fields
		91 02 c0 91 01 01 c0 c0 c0
		93 ac 426c6f636b52656d6f766564 91 01 c0
		91 b0 416c6c426c6f636b73436c6561726564
		01`,
	}, {
		name:   "map",
		append: AppendBatchMap,
		hex: `
		83 a2 7473 cb 3ff8000000000000 a6 6576656e7473 94
		89 a4 74797065 ab 426c6f636b53746f726564
		ac 626c6f636b5f686173686573 92 01 cf ffffffffffffffff
		b1 706172656e745f626c6f636b5f68617368 cd 012c
		a9 746f6b656e5f696473 92 07 ce 00011170
		aa 626c6f636b5f73697a65 01
		a7 6c6f72615f6964 d0 d8
		a6 6d656469756d a3 475055
		a9 6c6f72615f6e616d65 a1 61
		a9 67726f75705f696478 02
		88 a4 74797065 ab 426c6f636b53746f726564
		ac 626c6f636b5f686173686573 91 02
		b1 706172656e745f626c6f636b5f68617368 c0
		a9 746f6b656e5f696473 91 01
		aa 626c6f636b5f73697a65 01
		a7 6c6f72615f6964 c0
		a6 6d656469756d c0
		a9 6c6f72615f6e616d65 c0
		83 a4 74797065 ac 426c6f636b52656d6f766564 ac 626c6f636b5f686173686573 91 01 a6 6d656469756d c0
		81 a4 74797065 b0 416c6c426c6f636b73436c6561726564
		b2 646174615f706172616c6c656c5f72616e6b 01`,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			prefix := []byte("keep")
			got, err := tc.append(bytes.Clone(prefix), &encodeBatch)
			if err != nil {
				t.Fatal(err)
			}
			want := append(prefix, unhex(t, tc.hex)...)
			if !bytes.Equal(got, want) {
				t.Fatalf("got  %x\nwant %x", got, want)
			}
			var back Batch
			if err := DecodeBatch(&back, got[len(prefix):], Limits{}); err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(encodeBatch, back, batchCmp); d != "" {
				t.Errorf("round trip (-want +got):\n%s", d)
			}
		})
	}
}

func TestAppendBatchUnknownKind(t *testing.T) {
	b := Batch{Events: []Event{{Kind: KindAllBlocksCleared}, {Kind: 9}}}
	for _, f := range []func([]byte, *Batch) ([]byte, error){AppendBatch, AppendBatchMap} {
		got, err := f([]byte("x"), &b)
		if !errors.Is(err, ErrEncode) || string(got) != "x" {
			t.Errorf("got %q, %v; want dst unchanged and ErrEncode", got, err)
		}
	}
}

// genBatch draws a batch the encoders can carry: events with their kind's
// fields only.
func genBatch(t *rapid.T) Batch {
	b := Batch{TS: rapid.Float64().Draw(t, "ts"), HasDPRank: rapid.Bool().Draw(t, "hasRank")}
	if b.HasDPRank {
		b.DPRank = rapid.IntRange(0, 1<<31-1).Draw(t, "rank")
	}
	n := rapid.IntRange(0, 6).Draw(t, "events")
	for range n {
		e := Event{Kind: Kind(rapid.IntRange(1, 3).Draw(t, "kind"))}
		if e.Kind != KindAllBlocksCleared {
			e.BlockHashes = rapid.SliceOfN(rapid.Uint64(), 0, 20).Draw(t, "hashes")
			e.Medium = rapid.SampledFrom([]string{"", "GPU", "CPU", "disk"}).Draw(t, "medium")
			e.GroupIdx = rapid.IntRange(0, 3).Draw(t, "group")
		}
		if e.Kind == KindBlockStored {
			e.HasParent = rapid.Bool().Draw(t, "hasParent")
			if e.HasParent {
				e.ParentHash = rapid.Uint64().Draw(t, "parent")
			}
			e.TokenIDs = rapid.SliceOfN(rapid.Uint32(), 0, 40).Draw(t, "tokens")
			e.BlockSize = rapid.IntRange(0, 1<<31-1).Draw(t, "blockSize")
			e.HasLoRA = rapid.Bool().Draw(t, "hasLoRA")
			if e.HasLoRA {
				e.LoRAID = rapid.Int64().Draw(t, "lora")
			}
			e.LoRAName = rapid.SampledFrom([]string{"", "x", "adapter-7"}).Draw(t, "loraName")
		}
		b.Events = append(b.Events, e)
	}
	return b
}

// TestRoundTrip: every batch the encoders write decodes to itself, in both
// forms, and the msgpack library reads the same structure from both.
func TestRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		b := genBatch(t)
		arr, err := AppendBatch(nil, &b)
		if err != nil {
			t.Fatal(err)
		}
		m, err := AppendBatchMap(nil, &b)
		if err != nil {
			t.Fatal(err)
		}
		for _, enc := range [][]byte{arr, m} {
			var got Batch
			if err := DecodeBatch(&got, enc, Limits{}); err != nil {
				t.Fatalf("DecodeBatch(%x): %v", enc, err)
			}
			if d := cmp.Diff(b, got, batchCmp); d != "" {
				t.Fatalf("(-want +got):\n%s", d)
			}
		}
		// The library oracle agrees on the shape: an array of 2 or 3, a map
		// of as many keys, with the events in order.
		var ga []any
		if err := msgpack.Unmarshal(arr, &ga); err != nil {
			t.Fatalf("msgpack reads the array form: %v", err)
		}
		var gm map[string]any
		if err := msgpack.Unmarshal(m, &gm); err != nil {
			t.Fatalf("msgpack reads the map form: %v", err)
		}
		if len(ga) != len(gm) || len(ga[1].([]any)) != len(b.Events) || len(gm["events"].([]any)) != len(b.Events) {
			t.Fatalf("library reads %v and %v for %d events", ga, gm, len(b.Events))
		}
	})
}

// TestDecodeLibraryEncodings decodes batches the msgpack library writes
// from generic values, with integer widths and forms of its choosing
// (negative hashes as signed integers, byte hashes as bin).
func TestDecodeLibraryEncodings(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		ts := rapid.Float64().Draw(t, "ts")
		hashes := rapid.SliceOfN(rapid.Int64(), 1, 8).Draw(t, "hashes")
		raw := rapid.SliceOfN(rapid.SliceOfN(rapid.Byte(), 0, 40), 1, 4).Draw(t, "raw")
		toks := rapid.SliceOfN(rapid.Uint32(), 0, 16).Draw(t, "tokens")
		var hs []any
		var want []uint64
		for _, h := range hashes {
			hs = append(hs, h)
			want = append(want, uint64(h))
		}
		for _, r := range raw {
			hs = append(hs, r)
			want = append(want, FoldHash(r))
		}
		var ts32 []any
		for _, tok := range toks {
			ts32 = append(ts32, tok)
		}
		in := []any{ts, []any{
			[]any{"BlockStored", hs, nil, ts32, 16, nil, "GPU", nil},
			map[string]any{"type": "BlockRemoved", "block_hashes": hs, "medium": nil},
		}}
		enc, err := msgpack.Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		var got Batch
		if err := DecodeBatch(&got, enc, Limits{}); err != nil {
			t.Fatalf("DecodeBatch(%x): %v", enc, err)
		}
		wantB := Batch{TS: ts, Events: []Event{
			{Kind: KindBlockStored, BlockHashes: want, TokenIDs: toks, BlockSize: 16, Medium: "GPU"},
			{Kind: KindBlockRemoved, BlockHashes: want},
		}}
		if d := cmp.Diff(wantB, got, batchCmp); d != "" {
			t.Fatalf("(-want +got):\n%s", d)
		}
	})
}

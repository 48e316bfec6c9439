package kvevents

import (
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// unhex decodes a fixture: hex digits, with spaces, newlines and comments
// from "#" to the end of a line ignored.
func unhex(t testing.TB, s string) []byte {
	t.Helper()
	var clean strings.Builder
	for line := range strings.SplitSeq(s, "\n") {
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		clean.WriteString(strings.Join(strings.Fields(line), ""))
	}
	b, err := hex.DecodeString(clean.String())
	if err != nil {
		t.Fatalf("fixture: %v", err)
	}
	return b
}

var batchCmp = cmpopts.EquateEmpty()

// The fixtures are written byte by byte from the engines' schemas (vLLM's
// vllm/distributed/kv_events.py, SGLang's
// python/sglang/srt/disaggregation/kv_events.py) and the msgpack spec, the
// way msgspec writes them: shortest integer forms, float64 for ts, trailing
// defaults left out (omit_defaults).
var fixtures = []struct {
	name string
	hex  string
	want Batch
}{{
	// vLLM 0.9-0.10: EventBatch and the events are array_like, tag first.
	name: "vllm array form",
	hex: `
	93                               # batch: fixarray(3)
	cb 3ff8000000000000              # ts 1.5
	93                               # events: fixarray(3)
	98                               # BlockStored: fixarray(8)
	ab 426c6f636b53746f726564        #   "BlockStored"
	92 cf 8000000000000001 fe        #   block_hashes [2^63+1, -2]
	c0                               #   parent_block_hash nil
	94 01 02 cd012c ce00011170       #   token_ids [1, 2, 300, 70000]
	02                               #   block_size 2
	c0                               #   lora_id nil
	a3 475055                        #   medium "GPU"
	c0                               #   lora_name nil
	93                               # BlockRemoved: fixarray(3)
	ac 426c6f636b52656d6f766564      #   "BlockRemoved"
	91 fe                            #   block_hashes [-2]
	a3 475055                        #   medium "GPU"
	91                               # AllBlocksCleared: fixarray(1)
	b0 416c6c426c6f636b73436c6561726564
	00                               # data_parallel_rank 0
	`,
	want: Batch{TS: 1.5, DPRank: 0, HasDPRank: true, Events: []Event{
		{Kind: KindBlockStored, BlockHashes: []uint64{1<<63 + 1, 1<<64 - 2}, TokenIDs: []uint32{1, 2, 300, 70000},
			BlockSize: 2, Medium: "GPU"},
		{Kind: KindBlockRemoved, BlockHashes: []uint64{1<<64 - 2}, Medium: "GPU"},
		{Kind: KindAllBlocksCleared},
	}},
}, {
	// vLLM's current main: plain msgspec Structs (maps), tag under "type"
	// first, defaults left out; byte-string hashes; fields newer than this
	// package (extra_keys, kv_cache_spec_kind) and an unknown event.
	name: "vllm map form",
	hex: `
	83                               # batch: fixmap(3)
	a2 7473 cb 4059100000000000      # "ts": 100.25
	a6 6576656e7473                  # "events"
	93                               # fixarray(3)
	8b                               # BlockStored: fixmap(11)
	a4 74797065 ab 426c6f636b53746f726564                  # "type": "BlockStored"
	ac 626c6f636b5f686173686573                            # "block_hashes"
	91 c4 20 000102030405060708090a0b0c0d0e0f              #   [bin 32 bytes
	         101112131415161718191a1b1c1d1e1f              #   ]
	b1 706172656e745f626c6f636b5f68617368 c4 03 010203     # "parent_block_hash": bin 3
	a9 746f6b656e5f696473 92 05 06                         # "token_ids": [5, 6]
	aa 626c6f636b5f73697a65 02                             # "block_size": 2
	a7 6c6f72615f6964 07                                   # "lora_id": 7
	a6 6d656469756d a3 435055                              # "medium": "CPU"
	a9 6c6f72615f6e616d65 a5 6164617074                    # "lora_name": "adapt"
	aa 65787472615f6b657973 91 92 a3 616263 00             # "extra_keys": [["abc", 0]]
	a9 67726f75705f696478 01                               # "group_idx": 1
	b2 6b765f63616368655f737065635f6b696e64 a4 66756c6c    # "kv_cache_spec_kind": "full"
	82                               # an unknown event: fixmap(2)
	a4 74797065 a9 426c6f636b4d6f7665                      # "type": "BlockMove"
	a1 78 91 01                                            # "x": [1]
	82                               # BlockRemoved: fixmap(2), no medium
	a4 74797065 ac 426c6f636b52656d6f766564                # "type": "BlockRemoved"
	ac 626c6f636b5f686173686573 91 2a                      # "block_hashes": [42]
	b2 646174615f706172616c6c656c5f72616e6b 03             # "data_parallel_rank": 3
	`,
	want: Batch{TS: 100.25, DPRank: 3, HasDPRank: true, Skipped: 1, Events: []Event{
		{Kind: KindBlockStored, BlockHashes: []uint64{0x18191a1b1c1d1e1f}, ParentHash: 0x010203, HasParent: true,
			TokenIDs: []uint32{5, 6}, BlockSize: 2, LoRAID: 7, HasLoRA: true, LoRAName: "adapt", Medium: "CPU", GroupIdx: 1},
		{Kind: KindBlockRemoved, BlockHashes: []uint64{42}},
	}},
}, {
	// SGLang: array_like with tag; BlockStored ends at lora_id,
	// BlockRemoved at block_hashes; no rank in older releases; Python
	// hash() values are signed.
	name: "sglang array form",
	hex: `
	92                               # batch: fixarray(2)
	cb 3ff0000000000000              # ts 1.0
	92                               # events: fixarray(2)
	96                               # BlockStored: fixarray(6)
	ab 426c6f636b53746f726564        #   "BlockStored"
	91 d3 8000000000000000           #   block_hashes [MinInt64]
	d2 ffffffff                      #   parent_block_hash -1 (int32)
	91 cc 80                         #   token_ids [128]
	01                               #   block_size 1
	c0                               #   lora_id nil
	92                               # BlockRemoved: fixarray(2)
	ac 426c6f636b52656d6f766564      #   "BlockRemoved"
	91 d3 8000000000000000           #   block_hashes [MinInt64]
	`,
	want: Batch{TS: 1, Events: []Event{
		{Kind: KindBlockStored, BlockHashes: []uint64{1 << 63}, ParentHash: 1<<64 - 1, HasParent: true,
			TokenIDs: []uint32{128}, BlockSize: 1},
		{Kind: KindBlockRemoved, BlockHashes: []uint64{1 << 63}},
	}},
}, {
	// Mixed: an array batch of map events (vLLM releases where only the
	// batch was array_like), a nil rank, SGLang's attn_dp_rank unused
	// here, and an unknown array event.
	name: "array batch of map events",
	hex: `
	94                               # batch: fixarray(4)
	ca 3fc00000                      # ts 1.5 as float32
	92                               # events: fixarray(2)
	81 a4 74797065 b0 416c6c426c6f636b73436c6561726564  # {"type": "AllBlocksCleared"}
	93 a4 4e657874 01 c0             # ["Next", 1, nil]: unknown tag
	c0                               # data_parallel_rank nil
	a4 6d6f7265                      # a fourth, unknown element: "more"
	`,
	want: Batch{TS: 1.5, Skipped: 1, Events: []Event{{Kind: KindAllBlocksCleared}}},
}, {
	name: "sglang map form with attn_dp_rank",
	hex: `
	83
	a6 6576656e7473 90               # "events": []
	ac 617474 6e5f64705f72616e6b 05  # "attn_dp_rank": 5
	a2 7473 00                       # "ts": 0 (an integer)
	`,
	want: Batch{DPRank: 5, HasDPRank: true},
}}

func TestDecodeFixtures(t *testing.T) {
	for _, f := range fixtures {
		t.Run(f.name, func(t *testing.T) {
			var got Batch
			if err := DecodeBatch(&got, unhex(t, f.hex), Limits{}); err != nil {
				t.Fatalf("DecodeBatch: %v", err)
			}
			if d := cmp.Diff(f.want, got, batchCmp); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
}

// TestDecodeReusesBatch decodes the fixtures one after the other into the
// same Batch: nothing of an earlier batch may leak into a later one.
func TestDecodeReusesBatch(t *testing.T) {
	var got Batch
	for range 2 {
		for _, f := range fixtures {
			if err := DecodeBatch(&got, unhex(t, f.hex), Limits{}); err != nil {
				t.Fatalf("%s: %v", f.name, err)
			}
			if d := cmp.Diff(f.want, got, batchCmp); d != "" {
				t.Errorf("%s (-want +got):\n%s", f.name, d)
			}
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	small := Limits{MaxPayloadBytes: 64, MaxEvents: 2, MaxHashesPerEvent: 2, MaxTokensPerBatch: 3}
	for _, tc := range []struct {
		name  string
		hex   string
		lim   Limits
		limit bool // the error must wrap ErrLimit
	}{
		{name: "empty", hex: ``},
		{name: "not a container", hex: `01`},
		{name: "truncated ts", hex: `92 cb 3ff0`},
		{name: "short batch array", hex: `91 00`},
		{name: "trailing byte", hex: `92 00 90 00`},
		{name: "ts a string", hex: `92 a1 78 90`},
		{name: "events a map", hex: `92 00 80`},
		{name: "array claims more than the bytes", hex: `92 00 dd 7fffffff`},
		{name: "map claims more than the bytes", hex: `df 7fffffff a2 7473 00`},
		{name: "event without a tag", hex: `92 00 91 90`},
		{name: "tag not a string", hex: `92 00 91 91 01`},
		{name: "BlockStored too short", hex: `92 00 91 93 ab 426c6f636b53746f726564 90 c0`},
		{name: "block_size nil", hex: `92 00 91 95 ab 426c6f636b53746f726564 90 c0 90 c0`},
		{name: "block_size negative", hex: `92 00 91 95 ab 426c6f636b53746f726564 90 c0 90 ff`},
		{name: "token id negative", hex: `92 00 91 95 ab 426c6f636b53746f726564 90 c0 91 ff 01`},
		{name: "token id too large", hex: `92 00 91 95 ab 426c6f636b53746f726564 90 c0 91 cf 0000000100000000 01`},
		{name: "hash nil", hex: `92 00 91 92 ac 426c6f636b52656d6f766564 91 c0`},
		{name: "hash a float", hex: `92 00 91 92 ac 426c6f636b52656d6f766564 91 ca 00000000`},
		{name: "hash of 65 bytes", hex: `92 00 91 92 ac 426c6f636b52656d6f766564 91 c4 41` + strings.Repeat("00", 65)},
		{name: "map event without type", hex: `92 00 91 80`},
		{name: "map event key twice", hex: `92 00 91 83 a4 74797065 ac 426c6f636b52656d6f766564
			ac 626c6f636b5f686173686573 90 ac 626c6f636b5f686173686573 90`},
		{name: "map BlockRemoved without hashes", hex: `92 00 91 81 a4 74797065 ac 426c6f636b52656d6f766564`},
		{name: "map batch without events", hex: `81 a2 7473 00`},
		{name: "map batch ts twice", hex: `83 a2 7473 00 a2 7473 00 a6 6576656e7473 90`},
		{name: "map key not a string", hex: `82 01 00 a6 6576656e7473 90`},
		{name: "rank out of range", hex: `93 00 90 ff`},
		{name: "skipped value nested too deep", hex: `92 00 91 92 a1 58` + strings.Repeat("91", 40) + `00`},
		{name: "skipped code c1", hex: `92 00 91 92 a1 58 c1`},
		{name: "skipped ext past the end", hex: `92 00 91 92 a1 58 c7 ff 01`},
		{name: "payload over limit", hex: `92 00 90` + strings.Repeat("", 0), lim: Limits{MaxPayloadBytes: 2}, limit: true},
		{name: "events over limit", hex: `92 00 93 91 a1 58 91 a1 58 91 a1 58`, lim: small, limit: true},
		{name: "hashes over limit", hex: `92 00 91 92 ac 426c6f636b52656d6f766564 93 01 02 03`, lim: small, limit: true},
		{name: "tokens over limit", hex: `92 00 92
			95 ab 426c6f636b53746f726564 90 c0 92 01 02 01
			95 ab 426c6f636b53746f726564 90 c0 92 01 02 01`, lim: small, limit: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := Batch{Events: []Event{{Kind: KindBlockStored}}}
			err := DecodeBatch(&b, unhex(t, tc.hex), tc.lim)
			if !errors.Is(err, ErrDecode) {
				t.Fatalf("DecodeBatch = %v, want ErrDecode", err)
			}
			if got := errors.Is(err, ErrLimit); got != tc.limit {
				t.Errorf("errors.Is(%v, ErrLimit) = %v, want %v", err, got, tc.limit)
			}
			if len(b.Events) != 0 {
				t.Errorf("%d events left after an error", len(b.Events))
			}
		})
	}
}

func TestFoldHash(t *testing.T) {
	for _, tc := range []struct {
		hex  string
		want uint64
	}{
		{"", 0},
		{"01", 1},
		{"0102", 0x0102},
		{"0102030405060708", 0x0102030405060708},
		{"ff0102030405060708", 0x0102030405060708},
		{strings.Repeat("ab", 24) + "0000000000000001", 1},
	} {
		if got := FoldHash(unhex(t, tc.hex)); got != tc.want {
			t.Errorf("FoldHash(%s) = %#x, want %#x", tc.hex, got, tc.want)
		}
	}
}

func TestSeq(t *testing.T) {
	for _, tc := range []struct {
		hex string
		seq int64
	}{
		{"0000000000000000", 0},
		{"0000000000000001", 1},
		{"00000000000001ff", 511},
		{"ffffffffffffffff", SeqEnd},
	} {
		b := unhex(t, tc.hex)
		got, err := DecodeSeq(b)
		if err != nil || got != tc.seq {
			t.Errorf("DecodeSeq(%s) = %d, %v; want %d", tc.hex, got, err, tc.seq)
		}
		if enc := AppendSeq(nil, tc.seq); string(enc) != string(b) {
			t.Errorf("AppendSeq(%d) = %x, want %s", tc.seq, enc, tc.hex)
		}
	}
	for _, n := range []int{0, 7, 9} {
		if _, err := DecodeSeq(make([]byte, n)); !errors.Is(err, ErrDecode) {
			t.Errorf("DecodeSeq of %d bytes = %v, want ErrDecode", n, err)
		}
	}
}

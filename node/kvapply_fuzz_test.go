package node

import (
	"testing"
	"time"

	"github.com/meshnode/meshnode/kvevents"
	"github.com/meshnode/meshnode/radix"
)

// FuzzKVApplier drives an applier over a real index with a stream the
// fuzzer shapes: batches of stores, removals and clears of a small block
// space (valid ones, encoded as vLLM does, and raw bytes), sequence numbers
// that go on, repeat, jump and go back, replays and clears. The applier
// must not panic, must never move the worker's generation back, and its
// deltas, applied in order to a second index, must give that replica the
// same holdings (equal digests): what a subscriber applies is what every
// node gets.
func FuzzKVApplier(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9})
	f.Add([]byte{0x10, 0x22, 0x31, 0x40, 0x55, 0x66, 0x07, 0x18, 0x29, 0x3a, 0x4b, 0x5c})
	f.Add([]byte{0xff, 0x00, 0x80, 0x01, 0x7f, 0x02, 0x90, 0x03})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 512 {
			return
		}
		cfg := radix.Config{Models: map[string]radix.ModelConfig{"m": {PageTokens: 4}}}
		ix, replica := radix.New(cfg), radix.New(cfg)
		a := NewKVApplier(ix, "w", "m", 1)
		now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		var seq int64
		var gen uint32
		ship := func(res KVResult) {
			for _, d := range res.Deltas {
				if err := replica.Apply(d); err != nil {
					t.Fatalf("replica refuses %+v: %v", d, err)
				}
			}
			if g := a.Gen(); g < gen {
				t.Fatalf("generation went back from %d to %d", gen, g)
			}
			gen = a.Gen()
		}
		_, _, res := a.Begin(now, false)
		ship(res)
		var b kvevents.Batch
		for i := 0; i+1 < len(data); i += 2 {
			op, arg := data[i], data[i+1]
			now = now.Add(time.Second)
			switch op % 8 {
			case 0, 1, 2: // a batch of one event of the small block space
				b = kvevents.Batch{TS: 1}
				h := uint64(arg%8) + 1
				switch arg >> 6 {
				case 0, 1:
					ev := kvevents.Event{Kind: kvevents.KindBlockStored, BlockHashes: []uint64{h}, BlockSize: 4 * (1 + int(op>>7)),
						TokenIDs: make([]uint32, 4*(1+int(op>>7)))}
					for j := range ev.TokenIDs {
						ev.TokenIDs[j] = uint32(arg) + uint32(j)
					}
					if arg&0x20 != 0 {
						ev.ParentHash, ev.HasParent = uint64((arg>>3)%8)+1, true
					}
					b.Events = append(b.Events, ev)
				case 2:
					b.Events = append(b.Events, kvevents.Event{Kind: kvevents.KindBlockRemoved, BlockHashes: []uint64{h}})
				case 3:
					b.Events = append(b.Events, kvevents.Event{Kind: kvevents.KindAllBlocksCleared})
				}
				payload, err := kvevents.AppendBatch(nil, &b)
				if err != nil {
					t.Fatal(err)
				}
				switch op >> 3 % 4 {
				case 0:
					seq++
				case 1: // a jump
					seq += int64(arg%4) + 2
				case 2: // back: a restart
					seq = int64(arg % 3)
				}
				res := a.Apply(kvevents.Message{Seq: seq, Payload: payload}, now, op&0x40 != 0)
				ship(res)
				if res.Replay {
					ship(a.ApplyReplayed(kvevents.Message{Seq: seq, Payload: payload}, now))
				}
			case 3: // raw bytes as a payload
				seq++
				ship(a.Apply(kvevents.Message{Seq: seq, Payload: data[i:min(len(data), i+int(arg%32))]}, now, false))
			case 4:
				ship(a.Clear(now))
			case 5:
				_, _, res := a.Begin(now, arg&1 == 0)
				ship(res)
			default:
				seq++
				ship(a.Apply(kvevents.Message{Seq: seq, Payload: []byte{0x92, 0xcb, 0, 0, 0, 0, 0, 0, 0, 0, 0x90}}, now, false))
			}
		}
		got, want := replica.Digest(), ix.Digest()
		if d := append(radix.Difference(want, got), radix.Difference(got, want)...); len(d) > 0 {
			t.Fatalf("the replica's holdings of %v differ from the subscriber's", d)
		}
	})
}

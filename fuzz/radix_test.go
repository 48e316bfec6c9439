package fuzz

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/meshnode/meshnode/radix"
)

// radixLimits are small so that a decoder exceeding a limit shows up at once.
var radixLimits = radix.Limits{MaxWorkers: 16, MaxDeltas: 64, MaxPages: 256}

// radixSeedIndex builds a small index with shared prefixes, a fork, a touch
// and a removed worker, for seeds.
func radixSeedIndex(t testing.TB) *radix.Index {
	ix := radix.New(radix.Config{WorkerPages: 64})
	toks := make([]uint32, 16*12)
	for i := range toks {
		toks[i] = uint32(i * 7)
	}
	p := ix.AppendPages(nil, "m", toks)
	fork := append(append([]uint64(nil), p[:5]...), ix.AppendPages(nil, "m", toks[16:16*3])...)
	for _, d := range []struct {
		w     string
		pages []uint64
	}{{"a", p}, {"b", p[:5]}, {"c", fork}, {"gone", p[:2]}} {
		if _, err := ix.Insert(d.w, 1, 100, d.pages); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ix.Touch("b", 1, 105, p[2]); err != nil {
		t.Fatal(err)
	}
	if _, err := ix.RemoveWorker("gone", 1); err != nil {
		t.Fatal(err)
	}
	// An event-sourced worker: blocks of two pages, one removed, one
	// stored again; and pending pages, which snapshots leave out.
	ev := radix.EngineBlocks{Pages: p[:6], Hashes: []uint64{11, 12, 13}, PagesPerBlock: 2}
	if _, err := ix.StoreEvents("e", 1, 100, 1, 1<<16, ev); err != nil {
		t.Fatal(err)
	}
	if _, err := ix.RemoveEvents("e", 1, 101, 1, 2<<16, []uint64{13}); err != nil {
		t.Fatal(err)
	}
	if _, err := ix.StoreEvents("e", 1, 102, 1, 3<<16, radix.EngineBlocks{Anchor: p[3], Pages: fork[4:6], Hashes: []uint64{14}, PagesPerBlock: 2}); err != nil {
		t.Fatal(err)
	}
	if _, err := ix.InsertPending("e", 1, 103, p); err != nil {
		t.Fatal(err)
	}
	return ix
}

func radixSeedBatch(t testing.TB) []byte {
	var b radix.Batch
	b.Add(radix.Delta{Op: radix.OpInsert, Worker: "a", Epoch: 1, Stamp: 10, Pages: []uint64{1, 2, 3}})
	b.Add(radix.Delta{Op: radix.OpInsert, Worker: "b", Epoch: 2, Stamp: 12, Anchor: 2, Pages: []uint64{7}})
	b.Add(radix.Delta{Op: radix.OpTouch, Worker: "a", Epoch: 1, Stamp: 300, Anchor: 2})
	b.Add(radix.Delta{Op: radix.OpRemove, Worker: "c", Epoch: 5})
	b.Add(radix.Delta{Op: radix.OpStoreEvents, Worker: "e", Epoch: 1, Stamp: 11, Gen: 1, Ver: 1 << 16, Pages: []uint64{1, 2, 3, 4}, Hashes: []uint64{0, 9}, PagesPerBlock: 2})
	b.Add(radix.Delta{Op: radix.OpStoreEvents, Worker: "e", Epoch: 1, Stamp: 11, Gen: 1, Ver: 1<<16 | 1, Anchor: 4, Pages: []uint64{5}})
	b.Add(radix.Delta{Op: radix.OpRemoveEvents, Worker: "e", Epoch: 1, Gen: 1, Ver: 2 << 16, Hashes: []uint64{9, 10}, Pages: []uint64{3, 0}})
	b.Add(radix.Delta{Op: radix.OpEngineMap, Worker: "e", Epoch: 1, Gen: 1, Hashes: []uint64{0}, Pages: []uint64{2}})
	b.Add(radix.Delta{Op: radix.OpClearEvents, Worker: "f", Epoch: 1, Gen: 7})
	b.Add(radix.Delta{Op: radix.OpPending, Worker: "a", Epoch: 1, Stamp: 12, Pages: []uint64{1, 2, 8}})
	buf, err := radix.AppendBatch(nil, &b)
	if err != nil {
		t.Fatal(err)
	}
	return buf
}

// FuzzRadixBatch decodes delta batches: no panic, decode-encode-decode is
// stable, and applying what decodes keeps the index usable.
func FuzzRadixBatch(f *testing.F) {
	f.Add(radixSeedBatch(f))
	var hb radix.Batch
	ix := radixSeedIndex(f)
	for from := 0; from >= 0; {
		from = ix.Holdings(&hb, "a", from, 48)
	}
	for from := 0; from >= 0; {
		from = ix.Holdings(&hb, "e", from, 48)
	}
	seed, err := radix.AppendBatch(nil, &hb)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Fuzz(func(t *testing.T, data []byte) {
		var b radix.Batch
		if err := radix.DecodeBatch(&b, data, radixLimits); err != nil {
			if !errors.Is(err, radix.ErrDecode) {
				t.Fatalf("error %v does not wrap ErrDecode", err)
			}
			return
		}
		enc, err := radix.AppendBatch(nil, &b)
		if err != nil {
			t.Fatalf("re-encoding a decoded batch: %v", err)
		}
		var b2 radix.Batch
		if err := radix.DecodeBatch(&b2, enc, radixLimits); err != nil {
			t.Fatalf("decoding a re-encoded batch: %v", err)
		}
		if diff := cmp.Diff(b.Deltas, b2.Deltas, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("decode-encode-decode changed the batch (-first +second):\n%s", diff)
		}
		ix := radix.New(radix.Config{WorkerPages: 8, MaxPending: 8})
		_ = ix.ApplyBatch(&b)
		_ = ix.ApplyBatch(&b) // idempotent, and must not panic
		for _, d := range b.Deltas {
			ix.MatchPages(nil, append([]uint64{d.Anchor}, d.Pages...))
			for _, h := range d.Hashes {
				ix.EngineLineage(d.Worker, h)
			}
		}
		// Without budgets, anti-entropy of what applied reproduces it at
		// another replica.
		ix = radix.New(radix.Config{MaxPending: 8})
		_ = ix.ApplyBatch(&b)
		ix.ExpirePending(1 << 31)
		other := radix.New(radix.Config{MaxPending: 8})
		for _, s := range ix.Digest() {
			for from := 0; from >= 0; {
				var hb radix.Batch
				from = ix.Holdings(&hb, s.Worker, from, 64)
				enc, err := radix.AppendBatch(nil, &hb)
				if err != nil {
					t.Fatalf("encoding holdings: %v", err)
				}
				if err := radix.DecodeBatch(&hb, enc, radix.DefaultLimits()); err != nil {
					t.Fatalf("decoding holdings: %v", err)
				}
				if err := other.ApplyBatch(&hb); err != nil {
					t.Fatalf("applying holdings: %v", err)
				}
			}
		}
		if diff := cmp.Diff(ix.Digest(), other.Digest()); diff != "" {
			t.Fatalf("holdings do not reproduce the index (-index +copy):\n%s", diff)
		}
		if _, err := ix.AppendSnapshot(nil); err != nil {
			t.Fatalf("snapshot after applying a decoded batch: %v", err)
		}
	})
}

// FuzzRadixDigest decodes digests: no panic, and decode-encode-decode is
// stable.
func FuzzRadixDigest(f *testing.F) {
	f.Add(radix.AppendDigest(nil, radixSeedIndex(f).Digest()))
	f.Add(radix.AppendDigest(nil, nil))
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := radix.DecodeDigest(data, radixLimits)
		if err != nil {
			if !errors.Is(err, radix.ErrDecode) {
				t.Fatalf("error %v does not wrap ErrDecode", err)
			}
			return
		}
		enc := radix.AppendDigest(nil, d)
		d2, err := radix.DecodeDigest(enc, radixLimits)
		if err != nil {
			t.Fatalf("decoding a re-encoded digest: %v", err)
		}
		if diff := cmp.Diff(d, d2, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("decode-encode-decode changed the digest (-first +second):\n%s", diff)
		}
		if !bytes.Equal(enc, radix.AppendDigest(nil, d2)) {
			t.Fatal("encoding is not canonical")
		}
	})
}

// FuzzRadixSnapshot restores snapshots: no panic, all or nothing, and a
// restored index snapshots to one that restores to the same digest.
func FuzzRadixSnapshot(f *testing.F) {
	snap, err := radixSeedIndex(f).AppendSnapshot(nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(snap)
	empty, _ := radix.New(radix.Config{}).AppendSnapshot(nil)
	f.Add(empty)
	f.Fuzz(func(t *testing.T, data []byte) {
		radixRestoreRoundTrip(t, data)
		// Most mutations break the checksum; also try the body with a
		// checksum that matches, so the decoder behind it gets fuzzed.
		if len(data) >= 9 {
			fixed := append([]byte(nil), data...)
			binary.LittleEndian.PutUint32(fixed[5:], crc32.Checksum(fixed[9:], crc32.MakeTable(crc32.Castagnoli)))
			radixRestoreRoundTrip(t, fixed)
		}
	})
}

func radixRestoreRoundTrip(t *testing.T, data []byte) {
	{
		ix, err := radix.Restore(radix.Config{WorkerPages: 64}, data)
		if err != nil {
			if ix != nil {
				t.Fatal("failed restore returned an index")
			}
			return
		}
		snap, err := ix.AppendSnapshot(nil)
		if err != nil {
			t.Fatal(err)
		}
		ix2, err := radix.Restore(radix.Config{WorkerPages: 64}, snap)
		if err != nil {
			t.Fatalf("restoring a fresh snapshot: %v", err)
		}
		if diff := cmp.Diff(ix.Digest(), ix2.Digest()); diff != "" {
			t.Fatalf("snapshot round trip changed the digest (-first +second):\n%s", diff)
		}
	}
}

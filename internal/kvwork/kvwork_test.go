package kvwork

import (
	"bytes"
	"slices"
	"testing"

	"github.com/meshnode/meshnode/kvevents"
)

// run makes steps of an engine and returns the encoded batches and the
// stored requests.
func run(t *testing.T, seed uint64, steps int, blocks float64) ([][]byte, []Stored, *Engine) {
	t.Helper()
	e, err := NewEngine(Config{CacheBlocks: 1024}, seed)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	var st []Stored
	var b kvevents.Batch
	for range steps {
		b.Events = b.Events[:0]
		st = e.Step(&b, blocks, st)
		p, err := kvevents.AppendBatch(nil, &b)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	return out, st, e
}

func TestEngineDeterministic(t *testing.T) {
	a, _, _ := run(t, 7, 50, 100)
	b, _, _ := run(t, 7, 50, 100)
	if !slices.EqualFunc(a, b, bytes.Equal) {
		t.Fatal("same seed, other bytes")
	}
	c, _, _ := run(t, 8, 50, 100)
	if slices.EqualFunc(a, c, bytes.Equal) {
		t.Fatal("another seed made the same bytes")
	}
}

// TestEngineShape: the stream is vLLM's: stored events of whole blocks with
// their tokens, parents for prompts that hit the cache, removals once the
// cache is full, prompts within bounds, and the rate asked for.
func TestEngineShape(t *testing.T) {
	const steps, rate = 400, 100.0
	payloads, stored, e := run(t, 1, steps, rate)
	var kinds [4]int
	blocks, parents := 0, 0
	var b kvevents.Batch
	for _, p := range payloads {
		if err := kvevents.DecodeBatch(&b, p, kvevents.DefaultLimits()); err != nil {
			t.Fatal(err)
		}
		for _, ev := range b.Events {
			kinds[ev.Kind]++
			if ev.Kind != kvevents.KindBlockStored {
				continue
			}
			if len(ev.TokenIDs) != len(ev.BlockHashes)*ev.BlockSize || ev.BlockSize != 16 {
				t.Fatalf("stored event of %d blocks of %d with %d tokens", len(ev.BlockHashes), ev.BlockSize, len(ev.TokenIDs))
			}
			blocks += len(ev.BlockHashes)
			if ev.HasParent {
				parents++
			}
		}
	}
	if kinds[kvevents.KindBlockRemoved] == 0 || parents == 0 {
		t.Fatalf("no removals (%d) or no prefix hits (%d): not a churning cache with shared prompts", kinds[kvevents.KindBlockRemoved], parents)
	}
	if kinds[kvevents.KindBlockStored] != len(stored) {
		t.Fatalf("%d stored events, %d stored requests", kinds[kvevents.KindBlockStored], len(stored))
	}
	if want := steps * rate; float64(blocks) < 0.9*want || float64(blocks) > 1.1*want {
		t.Fatalf("%d blocks stored, want about %v", blocks, want)
	}
	for _, s := range stored {
		if len(s.Tokens) < 512-15 || len(s.Tokens) > 4096 || len(s.Tokens)%16 != 0 {
			t.Fatalf("prompt prefix of %d tokens", len(s.Tokens))
		}
	}
	if last := stored[len(stored)-1]; !e.Contains(last.LastHash) {
		t.Fatal("the last request's last block is not cached")
	}
}

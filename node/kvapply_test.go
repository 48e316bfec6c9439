package node

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/meshnode/meshnode/kvevents"
	"github.com/meshnode/meshnode/radix"
)

// fakeEventIndex records the applier's calls and keeps just enough state
// (the engine-hash lineage map, the event state) to answer it, as the
// index does.
type fakeEventIndex struct {
	mu         sync.Mutex // the runner's goroutine and the test's
	pageTokens int
	log        []string
	lineage    map[uint64]uint64
	gen        uint32
	ver        uint64
	ok         bool
	stored     []radix.EngineBlocks // every StoreEvents call's blocks
}

func newFakeEventIndex(pageTokens int) *fakeEventIndex {
	return &fakeEventIndex{pageTokens: pageTokens, lineage: map[uint64]uint64{}}
}

func (f *fakeEventIndex) PageTokens(string) int { return f.pageTokens }

func seqVer(ver uint64) string { return fmt.Sprintf("%d:%d", ver>>16, ver&0xffff) }

func (f *fakeEventIndex) StoreEvents(worker string, epoch uint64, stamp uint32, gen uint32, ver uint64, b radix.EngineBlocks) (radix.Delta, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.log = append(f.log, fmt.Sprintf("store gen=%d ver=%s parent=%v pages=%d blocks=%v ppb=%d", gen, seqVer(ver), b.Anchor != 0, len(b.Pages), b.Hashes, b.PagesPerBlock))
	b.Pages = slices.Clone(b.Pages)
	f.stored = append(f.stored, b)
	for j, h := range b.Hashes {
		f.lineage[h] = b.Pages[(j+1)*b.PagesPerBlock-1]
	}
	f.gen, f.ver, f.ok = gen, ver, true
	return radix.Delta{Op: radix.OpInsert, Worker: worker, Epoch: epoch, Stamp: stamp, Anchor: b.Anchor, Pages: b.Pages}, nil
}

func (f *fakeEventIndex) RemoveEvents(worker string, epoch uint64, stamp uint32, gen uint32, ver uint64, hs []uint64) (radix.Delta, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.log = append(f.log, fmt.Sprintf("remove gen=%d ver=%s blocks=%v", gen, seqVer(ver), hs))
	for _, h := range hs {
		delete(f.lineage, h)
	}
	f.gen, f.ver, f.ok = gen, ver, true
	return radix.Delta{Op: radix.OpRemove, Worker: worker, Epoch: epoch, Stamp: stamp}, nil
}

func (f *fakeEventIndex) ClearEvents(worker string, epoch uint64, stamp uint32, gen uint32) (radix.Delta, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.log = append(f.log, fmt.Sprintf("clear gen=%d", gen))
	clear(f.lineage)
	f.gen, f.ver, f.ok = gen, 0, false // as the index: no op of the generation yet
	return radix.Delta{Op: radix.OpRemove, Worker: worker, Epoch: epoch, Stamp: stamp}, nil
}

func (f *fakeEventIndex) EngineLineage(_ string, h uint64) (uint64, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	l, ok := f.lineage[h]
	return l, ok
}

func (f *fakeEventIndex) EventState(string) (uint32, uint64, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.gen, f.ver, f.ok
}

// takeLog returns the calls logged since the last take.
func (f *fakeEventIndex) takeLog() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	l := f.log
	f.log = nil
	return l
}

// kvScript feeds an applier messages whose payloads name batches of a
// table, so that the applier's logic is tested apart from the codec.
type kvScript struct {
	batches []*kvevents.Batch
}

func (s *kvScript) msg(seq int64, b *kvevents.Batch) kvevents.Message {
	s.batches = append(s.batches, b)
	return kvevents.Message{Topic: "kv", Seq: seq, Payload: []byte(strconv.Itoa(len(s.batches) - 1))}
}

func (s *kvScript) decode(b *kvevents.Batch, p []byte) error {
	i, err := strconv.Atoi(string(p))
	if err != nil || i < 0 || i >= len(s.batches) {
		return errors.New("test: bad payload")
	}
	*b = *s.batches[i]
	return nil
}

// toks returns n tokens starting at from.
func toks(from, n int) []uint32 {
	t := make([]uint32, n)
	for i := range t {
		t[i] = uint32(from + i)
	}
	return t
}

func stored(hashes []uint64, parent uint64, tokens []uint32, blockSize int) kvevents.Event {
	return kvevents.Event{Kind: kvStored, BlockHashes: hashes, ParentHash: parent, HasParent: parent != 0, TokenIDs: tokens, BlockSize: blockSize}
}

func batch(evs ...kvevents.Event) *kvevents.Batch { return &kvevents.Batch{TS: 1, Events: evs} }

// kvStep is one input of an applier test: begin (with or without replay),
// a live message, or a replayed one.
type kvStep struct {
	op        string // "begin", "live", "replayed", "clear"
	canReplay bool
	seq       int64
	b         *kvevents.Batch
}

func TestKVApplier(t *testing.T) {
	const bs = 32 // engine block size: two pages of 16 tokens
	root := stored([]uint64{11, 12}, 0, toks(0, 2*bs), bs)
	child := stored([]uint64{13}, 12, toks(100, bs), bs)
	orphan := stored([]uint64{21}, 99, toks(200, bs), bs)
	removed := kvevents.Event{Kind: kvRemoved, BlockHashes: []uint64{13}}
	cleared := kvevents.Event{Kind: kvCleared}
	cpu := root
	cpu.Medium = "CPU"
	cpuRemoved := removed
	cpuRemoved.Medium = "cpu"
	gpu := root
	gpu.Medium = "GPU"
	odd := stored([]uint64{31}, 0, toks(0, 24), 24)
	short := stored([]uint64{41, 42}, 0, toks(0, bs), bs)
	lora := root
	lora.HasLoRA, lora.LoRAName = true, "sql"
	unknown := kvevents.Event{Kind: 99}
	group1 := root
	group1.GroupIdx = 1
	group1Removed := removed
	group1Removed.GroupIdx = 1
	partial := stored([]uint64{51, 52, 53}, 0, toks(0, 2*bs+5), bs) // SGLang: a partial last page

	tests := []struct {
		name   string
		steps  []kvStep
		want   []string // the index calls, in order
		status []string // each step's status (and replay request)
		counts KVCounts // summed over the steps
	}{{
		name:   "stored then child then removed",
		steps:  []kvStep{{op: "begin"}, {op: "live", seq: 0, b: batch(root, child)}, {op: "live", seq: 1, b: batch(removed)}},
		want:   []string{"store gen=1 ver=0:0 parent=false pages=4 blocks=[11 12] ppb=2", "store gen=1 ver=0:1 parent=true pages=2 blocks=[13] ppb=2", "remove gen=1 ver=1:0 blocks=[13]"},
		status: []string{"begin from 0 replay=false", "applied", "applied"},
		counts: KVCounts{Stored: 2, StoredBlocks: 3, Removed: 1},
	}, {
		name:   "cleared starts a generation",
		steps:  []kvStep{{op: "begin"}, {op: "live", seq: 5, b: batch(root, cleared, root)}},
		want:   []string{"store gen=1 ver=5:0 parent=false pages=4 blocks=[11 12] ppb=2", "clear gen=2", "store gen=2 ver=5:2 parent=false pages=4 blocks=[11 12] ppb=2"},
		status: []string{"begin from 0 replay=false", "applied"},
		counts: KVCounts{Stored: 2, StoredBlocks: 4, Cleared: 1},
	}, {
		name:   "duplicate skipped",
		steps:  []kvStep{{op: "begin"}, {op: "live", seq: 3, b: batch(root)}, {op: "replayed", seq: 3, b: batch(root)}},
		want:   []string{"store gen=1 ver=3:0 parent=false pages=4 blocks=[11 12] ppb=2"},
		status: []string{"begin from 0 replay=false", "applied", "duplicate"},
		counts: KVCounts{Stored: 1, StoredBlocks: 2},
	}, {
		name: "gap replayed",
		steps: []kvStep{{op: "begin", canReplay: true}, {op: "live", seq: 0, b: batch(root)}, {op: "live", seq: 3, canReplay: true, b: batch(removed)},
			{op: "replayed", seq: 1, b: batch(child)}, {op: "replayed", seq: 2, b: batch()}, {op: "replayed", seq: 3, b: batch(removed)}, {op: "live", seq: 4, b: batch(child)}},
		want: []string{"store gen=1 ver=0:0 parent=false pages=4 blocks=[11 12] ppb=2", "store gen=1 ver=1:0 parent=true pages=2 blocks=[13] ppb=2",
			"remove gen=1 ver=3:0 blocks=[13]", "store gen=1 ver=4:0 parent=true pages=2 blocks=[13] ppb=2"},
		status: []string{"begin from 0 replay=true", "applied", "gap from 1", "applied", "applied", "applied", "applied"},
		counts: KVCounts{Stored: 3, StoredBlocks: 4, Removed: 1},
	}, {
		name:   "gap without replay clears and rebuilds",
		steps:  []kvStep{{op: "begin"}, {op: "live", seq: 0, b: batch(root)}, {op: "live", seq: 2, b: batch(child)}},
		want:   []string{"store gen=1 ver=0:0 parent=false pages=4 blocks=[11 12] ppb=2", "clear gen=2"},
		status: []string{"begin from 0 replay=false", "applied", "resync"},
		counts: KVCounts{Stored: 1, StoredBlocks: 2, Orphans: 1},
	}, {
		name: "replay that does not reach back clears",
		steps: []kvStep{{op: "begin"}, {op: "live", seq: 0, b: batch(root)}, {op: "live", seq: 5, canReplay: true, b: batch(root)},
			{op: "replayed", seq: 4, b: batch(root)}, {op: "replayed", seq: 5, b: batch(root)}},
		want: []string{"store gen=1 ver=0:0 parent=false pages=4 blocks=[11 12] ppb=2", "clear gen=2",
			"store gen=2 ver=4:0 parent=false pages=4 blocks=[11 12] ppb=2", "store gen=2 ver=5:0 parent=false pages=4 blocks=[11 12] ppb=2"},
		status: []string{"begin from 0 replay=false", "applied", "gap from 1", "resync", "applied"},
		counts: KVCounts{Stored: 3, StoredBlocks: 6},
	}, {
		name:   "restart",
		steps:  []kvStep{{op: "begin"}, {op: "live", seq: 7, b: batch(root)}, {op: "live", seq: 0, b: batch(root)}},
		want:   []string{"store gen=1 ver=7:0 parent=false pages=4 blocks=[11 12] ppb=2", "clear gen=2", "store gen=2 ver=0:0 parent=false pages=4 blocks=[11 12] ppb=2"},
		status: []string{"begin from 0 replay=false", "applied", "restart"},
		counts: KVCounts{Stored: 2, StoredBlocks: 4},
	}, {
		name: "restart replays from the start",
		steps: []kvStep{{op: "begin", canReplay: true}, {op: "live", seq: 7, b: batch(root)}, {op: "live", seq: 1, canReplay: true, b: batch(removed)},
			{op: "replayed", seq: 0, b: batch(root, child)}, {op: "replayed", seq: 1, b: batch(removed)}},
		want: []string{"store gen=1 ver=7:0 parent=false pages=4 blocks=[11 12] ppb=2", "clear gen=2",
			"store gen=2 ver=0:0 parent=false pages=4 blocks=[11 12] ppb=2", "store gen=2 ver=0:1 parent=true pages=2 blocks=[13] ppb=2", "remove gen=2 ver=1:0 blocks=[13]"},
		status: []string{"begin from 0 replay=true", "applied", "restart from 0", "applied", "applied"},
		counts: KVCounts{Stored: 3, StoredBlocks: 5, Removed: 1},
	}, {
		name:   "block size not a multiple of the page size",
		steps:  []kvStep{{op: "begin"}, {op: "live", seq: 0, b: batch(odd, root)}},
		want:   []string{"store gen=1 ver=0:1 parent=false pages=4 blocks=[11 12] ppb=2"},
		status: []string{"begin from 0 replay=false", "applied: " + ErrKVBlockSize.Error()},
		counts: KVCounts{Stored: 1, StoredBlocks: 2, BlockSize: 1},
	}, {
		name:   "other media counted, not routed",
		steps:  []kvStep{{op: "begin"}, {op: "live", seq: 0, b: batch(cpu, gpu, cpuRemoved)}},
		want:   []string{"store gen=1 ver=0:1 parent=false pages=4 blocks=[11 12] ppb=2"},
		status: []string{"begin from 0 replay=false", "applied"},
		counts: KVCounts{Stored: 1, StoredBlocks: 2, OtherMedium: 2},
	}, {
		name:   "other groups counted, not routed",
		steps:  []kvStep{{op: "begin"}, {op: "live", seq: 0, b: batch(group1, root, group1Removed)}},
		want:   []string{"store gen=1 ver=0:1 parent=false pages=4 blocks=[11 12] ppb=2"},
		status: []string{"begin from 0 replay=false", "applied"},
		counts: KVCounts{Stored: 1, StoredBlocks: 2, OtherGroup: 2},
	}, {
		name:   "a partial last block is left out",
		steps:  []kvStep{{op: "begin"}, {op: "live", seq: 0, b: batch(partial)}},
		want:   []string{"store gen=1 ver=0:0 parent=false pages=4 blocks=[51 52] ppb=2"},
		status: []string{"begin from 0 replay=false", "applied"},
		counts: KVCounts{Stored: 1, StoredBlocks: 2},
	}, {
		name:   "orphans, malformed and unknown events ignored",
		steps:  []kvStep{{op: "begin"}, {op: "live", seq: 0, b: &kvevents.Batch{Events: []kvevents.Event{orphan, short, unknown}, Skipped: 2}}},
		status: []string{"begin from 0 replay=false", "applied"},
		counts: KVCounts{Orphans: 1, Malformed: 4},
	}, {
		name:   "decode error applies nothing",
		steps:  []kvStep{{op: "begin"}, {op: "live", seq: 0}, {op: "live", seq: 1, b: batch(root)}},
		want:   []string{"store gen=1 ver=1:0 parent=false pages=4 blocks=[11 12] ppb=2"},
		status: []string{"begin from 0 replay=false", "decode_error: node: worker \"w\": seq 0: test: bad payload", "applied"},
		counts: KVCounts{Stored: 1, StoredBlocks: 2},
	}, {
		name:   "lora blocks kept apart",
		steps:  []kvStep{{op: "begin"}, {op: "live", seq: 0, b: batch(lora)}},
		want:   []string{"store gen=1 ver=0:0 parent=false pages=4 blocks=[11 12] ppb=2"},
		status: []string{"begin from 0 replay=false", "applied"},
		counts: KVCounts{Stored: 1, StoredBlocks: 2},
	}, {
		name:   "grace clear",
		steps:  []kvStep{{op: "begin"}, {op: "live", seq: 0, b: batch(root)}, {op: "clear"}, {op: "live", seq: 9, b: batch(root)}},
		want:   []string{"store gen=1 ver=0:0 parent=false pages=4 blocks=[11 12] ppb=2", "clear gen=2", "store gen=2 ver=9:0 parent=false pages=4 blocks=[11 12] ppb=2"},
		status: []string{"begin from 0 replay=false", "applied", "cleared", "applied"},
		counts: KVCounts{Stored: 2, StoredBlocks: 4},
	}}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ix := newFakeEventIndex(16)
			var sc kvScript
			a := NewKVApplier(ix, "w", "m", 1)
			a.decode = sc.decode
			var status []string
			var counts KVCounts
			for _, st := range tt.steps {
				var m kvevents.Message
				if st.b != nil {
					m = sc.msg(st.seq, st.b)
				} else {
					m = kvevents.Message{Seq: st.seq, Payload: []byte("garbage")}
				}
				var res KVResult
				switch st.op {
				case "begin":
					from, replay, r := a.Begin(now, st.canReplay)
					status = append(status, fmt.Sprintf("begin from %d replay=%v", from, replay))
					counts.add(r.KVCounts)
					continue
				case "clear":
					res = a.Clear(now)
				case "live":
					res = a.Apply(m, now, st.canReplay)
				case "replayed":
					res = a.ApplyReplayed(m, now)
				}
				s := res.Status.String()
				if res.Replay {
					s += fmt.Sprintf(" from %d", res.ReplayFrom)
				}
				if res.Err != nil {
					s += ": " + res.Err.Error()
				}
				if errors.Is(res.Err, ErrKVBlockSize) {
					s = res.Status.String() + ": " + ErrKVBlockSize.Error()
				}
				status = append(status, s)
				counts.add(res.KVCounts)
			}
			if diff := cmp.Diff(tt.want, ix.log); diff != "" {
				t.Errorf("index calls (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.status, status); diff != "" {
				t.Errorf("statuses (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.counts, counts); diff != "" {
				t.Errorf("counts (-want +got):\n%s", diff)
			}
		})
	}
}

// TestKVApplierPages checks the pages a stored event becomes: the model's
// lineage from the root, the parent block's lineage below a child, and
// an adapter's own seed for LoRA blocks, so that a prompt cut into pages
// the way a route request is matches what the engine cached.
func TestKVApplierPages(t *testing.T) {
	const bs = 32
	prompt := toks(0, 3*bs)
	want := radix.AppendTokenPages(nil, radix.TokenSeed("m"), 16, prompt)
	wantLoRA := radix.AppendTokenPages(nil, LoRASeed("m", "sql"), 16, prompt)

	ix := newFakeEventIndex(16)
	var sc kvScript
	a := NewKVApplier(ix, "w", "m", 1)
	a.decode = sc.decode
	a.Begin(time.Time{}, false)
	lora := stored([]uint64{21}, 0, prompt[:bs], bs)
	lora.HasLoRA, lora.LoRAName = true, "sql"
	loraChild := stored([]uint64{22, 23}, 21, prompt[bs:], bs)
	loraChild.HasLoRA, loraChild.LoRAName = true, "sql"
	b := batch(stored([]uint64{1, 2}, 0, prompt[:2*bs], bs), stored([]uint64{3}, 2, prompt[2*bs:], bs), lora, loraChild)
	if res := a.Apply(sc.msg(0, b), time.Time{}, false); res.Status != KVApplied || res.Stored != 4 || len(res.Deltas) != 4 {
		t.Fatalf("apply: %+v", res)
	}
	var got, gotLoRA []uint64
	for i, s := range ix.stored {
		if i < 2 {
			got = append(got, s.Pages...)
		} else {
			gotLoRA = append(gotLoRA, s.Pages...)
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("base pages (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(wantLoRA, gotLoRA); diff != "" {
		t.Errorf("LoRA pages (-want +got):\n%s", diff)
	}
	if ix.stored[1].Anchor != want[3] {
		t.Errorf("child anchor %x, want the parent's last page %x", ix.stored[1].Anchor, want[3])
	}
	if slices.Contains(want, wantLoRA[0]) {
		t.Error("a LoRA page aliases a base page")
	}
}

// TestKVApplierBegin checks where a new owner starts: after the last
// sequence number the index holds for the worker, by replay, or with a
// clear when the engine offers none.
func TestKVApplierBegin(t *testing.T) {
	for _, tt := range []struct {
		name      string
		gen       uint32
		ver       uint64
		ok        bool
		canReplay bool
		want      string
	}{
		{"fresh, replay", 0, 0, false, true, "from 0 replay=true log="},
		{"fresh, no replay", 0, 0, false, false, "from 0 replay=false log="},
		{"known, replay", 3, 41<<16 | 2, true, true, "from 42 replay=true log="},
		{"known, no replay", 3, 41<<16 | 2, true, false, "from 0 replay=false log=clear gen=4"},
		{"cleared, replay", 3, 0, false, true, "from 0 replay=true log="},
		{"cleared, no replay", 3, 0, false, false, "from 0 replay=false log="},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ix := newFakeEventIndex(16)
			ix.gen, ix.ver, ix.ok = tt.gen, tt.ver, tt.ok
			a := NewKVApplier(ix, "w", "m", 1)
			from, replay, _ := a.Begin(time.Time{}, tt.canReplay)
			got := fmt.Sprintf("from %d replay=%v log=%s", from, replay, strings.Join(ix.log, ";"))
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

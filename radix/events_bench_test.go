package radix

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"
	"time"
)

// benchEngine is a vLLM-like engine's prefix cache publishing KV events,
// for benchmarks: block size 16 tokens = one page; requests of 512-4096
// tokens (32-256 blocks): 60 % follow-up turns of a conversation (the
// previous prompt plus 2-32 blocks), 30 % new conversations on one of 16
// shared 32-block system prompts, 10 % unique prompts. The cache keeps cap
// blocks in LRU order; a request touches its blocks tail first, as vLLM
// frees them, so the least recently used block is always a leaf. Each
// request publishes at most one BlockStored (the blocks after the longest
// cached prefix) and one BlockRemoved (what it evicted).
type benchEngine struct {
	worker string
	salt   uint64
	cap    int
	rng    *rand.Rand
	sys    [][]uint64
	seq    uint64
	blocks map[uint64]*lruBlock // by page
	head   lruBlock             // sentinel: head.next is the least recent
	convs  [][]uint64
}

type lruBlock struct {
	page       uint64
	prev, next *lruBlock
}

type benchOp struct {
	worker string
	store  bool
	ver    uint64
	blocks EngineBlocks
	hashes []uint64 // removals
}

func newBenchEngine(worker string, capBlocks int, sys [][]uint64, seed uint64) *benchEngine {
	e := &benchEngine{worker: worker, salt: seed*prime1 | 1, cap: capBlocks, rng: newTestRand(seed),
		sys: sys, blocks: make(map[uint64]*lruBlock, capBlocks+256)}
	e.head.prev, e.head.next = &e.head, &e.head
	return e
}

func (e *benchEngine) engineHash(page uint64) uint64 { return pageMix(page ^ e.salt) }

func (e *benchEngine) touch(b *lruBlock) {
	if b.next != nil { // unlink
		b.prev.next, b.next.prev = b.next, b.prev
	}
	b.prev, b.next = e.head.prev, &e.head
	e.head.prev.next = b
	e.head.prev = b
}

// prompt draws the next request's pages.
func (e *benchEngine) prompt() []uint64 {
	rng := e.rng
	switch k := rng.IntN(100); {
	case k < 60 && len(e.convs) > 0:
		i := rng.IntN(len(e.convs))
		p := e.convs[i]
		if len(p) < 256-32 {
			p = randPath(rng, p, 2+rng.IntN(31))
			e.convs[i] = p
			return p
		}
		e.convs[i] = e.convs[len(e.convs)-1]
		e.convs = e.convs[:len(e.convs)-1]
		fallthrough
	case k < 90:
		p := randPath(rng, e.sys[rng.IntN(len(e.sys))], rng.IntN(225))
		if len(e.convs) < 64 {
			e.convs = append(e.convs, p)
		} else {
			e.convs[rng.IntN(len(e.convs))] = p
		}
		return p
	default:
		return randPath(rng, nil, 32+rng.IntN(225))
	}
}

// request runs one request and appends the events it publishes.
func (e *benchEngine) request(ops []benchOp) []benchOp {
	p := e.prompt()
	e.seq++
	hit := 0
	for hit < len(p) {
		if _, ok := e.blocks[p[hit]]; !ok {
			break
		}
		hit++
	}
	idx := uint64(0)
	if hit < len(p) {
		op := benchOp{worker: e.worker, store: true, ver: e.seq << 16,
			blocks: EngineBlocks{Pages: p[hit:], Hashes: make([]uint64, len(p)-hit), PagesPerBlock: 1}}
		if hit > 0 {
			op.blocks.Anchor = p[hit-1]
		}
		for i, pg := range p[hit:] {
			op.blocks.Hashes[i] = e.engineHash(pg)
			e.blocks[pg] = &lruBlock{page: pg}
		}
		ops = append(ops, op)
		idx++
	}
	for i := len(p) - 1; i >= 0; i-- {
		e.touch(e.blocks[p[i]])
	}
	if len(e.blocks) > e.cap {
		op := benchOp{worker: e.worker, ver: e.seq<<16 | idx}
		for len(e.blocks) > e.cap {
			b := e.head.next
			b.prev.next, b.next.prev = b.next, b.prev
			delete(e.blocks, b.page)
			op.hashes = append(op.hashes, e.engineHash(b.page))
		}
		ops = append(ops, op)
	}
	return ops
}

// benchFleet is the engines of one benchmark, fed round robin.
type benchFleet struct {
	engines []*benchEngine
	next    int
}

func newBenchFleet(n, capBlocks int, seed uint64) *benchFleet {
	rng := newTestRand(seed)
	sys := make([][]uint64, 16)
	for i := range sys {
		sys[i] = randPath(rng, nil, 32)
	}
	f := &benchFleet{}
	for i := range n {
		f.engines = append(f.engines, newBenchEngine(fmt.Sprintf("engine-%02d", i), capBlocks, sys, seed+uint64(i)+1))
	}
	return f
}

func (f *benchFleet) requests(ops []benchOp, n int) []benchOp {
	for range n {
		ops = f.engines[f.next].request(ops)
		f.next = (f.next + 1) % len(f.engines)
	}
	return ops
}

// full reports whether every engine's cache is full.
func (f *benchFleet) full() bool {
	for _, e := range f.engines {
		if len(e.blocks) < e.cap {
			return false
		}
	}
	return true
}

// applyOp applies op at ix as the subscribing node does, returning the
// blocks it carried and the delta.
func applyOp(tb testing.TB, ix *Index, op *benchOp, stamp uint32) (int, Delta) {
	if op.store {
		d, err := ix.StoreEvents(op.worker, 1, stamp, 1, op.ver, op.blocks)
		if err != nil {
			tb.Fatal(err)
		}
		return len(op.blocks.Hashes), d
	}
	d, err := ix.RemoveEvents(op.worker, 1, stamp, 1, op.ver, op.hashes)
	if err != nil {
		tb.Fatal(err)
	}
	return len(op.hashes), d
}

var eventCapFlag = flag.Int("radix.eventcap", 16384, "blocks cached per engine in BenchmarkApplyEvents")

// BenchmarkApplyEvents applies engine event streams (16 engines at
// steady state, their caches full, each request storing and evicting) and
// reports blocks (stored + removed) per second of one core. subscriber
// calls StoreEvents/RemoveEvents as the subscribing node does; replica
// applies the deltas they return, as every other node does; replica-decode
// also decodes them from batches of one request's deltas (DecodeBatch,
// then ApplyBatch), as they arrive.
func BenchmarkApplyEvents(b *testing.B) {
	for _, mode := range []string{"subscriber", "replica", "replica-decode"} {
		b.Run(mode, func(b *testing.B) {
			fleet := newBenchFleet(16, *eventCapFlag, 7)
			sub := New(Config{})
			rep := New(Config{})
			var ops []benchOp
			var stamp uint32
			// Warm up until every cache is full and has churned once.
			for !fleet.full() || stamp < 4*uint32(len(fleet.engines)) {
				ops = fleet.requests(ops[:0], 64)
				for i := range ops {
					stamp++
					_, d := applyOp(b, sub, &ops[i], stamp)
					if err := rep.Apply(d); err != nil {
						b.Fatal(err)
					}
				}
			}
			var blocks int64
			var deltas []Delta
			var encoded [][]byte
			var batch Batch
			var cpu time.Duration
			cpu0 := cpuTime()
			i := len(ops) // the warm-up's ops are applied
			b.ReportAllocs()
			for b.Loop() {
				if i == len(ops) {
					cpu += cpuTime() - cpu0
					b.StopTimer()
					ops = fleet.requests(ops[:0], 64)
					i = 0
					if mode != "subscriber" {
						deltas = deltas[:0]
						for j := range ops {
							stamp++
							_, d := applyOp(b, sub, &ops[j], stamp)
							d.Pages, d.Hashes = slices.Clone(d.Pages), slices.Clone(d.Hashes)
							deltas = append(deltas, d)
						}
						if mode == "replica-decode" {
							encoded = encoded[:0]
							for j := range deltas {
								var bt Batch
								bt.Deltas = deltas[j : j+1]
								buf, err := AppendBatch(nil, &bt)
								if err != nil {
									b.Fatal(err)
								}
								encoded = append(encoded, buf)
							}
						}
					}
					b.StartTimer()
					cpu0 = cpuTime()
				}
				if mode == "replica-decode" {
					if err := DecodeBatch(&batch, encoded[i], DefaultLimits()); err != nil {
						b.Fatal(err)
					}
					if err := rep.ApplyBatch(&batch); err != nil {
						b.Fatal(err)
					}
				}
				if mode != "subscriber" {
					if mode == "replica" {
						if err := rep.Apply(deltas[i]); err != nil {
							b.Fatal(err)
						}
					}
					if deltas[i].Op == OpStoreEvents {
						blocks += int64(len(deltas[i].Hashes))
					} else {
						blocks += int64(len(deltas[i].Pages))
					}
				} else {
					stamp++
					n, _ := applyOp(b, sub, &ops[i], stamp)
					blocks += int64(n)
				}
				i++
			}
			cpu += cpuTime() - cpu0
			b.ReportMetric(float64(blocks)/b.Elapsed().Seconds(), "blocks/s")
			b.ReportMetric(float64(blocks)/cpu.Seconds(), "blocks/cpu-s")
			b.ReportMetric(float64(blocks)/float64(b.N), "blocks/op")
			ix := sub
			if mode == "replica" {
				ix = rep
			}
			st := ix.Stats()
			b.ReportMetric(float64(st.HolderPages), "holder-pages")
		})
	}
}

var eventMemCapFlag = flag.Int("radix.eventmemcap", 65536, "blocks cached per engine in BenchmarkEventMemory")

// BenchmarkEventMemory reports the heap bytes per event-sourced
// holder-page of a replica at steady state: 16 engines of eventmemcap
// blocks each, after their caches filled and churned once more, engine
// maps and tombstones included (runtime.ReadMemStats after GC), with the
// default tombstone bound and a smaller one. The subscriber's engine hash
// index (built only where a node subscribes) is reported apart, as
// rev-B/holder-page.
func BenchmarkEventMemory(b *testing.B) {
	for _, tombs := range []int{4096, DefaultEventTombstones, 1024} {
		b.Run(fmt.Sprintf("tombstones=%d", tombs), func(b *testing.B) {
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			ix := buildEventIndex(b, Config{MaxEventTombstones: tombs}, 16, *eventMemCapFlag)
			runtime.GC()
			runtime.ReadMemStats(&after)
			st := ix.Stats()
			for b.Loop() {
				_ = ix.Stats()
			}
			hp := float64(st.HolderPages)
			b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/hp, "B/holder-page")
			b.ReportMetric(float64(st.Bytes)/hp, "est-B/holder-page")
			b.ReportMetric(float64(st.EventBytes)/hp, "event-B/holder-page")
			b.ReportMetric(hp, "holder-pages")
			b.ReportMetric(float64(st.Chains), "chains")
			// Where the index's own bytes go.
			var hashCap int
			for ci := range ix.x.chains {
				hashCap += cap(ix.x.chains[ci].hashes)
			}
			b.ReportMetric(float64(8*hashCap)/hp, "hashes-B/holder-page")
			b.ReportMetric(float64(ix.x.table.bytes())/hp, "table-B/holder-page")
			b.ReportMetric(float64(ix.x.table.n)/float64(len(ix.x.table.slots)), "table-load")
			// What the subscriber adds for the workers it subscribes to.
			ix.mu.Lock()
			for w := range ix.x.workers {
				if ev := ix.x.workers[w].ev; ev != nil {
					ix.x.lookup(uint32(w), ev, 0)
				}
			}
			ix.mu.Unlock()
			runtime.GC()
			var withRev runtime.MemStats
			runtime.ReadMemStats(&withRev)
			b.ReportMetric(float64(withRev.HeapAlloc-after.HeapAlloc)/hp, "rev-B/holder-page")
			runtime.KeepAlive(ix)
		})
	}
}

// buildEventIndex returns a replica's index of n engines of capBlocks
// blocks each at steady state; the generator is garbage when it returns.
func buildEventIndex(tb testing.TB, cfg Config, n, capBlocks int) *Index {
	fleet := newBenchFleet(n, capBlocks, 11)
	sub, rep := New(cfg), New(cfg)
	var ops []benchOp
	var stamp uint32
	stored := 0
	for !fleet.full() || stored < 2*n*capBlocks {
		ops = fleet.requests(ops[:0], 256)
		for i := range ops {
			stamp++
			k, d := applyOp(tb, sub, &ops[i], stamp)
			if ops[i].store {
				stored += k
			}
			if err := rep.Apply(d); err != nil {
				tb.Fatal(err)
			}
		}
	}
	return rep
}

func TestEventBenchStream(t *testing.T) {
	// The benchmark's streams keep the subscriber and a replica equal, and
	// every engine's cache equal to what its worker holds.
	fleet := newBenchFleet(4, 300, 3)
	sub, rep := New(Config{}), New(Config{})
	var ops []benchOp
	for round := range 20 {
		ops = fleet.requests(ops[:0], 50)
		for i := range ops {
			_, d := applyOp(t, sub, &ops[i], uint32(round))
			if err := rep.Apply(d); err != nil {
				t.Fatal(err)
			}
		}
	}
	check(t, rep)
	if d := Difference(sub.Digest(), rep.Digest()); len(d) != 0 {
		t.Fatalf("subscriber and replica differ on %v", d)
	}
	st := rep.Stats()
	want := 0
	for _, e := range fleet.engines {
		want += len(e.blocks)
	}
	if st.HolderPages != int64(want) || st.EngineEntries != int64(want) {
		t.Fatalf("holder-pages %d, engine entries %d, engines cache %d blocks", st.HolderPages, st.EngineEntries, want)
	}
}

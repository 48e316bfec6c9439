package radix

import (
	"encoding/binary"
	"flag"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"
)

// workload generates the benchmark index: W workers, each serving a few of
// S shared system prompts of 64 pages; conversations start from a system
// prompt and grow by 2-32 pages a turn for up to 12 turns on the worker that
// holds them (multi-turn prompts extend earlier ones); 3% of turns move a
// conversation to another worker (which then shares its prefix); 10% of
// prompts are unique (16-256 pages, no system prompt). Page content hashes
// are random 64-bit values chained with the real lineage function, which is
// what hashing random tokens gives. Each turn is one Index.Insert of the full
// prompt at a logical stamp, like a gateway's MatchAndInsert.
type workload struct {
	workers []string
	sys     [][]uint64
	// oneWorker holds prompts (full paths) held by exactly one worker.
	oneWorker [][]uint64
	deep      []uint64 // a 2048-page prompt held by one worker
}

func randPath(rng *rand.Rand, prefix []uint64, n int) []uint64 {
	p := slices.Grow(slices.Clip(prefix), n)
	prev := uint64(0)
	if len(prefix) > 0 {
		prev = prefix[len(prefix)-1]
	} else {
		prev = TokenSeed("bench-model")
	}
	for range n {
		prev = lineage(prev, rng.Uint64())
		p = append(p, prev)
	}
	return p
}

func buildWorkload(ix *Index, holderPages int64, seed uint64) *workload {
	rng := rand.New(rand.NewPCG(seed, 99))
	const nWorkers, nSys, turns = 256, 32, 12
	wl := &workload{}
	for i := range nWorkers {
		wl.workers = append(wl.workers, fmt.Sprintf("worker-%03d", i))
	}
	for range nSys {
		wl.sys = append(wl.sys, randPath(rng, nil, 64))
	}
	type conv struct {
		w     int
		path  []uint64
		turns int
	}
	active := make([]conv, 0, 4096)
	var stamp uint32
	insert := func(w int, p []uint64) {
		stamp++
		if _, err := ix.Insert(wl.workers[w], 0, stamp, p); err != nil {
			panic(err)
		}
	}
	for ix.x.holderPages < holderPages {
		switch k := rng.IntN(100); {
		case k < 10:
			w := rng.IntN(nWorkers)
			p := randPath(rng, nil, 16+rng.IntN(241))
			insert(w, p)
			if len(wl.oneWorker) < 4096 {
				wl.oneWorker = append(wl.oneWorker, p)
			}
		case k < 30 || len(active) == 0:
			w := rng.IntN(nWorkers)
			sys := wl.sys[(w*4+rng.IntN(4))%nSys] // each worker serves 4 system prompts
			c := conv{w: w, path: randPath(rng, sys, 2+rng.IntN(31)), turns: 1}
			insert(w, c.path)
			if len(active) < cap(active) {
				active = append(active, c)
			} else {
				active[rng.IntN(len(active))] = c
			}
		default:
			i := rng.IntN(len(active))
			c := &active[i]
			c.path = randPath(rng, c.path, 2+rng.IntN(31))
			if rng.IntN(100) < 3 {
				c.w = rng.IntN(nWorkers)
			}
			insert(c.w, c.path)
			if c.turns++; c.turns >= turns {
				active[i] = active[len(active)-1]
				active = active[:len(active)-1]
			}
		}
	}
	// A deep prompt for the walk benchmark.
	wl.deep = randPath(rng, wl.sys[0], 2048-64)
	stamp++
	if _, err := ix.Insert("deep-worker", 0, stamp, wl.deep); err != nil {
		panic(err)
	}
	return wl
}

var holderPagesFlag = flag.Int64("radix.holderpages", 12_800_000, "holder-pages of the benchmark index")

var big struct {
	once     sync.Once
	ix       *Index
	wl       *workload
	bytes    uint64
	duration time.Duration
}

// bigIndex builds the 12.8M holder-page index once per process.
func bigIndex() (*Index, *workload) {
	big.once.Do(func() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		start := time.Now()
		ix := New(Config{})
		wl := buildWorkload(ix, *holderPagesFlag, 1)
		big.duration = time.Since(start)
		runtime.GC()
		runtime.ReadMemStats(&after)
		// The workload keeps the sampled prompts alive; subtract them.
		var kept uint64
		for _, p := range wl.oneWorker {
			kept += uint64(cap(p)) * 8
		}
		kept += uint64(cap(wl.deep)) * 8
		for _, p := range wl.sys {
			kept += uint64(cap(p)) * 8
		}
		big.bytes = after.HeapAlloc - before.HeapAlloc - kept
		big.ix, big.wl = ix, wl
	})
	return big.ix, big.wl
}

// BenchmarkMemory reports the heap bytes per holder-page of the 12.8M
// holder-page workload (runtime.ReadMemStats after GC).
func BenchmarkMemory(b *testing.B) {
	ix, _ := bigIndex()
	st := ix.Stats()
	b.ReportAllocs()
	for b.Loop() {
		_ = ix.Stats()
	}
	b.ReportMetric(float64(big.bytes)/float64(st.HolderPages), "B/holder-page")
	b.ReportMetric(float64(st.HolderPages), "holder-pages")
	b.ReportMetric(float64(st.Pages), "pages")
	b.ReportMetric(float64(st.Chains), "chains")
	b.ReportMetric(float64(st.Bytes)/float64(st.HolderPages), "est-B/holder-page")
	b.ReportMetric(big.duration.Seconds(), "build-s")
	// Where the page table is in its growth cycle (8/15 to 4/5 full).
	b.ReportMetric(float64(ix.x.table.n)/float64(len(ix.x.table.slots)), "table-load")
}

// BenchmarkMatch matches prompts held by one worker, already hashed, on the
// 12.8M holder-page index; p50-ns is the median of individually timed calls
// (timer overhead included).
func BenchmarkMatch(b *testing.B) {
	ix, wl := bigIndex()
	b.Run("one-worker", func(b *testing.B) {
		dst := make([]Hit, 0, 16)
		ps := wl.oneWorker
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			dst = ix.MatchPages(dst[:0], ps[i%len(ps)])
			i++
		}
		if len(dst) != 1 {
			b.Fatalf("prompt held by one worker matched %v", dst)
		}
		samples := make([]time.Duration, 0, 20000)
		for j := range cap(samples) {
			p := ps[(j*7919)%len(ps)]
			t0 := time.Now()
			dst = ix.MatchPages(dst[:0], p)
			samples = append(samples, time.Since(t0))
		}
		slices.Sort(samples)
		var pages int
		for _, p := range ps {
			pages += len(p)
		}
		b.ReportMetric(float64(pages)/float64(len(ps)), "mean-prompt-pages")
		b.ReportMetric(float64(samples[len(samples)/2].Nanoseconds()), "p50-ns")
		b.ReportMetric(float64(samples[len(samples)*99/100].Nanoseconds()), "p99-ns")
	})
	b.Run("one-worker-hot", func(b *testing.B) {
		// The same prompt again and again: the index's memory is cached.
		dst := make([]Hit, 0, 16)
		p := ps0(wl)
		b.ReportAllocs()
		for b.Loop() {
			dst = ix.MatchPages(dst[:0], p)
		}
		b.ReportMetric(float64(len(p)), "prompt-pages")
	})
	b.Run("pages=2048", func(b *testing.B) {
		dst := make([]Hit, 0, 16)
		b.ReportAllocs()
		for b.Loop() {
			dst = ix.MatchPages(dst[:0], wl.deep)
		}
		if len(dst) == 0 || dst[0].Pages != 2048 {
			b.Fatalf("deep prompt matched %v", dst)
		}
	})
}

// ps0 returns a 64-page prompt held by one worker.
func ps0(wl *workload) []uint64 {
	for _, p := range wl.oneWorker {
		if len(p) >= 64 {
			return p[:64]
		}
	}
	panic("no prompt of 64 pages")
}

// BenchmarkHash reports the cost of cutting a token prompt into pages.
func BenchmarkHash(b *testing.B) {
	for _, n := range []int{1024, 32768} {
		b.Run(fmt.Sprintf("tokens=%d", n), func(b *testing.B) {
			toks := randTokens(newTestRand(1), n)
			dst := make([]uint64, 0, n/16)
			seed := TokenSeed("m")
			b.SetBytes(int64(4 * n))
			b.ReportAllocs()
			for b.Loop() {
				dst = AppendTokenPages(dst[:0], seed, 16, toks)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/token")
		})
	}
}

// BenchmarkXXH64 compares the hand-written XXH64 of hash.go with
// github.com/cespare/xxhash/v2 (impl=hand, impl=cespare) on the inputs of the
// page-hash path: a model name under seed 1 (TextSeed; node hashes payloads
// under a seed too), a 64-byte text page and a 16-token page under seed 0,
// and the 16-byte lineage step. cespare has no input of uint32 tokens nor of
// two words, so it hashes their little-endian bytes. Compare with
// benchstat -col /impl.
func BenchmarkXXH64(b *testing.B) {
	text := make([]byte, 64)
	for i := range text {
		text[i] = byte(i * 13)
	}
	toks := make([]uint32, 16)
	for i := range toks {
		toks[i] = uint32(i * 1000003)
	}
	model := []byte("llama-3-8b")
	var sink uint64
	for _, tc := range []struct {
		name          string
		hand, cespare func() uint64
	}{
		{"model/seed=1", func() uint64 { return XXH64(model, 1) }, func() uint64 { return cespareXXH64(model, 1) }},
		{"text-page-64B/seed=0", func() uint64 { return XXH64(text, 0) }, func() uint64 { return xxhash.Sum64(text) }},
		{"token-page-16", func() uint64 { return xxh64Tokens(toks) }, func() uint64 {
			var buf [64]byte
			for i, t := range toks {
				binary.LittleEndian.PutUint32(buf[4*i:], t)
			}
			return xxhash.Sum64(buf[:])
		}},
		{"lineage", func() uint64 { return lineage(sink, 12345) }, func() uint64 {
			var buf [16]byte
			binary.LittleEndian.PutUint64(buf[:8], sink)
			binary.LittleEndian.PutUint64(buf[8:], 12345)
			return max(xxhash.Sum64(buf[:]), 1)
		}},
	} {
		for _, impl := range []struct {
			name string
			f    func() uint64
		}{{"hand", tc.hand}, {"cespare", tc.cespare}} {
			b.Run(tc.name+"/impl="+impl.name, func(b *testing.B) {
				for b.Loop() {
					sink += impl.f()
				}
			})
		}
	}
}

// BenchmarkInsert inserts new prompts (a shared 64-page system prompt plus
// 64 new pages) for 256 workers on one core and reports new pages per second,
// into an index that grows from empty to 8M pages and starts over.
func BenchmarkInsert(b *testing.B) {
	for _, presized := range []bool{false, true} {
		b.Run(fmt.Sprintf("presized=%v", presized), func(b *testing.B) {
			cfg := Config{}
			if presized {
				cfg.ExpectedPages = 1 << 23
			}
			benchInsert(b, cfg)
		})
	}
	// Every worker at its budget: each insert also evicts as many pages.
	b.Run("at-budget", func(b *testing.B) {
		benchInsert(b, Config{WorkerPages: 4096, ExpectedPages: 1 << 21})
	})
	// The index at its global cap: each insert evicts the oldest pages.
	b.Run("at-cap", func(b *testing.B) {
		benchInsert(b, Config{MaxHolderPages: 1 << 20, ExpectedPages: 1 << 21})
	})
}

func benchInsert(b *testing.B, cfg Config) {
	rng := newTestRand(2)
	sys := randPath(rng, nil, 64)
	workers := make([]string, 256)
	for i := range workers {
		workers[i] = fmt.Sprintf("worker-%03d", i)
	}
	// The index starts over every insertCycle inserts (outside the timer),
	// so that its size, and what a page costs, does not depend on b.N.
	const insertCycle = 1 << 17 // 8M new pages
	var ix *Index
	var evicted int64
	fresh := func() {
		if ix != nil {
			evicted += ix.Stats().Evicted
		}
		ix = New(cfg)
		for _, w := range workers {
			mustInsert(b, ix, w, 0, sys)
		}
	}
	const batch = 1024
	prompts := make([][]uint64, batch)
	var pages int64
	var stamp uint32
	var cpu time.Duration // process CPU time while the timer runs
	cpu0 := cpuTime()
	b.ReportAllocs()
	for b.Loop() {
		if int(stamp)%batch == 0 {
			cpu += cpuTime() - cpu0
			b.StopTimer()
			if int(stamp)%insertCycle == 0 {
				fresh()
			}
			for i := range prompts {
				prompts[i] = randPath(rng, sys, 64)
			}
			b.StartTimer()
			cpu0 = cpuTime()
		}
		p := prompts[int(stamp)%batch]
		stamp++
		if _, err := ix.Insert(workers[int(stamp)%len(workers)], 0, stamp, p); err != nil {
			b.Fatal(err)
		}
		pages += 64
	}
	cpu += cpuTime() - cpu0
	b.ReportMetric(float64(pages)/b.Elapsed().Seconds(), "pages/s")
	// On a shared machine wall time includes other processes' turns;
	// CPU time (this process, GC included) does not.
	b.ReportMetric(float64(pages)/cpu.Seconds(), "pages/cpu-s")
	b.ReportMetric(float64(evicted+ix.Stats().Evicted)/float64(b.N), "evicted-pages/op")
}

// cpuTime returns the CPU time the process has used (user + system).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkDeltaSize reports the encoded size of each delta kind as the
// marginal bytes it adds to a batch (worker table entry excluded), and the
// cost of encoding and decoding a batch of 64 inserts.
func BenchmarkDeltaSize(b *testing.B) {
	rng := newTestRand(3)
	const name = "worker-017"
	path := randPath(rng, nil, 80)
	base := Delta{Op: OpTouch, Worker: name, Stamp: 1_700_000_000, Anchor: path[0]}
	size := func(ds ...Delta) int {
		buf, err := AppendBatch(nil, &Batch{Deltas: append([]Delta{base}, ds...)})
		if err != nil {
			b.Fatal(err)
		}
		return len(buf)
	}
	empty := size()
	var ins, touch, rm Delta
	defer func() {
		b.ReportMetric(float64(size(ins)-empty-8*16), "insert-B+8B/page")
		b.ReportMetric(float64(size(touch)-empty), "touch-B")
		b.ReportMetric(float64(size(rm)-empty-len(rm.Worker)), "remove-B+name")
	}()
	ins = Delta{Op: OpInsert, Worker: name, Stamp: 1_700_000_060, Anchor: path[15], Pages: path[16:32]}
	touch = Delta{Op: OpTouch, Worker: name, Stamp: 1_700_000_061, Anchor: path[31]}
	rm = Delta{Op: OpRemove, Worker: "another-worker", Epoch: 3}
	var bt Batch
	for i := range 64 {
		bt.Deltas = append(bt.Deltas, Delta{Op: OpInsert, Worker: fmt.Sprintf("w%d", i%8), Stamp: 1_700_000_000 + uint32(i), Anchor: path[i], Pages: path[i+1 : i+17]})
	}
	buf, _ := AppendBatch(nil, &bt)
	var out Batch
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		buf, _ = AppendBatch(buf[:0], &bt)
		if err := DecodeBatch(&out, buf, DefaultLimits()); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSnapshot writes and restores the benchmark index.
func BenchmarkSnapshot(b *testing.B) {
	ix, _ := bigIndex()
	snap, err := ix.AppendSnapshot(nil)
	if err != nil {
		b.Fatal(err)
	}
	hp := float64(ix.Stats().HolderPages)
	b.Run("append", func(b *testing.B) {
		buf := make([]byte, 0, len(snap))
		b.SetBytes(int64(len(snap)))
		for b.Loop() {
			buf, _ = ix.AppendSnapshot(buf[:0])
		}
		b.ReportMetric(float64(len(snap))/hp, "B/holder-page")
	})
	b.Run("restore", func(b *testing.B) {
		b.SetBytes(int64(len(snap)))
		for b.Loop() {
			if _, err := Restore(Config{}, snap); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkDigestCodec encodes and decodes the digest of 1000 workers.
func BenchmarkDigestCodec(b *testing.B) {
	rng := newTestRand(5)
	d := make(Digest, 1000)
	for i := range d {
		d[i] = WorkerSummary{Worker: fmt.Sprintf("gateway-worker-%04d", i), Epoch: rng.Uint64N(1 << 40),
			Removed: i%97 == 0, Pages: rng.Int64N(1 << 20), MaxStamp: rng.Uint32(), Sum: rng.Uint64()}
	}
	enc := AppendDigest(nil, d)
	b.Run("encode", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(enc)))
		buf := make([]byte, 0, len(enc))
		for b.Loop() {
			buf = AppendDigest(buf[:0], d)
		}
	})
	b.Run("decode", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(enc)))
		for b.Loop() {
			if _, err := DecodeDigest(enc, DefaultLimits()); err != nil {
				b.Fatal(err)
			}
		}
	})
}

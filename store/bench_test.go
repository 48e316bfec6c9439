package store

import (
	"fmt"
	"math"
	"runtime"
	"strconv"
	"testing"
	"time"
)

// Benchmarks for the figures in bench/RESULTS.md (store). Sizes of a million
// keys take seconds to build, so they live here and not in tests.

const benchValueBytes = 100

func benchKey(i int) string { return "key-" + strconv.Itoa(10_000_000+i) }

var benchValue = func() []byte {
	v := make([]byte, benchValueBytes)
	for i := range v {
		v[i] = byte('a' + i%26)
	}
	return v
}()

// buildStore makes a store of n keys with 100-byte values in one namespace.
func buildStore(b *testing.B, name string, n int) *Store {
	b.Helper()
	s := newTestStore(b, name, 1)
	for i := range n {
		if err := s.Put("ns", benchKey(i), benchValue, t0); err != nil {
			b.Fatal(err)
		}
	}
	return s
}

var million *Store

func millionStore(b *testing.B) *Store {
	if million == nil {
		million = buildStore(b, "big", 1_000_000)
	}
	return million
}

func BenchmarkPut(b *testing.B) {
	b.Run("new-keys", func(b *testing.B) {
		s := newTestStore(b, "a", 1)
		keys := make([]string, 1<<20)
		for i := range keys {
			keys[i] = benchKey(i)
		}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if i == len(keys) {
				b.StopTimer()
				s, i = newTestStore(b, "a", 1), 0
				b.StartTimer()
			}
			if err := s.Put("ns", keys[i], benchValue, t0); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("overwrite/n=1M", func(b *testing.B) {
		s := millionStore(b)
		keys := make([]string, 1<<16)
		for i := range keys {
			keys[i] = benchKey((i * 7919) % 1_000_000)
		}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if err := s.Put("ns", keys[i&(1<<16-1)], benchValue, t0); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}

func BenchmarkGet(b *testing.B) {
	for _, n := range []int{1000, 1_000_000} {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			s := millionStore(b)
			if n != 1_000_000 {
				s = buildStore(b, "small", n)
			}
			keys := make([]string, 4096)
			for i := range keys {
				keys[i] = benchKey((i * 7919) % n)
			}
			b.ReportAllocs()
			i := 0
			cpu0 := cpuTime()
			for b.Loop() {
				if _, ok := s.Get("ns", keys[i&4095]); !ok {
					b.Fatal("missing key")
				}
				i++
			}
			if cpu := cpuTime() - cpu0; cpu > 0 {
				b.ReportMetric(float64(cpu.Nanoseconds())/float64(i), "cpu-ns/op")
			}
		})
	}
}

// BenchmarkApply applies remote deltas of 1000 writes with 100-byte values.
func BenchmarkApply(b *testing.B) {
	const per, batches = 1000, 200
	src := newTestStore(b, "src", 1)
	var deltas [][]byte
	for j := range batches {
		for i := range per {
			if err := src.Put("ns", benchKey(j*per+i), benchValue, t0); err != nil {
				b.Fatal(err)
			}
		}
		d, _, more := src.AppendDeltas(nil, math.MaxInt)
		if more {
			b.Fatal("delta cut short")
		}
		deltas = append(deltas, d)
	}
	dst := newTestStore(b, "dst", 1)
	b.ReportAllocs()
	b.SetBytes(int64(len(deltas[0])))
	i, ops := 0, 0
	cpu0 := cpuTime()
	for b.Loop() {
		if i == len(deltas) {
			b.StopTimer()
			dst, i = newTestStore(b, "dst", 1), 0
			b.StartTimer()
		}
		if err := dst.Apply(deltas[i], t0); err != nil {
			b.Fatal(err)
		}
		i++
		ops += per
	}
	cpu := cpuTime() - cpu0 // includes the resets between batches and the GC
	b.ReportMetric(float64(ops)/b.Elapsed().Seconds(), "writes/s")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(ops), "ns/write")
	if cpu > 0 {
		b.ReportMetric(float64(ops)/cpu.Seconds(), "writes/cpu-s")
	}
}

// BenchmarkDiff1M: two 1M-key stores that differ in 100 keys find and ship
// the difference: the receiver's digest, then one page.
func BenchmarkDiff1M(b *testing.B) {
	a := millionStore(b)
	r := newTestStore(b, "r", 1)
	if err := r.Apply(fullState(b, a), t0); err != nil {
		b.Fatal(err)
	}
	for i := range 100 {
		if err := a.Put("ns", benchKey(i*9973), []byte(fmt.Sprintf("%0100d", i)), t0.Add(time.Second)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	var digestBytes, pageBytes int
	var d Digest
	for b.Loop() {
		dig := r.AppendDigest(nil)
		if err := DecodeDigest(dig, &d); err != nil {
			b.Fatal(err)
		}
		page, more := a.AppendMissing(nil, &d, 1<<20)
		if more {
			b.Fatal("page cut short")
		}
		digestBytes, pageBytes = len(dig), len(page)
	}
	// Check the page really closes the difference.
	page, _ := a.AppendMissing(nil, &d, 1<<20)
	if err := r.Apply(page, t0.Add(time.Second)); err != nil {
		b.Fatal(err)
	}
	for i := range 100 {
		if v, _ := r.Get("ns", benchKey(i*9973)); v != fmt.Sprintf("%0100d", i) {
			b.Fatalf("key %d not shipped", i)
		}
	}
	limit := 100*(len(benchKey(0))+benchValueBytes+48) + digestBytes
	b.ReportMetric(float64(digestBytes), "digest-B")
	b.ReportMetric(float64(pageBytes), "page-B")
	b.ReportMetric(float64(limit), "limit-B")
}

// BenchmarkDigest64Actors reports the digest size of a store that has
// heard from 64 actors, a few of them with out-of-order dots.
func BenchmarkDigest64Actors(b *testing.B) {
	s := newTestStore(b, "node-00", 1)
	for a := 1; a < 64; a++ {
		src := newTestStore(b, fmt.Sprintf("node-%02d", a), uint64(1_700_000_000+a))
		for i := range 1000 {
			if err := src.Put("ns", benchKey(i), benchValue, t0); err != nil {
				b.Fatal(err)
			}
		}
		var d Delta
		full, _, _ := src.AppendDeltas(nil, math.MaxInt)
		if err := DecodeDelta(full, &d); err != nil {
			b.Fatal(err)
		}
		d.Ranges = nil
		if a%8 == 0 {
			d.Entries = append(d.Entries[:500], d.Entries[510:]...) // a gap: 10 dots missing
		}
		if err := s.ApplyDelta(&d, t0); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	var n int
	for b.Loop() {
		n = len(s.AppendDigest(nil))
	}
	b.ReportMetric(float64(n), "digest-B")
}

// BenchmarkMemory1M measures heap per key beyond key and value bytes. Run
// it with -benchtime=1x.
func BenchmarkMemory1M(b *testing.B) {
	const n = 1_000_000
	var perKey float64
	for b.Loop() {
		var m0, m1 runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&m0)
		s := buildStore(b, "mem", n)
		runtime.GC()
		runtime.ReadMemStats(&m1)
		payload := 0
		for i := range n {
			payload += len(benchKey(i)) + benchValueBytes
		}
		perKey = (float64(m1.HeapAlloc) - float64(m0.HeapAlloc) - float64(payload)) / n
		runtime.KeepAlive(s)
	}
	b.ReportMetric(perKey, "B/key-overhead")
}

func BenchmarkTake(b *testing.B) {
	s := newTestStore(b, "a", 1)
	for a := range 16 {
		s.mergeCounter([]byte("rpm"), 60000, uint64(t0.UnixMilli())/60000, uint32(a), 5)
	}
	b.ReportAllocs()
	now := t0
	for b.Loop() {
		s.Take("rpm", 1, 1<<40, time.Minute, now)
	}
}

// BenchmarkCodec encodes and decodes, on their own, the three store
// encodings: a delta of 1000 writes, the digest of a store that heard from
// 16 actors (one with a gap), and the snapshot of a 100k-key store. These
// are the msgpack paths without the merging around them.
func BenchmarkCodec(b *testing.B) {
	src := buildStore(b, "src", 1000)
	deltaBytes, _, _ := src.AppendDeltas(nil, math.MaxInt)
	var delta Delta
	if err := DecodeDelta(deltaBytes, &delta); err != nil {
		b.Fatal(err)
	}
	peers := newTestStore(b, "peers", 1)
	for a := 1; a < 16; a++ {
		p := buildStore(b, fmt.Sprintf("node-%02d", a), 100)
		var d Delta
		if err := DecodeDelta(fullState(b, p), &d); err != nil {
			b.Fatal(err)
		}
		if a == 8 {
			d.Ranges = nil
			d.Entries = append(d.Entries[:50], d.Entries[55:]...)
		}
		if err := peers.ApplyDelta(&d, t0); err != nil {
			b.Fatal(err)
		}
	}
	digestBytes := peers.AppendDigest(nil)
	var digest Digest
	if err := DecodeDigest(digestBytes, &digest); err != nil {
		b.Fatal(err)
	}
	big := buildStore(b, "big", 100_000)
	snap := big.AppendSnapshot(nil)
	into := newTestStore(b, "into", 1)

	run := func(name string, size int, f func()) {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(size))
			for b.Loop() {
				f()
			}
		})
	}
	buf := make([]byte, 0, len(snap))
	run("delta/encode", len(deltaBytes), func() { buf = AppendDelta(buf[:0], &delta) })
	run("delta/decode", len(deltaBytes), func() {
		if err := DecodeDelta(deltaBytes, &delta); err != nil {
			b.Fatal(err)
		}
	})
	run("digest/encode", len(digestBytes), func() { buf = AppendDigest(buf[:0], &digest) })
	run("digest/decode", len(digestBytes), func() {
		if err := DecodeDigest(digestBytes, &digest); err != nil {
			b.Fatal(err)
		}
	})
	run("snapshot/encode", len(snap), func() { buf = big.AppendSnapshot(buf[:0]) })
	run("snapshot/decode", len(snap), func() {
		if err := into.Restore(snap); err != nil {
			b.Fatal(err)
		}
	})
}

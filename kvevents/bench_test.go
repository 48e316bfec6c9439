package kvevents

import (
	"fmt"
	"math/rand/v2"
	"syscall"
	"testing"
	"time"
)

// cpuTime returns the CPU time (user and system) the process has used.
// On a shared machine a benchmark's wall-clock time includes the time
// other processes held the core; per-core throughput is work over CPU
// time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchBatch builds a realistic vLLM step: events BlockStored events, one per
// request chunk, each of 16 to 64 blocks of blockSize tokens with their
// token ids (vocabulary of 128k), 64-bit hashes, a parent, medium "GPU";
// plus one BlockRemoved of as many blocks for every fourth store.
func benchBatch(events, blockSize int, seed uint64) (*Batch, int) {
	r := rand.New(rand.NewPCG(seed, 1))
	b := &Batch{TS: 1.7e9, HasDPRank: true}
	blocks := 0
	for i := range events {
		n := 16 + r.IntN(49)
		e := Event{Kind: KindBlockStored, BlockSize: blockSize, Medium: MediumGPU, HasParent: true, ParentHash: r.Uint64()}
		for range n {
			e.BlockHashes = append(e.BlockHashes, r.Uint64())
		}
		for range n * blockSize {
			e.TokenIDs = append(e.TokenIDs, uint32(r.IntN(128000)))
		}
		b.Events = append(b.Events, e)
		blocks += n
		if i%4 == 3 {
			rm := Event{Kind: KindBlockRemoved, Medium: MediumGPU, BlockHashes: e.BlockHashes}
			b.Events = append(b.Events, rm)
			blocks += n
		}
	}
	return b, blocks
}

// BenchmarkDecode decodes realistic batches; blocks/s counts the blocks of
// BlockStored and BlockRemoved events decoded per second of wall-clock
// time, blocks/cpu-s per second of the process's CPU time (the per-core
// figure on a machine shared with other work).
func BenchmarkDecode(b *testing.B) {
	for _, form := range []string{"array", "map"} {
		for _, events := range []int{1, 8, 32} {
			b.Run(fmt.Sprintf("form=%s/events=%d", form, events), func(b *testing.B) {
				src, blocks := benchBatch(events, 16, 1)
				enc := AppendBatch
				if form == "map" {
					enc = AppendBatchMap
				}
				payload, err := enc(nil, src)
				if err != nil {
					b.Fatal(err)
				}
				var dst Batch
				b.SetBytes(int64(len(payload)))
				b.ReportAllocs()
				cpu0 := cpuTime()
				for b.Loop() {
					if err := DecodeBatch(&dst, payload, Limits{}); err != nil {
						b.Fatal(err)
					}
				}
				cpu := cpuTime() - cpu0
				b.ReportMetric(float64(blocks)*float64(b.N)/b.Elapsed().Seconds(), "blocks/s")
				if cpu > 0 {
					b.ReportMetric(float64(blocks)*float64(b.N)/cpu.Seconds(), "blocks/cpu-s")
				}
			})
		}
	}
}

// BenchmarkAppendBatch encodes the same batches (the emulator's cost).
func BenchmarkAppendBatch(b *testing.B) {
	src, blocks := benchBatch(8, 16, 1)
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = AppendBatch(buf[:0], src); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(len(buf)))
	b.ReportMetric(float64(blocks)*float64(b.N)/b.Elapsed().Seconds(), "blocks/s")
}

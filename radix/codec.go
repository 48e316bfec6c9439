package radix

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Limits bound what a decoder accepts. Every count read from the bytes is
// checked against them and against the bytes left before anything is
// allocated.
type Limits struct {
	MaxWorkers int // worker names in one batch or digest
	MaxDeltas  int // deltas in one batch
	MaxPages   int // pages in one insert
}

// DefaultLimits returns limits that suit one message of a TCP stream.
func DefaultLimits() Limits {
	return Limits{MaxWorkers: 4096, MaxDeltas: 1 << 16, MaxPages: 1 << 16}
}

// SnapshotLimits returns limits that suit a whole-index snapshot.
func SnapshotLimits() Limits {
	return Limits{MaxWorkers: 1 << 16, MaxDeltas: 1 << 26, MaxPages: 1 << 20}
}

// MaxNameBytes bounds a worker name.
const MaxNameBytes = 255

// batchVersion is the first element of an encoded batch.
const batchVersion = 1

// AppendBatch appends the encoding of b to dst (see docs/wire.md (section 12)):
//
//	[version, [[name, epoch]...], baseStamp, [delta...]]
//	insert: [1, worker#, stamp-baseStamp, bin(anchor, pages... as LE64)]
//	touch:  [2, worker#, stamp-baseStamp, page]
//	remove: [3, worker#]
//
// Worker names and epochs are written once per batch and deltas refer to
// them by position; stamps are written relative to the batch's smallest.
func AppendBatch(dst []byte, b *Batch) ([]byte, error) {
	type ref struct {
		name  string
		epoch uint64
	}
	var refs []ref
	var byRef map[ref]int // once refs is long
	last := -1
	idx := func(d *Delta) int {
		r := ref{d.Worker, d.Epoch}
		if last >= 0 && refs[last] == r { // deltas of one worker come in runs
			return last
		}
		if byRef != nil {
			if i, ok := byRef[r]; ok {
				last = i
				return i
			}
		} else {
			for i := range refs {
				if refs[i] == r {
					last = i
					return i
				}
			}
		}
		refs = append(refs, r)
		last = len(refs) - 1
		if byRef != nil {
			byRef[r] = last
		} else if len(refs) > 16 {
			byRef = make(map[ref]int, 2*len(refs))
			for i, r := range refs {
				byRef[r] = i
			}
		}
		return last
	}
	base := uint32(math.MaxUint32)
	for i := range b.Deltas {
		d := &b.Deltas[i]
		if d.Worker == "" || len(d.Worker) > MaxNameBytes {
			return dst, fmt.Errorf("%w: worker name of %d bytes", ErrBadDelta, len(d.Worker))
		}
		if d.Op != OpRemove {
			base = min(base, d.Stamp)
		}
		idx(d)
	}
	if base == math.MaxUint32 {
		base = 0
	}
	dst = appendArray(dst, 4)
	dst = appendUint(dst, batchVersion)
	dst = appendArray(dst, len(refs))
	for _, r := range refs {
		dst = appendArray(dst, 2)
		dst = appendStr(dst, r.name)
		dst = appendUint(dst, r.epoch)
	}
	dst = appendUint(dst, uint64(base))
	dst = appendArray(dst, len(b.Deltas))
	for i := range b.Deltas {
		d := &b.Deltas[i]
		w := uint64(idx(d))
		switch d.Op {
		case OpInsert:
			dst = appendArray(dst, 4)
			dst = append(dst, byte(OpInsert))
			dst = appendUint(dst, w)
			dst = appendUint(dst, uint64(d.Stamp-base))
			dst = appendBinHeader(dst, 8*(1+len(d.Pages)))
			dst = binary.LittleEndian.AppendUint64(dst, d.Anchor)
			for _, p := range d.Pages {
				dst = binary.LittleEndian.AppendUint64(dst, p)
			}
		case OpTouch:
			dst = appendArray(dst, 4)
			dst = append(dst, byte(OpTouch))
			dst = appendUint(dst, w)
			dst = appendUint(dst, uint64(d.Stamp-base))
			dst = appendUint(dst, d.Anchor)
		case OpRemove:
			dst = appendArray(dst, 2)
			dst = append(dst, byte(OpRemove))
			dst = appendUint(dst, w)
		default:
			return dst, fmt.Errorf("%w: op %d", ErrBadDelta, d.Op)
		}
	}
	return dst, nil
}

// DecodeBatch decodes a batch into b, replacing its deltas, within lim.
// Pages of the decoded deltas share one new slice; names are copied.
func DecodeBatch(b *Batch, data []byte, lim Limits) error {
	b.Reset()
	r := reader{b: data}
	if n := r.array(4, 1); r.err == nil && n != 4 {
		r.fail("batch of %d fields, want 4", n)
	}
	if v := r.uint(math.MaxUint8); r.err == nil && v != batchVersion {
		r.fail("batch version %d, want %d", v, batchVersion)
	}
	nw := r.array(lim.MaxWorkers, 3)
	type ref struct {
		name  string
		epoch uint64
	}
	var refs []ref
	if r.err == nil {
		refs = make([]ref, 0, nw)
	}
	for range nw {
		if n := r.array(2, 1); r.err == nil && n != 2 {
			r.fail("worker entry of %d fields, want 2", n)
		}
		name := r.str(MaxNameBytes)
		epoch := r.uint(math.MaxUint64)
		if r.err == nil && name == "" {
			r.fail("empty worker name")
		}
		refs = append(refs, ref{name, epoch})
	}
	base := uint32(r.uint(math.MaxUint32))
	nd := r.array(lim.MaxDeltas, 3)
	if r.err == nil {
		b.Deltas = make([]Delta, 0, nd)
	}
	var pages []uint64
	for range nd {
		n := r.array(4, 1)
		op := Op(r.uint(math.MaxUint8))
		w := r.uint(uint64(max(len(refs)-1, 0)))
		if r.err == nil && len(refs) == 0 {
			r.fail("delta without workers")
		}
		if r.err != nil {
			break
		}
		d := Delta{Op: op, Worker: refs[w].name, Epoch: refs[w].epoch}
		switch op {
		case OpInsert, OpTouch:
			if n != 4 {
				r.fail("op %d of %d fields, want 4", op, n)
				break
			}
			st := r.uint(math.MaxUint32 - uint64(base))
			d.Stamp = base + uint32(st)
			if op == OpTouch {
				d.Anchor = r.uint(math.MaxUint64)
				if r.err == nil && d.Anchor == 0 {
					r.fail("touch of page 0")
				}
				break
			}
			raw := r.bin(8 * (1 + lim.MaxPages))
			if r.err == nil && (len(raw) < 8 || len(raw)%8 != 0) {
				r.fail("insert pages of %d bytes", len(raw))
			}
			if r.err != nil {
				break
			}
			d.Anchor = binary.LittleEndian.Uint64(raw)
			np := len(raw)/8 - 1
			if cap(pages)-len(pages) < np {
				// Room for the rest of the message's pages at most.
				pages = make([]uint64, 0, max(np, len(r.b)/8))
			}
			start := len(pages)
			for i := 1; i <= np; i++ {
				p := binary.LittleEndian.Uint64(raw[8*i:])
				if p == 0 {
					r.fail("page hash 0")
					break
				}
				pages = append(pages, p)
			}
			d.Pages = pages[start:len(pages):len(pages)]
		case OpRemove:
			if n != 2 {
				r.fail("remove of %d fields, want 2", n)
			}
		default:
			r.fail("unknown op %d", op)
		}
		if r.err != nil {
			break
		}
		b.Deltas = append(b.Deltas, d)
	}
	if r.err == nil && len(r.b) != 0 {
		r.fail("%d trailing bytes", len(r.b))
	}
	if r.err != nil {
		b.Reset()
		return r.err
	}
	return nil
}

package radix

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/meshnode/meshnode/wire"
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
	dst = wire.AppendArrayHeader(dst, 4)
	dst = wire.AppendUint(dst, batchVersion)
	dst = wire.AppendArrayHeader(dst, len(refs))
	for _, r := range refs {
		dst = wire.AppendArrayHeader(dst, 2)
		dst = wire.AppendStr(dst, r.name)
		dst = wire.AppendUint(dst, r.epoch)
	}
	dst = wire.AppendUint(dst, uint64(base))
	dst = wire.AppendArrayHeader(dst, len(b.Deltas))
	for i := range b.Deltas {
		d := &b.Deltas[i]
		w := uint64(idx(d))
		switch d.Op {
		case OpInsert:
			dst = wire.AppendArrayHeader(dst, 4)
			dst = append(dst, byte(OpInsert))
			dst = wire.AppendUint(dst, w)
			dst = wire.AppendUint(dst, uint64(d.Stamp-base))
			dst = wire.AppendBinHeader(dst, 8*(1+len(d.Pages)))
			dst = binary.LittleEndian.AppendUint64(dst, d.Anchor)
			for _, p := range d.Pages {
				dst = binary.LittleEndian.AppendUint64(dst, p)
			}
		case OpTouch:
			dst = wire.AppendArrayHeader(dst, 4)
			dst = append(dst, byte(OpTouch))
			dst = wire.AppendUint(dst, w)
			dst = wire.AppendUint(dst, uint64(d.Stamp-base))
			dst = wire.AppendUint(dst, d.Anchor)
		case OpRemove:
			dst = wire.AppendArrayHeader(dst, 2)
			dst = append(dst, byte(OpRemove))
			dst = wire.AppendUint(dst, w)
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
	r := wire.NewReader(data, ErrDecode)
	if n := r.ArrayLen(4, 1); r.Err() == nil && n != 4 {
		r.Fail("batch of %d fields, want 4", n)
	}
	if v := r.UintMax(math.MaxUint8); r.Err() == nil && v != batchVersion {
		r.Fail("batch version %d, want %d", v, batchVersion)
	}
	nw := r.ArrayLen(lim.MaxWorkers, 3)
	type ref struct {
		name  string
		epoch uint64
	}
	var refs []ref
	if r.Err() == nil {
		refs = make([]ref, 0, nw)
	}
	for range nw {
		if n := r.ArrayLen(2, 1); r.Err() == nil && n != 2 {
			r.Fail("worker entry of %d fields, want 2", n)
		}
		name := string(r.Str(MaxNameBytes))
		epoch := r.Uint()
		if r.Err() == nil && name == "" {
			r.Fail("empty worker name")
		}
		refs = append(refs, ref{name, epoch})
	}
	base := uint32(r.UintMax(math.MaxUint32))
	nd := r.ArrayLen(lim.MaxDeltas, 3)
	if r.Err() == nil {
		b.Deltas = make([]Delta, 0, nd)
	}
	var pages []uint64
	for range nd {
		n := r.ArrayLen(4, 1)
		op := Op(r.UintMax(math.MaxUint8))
		w := r.UintMax(uint64(max(len(refs)-1, 0)))
		if r.Err() == nil && len(refs) == 0 {
			r.Fail("delta without workers")
		}
		if r.Err() != nil {
			break
		}
		d := Delta{Op: op, Worker: refs[w].name, Epoch: refs[w].epoch}
		switch op {
		case OpInsert, OpTouch:
			if n != 4 {
				r.Fail("op %d of %d fields, want 4", op, n)
				break
			}
			st := r.UintMax(math.MaxUint32 - uint64(base))
			d.Stamp = base + uint32(st)
			if op == OpTouch {
				d.Anchor = r.Uint()
				if r.Err() == nil && d.Anchor == 0 {
					r.Fail("touch of page 0")
				}
				break
			}
			raw := r.Bin(8 * (1 + lim.MaxPages))
			if r.Err() == nil && (len(raw) < 8 || len(raw)%8 != 0) {
				r.Fail("insert pages of %d bytes", len(raw))
			}
			if r.Err() != nil {
				break
			}
			d.Anchor = binary.LittleEndian.Uint64(raw)
			np := len(raw)/8 - 1
			if cap(pages)-len(pages) < np {
				// Room for the rest of the message's pages at most.
				pages = make([]uint64, 0, max(np, r.Remaining()/8))
			}
			start := len(pages)
			for i := 1; i <= np; i++ {
				p := binary.LittleEndian.Uint64(raw[8*i:])
				if p == 0 {
					r.Fail("page hash 0")
					break
				}
				pages = append(pages, p)
			}
			d.Pages = pages[start:len(pages):len(pages)]
		case OpRemove:
			if n != 2 {
				r.Fail("remove of %d fields, want 2", n)
			}
		default:
			r.Fail("unknown op %d", op)
		}
		if r.Err() != nil {
			break
		}
		b.Deltas = append(b.Deltas, d)
	}
	r.End()
	if r.Err() != nil {
		b.Reset()
		return r.Err()
	}
	return nil
}

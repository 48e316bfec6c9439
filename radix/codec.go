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
//	insert:        [1, worker#, stamp-baseStamp, bin(anchor, pages... as LE64)]
//	touch:         [2, worker#, stamp-baseStamp, page]
//	remove:        [3, worker#]
//	store events:  [4, worker#, stamp-baseStamp, gen, ver, pagesPerBlock, bin(anchor, pages...), bin(hashes...)]
//	remove events: [5, worker#, gen, ver, bin((hash, first page)...)]
//	clear events:  [6, worker#, gen]
//	pending:       [7, worker#, stamp-baseStamp, bin(anchor, pages...)]
//	engine map:    [8, worker#, gen, ver, bin((hash, last page)...)]
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
		if d.Op.stamped() {
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
		case OpStoreEvents:
			dst = wire.AppendArrayHeader(dst, 8)
			dst = append(dst, byte(OpStoreEvents))
			dst = wire.AppendUint(dst, w)
			dst = wire.AppendUint(dst, uint64(d.Stamp-base))
			dst = wire.AppendUint(dst, uint64(d.Gen))
			dst = wire.AppendUint(dst, d.Ver)
			dst = wire.AppendUint(dst, uint64(d.PagesPerBlock))
			dst = appendU64s(dst, d.Anchor, true, d.Pages)
			dst = appendU64s(dst, 0, false, d.Hashes)
		case OpRemoveEvents, OpEngineMap:
			if len(d.Pages) != len(d.Hashes) {
				return dst, fmt.Errorf("%w: %d hashes with %d pages", ErrBadDelta, len(d.Hashes), len(d.Pages))
			}
			dst = wire.AppendArrayHeader(dst, 5)
			dst = append(dst, byte(d.Op))
			dst = wire.AppendUint(dst, w)
			dst = wire.AppendUint(dst, uint64(d.Gen))
			dst = wire.AppendUint(dst, d.Ver)
			dst = wire.AppendBinHeader(dst, 16*len(d.Hashes))
			for i, e := range d.Hashes {
				dst = binary.LittleEndian.AppendUint64(dst, e)
				dst = binary.LittleEndian.AppendUint64(dst, d.Pages[i])
			}
		case OpClearEvents:
			dst = wire.AppendArrayHeader(dst, 3)
			dst = append(dst, byte(OpClearEvents))
			dst = wire.AppendUint(dst, w)
			dst = wire.AppendUint(dst, uint64(d.Gen))
		case OpPending:
			dst = wire.AppendArrayHeader(dst, 4)
			dst = append(dst, byte(OpPending))
			dst = wire.AppendUint(dst, w)
			dst = wire.AppendUint(dst, uint64(d.Stamp-base))
			dst = appendU64s(dst, d.Anchor, true, d.Pages)
		default:
			return dst, fmt.Errorf("%w: op %d", ErrBadDelta, d.Op)
		}
	}
	return dst, nil
}

// fields returns the number of fields of an encoded delta of op; 0 for an
// unknown op.
func (op Op) fields() int {
	switch op {
	case OpRemove:
		return 2
	case OpClearEvents:
		return 3
	case OpInsert, OpTouch, OpPending:
		return 4
	case OpRemoveEvents, OpEngineMap:
		return 5
	case OpStoreEvents:
		return 8
	}
	return 0
}

// stamped reports whether deltas of op carry a stamp on the wire.
func (op Op) stamped() bool {
	switch op {
	case OpInsert, OpTouch, OpStoreEvents, OpPending:
		return true
	}
	return false
}

// appendU64s appends a bin of the hashes as LE64, after the anchor if
// withAnchor.
func appendU64s(dst []byte, anchor uint64, withAnchor bool, hs []uint64) []byte {
	n := len(hs)
	if withAnchor {
		n++
	}
	dst = wire.AppendBinHeader(dst, 8*n)
	if withAnchor {
		dst = binary.LittleEndian.AppendUint64(dst, anchor)
	}
	for _, h := range hs {
		dst = binary.LittleEndian.AppendUint64(dst, h)
	}
	return dst
}

// u64s decodes LE64 values out of bins into one shared slice, which grows
// at most to the bytes of the message.
type u64s struct{ buf []uint64 }

// read appends the n values of raw (8n bytes) and returns them; zero says
// whether a 0 is allowed (at odd positions only when pairs).
func (u *u64s) read(r *wire.Reader, raw []byte, zeroOK func(i int) bool) []uint64 {
	n := len(raw) / 8
	if cap(u.buf)-len(u.buf) < n {
		u.buf = make([]uint64, 0, max(n, r.Remaining()/8))
	}
	start := len(u.buf)
	for i := range n {
		v := binary.LittleEndian.Uint64(raw[8*i:])
		if v == 0 && !zeroOK(i) {
			r.Fail("page hash 0")
			return nil
		}
		u.buf = append(u.buf, v)
	}
	return u.buf[start:len(u.buf):len(u.buf)]
}

func anyZero(int) bool { return true }
func noZero(int) bool  { return false }

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
	var vals u64s
	for range nd {
		n := r.ArrayLen(8, 1)
		op := Op(r.UintMax(math.MaxUint8))
		w := r.UintMax(uint64(max(len(refs)-1, 0)))
		if r.Err() == nil && len(refs) == 0 {
			r.Fail("delta without workers")
		}
		if r.Err() != nil {
			break
		}
		d := Delta{Op: op, Worker: refs[w].name, Epoch: refs[w].epoch}
		want := op.fields()
		if want == 0 {
			r.Fail("unknown op %d", op)
			break
		}
		if n != want {
			r.Fail("op %d of %d fields, want %d", op, n, want)
			break
		}
		if op.stamped() {
			d.Stamp = base + uint32(r.UintMax(math.MaxUint32-uint64(base)))
		}
		switch op {
		case OpTouch:
			d.Anchor = r.Uint()
			if r.Err() == nil && d.Anchor == 0 {
				r.Fail("touch of page 0")
			}
		case OpInsert, OpPending, OpStoreEvents:
			if op == OpStoreEvents {
				d.Gen = uint32(r.UintMax(math.MaxUint32))
				d.Ver = r.UintMax(math.MaxUint64 - 1)
				d.PagesPerBlock = int(r.UintMax(maxPagesPerBlock))
			}
			raw := r.Bin(8 * (1 + lim.MaxPages))
			if r.Err() == nil && (len(raw) < 8 || len(raw)%8 != 0) {
				r.Fail("pages of %d bytes", len(raw))
			}
			if r.Err() != nil {
				break
			}
			d.Anchor = binary.LittleEndian.Uint64(raw)
			d.Pages = vals.read(&r, raw[8:], noZero)
			if op == OpStoreEvents && r.Err() == nil {
				raw := r.Bin(8 * lim.MaxPages)
				if r.Err() == nil && len(raw)%8 != 0 {
					r.Fail("hashes of %d bytes", len(raw))
				}
				if r.Err() != nil {
					break
				}
				d.Hashes = vals.read(&r, raw, anyZero)
				if r.Err() == nil && (len(d.Hashes) > 0) != (d.PagesPerBlock > 0) ||
					len(d.Pages) != len(d.Hashes)*max(d.PagesPerBlock, 1) && len(d.Hashes) > 0 {
					r.Fail("store of %d pages in %d blocks of %d", len(d.Pages), len(d.Hashes), d.PagesPerBlock)
				}
			}
		case OpRemoveEvents, OpEngineMap:
			d.Gen = uint32(r.UintMax(math.MaxUint32))
			d.Ver = r.UintMax(math.MaxUint64 - 1)
			raw := r.Bin(16 * lim.MaxPages)
			if r.Err() == nil && len(raw)%16 != 0 {
				r.Fail("block pairs of %d bytes", len(raw))
			}
			if r.Err() != nil {
				break
			}
			np := len(raw) / 16
			pairs := vals.read(&r, raw, func(i int) bool { return i%2 == 0 || op == OpRemoveEvents })
			if r.Err() != nil {
				break
			}
			// Split the pairs in place: hashes first, then pages.
			tmp := make([]uint64, np)
			for i := range np {
				pairs[i], tmp[i] = pairs[2*i], pairs[2*i+1]
			}
			copy(pairs[np:], tmp)
			d.Hashes, d.Pages = pairs[:np:np], pairs[np:]
		case OpClearEvents:
			d.Gen = uint32(r.UintMax(math.MaxUint32))
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

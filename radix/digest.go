package radix

import (
	"cmp"
	"math"
	"slices"

	"github.com/meshnode/meshnode/wire"
)

// WorkerSummary summarises one worker's replicated state. Two replicas
// whose summaries of a worker are equal hold the same pages for it with the
// same stamps (up to the collision odds of a 64-bit sum).
type WorkerSummary struct {
	Worker   string
	Epoch    uint64
	Removed  bool
	Pages    int64
	MaxStamp uint32
	// Sum is Σ (stampMix(stamp(p)) + verMix(ver(p))) * pageMix(p) over
	// the worker's pages p, mod 2^64, where ver(p) is 0 for recorded pages
	// and verMix(0) = 0. It does not depend on how pages are laid out in
	// chains.
	Sum uint64
	// Gen is the worker's event generation, Events Σ entryMix(engine
	// hash, page) over its engine map (both 0 for a worker without
	// events). Tombstones are not covered: they are a bounded window, not
	// state replicas must agree on.
	Gen    uint32
	Events uint64
}

// Digest lists every worker's summary, sorted by name.
type Digest []WorkerSummary

func stampMix(s uint32) uint64 { return pageMix(uint64(s)+prime4) | 1 }

func verMix(v uint64) uint64 {
	if v == 0 {
		return 0
	}
	return pageMix(v+prime5) | 1
}

// Digest returns the summary of every worker the index knows, removed
// workers included.
func (ix *Index) Digest() Digest {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	x := ix.x
	d := make(Digest, 0, len(x.workers))
	for w := range x.workers {
		wk := &x.workers[w]
		if wk.owner != 0 {
			continue // pending pages are local
		}
		s := WorkerSummary{Worker: wk.name, Epoch: wk.epoch, Removed: wk.removed, Pages: wk.pages}
		for ci := range wk.chains {
			c := &x.chains[ci]
			i, _ := findHolder(c.holders, uint32(w))
			h := c.holders[i]
			s.MaxStamp = max(s.MaxStamp, h.stamp)
			s.Sum += (stampMix(h.stamp) + verMix(h.ver)) * c.sum
		}
		if ev := wk.ev; ev != nil {
			s.Gen = ev.gen
			s.Events = ev.sum
		}
		d = append(d, s)
	}
	slices.SortFunc(d, func(a, b WorkerSummary) int { return cmp.Compare(a.Worker, b.Worker) })
	return d
}

// Difference returns the workers whose summaries differ between local and
// remote, or that only one of them knows, sorted by name. Both digests must
// be sorted, as Digest and DecodeDigest return them.
func Difference(local, remote Digest) []string {
	var out []string
	i, j := 0, 0
	for i < len(local) || j < len(remote) {
		switch {
		case j == len(remote) || (i < len(local) && local[i].Worker < remote[j].Worker):
			out = append(out, local[i].Worker)
			i++
		case i == len(local) || remote[j].Worker < local[i].Worker:
			out = append(out, remote[j].Worker)
			j++
		default:
			if local[i] != remote[j] {
				out = append(out, local[i].Worker)
			}
			i++
			j++
		}
	}
	return out
}

// AppendDigest appends the encoding of d: [version, [[name, epoch,
// removed, pages, maxStamp, sum(, gen, events)]...]]; the last two only
// for a worker with events (Gen or Events not 0).
func AppendDigest(dst []byte, d Digest) []byte {
	dst = wire.AppendArrayHeader(dst, 2)
	dst = wire.AppendUint(dst, batchVersion)
	dst = wire.AppendArrayHeader(dst, len(d))
	for _, s := range d {
		ev := s.Gen != 0 || s.Events != 0
		if ev {
			dst = wire.AppendArrayHeader(dst, 8)
		} else {
			dst = wire.AppendArrayHeader(dst, 6)
		}
		dst = wire.AppendStr(dst, s.Worker)
		dst = wire.AppendUint(dst, s.Epoch)
		dst = wire.AppendBool(dst, s.Removed)
		dst = wire.AppendUint(dst, uint64(s.Pages))
		dst = wire.AppendUint(dst, uint64(s.MaxStamp))
		dst = wire.AppendUint(dst, s.Sum)
		if ev {
			dst = wire.AppendUint(dst, uint64(s.Gen))
			dst = wire.AppendUint(dst, s.Events)
		}
	}
	return dst
}

// DecodeDigest decodes a digest within lim. Names must be sorted and
// distinct.
func DecodeDigest(data []byte, lim Limits) (Digest, error) {
	r := wire.NewReader(data, ErrDecode)
	if n := r.ArrayLen(2, 1); r.Err() == nil && n != 2 {
		r.Fail("digest of %d fields, want 2", n)
	}
	if v := r.UintMax(math.MaxUint8); r.Err() == nil && v != batchVersion {
		r.Fail("digest version %d, want %d", v, batchVersion)
	}
	n := r.ArrayLen(lim.MaxWorkers, 8)
	var d Digest
	if r.Err() == nil {
		d = make(Digest, 0, n)
	}
	for range n {
		k := r.ArrayLen(8, 1)
		if r.Err() == nil && k != 6 && k != 8 {
			r.Fail("summary of %d fields, want 6 or 8", k)
		}
		s := WorkerSummary{
			Worker:   string(r.Str(MaxNameBytes)),
			Epoch:    r.Uint(),
			Removed:  r.Bool(),
			Pages:    int64(r.UintMax(math.MaxInt64)),
			MaxStamp: uint32(r.UintMax(math.MaxUint32)),
			Sum:      r.Uint(),
		}
		if k == 8 {
			s.Gen = uint32(r.UintMax(math.MaxUint32))
			s.Events = r.Uint()
		}
		if r.Err() != nil {
			break
		}
		if s.Worker == "" || (len(d) > 0 && d[len(d)-1].Worker >= s.Worker) {
			r.Fail("worker names empty, unsorted or repeated")
			break
		}
		d = append(d, s)
	}
	r.End()
	if r.Err() != nil {
		return nil, r.Err()
	}
	return d, nil
}

// Holdings fills b with worker's full state as self-contained deltas: an
// epoch marker (an empty insert), then one insert per chain the worker
// holds, parents before children, each anchored at its parent's last page;
// or a removal. It starts at chain number from (0 for the first call) and
// stops before the encoded deltas would exceed about maxBytes (8 bytes a
// page plus 16 a delta; at least one chain goes in each part); it returns
// where to resume, or -1 when done. Applying every part in order at another replica makes its
// copy of the worker equal to this one's (before budgets).
func (ix *Index) Holdings(b *Batch, worker string, from, maxBytes int) int {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	return ix.x.holdings(b, worker, from, maxBytes)
}

func (x *core) holdings(b *Batch, worker string, from, maxBytes int) int {
	w, ok := x.byName[worker]
	if !ok {
		return -1
	}
	wk := &x.workers[w]
	if wk.removed {
		b.Deltas = append(b.Deltas, Delta{Op: OpRemove, Worker: worker, Epoch: wk.epoch})
		return -1
	}
	cs := make([]uint32, 0, len(wk.chains))
	for ci := range wk.chains {
		cs = append(cs, ci)
	}
	slices.SortFunc(cs, func(a, b uint32) int {
		ca, cb := &x.chains[a], &x.chains[b]
		if c := cmp.Compare(ca.depth, cb.depth); c != 0 {
			return c
		}
		return cmp.Compare(ca.hashes[0], cb.hashes[0])
	})
	ev := wk.ev
	if from == 0 {
		b.Deltas = append(b.Deltas, Delta{Op: OpInsert, Worker: worker, Epoch: wk.epoch})
		if ev != nil {
			b.Deltas = append(b.Deltas, Delta{Op: OpClearEvents, Worker: worker, Epoch: wk.epoch, Gen: ev.gen})
		}
	}
	n := 0
	i := from
	for ; i < len(cs); i++ {
		c := &x.chains[cs[i]]
		size := 16 + 8*len(c.hashes)
		if n > 0 && n+size > maxBytes {
			return i
		}
		n += size
		j, _ := findHolder(c.holders, w)
		h := c.holders[j]
		d := Delta{Op: OpInsert, Worker: worker, Epoch: wk.epoch, Stamp: h.stamp, Pages: slices.Clone(c.hashes)}
		if h.ver > 0 {
			d.Op, d.Gen, d.Ver = OpStoreEvents, ev.gen, h.ver-1
		}
		if c.parent != noChain {
			p := &x.chains[c.parent]
			d.Anchor = p.hashes[len(p.hashes)-1]
		}
		b.Deltas = append(b.Deltas, d)
	}
	if ev == nil {
		return -1
	}
	// Then the tombstones (sorted by page) and the engine map entries (in
	// table order), 16 bytes each.
	k := i - len(cs)
	ts := ev.tombs.all()
	for ; k < len(ts); k++ {
		if n > 0 && n+32 > maxBytes {
			return len(cs) + k
		}
		n += 32
		b.Deltas = append(b.Deltas, Delta{Op: OpRemoveEvents, Worker: worker, Epoch: wk.epoch, Gen: ev.gen,
			Ver: ts[k].ver - 1, Hashes: []uint64{0}, Pages: []uint64{ts[k].f}})
	}
	k -= len(ts)
	var d *Delta
	seen := 0
	done := true
	x.eachEntry(w, cs, func(l, e uint64) {
		if !done {
			return
		}
		if seen++; seen <= k {
			return
		}
		if n > 0 && n+16 > maxBytes {
			done = false
			return
		}
		n += 16
		if d == nil {
			b.Deltas = append(b.Deltas, Delta{Op: OpEngineMap, Worker: worker, Epoch: wk.epoch, Gen: ev.gen})
			d = &b.Deltas[len(b.Deltas)-1]
		}
		d.Hashes = append(d.Hashes, e)
		d.Pages = append(d.Pages, l)
	})
	if !done {
		return len(cs) + len(ts) + seen - 1
	}
	return -1
}

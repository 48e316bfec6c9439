package store

import (
	"fmt"
	"time"

	"github.com/meshnode/meshnode/wire"
)

// Digest is the decoded form of a store's digest: its causal context (a
// version vector plus the out-of-order dots) and its GC floor. It is all a
// peer needs to find what the store lacks: every entry is indexed by its
// dot, so "entries of actor A with seq > n" is a range scan, and the
// difference costs in proportion to its size, not to the store's.
// Actors[0] is the sender.
type Digest struct {
	Actors  []Actor
	Columns []Column
	Floor   []SeqOf
}

// Column is one actor's part of a causal context: every seq <= Max, and
// the runs in Cloud (increasing, disjoint, not adjacent, all past Max+1).
type Column struct {
	Actor uint32
	Max   uint64
	Cloud []Run
}

// AppendDigest appends the store's digest to dst.
func (s *Store) AppendDigest(dst []byte) []byte {
	dst = wire.AppendArrayHeader(dst, 4)
	dst = wire.AppendUint(dst, digestVersion)
	dst = appendActors(dst, s.actors)
	dst = s.appendContext(dst)
	return appendFloor(dst, s.floor)
}

// appendContext appends the causal context: an array of the actors' columns
// that are not empty, each as appendColumn writes it (digests and
// snapshots share it).
func (s *Store) appendContext(dst []byte) []byte {
	n := 0
	for a := range s.ctx {
		if s.ctx[a].max > 0 || len(s.ctx[a].cloud) > 0 {
			n++
		}
	}
	dst = wire.AppendArrayHeader(dst, n)
	for a := range s.ctx {
		if c := &s.ctx[a]; c.max > 0 || len(c.cloud) > 0 {
			dst = appendColumn(dst, uint32(a), c.max, c.cloud)
		}
	}
	return dst
}

func appendColumn(dst []byte, a uint32, max uint64, cloud []Run) []byte {
	dst = wire.AppendArrayHeader(dst, 3)
	dst = wire.AppendUint(dst, uint64(a))
	dst = wire.AppendUint(dst, max)
	dst = wire.AppendArrayHeader(dst, 2*len(cloud))
	for _, c := range cloud {
		dst = wire.AppendUint(dst, c.First)
		dst = wire.AppendUint(dst, c.Last)
	}
	return dst
}

// readColumn reads the body of a column after its actor: max and cloud.
func (r *reader) readColumn() (uint64, []Run) {
	max := r.UintMax(maxSeq)
	m := r.ArrayLen(2*maxWireItems, 1)
	if r.Err() == nil && m%2 != 0 {
		r.Fail("odd cloud length %d", m)
	}
	if r.Err() != nil || m == 0 {
		return max, nil
	}
	cloud := make([]Run, 0, m/2)
	prev := max + 1 // runs start past max+1 and do not touch each other
	for range m / 2 {
		c := Run{First: r.UintMax(maxSeq), Last: r.UintMax(maxSeq)}
		if r.Err() == nil && (c.First <= prev || c.Last < c.First) {
			r.Fail("cloud runs out of order")
		}
		if r.Err() != nil {
			return max, nil
		}
		prev = c.Last + 1
		cloud = append(cloud, c)
	}
	return max, cloud
}

func appendFloor(dst []byte, floor []uint64) []byte {
	n := 0
	for _, f := range floor {
		if f > 0 {
			n++
		}
	}
	dst = wire.AppendArrayHeader(dst, n)
	for a, f := range floor {
		if f > 0 {
			dst = appendSeqOf(dst, uint32(a), f)
		}
	}
	return dst
}

// AppendDigest appends the encoding of d to dst.
func AppendDigest(dst []byte, d *Digest) []byte {
	dst = wire.AppendArrayHeader(dst, 4)
	dst = wire.AppendUint(dst, digestVersion)
	dst = appendActors(dst, d.Actors)
	dst = wire.AppendArrayHeader(dst, len(d.Columns))
	for _, c := range d.Columns {
		dst = appendColumn(dst, c.Actor, c.Max, c.Cloud)
	}
	dst = wire.AppendArrayHeader(dst, len(d.Floor))
	for _, f := range d.Floor {
		dst = appendSeqOf(dst, f.Actor, f.Seq)
	}
	return dst
}

// DecodeDigest decodes b into d, reusing d's slices where it can.
func DecodeDigest(b []byte, d *Digest) error {
	r := newReader(b)
	r.ExpectArray(4)
	if v := r.Uint(); r.Err() == nil && v != digestVersion {
		return fmt.Errorf("%w: digest version %d", ErrVersion, v)
	}
	d.Actors = decodeActors(&r, d.Actors[:0])
	na := uint64(len(d.Actors))
	n := r.ArrayLen(maxWireActors, 4)
	d.Columns = d.Columns[:0]
	for range n {
		r.ExpectArray(3)
		c := Column{Actor: uint32(r.actorRef(na))}
		c.Max, c.Cloud = r.readColumn()
		d.Columns = append(d.Columns, c)
	}
	n = r.ArrayLen(maxWireActors, 3)
	d.Floor = d.Floor[:0]
	for range n {
		r.ExpectArray(2)
		d.Floor = append(d.Floor, SeqOf{Actor: uint32(r.actorRef(na)), Seq: r.UintMax(maxSeq)})
	}
	r.End()
	return r.Err()
}

// peerView maps a digest's columns onto local actor indices. Actors the
// store does not know are left out: it holds nothing of theirs to send.
func (s *Store) peerView(d *Digest) []actorCtx {
	peer := make([]actorCtx, len(s.actors))
	for _, c := range d.Columns {
		if int(c.Actor) >= len(d.Actors) {
			continue
		}
		if la, ok := s.actorIdx[d.Actors[c.Actor]]; ok {
			peer[la] = actorCtx{max: c.Max, cloud: c.Cloud}
		}
	}
	return peer
}

// AppendMissing appends one anti-entropy page for the peer whose digest is
// d: the entries this store holds whose dots the peer lacks, the ranges of
// dots this store has seen beyond them (overwritten or collected writes),
// its GC floor and all its counter slots. budget bounds the page's size in
// bytes (at least one entry always goes); more reports that the page was
// cut short. The peer applies the page and sends a fresh digest for the
// next one. A page can make no progress (the peer holds its writes back
// for clock skew); the exchange then stops until a later round.
func (s *Store) AppendMissing(dst []byte, d *Digest, budget int) (page []byte, more bool) {
	w := &s.w
	w.reset(s)
	for a, f := range s.floor {
		if f > 0 {
			w.floorOf(uint32(a), f)
		}
	}
	for name, l := range s.limiters {
		for a, c := range l.slots {
			if c > 0 {
				w.counter(name, l, uint32(a))
			}
		}
	}
	peer := s.peerView(d)
	// A peer whose context does not reach this store's floor, and which
	// has not adopted that floor yet, resynchronises on this page (see
	// mergeFloor) and forgets its dots under the floor: answer for the
	// state it will have, not the one its digest shows, so the resync
	// completes without another round.
	if s.peerWillResync(d, peer) {
		for a, f := range s.floor {
			if f > 0 {
				peer[a] = actorCtx{}
			}
		}
	}
	for a := range s.actors {
		pc, my, di := &peer[a], &s.ctx[a], &s.dots[a]
		upto := pc.max
		for i := di.after(pc.max); i < len(di.seqs); i++ {
			seq := di.seqs[i]
			if di.idxs[i] == deadIdx || pc.has(seq) {
				continue
			}
			e := &s.t.entries[di.idxs[i]]
			if w.nEnts > 0 && w.size()+w.entrySize(e) > budget {
				more = true
				break
			}
			w.entry(e)
			upto = seq
		}
		if more {
			if hi := min(upto, my.max); hi > pc.max {
				w.rng(uint32(a), pc.max, hi)
			}
			break
		}
		if my.max > pc.max {
			w.rng(uint32(a), pc.max, my.max)
		}
		for _, run := range my.cloud {
			if !pc.hasRun(run) {
				w.rng(uint32(a), run.First-1, run.Last)
			}
		}
	}
	return w.finish(dst), more
}

// peerWillResync reports whether the digest's owner will resynchronise when
// it learns this store's floor: its floor is lower and its context does
// not cover ours.
func (s *Store) peerWillResync(d *Digest, peer []actorCtx) bool {
	pf := make([]uint64, len(s.actors))
	for _, f := range d.Floor {
		if int(f.Actor) < len(d.Actors) {
			if la, ok := s.actorIdx[d.Actors[f.Actor]]; ok {
				pf[la] = max(pf[la], f.Seq)
			}
		}
	}
	for a, f := range s.floor {
		if f > pf[a] && f > peer[a].max {
			return true
		}
	}
	return false
}

// member is what the store knows of a peer's causal context, for
// stability: the version vector of its latest digest, by local actor index.
type member struct {
	row  []uint64
	seen time.Time
}

// ObserveDigest records a peer's digest: its context (for tombstone
// stability) and its GC floor. A floor this store's context does not cover
// means the store missed writes whose tombstones are gone; it then
// resynchronises (see doc.go) rather than resurrect deleted keys.
func (s *Store) ObserveDigest(d *Digest, now time.Time) error {
	if len(d.Actors) == 0 {
		return fmt.Errorf("%w: digest without actors", ErrMalformed)
	}
	amap, err := s.mapActors(d.Actors)
	if err != nil {
		return err
	}
	row := make([]uint64, len(s.actors))
	for _, c := range d.Columns {
		if int(c.Actor) < len(amap) {
			row[amap[c.Actor]] = c.Max
		}
	}
	for _, f := range d.Floor {
		if int(f.Actor) >= len(amap) {
			return fmt.Errorf("%w: floor actor %d of %d", ErrMalformed, f.Actor, len(amap))
		}
	}
	if sender := d.Actors[0]; sender != s.actors[0] {
		s.members[sender] = &member{row: row, seen: now}
	}
	s.mergeFloor(s.floorVector(d.Floor, amap))
	return nil
}

package store

import (
	"fmt"
	"time"
	"unsafe"
)

// transient views b as a string for a lookup that does not keep it.
func transient(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// heldWrite is a remote write parked because its stamp ran too far ahead
// of local time. It owns its bytes (the delta buffer is not kept).
type heldWrite struct {
	ns    string
	kv    string
	klen  int
	tomb  bool
	stamp uint64
	actor uint32
	seq   uint64
}

type dotKey struct {
	actor uint32
	seq   uint64
}

// Apply decodes a delta or anti-entropy page and merges it. Merging is
// idempotent and order-insensitive: duplicates, reordering and loss are
// all fine (what is lost comes again with anti-entropy). Writes stamped
// more than MaxSkew ahead of now are held back until a later Tick or Apply.
// b is not retained.
func (s *Store) Apply(b []byte, now time.Time) error {
	err := DecodeDelta(b, &s.scratch)
	if err == nil {
		err = s.ApplyDelta(&s.scratch, now)
	}
	// The decoded records alias b: drop them so b can be freed or reused.
	clear(s.scratch.Entries)
	clear(s.scratch.Counters)
	return err
}

// ApplyDelta merges a decoded delta; see Apply.
func (s *Store) ApplyDelta(d *Delta, now time.Time) error {
	if len(d.Entries)+len(d.Counters)+len(d.Ranges) > s.cfg.MaxDeltaEntries {
		return fmt.Errorf("%w: %d records exceed MaxDeltaEntries %d", ErrMalformed,
			len(d.Entries)+len(d.Counters)+len(d.Ranges), s.cfg.MaxDeltaEntries)
	}
	if err := validDelta(d); err != nil {
		return err
	}
	amap, err := s.mapActors(d.Actors)
	if err != nil {
		return err
	}
	if len(s.held) > 0 {
		s.release(now)
	}
	trusted := true
	if len(d.Floor) > 0 {
		fl := s.floorVector(d.Floor, amap)
		s.mergeFloor(fl)
		trusted = dominates(fl, s.floor)
	} else {
		for _, f := range s.floor {
			if f != 0 {
				trusted = false
				break
			}
		}
	}
	complete := true
	limit := skewLimit(now, s.cfg.MaxSkew)
	var lastNS []byte // entries come grouped by namespace: resolve each run once
	var nsi uint16
	for i := range d.Entries {
		e := &d.Entries[i]
		la := amap[e.Actor]
		if s.ctx[la].has(e.Seq) {
			continue
		}
		if e.Seq <= s.floor[la] && !trusted {
			s.stats.Stale++
			complete = false
			continue
		}
		if e.Stamp > limit {
			s.hold(e, la)
			complete = false
			continue
		}
		if lastNS == nil || string(lastNS) != string(e.Namespace) {
			if nsi, err = s.namespace(string(e.Namespace)); err != nil {
				s.stats.Rejected++
				complete = false
				continue
			}
			lastNS = e.Namespace
		}
		if s.applyEntry(nsi, e.Key, e.Value, e.Deleted, e.Stamp, la, e.Seq) != nil {
			s.stats.Rejected++
			complete = false
		}
	}
	// A range claims dots this store did not get as entries; claim them only
	// when every entry of the delta went in, so nothing held back or
	// refused is marked seen and lost to anti-entropy.
	if complete {
		for _, rg := range d.Ranges {
			s.ctx[amap[rg.Actor]].addRange(rg.From, rg.To)
		}
	}
	for _, c := range d.Counters {
		s.mergeCounter(c.Limiter, c.WindowMs, c.Window, amap[c.Actor], c.Count)
	}
	return nil
}

// validDelta checks what DecodeDelta checks, for deltas built by hand, so
// a bad one is refused before anything changes.
func validDelta(d *Delta) error {
	n := uint32(len(d.Actors))
	bad := func(what string, i int) error { return fmt.Errorf("%w: bad %s %d", ErrMalformed, what, i) }
	if n == 0 {
		return fmt.Errorf("%w: delta without actors", ErrMalformed)
	}
	for i, a := range d.Actors {
		if a.Name == "" || len(a.Name) > maxNameBytes {
			return bad("actor", i)
		}
	}
	for i, f := range d.Floor {
		if f.Actor >= n || f.Seq > maxSeq {
			return bad("floor", i)
		}
	}
	for i, r := range d.Ranges {
		if r.Actor >= n || r.From >= r.To || r.To > maxSeq {
			return bad("range", i)
		}
	}
	for i := range d.Entries {
		e := &d.Entries[i]
		if e.Actor >= n || e.Seq == 0 || e.Seq > maxSeq || len(e.Key) == 0 || len(e.Key) > MaxKeyBytes ||
			len(e.Value) > MaxValueBytes || len(e.Namespace) == 0 || len(e.Namespace) > maxNameBytes {
			return bad("entry", i)
		}
	}
	for i, c := range d.Counters {
		if c.Actor >= n || c.WindowMs == 0 || len(c.Limiter) == 0 || len(c.Limiter) > maxNameBytes {
			return bad("counter", i)
		}
	}
	return nil
}

// mapActors maps a delta's actor table to local indices (reusing a scratch
// slice).
func (s *Store) mapActors(as []Actor) ([]uint32, error) {
	amap := s.amap[:0]
	for _, a := range as {
		i, err := s.actorIndex(a)
		if err != nil {
			return nil, err
		}
		amap = append(amap, i)
	}
	s.amap = amap
	return amap, nil
}

// applyEntry merges one remote write whose dot the store has not seen.
func (s *Store) applyEntry(nsi uint16, key, value []byte, tomb bool, stamp uint64, la uint32, seq uint64) error {
	idx, h := s.t.lookup(nsi, transient(key))
	if idx >= 0 && !s.wins(stamp, la, &s.t.entries[idx]) {
		s.ctx[la].add(seq) // seen, and lost
		return nil
	}
	if !tomb || idx < 0 {
		grow := int64(len(key)+len(value)) + entryOverhead
		if idx >= 0 {
			grow -= s.t.entries[idx].size()
		}
		if grow > 0 && s.bytes+grow > s.cfg.MaxBytes {
			return ErrStoreFull
		}
	}
	if idx < 0 && s.t.full() {
		return ErrStoreFull
	}
	if tomb {
		value = nil
	}
	s.clock.observe(stamp)
	s.install(idx, h, newEntry(concatKV(transient(key), value), len(key), tomb, stamp, seq, la, nsi))
	s.ctx[la].add(seq)
	if tomb && seq <= s.floor[la] {
		// A tombstone under the floor (from a trusted page while
		// resynchronising) has done its job once it won; collect it now.
		if idx < 0 {
			idx, _ = s.t.lookup(nsi, transient(key))
		}
		s.removeAll([]int{idx})
	}
	return nil
}

// hold parks a write stamped too far ahead; when the queue is full it is
// refused instead, and comes again with the sender's anti-entropy.
func (s *Store) hold(e *DeltaEntry, la uint32) {
	k := dotKey{la, e.Seq}
	if _, dup := s.heldDots[k]; dup {
		return
	}
	size := len(e.Key) + len(e.Value)
	if len(s.held) >= s.cfg.MaxHeld || s.heldBytes+size > maxHeldBytes {
		s.stats.Rejected++
		return
	}
	s.held = append(s.held, heldWrite{ns: string(e.Namespace), kv: concatKV(transient(e.Key), e.Value),
		klen: len(e.Key), tomb: e.Deleted, stamp: e.Stamp, actor: la, seq: e.Seq})
	if s.heldDots == nil {
		s.heldDots = map[dotKey]struct{}{}
	}
	s.heldDots[k] = struct{}{}
	s.heldBytes += size
	s.stats.Held++
}

// maxHeldBytes bounds the bytes of held writes.
const maxHeldBytes = 16 << 20

// release applies the held writes that local time has caught up with.
func (s *Store) release(now time.Time) {
	keep := s.held[:0]
	limit := skewLimit(now, s.cfg.MaxSkew)
	for _, h := range s.held {
		if h.stamp > limit {
			keep = append(keep, h)
			continue
		}
		delete(s.heldDots, dotKey{h.actor, h.seq})
		s.heldBytes -= len(h.kv)
		s.stats.Released++
		if s.ctx[h.actor].has(h.seq) {
			continue
		}
		nsi, err := s.namespace(h.ns)
		if err != nil || s.applyEntry(nsi, []byte(h.kv[:h.klen]), []byte(h.kv[h.klen:]), h.tomb, h.stamp, h.actor, h.seq) != nil {
			s.stats.Rejected++
		}
	}
	clear(s.held[len(keep):])
	s.held = keep
}

// Tick lets time pass: held writes whose stamps local time has caught up
// with are applied, and limiters of ended windows are dropped.
func (s *Store) Tick(now time.Time) {
	if len(s.held) > 0 {
		s.release(now)
	}
	s.expireLimiters(now)
}

package store

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"maps"
	"slices"

	"github.com/meshnode/meshnode/wire"
)

// Snapshot layout: magic, version byte, msgpack body, CRC32C (Castagnoli)
// of the body, big-endian. See docs/wire.md (section 11).
const (
	snapshotMagic   = "MNSS"
	snapshotVersion = 1
	snapshotHeader  = len(snapshotMagic) + 1
	snapshotTrailer = 4
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// AppendSnapshot appends a snapshot of the whole store (entries,
// tombstones, causal context, GC floor, counters, clock) to dst. Held-back
// writes and peers' contexts are not saved: they come again.
func (s *Store) AppendSnapshot(dst []byte) []byte {
	dst = append(dst, snapshotMagic...)
	dst = append(dst, snapshotVersion)
	start := len(dst)
	dst = wire.AppendArrayHeader(dst, 9)
	dst = wire.AppendUint(dst, s.seq)
	dst = wire.AppendUint(dst, s.clock.last)
	dst = appendActors(dst, s.actors)
	dst = s.appendContext(dst)
	dst = appendFloor(dst, s.floor)
	dst = wire.AppendArrayHeader(dst, len(s.nsNames))
	for _, ns := range s.nsNames {
		dst = wire.AppendStr(dst, ns)
	}
	dst = wire.AppendArrayHeader(dst, len(s.t.entries))
	for i := range s.t.entries {
		e := &s.t.entries[i]
		dst = wire.AppendArrayHeader(dst, 6)
		dst = wire.AppendUint(dst, uint64(e.ns))
		dst = wire.AppendStr(dst, e.key())
		if e.tomb() {
			dst = wire.AppendNil(dst)
		} else {
			dst = wire.AppendBinString(dst, e.value())
		}
		dst = appendEntryTail(dst, e.stamp, uint32(e.actor), e.seq)
	}
	nc := 0
	for _, l := range s.limiters {
		for _, c := range l.slots {
			if c > 0 {
				nc++
			}
		}
	}
	dst = wire.AppendArrayHeader(dst, nc)
	for _, name := range slices.Sorted(maps.Keys(s.limiters)) {
		l := s.limiters[name]
		for a, c := range l.slots {
			if c > 0 {
				dst = appendCounter(dst, name, l.windowMs, l.window, uint32(a), c)
			}
		}
	}
	return binary.BigEndian.AppendUint32(dst, crc32.Checksum(dst[start:], castagnoli))
}

// Restore replaces the store's state with the snapshot in b. The snapshot
// is verified (magic, version, checksum) and decoded in full before
// anything changes: a corrupt or truncated snapshot returns an error and
// leaves the store as it was. The local actor stays Config.Actor; a
// snapshot written under an older generation keeps that generation as a
// remote actor. Subscriptions survive and are told they lagged.
func (s *Store) Restore(b []byte) error {
	if len(b) < snapshotHeader+snapshotTrailer {
		return fmt.Errorf("%w: snapshot of %d bytes is truncated", ErrMalformed, len(b))
	}
	if string(b[:len(snapshotMagic)]) != snapshotMagic {
		return fmt.Errorf("%w: not a store snapshot", ErrMalformed)
	}
	if v := b[len(snapshotMagic)]; v != snapshotVersion {
		return fmt.Errorf("%w: snapshot version %d", ErrVersion, v)
	}
	body := b[snapshotHeader : len(b)-snapshotTrailer]
	if got, want := crc32.Checksum(body, castagnoli), binary.BigEndian.Uint32(b[len(b)-snapshotTrailer:]); got != want {
		return fmt.Errorf("%w: crc32c %08x, trailer says %08x", ErrChecksum, got, want)
	}
	n, err := New(s.cfg)
	if err != nil {
		return err
	}
	n.t.seed = s.t.seed
	if err := n.decodeSnapshot(body); err != nil {
		return err
	}
	n.subs = s.subs
	for _, sub := range n.subs {
		sub.s = n
		sub.markLagged()
	}
	n.stats = s.stats
	n.clock.observe(s.clock.last)
	*s = *n
	for _, sub := range s.subs {
		sub.s = s
	}
	return nil
}

func (n *Store) decodeSnapshot(body []byte) error {
	r := newReader(body)
	r.ExpectArray(9)
	seq := r.Uint()
	n.clock.last = r.Uint()
	as := decodeActors(&r, nil)
	if r.Err() != nil {
		return r.Err()
	}
	amap, err := n.mapActors(as)
	if err != nil {
		return err
	}
	amap = append([]uint32(nil), amap...)
	na := uint64(len(as))
	if amap[0] == 0 {
		// The snapshot is our own generation's: continue its sequence.
		n.seq = seq
	}
	cols := r.ArrayLen(maxWireActors, 4)
	for range cols {
		r.ExpectArray(3)
		la := amap[r.actorRef(na)]
		var c actorCtx
		c.max, c.cloud = r.readColumn()
		n.ctx[la] = c
	}
	fl := r.ArrayLen(maxWireActors, 3)
	for range fl {
		r.ExpectArray(2)
		la := amap[r.actorRef(na)]
		n.floor[la] = r.UintMax(maxSeq)
	}
	nns := r.ArrayLen(MaxNamespaces, 2)
	for range nns {
		name := r.name()
		if r.Err() != nil {
			break
		}
		if _, err := n.namespace(string(name)); err != nil {
			return err
		}
	}
	if r.Err() == nil && len(n.nsNames) != nns {
		r.Fail("duplicate namespace")
	}
	ne := r.ArrayLen(maxWireItems, 7)
	for range ne {
		r.ExpectArray(6)
		nsi := r.UintMax(uint64(max(nns-1, 0)))
		key := r.Bytes(MaxKeyBytes)
		val, tomb := r.BytesOrNil(MaxValueBytes)
		stamp := r.Uint()
		la := amap[r.actorRef(na)]
		sq := r.seq()
		if r.Err() != nil {
			break
		}
		if nns == 0 || len(key) == 0 {
			r.Fail("entry without namespace or key")
			break
		}
		if n.t.full() {
			return fmt.Errorf("%w: snapshot holds too many keys", ErrStoreFull)
		}
		idx, h := n.t.lookup(uint16(nsi), transient(key))
		if idx >= 0 || n.dots[la].find(sq) >= 0 {
			r.Fail("duplicate key or dot")
			break
		}
		if !n.ctx[la].has(sq) {
			r.Fail("entry outside the causal context")
			break
		}
		n.install(-1, h, newEntry(concatKV(transient(key), val), len(key), tomb, stamp, sq, la, uint16(nsi)))
		if n.bytes > n.cfg.MaxBytes {
			return fmt.Errorf("%w: snapshot holds more than MaxBytes", ErrStoreFull)
		}
	}
	nc := r.ArrayLen(maxWireItems, 6)
	for range nc {
		r.ExpectArray(5)
		name := r.name()
		wms, w := r.Uint(), r.Uint()
		la := amap[r.actorRef(na)]
		c := r.Uint()
		if r.Err() != nil {
			break
		}
		if wms == 0 {
			r.Fail("zero window")
			break
		}
		n.mergeCounter(name, wms, w, la, c)
	}
	r.End()
	if r.Err() != nil {
		return fmt.Errorf("store: restore: %w", r.Err())
	}
	// Never reuse a dot the context already holds for the local actor.
	n.seq = max(n.seq, n.ctx[0].top())
	n.sent = n.seq
	n.collectUnderFloor()
	return nil
}

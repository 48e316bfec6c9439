package store

import "github.com/meshnode/meshnode/wire"

// deltaWriter builds a delta from store state without an intermediate
// Delta: each section goes to its own buffer (the counts are only known at
// the end), and actors get delta-local references on first use.
type deltaWriter struct {
	s                           *Store
	ref                         []int32 // local actor index -> delta ref, -1 if none
	actors                      []uint32
	floor, ranges, ents, ctrs   []byte
	nFloor, nRanges, nEnts, nCt int
}

func (w *deltaWriter) reset(s *Store) {
	w.s = s
	w.ref = w.ref[:0]
	for range s.actors {
		w.ref = append(w.ref, -1)
	}
	w.actors = w.actors[:0]
	w.floor, w.ranges, w.ents, w.ctrs = w.floor[:0], w.ranges[:0], w.ents[:0], w.ctrs[:0]
	w.nFloor, w.nRanges, w.nEnts, w.nCt = 0, 0, 0, 0
	w.actor(0) // the sender is always actor 0 of a delta
}

func (w *deltaWriter) actor(la uint32) uint32 {
	if r := w.ref[la]; r >= 0 {
		return uint32(r)
	}
	r := uint32(len(w.actors))
	w.ref[la] = int32(r)
	w.actors = append(w.actors, la)
	return r
}

// size estimates the encoded size so far (within a few header bytes).
func (w *deltaWriter) size() int {
	n := 16 + len(w.floor) + len(w.ranges) + len(w.ents) + len(w.ctrs)
	for _, la := range w.actors {
		n += 12 + len(w.s.actors[la].Name)
	}
	return n
}

func (w *deltaWriter) entry(e *entry) {
	w.ents = appendEntryHead(w.ents, w.s.nsNames[e.ns], e.key())
	if e.tomb() {
		w.ents = wire.AppendNil(w.ents)
	} else {
		w.ents = wire.AppendBinString(w.ents, e.value())
	}
	w.ents = appendEntryTail(w.ents, e.stamp, w.actor(uint32(e.actor)), e.seq)
	w.nEnts++
}

// entrySize is what entry(e) adds, within a few bytes.
func (w *deltaWriter) entrySize(e *entry) int {
	return e.klen() + e.vlen() + len(w.s.nsNames[e.ns]) + 32
}

func (w *deltaWriter) rng(la uint32, from, to uint64) {
	w.ranges = appendRange(w.ranges, w.actor(la), from, to)
	w.nRanges++
}

func (w *deltaWriter) floorOf(la uint32, seq uint64) {
	w.floor = appendSeqOf(w.floor, w.actor(la), seq)
	w.nFloor++
}

func (w *deltaWriter) counter(name string, l *limiter, la uint32) {
	w.ctrs = appendCounter(w.ctrs, name, l.windowMs, l.window, w.actor(la), l.slots[la])
	w.nCt++
}

func (w *deltaWriter) empty() bool { return w.nFloor+w.nRanges+w.nEnts+w.nCt == 0 }

func (w *deltaWriter) finish(dst []byte) []byte {
	dst = wire.AppendArrayHeader(dst, 6)
	dst = wire.AppendUint(dst, deltaVersion)
	dst = wire.AppendArrayHeader(dst, len(w.actors))
	for _, la := range w.actors {
		a := w.s.actors[la]
		dst = wire.AppendArrayHeader(dst, 2)
		dst = wire.AppendStr(dst, a.Name)
		dst = wire.AppendUint(dst, a.Gen)
	}
	dst = append(wire.AppendArrayHeader(dst, w.nFloor), w.floor...)
	dst = append(wire.AppendArrayHeader(dst, w.nRanges), w.ranges...)
	dst = append(wire.AppendArrayHeader(dst, w.nEnts), w.ents...)
	return append(wire.AppendArrayHeader(dst, w.nCt), w.ctrs...)
}

// AppendDeltas appends a delta holding the local writes and counter updates
// made since the previous call, for eager dissemination, and reports
// whether anything was written. budget bounds the delta's size in bytes
// (at least one write always goes); when writes remain, more is true and
// the next call continues. Writes overwritten in between are not sent:
// the delta says their dots are seen.
func (s *Store) AppendDeltas(dst []byte, budget int) (out []byte, ok, more bool) {
	w := &s.w
	w.reset(s)
	for name, l := range s.limiters {
		if l.dirty {
			w.counter(name, l, 0)
			l.dirty = false
		}
	}
	top := s.seq
	upto := s.sent
	d := &s.dots[0]
	for i := d.after(s.sent); i < len(d.seqs); i++ {
		if d.idxs[i] == deadIdx {
			continue
		}
		e := &s.t.entries[d.idxs[i]]
		if w.nEnts > 0 && w.size()+w.entrySize(e) > budget {
			more = true
			break
		}
		w.entry(e)
		upto = e.seq
	}
	if !more {
		upto = top
	}
	if upto > s.sent {
		w.rng(0, s.sent, upto)
		s.sent = upto
	}
	if w.empty() {
		return dst, false, false
	}
	return w.finish(dst), true, more
}

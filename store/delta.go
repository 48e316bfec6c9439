package store

import (
	"fmt"

	"github.com/meshnode/meshnode/wire"
)

// Encoding versions. A decoder rejects versions it does not know.
const (
	deltaVersion  = 1
	digestVersion = 1
)

// Delta is the decoded form of a delta or an anti-entropy page (see
// docs/wire.md (section 11)). Byte slices alias the buffer it was decoded from
// and are only valid while that buffer is. Actor fields index Actors;
// Actors[0] is the sender.
type Delta struct {
	Actors   []Actor
	Floor    []SeqOf        // sender's GC floor (pages only)
	Ranges   []Range        // dots the sender has seen, beyond the entries
	Entries  []DeltaEntry   // writes, each with its dot and stamp
	Counters []CounterDelta // limiter slots
}

// SeqOf is a sequence number of one actor.
type SeqOf struct {
	Actor uint32
	Seq   uint64
}

// Range says the sender has seen every dot of Actor with From < seq <= To.
type Range struct {
	Actor    uint32
	From, To uint64
}

// DeltaEntry is one write. A nil Value with Deleted set is a tombstone.
type DeltaEntry struct {
	Namespace []byte
	Key       []byte
	Value     []byte
	Deleted   bool
	Stamp     uint64
	Actor     uint32
	Seq       uint64
}

// CounterDelta is one actor's slot of one limiter window.
type CounterDelta struct {
	Limiter  []byte
	WindowMs uint64
	Window   uint64 // window index: start = Window * WindowMs
	Actor    uint32
	Count    uint64
}

// Decode limits that do not depend on the store's Config.
const (
	maxWireActors = 1 << 16
	maxWireItems  = 1 << 24
	maxNameBytes  = MaxNamespaceBytes
)

// AppendDelta appends the encoding of d to dst.
func AppendDelta(dst []byte, d *Delta) []byte {
	dst = wire.AppendArrayHeader(dst, 6)
	dst = wire.AppendUint(dst, deltaVersion)
	dst = appendActors(dst, d.Actors)
	dst = wire.AppendArrayHeader(dst, len(d.Floor))
	for _, f := range d.Floor {
		dst = appendSeqOf(dst, f.Actor, f.Seq)
	}
	dst = wire.AppendArrayHeader(dst, len(d.Ranges))
	for _, r := range d.Ranges {
		dst = appendRange(dst, r.Actor, r.From, r.To)
	}
	dst = wire.AppendArrayHeader(dst, len(d.Entries))
	for i := range d.Entries {
		e := &d.Entries[i]
		dst = appendEntryHead(dst, string(e.Namespace), string(e.Key))
		if e.Deleted {
			dst = wire.AppendNil(dst)
		} else {
			dst = wire.AppendBin(dst, e.Value)
		}
		dst = appendEntryTail(dst, e.Stamp, e.Actor, e.Seq)
	}
	dst = wire.AppendArrayHeader(dst, len(d.Counters))
	for _, c := range d.Counters {
		dst = appendCounter(dst, string(c.Limiter), c.WindowMs, c.Window, c.Actor, c.Count)
	}
	return dst
}

func appendActors(dst []byte, as []Actor) []byte {
	dst = wire.AppendArrayHeader(dst, len(as))
	for _, a := range as {
		dst = wire.AppendArrayHeader(dst, 2)
		dst = wire.AppendStr(dst, a.Name)
		dst = wire.AppendUint(dst, a.Gen)
	}
	return dst
}

func appendSeqOf(dst []byte, a uint32, seq uint64) []byte {
	dst = wire.AppendArrayHeader(dst, 2)
	dst = wire.AppendUint(dst, uint64(a))
	return wire.AppendUint(dst, seq)
}

func appendRange(dst []byte, a uint32, from, to uint64) []byte {
	dst = wire.AppendArrayHeader(dst, 3)
	dst = wire.AppendUint(dst, uint64(a))
	dst = wire.AppendUint(dst, from)
	return wire.AppendUint(dst, to)
}

func appendEntryHead(dst []byte, ns, key string) []byte {
	dst = wire.AppendArrayHeader(dst, 6)
	dst = wire.AppendStr(dst, ns)
	return wire.AppendStr(dst, key)
}

func appendEntryTail(dst []byte, stamp uint64, a uint32, seq uint64) []byte {
	dst = wire.AppendUint(dst, stamp)
	dst = wire.AppendUint(dst, uint64(a))
	return wire.AppendUint(dst, seq)
}

func appendCounter(dst []byte, name string, windowMs, w uint64, a uint32, count uint64) []byte {
	dst = wire.AppendArrayHeader(dst, 5)
	dst = wire.AppendStr(dst, name)
	dst = wire.AppendUint(dst, windowMs)
	dst = wire.AppendUint(dst, w)
	dst = wire.AppendUint(dst, uint64(a))
	return wire.AppendUint(dst, count)
}

// DecodeDelta decodes b into d, reusing d's slices. On error d is left in
// an unspecified state.
func DecodeDelta(b []byte, d *Delta) error {
	r := newReader(b)
	r.ExpectArray(6)
	if v := r.Uint(); r.Err() == nil && v != deltaVersion {
		return fmt.Errorf("%w: delta version %d", ErrVersion, v)
	}
	d.Actors = decodeActors(&r, d.Actors[:0])
	na := uint64(len(d.Actors))
	n := r.ArrayLen(maxWireActors, 3)
	d.Floor = d.Floor[:0]
	for range n {
		r.ExpectArray(2)
		d.Floor = append(d.Floor, SeqOf{Actor: uint32(r.actorRef(na)), Seq: r.UintMax(maxSeq)})
	}
	n = r.ArrayLen(maxWireItems, 4)
	d.Ranges = d.Ranges[:0]
	for range n {
		r.ExpectArray(3)
		rg := Range{Actor: uint32(r.actorRef(na)), From: r.UintMax(maxSeq), To: r.UintMax(maxSeq)}
		if r.Err() == nil && rg.From >= rg.To {
			r.Fail("empty range %d..%d", rg.From, rg.To)
		}
		d.Ranges = append(d.Ranges, rg)
	}
	n = r.ArrayLen(maxWireItems, 7)
	d.Entries = d.Entries[:0]
	for range n {
		var e DeltaEntry
		r.ExpectArray(6)
		e.Namespace = r.name()
		e.Key = r.Bytes(MaxKeyBytes)
		if r.Err() == nil && len(e.Key) == 0 {
			r.Fail("empty key")
		}
		e.Value, e.Deleted = r.BytesOrNil(MaxValueBytes)
		e.Stamp = r.Uint()
		e.Actor = uint32(r.actorRef(na))
		e.Seq = r.seq()
		d.Entries = append(d.Entries, e)
	}
	n = r.ArrayLen(maxWireItems, 6)
	d.Counters = d.Counters[:0]
	for range n {
		r.ExpectArray(5)
		c := CounterDelta{Limiter: r.name(), WindowMs: r.Uint(), Window: r.Uint(), Actor: uint32(r.actorRef(na)), Count: r.Uint()}
		if r.Err() == nil && c.WindowMs == 0 {
			r.Fail("zero window")
		}
		d.Counters = append(d.Counters, c)
	}
	r.End()
	return r.Err()
}

func decodeActors(r *reader, as []Actor) []Actor {
	n := r.ArrayLen(maxWireActors, 3)
	for range n {
		r.ExpectArray(2)
		name := r.name()
		gen := r.Uint()
		if r.Err() != nil {
			break
		}
		as = append(as, Actor{Name: string(name), Gen: gen})
	}
	if r.Err() == nil && len(as) == 0 {
		r.Fail("no actors")
	}
	return as
}

// name reads a non-empty namespace, limiter or actor name.
func (r *reader) name() []byte {
	p := r.Bytes(maxNameBytes)
	if r.Err() == nil && len(p) == 0 {
		r.Fail("empty name")
	}
	return p
}

// actorRef reads an index into an actor table of n actors.
func (r *reader) actorRef(n uint64) uint64 {
	v := r.Uint()
	if r.Err() == nil && v >= n {
		r.Fail("actor %d of %d", v, n)
		return 0
	}
	return v
}

// seq reads a dot sequence number, which counts from 1.
func (r *reader) seq() uint64 {
	v := r.UintMax(maxSeq)
	if r.Err() == nil && v == 0 {
		r.Fail("zero seq")
	}
	return v
}

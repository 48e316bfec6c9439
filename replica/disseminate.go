package replica

import (
	"time"

	"github.com/meshnode/meshnode/radix"
)

// Dissemination. A local change travels as a delta: to every live member
// in one packet each while the cluster has at most EagerMembers members
// (self included); by gossip above that, each member forwarding a delta the
// first time it receives it, so that it spreads by infection at a bounded
// cost per member. A delta too large for a packet goes over a stream: to
// every live member in a small cluster, to PushFanout random ones in a
// large one, anti-entropy taking it to the rest.

// Disseminate flushes the pending local changes of the store as deltas of
// at most budget bytes (the payload a packet can carry) and addresses them.
func (e *Engine) Disseminate(budget int) Ready {
	var r Ready
	for _, b := range e.Flush(budget) {
		e.address(&r, KindStoreDelta, b, budget)
	}
	return r
}

// Broadcast addresses one local delta already encoded (an index batch,
// KindIndexBatch) as Disseminate does.
func (e *Engine) Broadcast(kind uint8, payload []byte, budget int) Ready {
	var r Ready
	e.address(&r, kind, payload, budget)
	return r
}

// BroadcastIndex encodes and addresses a batch of local index deltas, as
// Broadcast does, and returns the encoded batches too. While the cluster
// is small the batch goes whole (in a packet each, or over streams when
// too large); above, it is cut into batches that fit budget
// (radix.AppendBatches), so that gossip carries them to every member
// rather than streams to PushFanout members and anti-entropy to the rest.
func (e *Engine) BroadcastIndex(b *radix.Batch, budget int) (Ready, [][]byte, error) {
	var r Ready
	var encs [][]byte
	var err error
	if e.eager() {
		var enc []byte
		enc, err = radix.AppendBatch(nil, b)
		encs = [][]byte{enc}
	} else {
		encs, err = radix.AppendBatches(nil, b, budget)
	}
	if err != nil {
		return r, nil, err
	}
	for _, enc := range encs {
		e.address(&r, KindIndexBatch, enc, budget)
	}
	return r, encs, nil
}

func (e *Engine) eager() bool { return len(e.peers)+1 <= e.cfg.EagerMembers }

func (e *Engine) address(r *Ready, kind uint8, payload []byte, budget int) {
	fits := len(payload) <= budget
	if e.eager() {
		via := ViaStream
		if fits {
			via = ViaPacket
		}
		for _, m := range e.peers {
			r.Messages = append(r.Messages, Message{To: m.Actor, Via: via, Kind: kind, Payload: payload})
		}
		return
	}
	if fits {
		e.seen.add(deltaHash(kind, payload))
		r.Messages = append(r.Messages, Message{Via: ViaGossip, Kind: kind, Payload: payload})
		return
	}
	k := min(e.cfg.PushFanout, len(e.peers))
	for i := range k {
		j := i + e.cfg.Rand.IntN(len(e.peers)-i)
		e.peers[i], e.peers[j] = e.peers[j], e.peers[i]
		r.Messages = append(r.Messages, Message{To: e.peers[i].Actor, Via: ViaStream, Kind: kind, Payload: payload})
	}
}

// Receive merges a delta a peer sent (KindStoreDelta, KindIndexBatch)
// over via: a packet, gossip or a stream. In a cluster above EagerMembers,
// a delta received in a packet for the first time is gossiped on, and one
// received again (gossip brings each delta to a member several times) is
// not applied again: Ready.Duplicate is set. The engine keeps payload only
// inside the returned messages.
func (e *Engine) Receive(kind uint8, payload []byte, via Via, now time.Time) (Ready, error) {
	var r Ready
	if kind != KindStoreDelta && kind != KindIndexBatch {
		return r, ErrKind
	}
	gossip := via != ViaStream && !e.eager()
	var h uint64
	if gossip {
		h = deltaHash(kind, payload)
		if e.seen.has(h) {
			// Applied when first received (deltas are idempotent, so this
			// only saves the work).
			r.Duplicate = true
			return r, nil
		}
	}
	var err error
	if kind == KindStoreDelta {
		err = e.st.Apply(payload, now)
	} else {
		err = e.applyIndex(payload)
	}
	if err != nil {
		return r, err
	}
	if gossip && e.seen.add(h) {
		r.Messages = append(r.Messages, Message{Via: ViaGossip, Kind: kind, Payload: payload})
	}
	return r, nil
}

// applyIndex merges an index batch, if the engine has an index.
func (e *Engine) applyIndex(b []byte) error {
	if e.ix == nil {
		return nil
	}
	var batch radix.Batch
	if err := radix.DecodeBatch(&batch, b, radix.DefaultLimits()); err != nil {
		return err
	}
	return e.ix.ApplyBatch(&batch)
}

// deltaHash identifies a delta for the seen set (docs/wire.md, 13.3).
func deltaHash(kind uint8, payload []byte) uint64 {
	return radix.XXH64(payload, uint64(kind))
}

// seenSet remembers the hashes of the last few gossiped deltas.
type seenSet struct {
	set  map[uint64]struct{}
	ring []uint64
	pos  int
}

func newSeenSet(n int) seenSet {
	return seenSet{set: make(map[uint64]struct{}, n), ring: make([]uint64, n)}
}

// has reports whether h is among the hashes remembered.
func (s *seenSet) has(h uint64) bool {
	_, ok := s.set[h]
	return ok
}

// add records h and reports whether it is new.
func (s *seenSet) add(h uint64) bool {
	if _, ok := s.set[h]; ok {
		return false
	}
	delete(s.set, s.ring[s.pos])
	s.ring[s.pos] = h
	s.set[h] = struct{}{}
	s.pos = (s.pos + 1) % len(s.ring)
	return true
}

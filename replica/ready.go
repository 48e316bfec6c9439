package replica

import (
	"time"

	"github.com/meshnode/meshnode/store"
)

// Kinds of the wire.Data messages the replication core sends, in packets
// and on streams. The numbers are part of the protocol between nodes
// (docs/wire.md): append only.
const (
	KindStoreDelta    uint8 = 1  // store.AppendDeltas output
	KindIndexBatch    uint8 = 2  // radix.AppendBatch output
	KindStoreDigest   uint8 = 10 // anti-entropy: a store digest
	KindStorePage     uint8 = 11 // anti-entropy: the last store page
	KindStorePageMore uint8 = 12 // anti-entropy: a store page, more follow
	KindIndexDigest   uint8 = 13 // anti-entropy: an index digest
	KindIndexDone     uint8 = 14 // anti-entropy: no more index batches
)

// Via says how a message travels.
type Via uint8

const (
	// ViaPacket: one UDP packet (wire.Data) to Message.To. If the packet
	// cannot be sent, the caller may push it over a stream instead.
	ViaPacket Via = iota + 1
	// ViaGossip: into membership's broadcast queue, piggybacked on probes
	// and gossip packets to random members (swim's Broadcast). To is unset.
	ViaGossip
	// ViaStream: pushed over a delta stream (TCP) to Message.To.
	ViaStream
)

func (v Via) String() string {
	switch v {
	case ViaPacket:
		return "packet"
	case ViaGossip:
		return "gossip"
	case ViaStream:
		return "stream"
	}
	return "unknown"
}

// Message is one message the engine wants sent. Payload may be shared by
// several messages and must not be modified; the caller may keep it.
type Message struct {
	To      store.Actor // the member, by name; unset for ViaGossip
	Via     Via
	Kind    uint8
	Payload []byte
}

// Ready is what the engine wants done after an input, as data, in the
// manner of etcd-io/raft's Ready: the caller sends the messages, opens the
// exchange, and calls Tick again at Next at the latest.
type Ready struct {
	// Messages to send, in order.
	Messages []Message
	// Exchange, when its Name is set, is the live member to run one
	// anti-entropy exchange with now (the caller opens the stream and
	// reports the end with ExchangeDone). At most one is handed out at a
	// time.
	Exchange store.Actor
	// Synced is set once, when the first exchange after Bootstrap has
	// succeeded, or found no live member to exchange with.
	Synced bool
	// Duplicate is set by Receive for a gossiped delta received before,
	// which it did not apply again.
	Duplicate bool
	// Collected counts the tombstones a collection round collected.
	Collected int
	// Next is when the engine next needs Tick (zero from inputs other
	// than Tick).
	Next time.Time
}

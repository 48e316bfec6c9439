package wire

import "net/netip"

// Type numbers a message kind on the wire. Types are append-only: a number
// once assigned is never reused or renumbered. A decoder that meets a type it
// does not know skips it with ErrUnknownType.
type Type uint8

// Message types. Append new types at the end.
const (
	TypePing         Type = 1  // direct probe
	TypeIndirectPing Type = 2  // ask a member to probe a target for us
	TypeAck          Type = 3  // answer to a ping
	TypeNack         Type = 4  // an indirect prober could not reach the target
	TypeAlive        Type = 5  // a member is alive (join, refute, metadata update)
	TypeSuspect      Type = 6  // a member is suspected of having failed
	TypeDead         Type = 7  // a member is dead, or has left
	TypePushPull     Type = 8  // push-pull header: starts a state exchange
	TypeDigest       Type = 9  // push-pull digest: one entry per known member
	TypeMembers      Type = 10 // push-pull full member records, for what differed
	TypeData         Type = 11 // opaque bytes for the layers above (store, index)
)

// MemberState is a member's state as carried in push-pull records.
type MemberState uint8

// Member states. Numbers are part of the wire format.
const (
	StateAlive   MemberState = 0
	StateSuspect MemberState = 1
	StateDead    MemberState = 2
	StateLeft    MemberState = 3
)

// Ping is a direct probe. The receiver answers with an Ack carrying the same
// Seq, sent to SourceAddr. Target names the member the sender meant to probe,
// so a restarted process at the same address can tell the ping is not for it.
type Ping struct {
	Seq        uint32
	Target     string
	SourceName string
	SourceAddr netip.AddrPort
}

// IndirectPing asks the receiver to probe Target at TargetAddr with Seq and
// forward any Ack to SourceAddr. If WantNack is set and the receiver gets no
// ack in time, it sends a Nack with Seq to SourceAddr.
type IndirectPing struct {
	Seq        uint32
	Target     string
	TargetAddr netip.AddrPort
	WantNack   bool
	SourceName string
	SourceAddr netip.AddrPort
}

// Ack answers a Ping (or an IndirectPing, relayed). Payload is optional and
// opaque to wire; it may be empty.
type Ack struct {
	Seq     uint32
	Payload []byte
}

// Nack tells an indirect-probe requester that the relay did not reach the
// target in time.
type Nack struct {
	Seq uint32
}

// Alive announces that member Name, in generation Gen, is alive at
// incarnation Incarnation, reachable at Addr, with metadata Meta. It is also
// how a member refutes suspicion of itself and publishes new metadata.
type Alive struct {
	Name        string
	Gen         uint64
	Incarnation uint64
	Addr        netip.AddrPort
	Meta        []byte
}

// Suspect accuses member Name (generation Gen, incarnation Incarnation) of
// having failed. From names the accuser.
type Suspect struct {
	Name        string
	Gen         uint64
	Incarnation uint64
	From        string
}

// Dead declares member Name (generation Gen) dead at Incarnation. Left is set
// when the member announced its own graceful departure.
type Dead struct {
	Name        string
	Gen         uint64
	Incarnation uint64
	From        string
	Left        bool
}

// PushPull opens a push-pull state exchange over a stream. Join is set when
// the sender is joining through the receiver. Members is the number of member
// records the sender knows; StateBytes the size of the opaque state of the
// layers above that the sender is prepared to exchange (0 for none).
type PushPull struct {
	Join       bool
	Members    uint32
	StateBytes uint32
}

// DigestEntry summarises one member in a push-pull digest.
type DigestEntry struct {
	Name        string
	Gen         uint64
	Incarnation uint64
	State       MemberState
}

// Digest is the first half of a push-pull: one short entry per known member,
// so that the peer can answer with only the records that differ.
type Digest struct {
	Entries []DigestEntry
}

// MemberRecord is a full member record exchanged in push-pull.
type MemberRecord struct {
	Name        string
	Gen         uint64
	Incarnation uint64
	State       MemberState
	Addr        netip.AddrPort
	Meta        []byte
}

// Members carries the full records a push-pull peer asked for or lacked.
type Members struct {
	Records []MemberRecord
}

// Data carries opaque bytes for the layers above swim. Kind tells the
// receiving layer what the payload is (store delta, index delta, ...); wire
// gives it no meaning.
type Data struct {
	Kind    uint8
	Payload []byte
}

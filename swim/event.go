package swim

import (
	"net/netip"
	"time"

	"github.com/meshnode/meshnode/wire"
)

// EventKind says what happened to a member.
type EventKind uint8

// Event kinds.
const (
	// EventJoin: a member (or a new generation of one) appeared.
	EventJoin EventKind = iota + 1
	// EventUpdate: a member's address or metadata changed.
	EventUpdate
	// EventSuspect: a member is suspected of having failed.
	EventSuspect
	// EventAlive: a suspected or dead member was shown to be alive.
	EventAlive
	// EventDead: a member was declared dead.
	EventDead
	// EventLeave: a member left gracefully.
	EventLeave
	// EventIsolated: this node (Member is self) stopped trusting itself:
	// it withholds death verdicts and refutations; Reason says why.
	EventIsolated
	// EventRecovered: this node (Member is self) trusts itself again.
	EventRecovered
	// EventRefuteWithheld: this node (Member is self) did not refute an
	// accusation because it distrusts itself; reported once per period of
	// distrust (Stats.RefutesWithheld counts them all).
	EventRefuteWithheld
)

// String returns the kind's name.
func (k EventKind) String() string {
	switch k {
	case EventJoin:
		return "join"
	case EventUpdate:
		return "update"
	case EventSuspect:
		return "suspect"
	case EventAlive:
		return "alive"
	case EventDead:
		return "dead"
	case EventLeave:
		return "leave"
	case EventIsolated:
		return "isolated"
	case EventRecovered:
		return "recovered"
	case EventRefuteWithheld:
		return "refute-withheld"
	}
	return "event(?)"
}

// Event reports a change of a member's state, as data; EventIsolated,
// EventRecovered and EventRefuteWithheld report on this node itself. Verdict is set on an
// EventDead when this node itself issued the death verdict (its suspicion
// timer ran out), not when it learnt of it from another node.
type Event struct {
	Kind    EventKind
	At      time.Time
	Member  Member
	Verdict bool
	// Reason says why, on an EventIsolated (one of the Reason constants).
	Reason string
}

// Packet is one UDP packet to send: Msgs[0] is the primary message, the rest
// are piggybacked broadcasts, each a *wire.Ping, *wire.IndirectPing,
// *wire.Ack, *wire.Nack, *wire.Alive, *wire.Suspect, *wire.Dead or
// *wire.Data. Their compound body (wire.AppendPart of each) fits
// Config.MaxPacketBytes - Config.PacketOverheadBytes. Messages are
// read-only: one broadcast may appear in several packets.
type Packet struct {
	To   netip.AddrPort
	Msgs []wire.Message
}

// Stream is one stream exchange the core wants made over TCP: the runner
// dials To, sends Msgs, reads the reply messages and hands them to
// Core.StreamDone with ID before Deadline (or an error). If OneWay is set,
// no reply is expected beyond the stream being accepted.
type Stream struct {
	ID       uint64
	To       netip.AddrPort
	Msgs     []wire.Message
	Deadline time.Time
	OneWay   bool
}

// Received is a Data message for the layer above, copied out of the input.
// From is the address the packet came from.
type Received struct {
	From netip.AddrPort
	Data wire.Data
}

// RemoteState is the layer above's opaque state received in a push-pull.
type RemoteState struct {
	From  netip.AddrPort
	Join  bool
	State []byte
}

// Ready is everything the core wants done, drained by Core.Ready. Its
// slices belong to the caller.
type Ready struct {
	Packets []Packet
	Streams []Stream
	Events  []Event
	Data    []Received
	States  []RemoteState
	// Next is when the core next needs Tick, at the latest.
	Next time.Time
}

// Stats counts what the core did and dropped. Counters only grow.
type Stats struct {
	ProbesSent        uint64 // direct probes started
	ProbesFailed      uint64 // probes that ended in a suspicion
	TCPOnlyProbes     uint64 // probes answered over TCP only
	IndirectSent      uint64 // indirect ping requests sent
	SuspicionsRaised  uint64 // suspicions this node raised from its own probes
	DeathVerdicts     uint64 // death verdicts this node issued
	VerdictsWithheld  uint64 // verdicts deferred by the self-isolation guard
	Refutations       uint64 // alive messages sent to refute accusations
	RefutesWithheld   uint64 // accusations not refuted while isolated
	Pauses            uint64 // input gaps above PauseThreshold
	BroadcastsDropped uint64 // broadcasts dropped because the queue was full
	MembersDropped    uint64 // member records dropped above MaxMembers
	WrongTarget       uint64 // pings meant for another member
	StreamsDropped    uint64 // streams not started because MaxStreams were busy
	Reaped            uint64 // tombstones removed
	// HealthAbsolved counts health points given back because a relay that
	// did not nack turned out to have failed itself.
	HealthAbsolved uint64
	// IsolationChanges counts the times this node started or stopped
	// distrusting itself (see Core.Isolated).
	IsolationChanges uint64
	// LinkChecks counts the link checks a node that distrusted itself
	// started on hearing from another member; LinkChecksPassed those that
	// every member pinged answered (the node then trusts itself again).
	LinkChecks, LinkChecksPassed uint64
	// FastProbes counts the probes started at the faster rate while many
	// members failed at once.
	FastProbes uint64
	// SidePings counts the extra direct pings sent beside a probe while
	// many members failed at once; SideSuspicions the suspicions raised
	// because one went unanswered.
	SidePings, SideSuspicions uint64
	// Sweeps counts the discovery sweeps started after a probe whose
	// relays were all silent (their pings count as side pings).
	Sweeps uint64
}

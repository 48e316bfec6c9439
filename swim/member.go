package swim

import (
	"net/netip"
	"time"

	"github.com/meshnode/meshnode/wire"
)

// Identity names one process: a member name plus the generation of the
// process that carries it. A higher generation always wins over any
// incarnation of an older one.
type Identity struct {
	Name string
	Gen  uint64
	Addr netip.AddrPort
}

// State is a member's state as this node sees it.
type State uint8

// Member states, numbered as on the wire.
const (
	StateAlive   = State(wire.StateAlive)
	StateSuspect = State(wire.StateSuspect)
	StateDead    = State(wire.StateDead)
	StateLeft    = State(wire.StateLeft)
)

// String returns the state's name.
func (s State) String() string {
	switch s {
	case StateAlive:
		return "alive"
	case StateSuspect:
		return "suspect"
	case StateDead:
		return "dead"
	case StateLeft:
		return "left"
	}
	return "state(?)"
}

// Member is a snapshot of one member as this node sees it. Meta must not be
// modified.
type Member struct {
	Name        string
	Gen         uint64
	Incarnation uint64
	Addr        netip.AddrPort
	Meta        []byte
	State       State
	// Since is when the member entered State.
	Since time.Time
	// TCPOnly is set when the last probe of the member succeeded only over
	// TCP: it is up, but UDP to it is broken (firewall, MTU).
	TCPOnly bool
}

// member is the core's record of one member.
type member struct {
	Member
	probeIdx int // index in Core.order, -1 when not in it
	susp     *suspicion
	rtt      rttEstimator
	// lastHeard is when an ack, nack, ping or indirect-ping request from
	// the member last arrived.
	lastHeard time.Time
}

// rank orders the news about one identity: for the same generation and
// incarnation, dead (or left) beats suspect beats alive.
func rank(s State) int {
	switch s {
	case StateAlive:
		return 0
	case StateSuspect:
		return 1
	}
	return 2
}

// newer reports whether news (gen, inc, s) supersedes (gen2, inc2, s2).
func newer(gen, inc uint64, s State, gen2, inc2 uint64, s2 State) bool {
	if gen != gen2 {
		return gen > gen2
	}
	if inc != inc2 {
		return inc > inc2
	}
	return rank(s) > rank(s2)
}

// rttEstimator smooths round-trip times as TCP does (RFC 6298).
type rttEstimator struct {
	srtt, rttvar time.Duration
	n            int
}

func (r *rttEstimator) add(d time.Duration) {
	if r.n == 0 {
		r.srtt, r.rttvar = d, d/2
	} else {
		diff := r.srtt - d
		if diff < 0 {
			diff = -diff
		}
		r.rttvar = (3*r.rttvar + diff) / 4
		r.srtt = (7*r.srtt + d) / 8
	}
	r.n++
}

// timeout returns srtt + 4*rttvar.
func (r *rttEstimator) timeout() time.Duration { return r.srtt + 4*r.rttvar }

package swim

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// Config tunes the protocol. Start from LANConfig, WANConfig or LocalConfig
// and adjust; the zero Config is not valid. Validate reports every problem at
// once.
type Config struct {
	// ProbeInterval is the time between two failure-detection probes, before
	// the local health multiplier scales it.
	ProbeInterval time.Duration
	// ProbeTimeout is how long a direct ping waits for its ack before
	// indirect probes start, until MinRTTSamples round trips have been seen
	// for the peer; after that the timeout adapts to the peer's RTT.
	ProbeTimeout time.Duration
	// MinRTTSamples is the number of RTT samples needed before a peer's
	// timeout adapts.
	MinRTTSamples int
	// IndirectChecks is k, the number of members asked to probe a target
	// that missed its direct ack.
	IndirectChecks int
	// HealthMax caps the Lifeguard local health multiplier; probe interval
	// and timeouts are scaled by (1 + health).
	HealthMax int
	// SuspicionMult sets the minimum suspicion timeout:
	// SuspicionMult * max(1, log10 N) * ProbeInterval.
	SuspicionMult int
	// SuspicionMaxMult sets the maximum suspicion timeout as a multiple of
	// the minimum; a suspicion starts at the maximum and shrinks with
	// independent confirmations.
	SuspicionMaxMult int
	// GossipInterval is the time between two gossip rounds.
	GossipInterval time.Duration
	// GossipNodes is the number of random members each gossip round sends to.
	GossipNodes int
	// RetransmitMult sets the retransmit limit of a broadcast:
	// max(6, RetransmitMult * ceil(log10(N+1))).
	RetransmitMult int
	// PushPullInterval is the time between two push-pull exchanges with a
	// random member, scaled up for clusters above 32 members.
	PushPullInterval time.Duration
	// MaxStreams bounds the stream exchanges (push-pull, TCP pings) in
	// flight at once.
	MaxStreams int
	// StreamTimeout is the deadline of a push-pull exchange.
	StreamTimeout time.Duration
	// JoinRetryMin and JoinRetryMax bound the exponential backoff between
	// join attempts. The runner retries (swimnet's Runner.Join); the core
	// makes one attempt per Join call.
	JoinRetryMin, JoinRetryMax time.Duration
	// ReconnectInterval is the time between two attempts to re-dial a dead
	// member (or a seed, while isolated), so that split halves merge again.
	ReconnectInterval time.Duration
	// RedialInterval is the time between two re-dials of a random dead
	// member by one node, so that the halves of a healed partition find each
	// other quickly; above 16 live members it is scaled by N/16, which keeps
	// the cluster-wide rate of re-dials constant. At most one re-dial is in
	// flight per node. Zero means ReconnectInterval.
	RedialInterval time.Duration
	// ReapTimeout is how long dead and left members are kept as tombstones.
	ReapTimeout time.Duration
	// IsolationProbes is the number of consecutive failed probes after which
	// a node assumes it is the problem (self-isolation guard).
	IsolationProbes int
	// PauseThreshold is the gap between two inputs above which the core
	// assumes its process was paused (SIGSTOP, long GC) and does not judge
	// the probes and timers that ran out meanwhile.
	PauseThreshold time.Duration
	// MaxPacketBytes is the UDP payload budget after compression and
	// encryption; PacketOverheadBytes is reserved out of it for wire's
	// packet header and its encryption (or checksum) overhead.
	MaxPacketBytes, PacketOverheadBytes int
	// MaxMetaBytes bounds the local metadata.
	MaxMetaBytes int
	// MaxBroadcasts bounds the broadcast queue; overflow is dropped and
	// counted.
	MaxBroadcasts int
	// MaxMembers bounds the member table; records beyond it are dropped and
	// counted.
	MaxMembers int
	// DisableHealth turns the local health multiplier off (for experiments
	// that show what it prevents).
	DisableHealth bool
	// DisableTCPFallback turns the TCP fallback ping off.
	DisableTCPFallback bool
	// State, if not nil, supplies the opaque state of the layer above for
	// push-pull exchanges.
	State StateDelegate
}

// StateDelegate supplies the layer above's state for push-pull. It is called
// synchronously from Core methods on the caller's goroutine; it must not
// block or call back into the Core. The core does not keep the returned
// slice beyond the stream it is sent on.
type StateDelegate interface {
	// LocalState returns the state to send to a peer; join tells whether the
	// exchange is part of a join.
	LocalState(join bool) []byte
}

// LANConfig returns defaults for a local network: RTTs well under a
// millisecond, rare loss.
func LANConfig() Config {
	return Config{
		ProbeInterval:       time.Second,            // one probe per second: detection in seconds at ~100 B/s per node
		ProbeTimeout:        500 * time.Millisecond, // far above LAN RTT, leaves half the period for indirect probes
		MinRTTSamples:       5,                      // a few samples before trusting a peer's RTT estimate
		IndirectChecks:      3,                      // three independent paths make a false suspicion unlikely
		HealthMax:           8,                      // Lifeguard's value: a sick node slows down to 1/9 of the probe rate
		SuspicionMult:       4,                      // minimum suspicion: 4 probe periods (times log10 N)
		SuspicionMaxMult:    6,                      // start at 6x the minimum, shrink with confirmations
		GossipInterval:      200 * time.Millisecond, // news crosses 1000 nodes in about two seconds
		GossipNodes:         3,                      // fan-out 3: epidemic in log3(N) rounds
		RetransmitMult:      4,                      // each message sent 4*log10(N+1) times: reaches all with high probability
		PushPullInterval:    30 * time.Second,       // anti-entropy repairs what gossip missed, at low cost
		MaxStreams:          4,                      // a node handles a few TCP exchanges at once
		StreamTimeout:       10 * time.Second,       // a full state exchange of a large cluster fits comfortably
		JoinRetryMin:        time.Second,            // first retry soon: seeds are often just starting too
		JoinRetryMax:        30 * time.Second,       // do not hammer seeds that are down
		ReconnectInterval:   5 * time.Second,        // seeds re-resolved and re-dialled while isolated or alone
		RedialInterval:      time.Second,            // some node re-dials the other half within ~1 s of a heal: whole within 3 s
		ReapTimeout:         30 * time.Minute,       // longer than typical partitions, so reconnect can re-dial them
		IsolationProbes:     5,                      // five failed probes in a row: suspect ourselves first
		PauseThreshold:      2 * time.Second,        // no input for two probe periods: we were paused, not them
		MaxPacketBytes:      1200,                   // below common path MTUs with room for tunnels
		PacketOverheadBytes: 31,                     // wire: version and flags, key ID, AES-GCM nonce and tag
		MaxMetaBytes:        512,                    // metadata rides in alive messages and must fit a packet
		MaxBroadcasts:       4096,                   // several rounds of churn in a 1000-node cluster
		MaxMembers:          65536,                  // a bound on memory against hostile peers
	}
}

// WANConfig returns defaults for members spread over wide-area links: RTTs of
// tens to hundreds of milliseconds and more loss.
func WANConfig() Config {
	c := LANConfig()
	c.ProbeInterval = 5 * time.Second         // WAN RTTs and loss make fast probing costly and noisy
	c.ProbeTimeout = 3 * time.Second          // room for intercontinental RTTs until samples arrive
	c.SuspicionMult = 6                       // more time to refute across lossy links
	c.GossipInterval = 500 * time.Millisecond // fewer, fuller packets
	c.GossipNodes = 4                         // more fan-out compensates for loss
	c.PushPullInterval = 60 * time.Second     // streams are expensive over WAN
	c.StreamTimeout = 30 * time.Second        // slow links
	c.ReconnectInterval = 30 * time.Second    // WAN partitions heal slowly; do not hammer
	c.RedialInterval = 10 * time.Second       // a dial across a WAN costs more; heals are rarer
	c.PauseThreshold = 10 * time.Second       // two WAN probe periods
	return c
}

// LocalConfig returns defaults for members on one host (tests, development):
// loopback RTTs, no loss.
func LocalConfig() Config {
	c := LANConfig()
	c.ProbeInterval = 200 * time.Millisecond  // loopback is fast and free
	c.ProbeTimeout = 100 * time.Millisecond   // loopback RTT is microseconds
	c.SuspicionMult = 3                       // quick verdicts for fast tests
	c.GossipInterval = 100 * time.Millisecond // quick convergence
	c.PushPullInterval = 15 * time.Second     // cheap, but rarely needed
	c.StreamTimeout = 2 * time.Second         // loopback streams are fast
	c.ReconnectInterval = 2 * time.Second     // quick re-merge
	c.RedialInterval = 500 * time.Millisecond // loopback dials are free
	c.PauseThreshold = time.Second            // five probe periods
	return c
}

// ErrConfig is matched by every error Validate returns.
var ErrConfig = errors.New("swim: invalid config")

// Validate reports every invalid field at once, each wrapping ErrConfig.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, a ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrConfig}, a...)...))
	}
	if c.ProbeInterval <= 0 {
		bad("ProbeInterval %v must be positive", c.ProbeInterval)
	}
	if c.ProbeTimeout <= 0 || c.ProbeTimeout > c.ProbeInterval {
		bad("ProbeTimeout %v must be positive and at most ProbeInterval %v", c.ProbeTimeout, c.ProbeInterval)
	}
	if c.MinRTTSamples < 1 {
		bad("MinRTTSamples %d must be at least 1", c.MinRTTSamples)
	}
	if c.IndirectChecks < 0 || c.IndirectChecks > 16 {
		bad("IndirectChecks %d must be in [0, 16]", c.IndirectChecks)
	}
	if c.HealthMax < 0 || c.HealthMax > 64 {
		bad("HealthMax %d must be in [0, 64]", c.HealthMax)
	}
	if c.SuspicionMult < 1 {
		bad("SuspicionMult %d must be at least 1", c.SuspicionMult)
	}
	if c.SuspicionMaxMult < 1 {
		bad("SuspicionMaxMult %d must be at least 1", c.SuspicionMaxMult)
	}
	if c.GossipInterval <= 0 {
		bad("GossipInterval %v must be positive", c.GossipInterval)
	}
	if c.GossipNodes < 1 {
		bad("GossipNodes %d must be at least 1", c.GossipNodes)
	}
	if c.RetransmitMult < 1 {
		bad("RetransmitMult %d must be at least 1", c.RetransmitMult)
	}
	if c.PushPullInterval <= 0 {
		bad("PushPullInterval %v must be positive", c.PushPullInterval)
	}
	if c.MaxStreams < 1 {
		bad("MaxStreams %d must be at least 1", c.MaxStreams)
	}
	if c.StreamTimeout <= 0 {
		bad("StreamTimeout %v must be positive", c.StreamTimeout)
	}
	if c.JoinRetryMin <= 0 || c.JoinRetryMax < c.JoinRetryMin {
		bad("JoinRetryMin %v must be positive and at most JoinRetryMax %v", c.JoinRetryMin, c.JoinRetryMax)
	}
	if c.ReconnectInterval <= 0 {
		bad("ReconnectInterval %v must be positive", c.ReconnectInterval)
	}
	if c.RedialInterval < 0 {
		bad("RedialInterval %v must not be negative", c.RedialInterval)
	}
	if c.ReapTimeout <= 0 {
		bad("ReapTimeout %v must be positive", c.ReapTimeout)
	}
	if c.IsolationProbes < 1 {
		bad("IsolationProbes %d must be at least 1", c.IsolationProbes)
	}
	if c.PauseThreshold < c.ProbeInterval {
		bad("PauseThreshold %v must be at least ProbeInterval %v", c.PauseThreshold, c.ProbeInterval)
	}
	if c.PacketOverheadBytes < 0 || c.MaxPacketBytes-c.PacketOverheadBytes < minPacketBody {
		bad("MaxPacketBytes %d minus PacketOverheadBytes %d must leave at least %d bytes", c.MaxPacketBytes, c.PacketOverheadBytes, minPacketBody)
	}
	if c.MaxMetaBytes < 0 || c.MaxMetaBytes > c.MaxPacketBytes-c.PacketOverheadBytes-minPacketBody/2 {
		bad("MaxMetaBytes %d must be non-negative and leave room in a packet", c.MaxMetaBytes)
	}
	if c.MaxBroadcasts < 1 {
		bad("MaxBroadcasts %d must be at least 1", c.MaxBroadcasts)
	}
	if c.MaxMembers < 2 {
		bad("MaxMembers %d must be at least 2", c.MaxMembers)
	}
	return errors.Join(errs...)
}

// packetBudget is the number of body bytes an outbound packet may use.
func (c *Config) packetBudget() int { return c.MaxPacketBytes - c.PacketOverheadBytes }

// suspicionBounds returns the minimum and maximum suspicion timeouts for a
// cluster of n members.
func (c *Config) suspicionBounds(n int) (lo, hi time.Duration) {
	f := 1.0
	if n > 10 {
		f = math.Log10(float64(n))
	}
	lo = time.Duration(float64(c.SuspicionMult) * f * float64(c.ProbeInterval))
	return lo, lo * time.Duration(c.SuspicionMaxMult)
}

// retransmitLimit returns how many times a broadcast is sent in a cluster of
// n members.
func (c *Config) retransmitLimit(n int) int {
	l := c.RetransmitMult * int(math.Ceil(math.Log10(float64(n+1))))
	return max(6, l)
}

// pushPullInterval scales the push-pull interval with the cluster size, so
// that the total stream load grows slowly with N.
func (c *Config) pushPullInterval(n int) time.Duration {
	if n <= 32 {
		return c.PushPullInterval
	}
	m := math.Ceil(math.Log2(float64(n)) - math.Log2(32))
	return time.Duration(float64(c.PushPullInterval) * (1 + m))
}

// redialInterval returns the time between two re-dials of a dead member by
// one node in a cluster of n live members.
func (c *Config) redialInterval(n int) time.Duration {
	d := c.RedialInterval
	if d <= 0 {
		d = c.ReconnectInterval
	}
	if n > 16 {
		d = time.Duration(float64(d) * float64(n) / 16)
	}
	return d
}

package memberlist

import (
	"sync"
	"sync/atomic"
	"time"
)

// Settings are the protocol timings and factors both implementations run
// with; each implementation maps them onto its own configuration.
type Settings struct {
	ProbeInterval    time.Duration // between two probes of one node
	ProbeTimeout     time.Duration // direct ping's wait for its ack
	IndirectChecks   int           // members asked to probe a silent target
	SuspicionMult    int           // minimum suspicion: SuspicionMult * max(1, log10 N) * ProbeInterval
	SuspicionMaxMult int           // maximum suspicion as a multiple of the minimum
	HealthMax        int           // Lifeguard local health (memberlist: awareness) cap
	GossipInterval   time.Duration // between two gossip rounds
	GossipNodes      int           // members per gossip round
	RetransmitMult   int           // retransmit limit: RetransmitMult * ceil(log10(N+1))
	PushPullInterval time.Duration // between two full-state exchanges, scaled above 32 members
	StreamTimeout    time.Duration // TCP exchanges (push-pull, TCP ping)
}

// DefaultSettings are the LAN profile of both implementations (indirect
// checks 3, suspicion 4 and 6, health cap 8, fan-out 3, retransmit 4) with
// shorter intervals so that a trial takes seconds: probes every 500 ms with
// a 200 ms timeout, gossip every 100 ms, push-pull every 15 s (30 s at
// N = 50 after both implementations' scaling), TCP exchanges within 5 s.
func DefaultSettings() Settings {
	return Settings{
		ProbeInterval:    500 * time.Millisecond,
		ProbeTimeout:     200 * time.Millisecond,
		IndirectChecks:   3,
		SuspicionMult:    4,
		SuspicionMaxMult: 6,
		HealthMax:        8,
		GossipInterval:   100 * time.Millisecond,
		GossipNodes:      3,
		RetransmitMult:   4,
		PushPullInterval: 15 * time.Second,
		StreamTimeout:    5 * time.Second,
	}
}

// cluster is N nodes of one implementation on 127.0.0.1, started but not
// joined. Node i is named by its index. Its methods may be called from
// several goroutines at once.
type cluster interface {
	// Size returns N.
	Size() int
	// Join makes node i join through node 0 and returns when its join
	// call returns.
	Join(i int) error
	// Alive returns, for node i, which nodes it considers members (alive
	// or suspect, not dead or left), indexed by node; it answers for
	// itself too.
	Alive(i int) []bool
	// Broadcast queues a user broadcast of payload at node i.
	Broadcast(i int, payload []byte) error
	// Crash stops node i without a leave announcement.
	Crash(i int) error
	// Bytes returns the payload bytes the cluster's nodes sent so far.
	Bytes() bytes
	// Close stops every node still running.
	Close() error
}

// receipts records when each node first received each user broadcast.
// Both implementations' delivery callbacks write into it, and both
// implementations' push-pull hooks read and merge it: while repair is on,
// a node's push-pull state is the list of broadcasts it holds, so that
// anti-entropy repairs what gossip missed, as meshnode's node layer does
// with its deltas.
type receipts struct {
	repair atomic.Bool

	mu   sync.Mutex
	at   map[receipt]time.Time
	held map[int][]string // per node, the broadcasts it holds, in order
}

// msgBytes is the fixed size of a broadcast payload (see broadcastID).
const msgBytes = 32

// receipt names one broadcast delivered to one node.
type receipt struct {
	node int
	msg  string
}

// add records that node received msg, unless it had already, and reports
// whether this was the first time.
func (r *receipts) add(node int, msg []byte, now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.at == nil {
		r.at = make(map[receipt]time.Time)
	}
	k := receipt{node: node, msg: string(msg)}
	if _, ok := r.at[k]; ok {
		return false
	}
	r.at[k] = now
	if r.held == nil {
		r.held = make(map[int][]string)
	}
	r.held[node] = append(r.held[node], k.msg)
	return true
}

// state returns node's push-pull state: the broadcasts it holds while
// repair is on, nothing otherwise.
func (r *receipts) state(node int) []byte {
	if !r.repair.Load() {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	b := make([]byte, 0, msgBytes*len(r.held[node]))
	for _, m := range r.held[node] {
		b = append(b, m...)
	}
	return b
}

// merge records the broadcasts in a peer's push-pull state as received by
// node at now. A state that is not a whole number of broadcasts is
// ignored.
func (r *receipts) merge(node int, state []byte, now time.Time) {
	if len(state)%msgBytes != 0 {
		return
	}
	for len(state) > 0 {
		r.add(node, state[:msgBytes], now)
		state = state[msgBytes:]
	}
}

// get returns when node received msg, if it did.
func (r *receipts) get(node int, msg string) (time.Time, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	t, ok := r.at[receipt{node: node, msg: msg}]
	return t, ok
}

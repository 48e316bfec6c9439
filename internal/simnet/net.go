package simnet

import (
	"errors"
	"math/rand/v2"
	"net/netip"
	"time"
)

// Errors a stream exchange can end with.
var (
	// ErrTimeout: the exchange did not complete by its deadline (partition,
	// loss, a paused peer).
	ErrTimeout = errors.New("simnet: stream timed out")
	// ErrRefused: nothing listens at the address (the node crashed).
	ErrRefused = errors.New("simnet: connection refused")
)

// Node is what the simulator drives. Every method is called with the
// current virtual time; a node sends through the Host it was given. After
// every call the simulator asks Next when the node next wants Tick.
type Node interface {
	// Receive delivers one packet.
	Receive(now time.Time, from netip.AddrPort, payload any)
	// Serve answers a stream request; it returns the reply and its size in
	// bytes.
	Serve(now time.Time, from netip.AddrPort, req any) (resp any, size int)
	// StreamDone reports the outcome of a stream this node opened with
	// Host.Open.
	StreamDone(now time.Time, id uint64, resp any, err error)
	// Tick runs the node's timers.
	Tick(now time.Time)
	// Next returns when the node next wants Tick (zero for never).
	Next() time.Time
}

// Link describes one direction of the path between two nodes.
type Link struct {
	Loss    float64       // probability that a packet is dropped
	Delay   time.Duration // base one-way delay
	Jitter  time.Duration // extra delay, uniform in [0, Jitter)
	Dup     float64       // probability that a packet is delivered twice
	Reorder float64       // probability that a packet is held back by ReorderBy
	// ReorderBy is the extra delay of a reordered packet.
	ReorderBy time.Duration
}

// Stats counts one node's traffic.
type Stats struct {
	PacketsSent, BytesSent uint64 // UDP, attempted (before loss)
	PacketsRecv, BytesRecv uint64 // UDP, delivered
	StreamsOpened          uint64
	StreamBytesSent        uint64 // requests this node sent and replies it served
	BacklogDropped         uint64 // packets dropped while paused, backlog full
}

// MaxBacklog bounds the packets queued for a paused node, like a socket
// receive buffer.
const MaxBacklog = 8192

type nodeState struct {
	n       Node
	addr    netip.AddrPort
	up      bool
	paused  bool
	epoch   uint32
	backlog []event
	tickAt  int64 // scheduled tick, or -1
	tickTok uint64
	stats   Stats
	group   int
	inCut   bool
	outCut  bool
	loss    float64
	slowMin time.Duration
	slowMax time.Duration
}

// Net is the simulated network. It is not safe for concurrent use.
type Net struct {
	rng    *rand.Rand
	start  time.Time
	now    int64 // ns since start
	seq    uint64
	events eventHeap
	nodes  []*nodeState
	byAddr map[netip.AddrPort]int
	def    Link
	links  map[[2]int]Link
	cuts   map[[2]int]bool
	drops  map[[2]int]int64 // datagrams dropped until then (ns since start)
	busy   bool             // inside a node call: flush afterwards
}

// Start is the virtual time at which every Net starts.
var Start = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// New returns an empty network whose randomness comes from seed and whose
// links default to def.
func New(seed uint64, def Link) *Net {
	return &Net{
		rng:    rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		start:  Start,
		byAddr: make(map[netip.AddrPort]int),
		def:    def,
		links:  make(map[[2]int]Link),
		cuts:   make(map[[2]int]bool),
		drops:  make(map[[2]int]int64),
	}
}

// Now returns the current virtual time.
func (n *Net) Now() time.Time { return n.start.Add(time.Duration(n.now)) }

// Rand returns the network's random source, for scenarios that need
// randomness in the same deterministic stream.
func (n *Net) Rand() *rand.Rand { return n.rng }

// Host is a node's handle on the network.
type Host struct {
	net *Net
	id  int
}

// Add attaches a node at addr and returns its ID. The node may be nil and
// set later with Restart (to get its Host first).
func (n *Net) Add(addr netip.AddrPort, node Node) int {
	id := len(n.nodes)
	n.nodes = append(n.nodes, &nodeState{n: node, addr: addr, up: node != nil, tickAt: -1})
	n.byAddr[addr] = id
	if node != nil {
		n.schedTick(id)
	}
	return id
}

// Host returns the handle through which node id sends.
func (n *Net) Host(id int) *Host { return &Host{net: n, id: id} }

// Addr returns node id's address.
func (n *Net) Addr(id int) netip.AddrPort { return n.nodes[id].addr }

// Len returns the number of node slots.
func (n *Net) Len() int { return len(n.nodes) }

// Stats returns node id's traffic counters.
func (n *Net) Stats(id int) Stats { return n.nodes[id].stats }

// Up reports whether node id is running (not crashed).
func (n *Net) Up(id int) bool { return n.nodes[id].up }

// Paused reports whether node id is paused.
func (n *Net) Paused(id int) bool { return n.nodes[id].paused }

// SetDefault replaces the default link.
func (n *Net) SetDefault(l Link) { n.def = l }

// SetLink overrides the link from one node to another.
func (n *Net) SetLink(from, to int, l Link) { n.links[[2]int{from, to}] = l }

// SetLoss sets an extra loss probability on every packet to or from node id.
func (n *Net) SetLoss(id int, loss float64) { n.nodes[id].loss = loss }

// SetSlow delays every packet node id sends or receives by an extra uniform
// [lo, hi) (0, 0 to undo).
func (n *Net) SetSlow(id int, lo, hi time.Duration) {
	n.nodes[id].slowMin, n.nodes[id].slowMax = lo, hi
}

// Partition splits the network into groups: nodes in different groups
// cannot reach each other in either direction. Nodes not listed form one
// more group together.
func (n *Net) Partition(groups ...[]int) {
	for _, s := range n.nodes {
		s.group = 0
	}
	for i, g := range groups {
		for _, id := range g {
			n.nodes[id].group = i + 1
		}
	}
}

// Heal removes every partition and cut.
func (n *Net) Heal() {
	for _, s := range n.nodes {
		s.group, s.inCut, s.outCut = 0, false, false
	}
	clear(n.cuts)
}

// Cut drops everything from one node to another (one way).
func (n *Net) Cut(from, to int) { n.cuts[[2]int{from, to}] = true }

// DropDatagrams drops every UDP packet from one node to another until t;
// streams between them are not affected. It models a link that is back
// but whose first datagrams are lost: after a cut, the sender's neighbour
// entry (ARP) for the peer has failed, and datagrams it sends are dropped
// until resolution is retried, while a TCP connection the peer opens
// resolves both directions at once.
func (n *Net) DropDatagrams(from, to int, t time.Time) {
	n.drops[[2]int{from, to}] = int64(t.Sub(n.start))
}

// CutInbound drops everything addressed to node id (one way: it can still
// send); CutOutbound everything it sends.
func (n *Net) CutInbound(id int, on bool)  { n.nodes[id].inCut = on }
func (n *Net) CutOutbound(id int, on bool) { n.nodes[id].outCut = on }

// reachable reports whether packets from a reach b.
func (n *Net) reachable(a, b int) bool {
	sa, sb := n.nodes[a], n.nodes[b]
	return sa.group == sb.group && !sa.outCut && !sb.inCut && !n.cuts[[2]int{a, b}]
}

// Pause stops node id: it processes nothing until Resume.
func (n *Net) Pause(id int) { n.nodes[id].paused = true }

// Resume restarts a paused node: its backlog is delivered in order, then it
// ticks.
func (n *Net) Resume(id int) {
	s := n.nodes[id]
	if !s.paused {
		return
	}
	s.paused = false
	backlog := s.backlog
	s.backlog = nil
	for _, ev := range backlog {
		if !s.up || s.paused {
			break
		}
		n.dispatch(ev)
	}
	if s.up {
		n.callTick(id)
	}
}

// Crash stops node id for good: everything addressed to it is dropped until
// Restart.
func (n *Net) Crash(id int) {
	s := n.nodes[id]
	s.up, s.paused, s.backlog = false, false, nil
	s.tickAt = -1
	s.tickTok++
}

// Restart puts node in slot id (same address), as a new process.
func (n *Net) Restart(id int, node Node) {
	s := n.nodes[id]
	s.n, s.up, s.paused, s.backlog = node, true, false, nil
	s.epoch++
	s.tickAt = -1
	s.tickTok++
	n.schedTick(id)
}

// Wake makes the simulator re-read node id's Next, after a call into the
// node from outside the simulator (a scenario calling Join, say).
func (n *Net) Wake(id int) { n.schedTick(id) }

// At runs fn at virtual time t (or now, if t has passed).
func (n *Net) At(t time.Time, fn func()) {
	n.push(event{at: max(int64(t.Sub(n.start)), n.now), kind: evFunc, fn: fn})
}

// RunUntil processes every event up to and including virtual time t, then
// sets the clock to t.
func (n *Net) RunUntil(t time.Time) {
	end := int64(t.Sub(n.start))
	for len(n.events) > 0 && n.events[0].at <= end {
		ev := n.events.pop()
		n.now = ev.at
		n.dispatch(ev)
	}
	n.now = max(n.now, end)
}

// RunFor runs for d of virtual time.
func (n *Net) RunFor(d time.Duration) { n.RunUntil(n.Now().Add(d)) }

// Send queues a packet of size bytes from this host to addr.
func (h *Host) Send(to netip.AddrPort, payload any, size int) {
	n := h.net
	s := n.nodes[h.id]
	s.stats.PacketsSent++
	s.stats.BytesSent += uint64(size)
	dst, ok := n.byAddr[to]
	if !ok || !n.reachable(h.id, dst) {
		return
	}
	if until, ok := n.drops[[2]int{h.id, dst}]; ok {
		if n.now < until {
			return
		}
		delete(n.drops, [2]int{h.id, dst})
	}
	l := n.link(h.id, dst)
	if n.lost(l, h.id, dst) {
		return
	}
	d := n.delay(l, h.id, dst)
	n.push(event{at: n.now + d, kind: evPacket, node: dst, from: h.id, payload: payload, size: size})
	if l.Dup > 0 && n.rng.Float64() < l.Dup {
		n.push(event{at: n.now + n.delay(l, h.id, dst), kind: evPacket, node: dst, from: h.id, payload: payload, size: size})
	}
}

func (n *Net) link(a, b int) Link {
	if l, ok := n.links[[2]int{a, b}]; ok {
		return l
	}
	return n.def
}

func (n *Net) lost(l Link, a, b int) bool {
	p := 1 - (1-l.Loss)*(1-n.nodes[a].loss)*(1-n.nodes[b].loss)
	return p > 0 && n.rng.Float64() < p
}

// delay samples the one-way delay of a packet from a to b, in ns.
func (n *Net) delay(l Link, a, b int) int64 {
	d := l.Delay
	if l.Jitter > 0 {
		d += time.Duration(n.rng.Int64N(int64(l.Jitter)))
	}
	if l.Reorder > 0 && n.rng.Float64() < l.Reorder {
		d += l.ReorderBy
	}
	for _, id := range [2]int{a, b} {
		if s := n.nodes[id]; s.slowMax > 0 {
			d += s.slowMin
			if s.slowMax > s.slowMin {
				d += time.Duration(n.rng.Int64N(int64(s.slowMax - s.slowMin)))
			}
		}
	}
	return int64(d)
}

// TCP retransmission timeouts of the stream model: a lost SYN costs the
// initial RTO, a lost data segment the minimum RTO.
const (
	synRTO  = time.Second
	dataRTO = 200 * time.Millisecond
)

// segment returns the time for one TCP segment from a to b to get through,
// retransmitting after each loss with doubling timeouts.
func (n *Net) segment(a, b int, rto time.Duration) int64 {
	l := n.link(a, b)
	var t int64
	for try := 0; try < 8 && n.lost(l, a, b); try++ {
		t += int64(rto)
		rto *= 2
	}
	return t + n.delay(l, a, b)
}

// Open starts a stream exchange from this host to addr: req of size bytes
// is delivered to the peer's Serve after a TCP handshake, and the reply (or
// an error) reaches this node's StreamDone with id, by deadline at the
// latest.
func (h *Host) Open(id uint64, to netip.AddrPort, req any, size int, deadline time.Time) {
	n := h.net
	s := n.nodes[h.id]
	s.stats.StreamsOpened++
	s.stats.StreamBytesSent += uint64(size)
	dl := max(int64(deadline.Sub(n.start)), n.now)
	fail := event{at: dl, kind: evStreamDone, node: h.id, epoch: s.epoch, stream: id, err: ErrTimeout}
	dst, ok := n.byAddr[to]
	if !ok || !n.nodes[dst].up {
		fail.at = min(dl, n.now+2*int64(n.def.Delay)+1)
		fail.err = ErrRefused
		n.push(fail)
		return
	}
	if !n.reachable(h.id, dst) || !n.reachable(dst, h.id) {
		n.push(fail)
		return
	}
	t := n.now + n.segment(h.id, dst, synRTO) + n.segment(dst, h.id, synRTO) + n.segment(h.id, dst, dataRTO)
	if t > dl {
		n.push(fail)
		return
	}
	n.push(event{at: t, kind: evStreamServe, node: dst, from: h.id, epoch: s.epoch, stream: id, payload: req, size: size, deadline: dl})
}

func (n *Net) push(ev event) {
	n.seq++
	ev.seq = n.seq
	n.events.push(ev)
}

// schedTick makes sure node id has a tick scheduled at its Next.
func (n *Net) schedTick(id int) {
	s := n.nodes[id]
	if !s.up || s.n == nil {
		return
	}
	next := s.n.Next()
	if next.IsZero() {
		return
	}
	at := max(int64(next.Sub(n.start)), n.now)
	if s.tickAt >= 0 && s.tickAt <= at {
		return
	}
	s.tickAt = at
	s.tickTok++
	n.push(event{at: at, kind: evTick, node: id, tok: s.tickTok})
}

func (n *Net) callTick(id int) {
	s := n.nodes[id]
	s.tickAt = -1
	s.n.Tick(n.Now())
	n.schedTick(id)
}

// dispatch runs one event.
func (n *Net) dispatch(ev event) {
	if ev.kind == evFunc {
		ev.fn()
		return
	}
	s := n.nodes[ev.node]
	if !s.up {
		return
	}
	if s.paused {
		switch ev.kind {
		case evTick:
			// Fires again on Resume.
		case evStreamServe:
			// Nobody accepts: the opener times out.
			if o := n.nodes[ev.from]; o.epoch == ev.epoch {
				n.push(event{at: ev.deadline, kind: evStreamDone, node: ev.from, epoch: ev.epoch, stream: ev.stream, err: ErrTimeout})
			}
		default:
			if len(s.backlog) < MaxBacklog {
				s.backlog = append(s.backlog, ev)
			} else {
				s.stats.BacklogDropped++
			}
		}
		return
	}
	now := n.Now()
	switch ev.kind {
	case evTick:
		if ev.tok != s.tickTok {
			return
		}
		n.callTick(ev.node)
		return
	case evPacket:
		s.stats.PacketsRecv++
		s.stats.BytesRecv += uint64(ev.size)
		s.n.Receive(now, n.nodes[ev.from].addr, ev.payload)
	case evStreamServe:
		resp, size := s.n.Serve(now, n.nodes[ev.from].addr, ev.payload)
		s.stats.StreamBytesSent += uint64(size)
		o := n.nodes[ev.from]
		done := event{at: ev.deadline, kind: evStreamDone, node: ev.from, epoch: ev.epoch, stream: ev.stream, err: ErrTimeout}
		if o.epoch == ev.epoch && n.reachable(ev.node, ev.from) {
			if t := n.now + n.segment(ev.node, ev.from, dataRTO); t <= ev.deadline {
				done = event{at: t, kind: evStreamDone, node: ev.from, epoch: ev.epoch, stream: ev.stream, payload: resp, size: size}
			}
		}
		n.push(done)
	case evStreamDone:
		if ev.epoch != s.epoch {
			return
		}
		s.n.StreamDone(now, ev.stream, ev.payload, ev.err)
	}
	n.schedTick(ev.node)
}

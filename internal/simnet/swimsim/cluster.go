package swimsim

import (
	"encoding/binary"
	"fmt"
	"hash"
	"hash/fnv"
	"math/rand/v2"
	"net/netip"
	"time"

	"github.com/meshnode/meshnode/internal/simnet"
	"github.com/meshnode/meshnode/swim"
	"github.com/meshnode/meshnode/wire"
)

// Packet sizes as wire encodes them: plaintext with a CRC32C trailer, no
// compression; stream messages in frames.
const (
	packetHeaderBytes = 2 + 4 // version, flags; CRC32C
	frameHeaderBytes  = 6     // length u32, type, flags
)

// Cluster is a set of swim cores on one simulated network.
type Cluster struct {
	Net   *simnet.Net
	Cfg   swim.Config
	Nodes []*Node
	// OnEvent, if set, sees every event of every node as it happens.
	OnEvent func(obs int, ev swim.Event)
	// OnData, if set, sees every Data payload a node receives.
	OnData func(obs int, d swim.Received)
	// OnSend, if set, sees every packet a node sends, before loss.
	OnSend func(from int, p swim.Packet)
	// Oversize counts packets above the budget (must stay zero).
	Oversize int
	seed     uint64
	trace    hash.Hash64
	buf      []byte
}

// Node is one simulated member.
type Node struct {
	ID   int
	Name string
	Gen  uint64
	Core *swim.Core
	c    *Cluster
	host *simnet.Host
	next time.Time
	// Events counts this node's events by kind.
	Events [16]int
}

// New builds a cluster of n nodes named n0000... on a network with default
// link l. The nodes start alone; call JoinAll or Join.
func New(seed uint64, n int, cfg swim.Config, l simnet.Link) (*Cluster, error) {
	c := &Cluster{Net: simnet.New(seed, l), Cfg: cfg, seed: seed}
	for i := range n {
		addr := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 7946)
		id := c.Net.Add(addr, nil)
		c.Nodes = append(c.Nodes, &Node{ID: id, Name: fmt.Sprintf("n%04d", i), c: c, host: c.Net.Host(id)})
		if err := c.Start(i, 1); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// Trace turns on a running hash of every packet, stream and event, to
// compare two runs byte for byte.
func (c *Cluster) Trace() { c.trace = fnv.New64a() }

// TraceSum returns the hash of everything traced so far.
func (c *Cluster) TraceSum() uint64 {
	if c.trace == nil {
		return 0
	}
	return c.trace.Sum64()
}

// Start (re)starts node i as a new process of generation gen at the current
// virtual time. It does not join.
func (c *Cluster) Start(i int, gen uint64) error {
	nd := c.Nodes[i]
	// Well-mixed, independent streams per node and generation: nearby PCG
	// seeds give correlated streams, which synchronise the nodes' choices.
	k := splitmix(splitmix(c.seed) ^ uint64(i)<<32 ^ gen)
	rng := rand.New(rand.NewPCG(splitmix(k), splitmix(k+1)))
	core, err := swim.NewCore(c.Cfg, swim.Identity{Name: nd.Name, Gen: gen, Addr: c.Net.Addr(i)}, rng, c.Net.Now())
	if err != nil {
		return err
	}
	nd.Core, nd.Gen = core, gen
	nd.flush()
	c.Net.Restart(i, nd)
	return nil
}

// Join makes node i join through the given seed nodes.
func (c *Cluster) Join(i int, seeds ...int) {
	addrs := make([]netip.AddrPort, len(seeds))
	for k, s := range seeds {
		addrs[k] = c.Net.Addr(s)
	}
	nd := c.Nodes[i]
	nd.Core.Join(c.Net.Now(), addrs)
	nd.flush()
	c.Net.Wake(i)
}

// JoinAll makes every node join through seeds, each at a random time within
// spread of now.
func (c *Cluster) JoinAll(spread time.Duration, seeds ...int) {
	rng := c.Net.Rand()
	for i := range c.Nodes {
		at := c.Net.Now()
		if spread > 0 {
			at = at.Add(time.Duration(rng.Int64N(int64(spread))))
		}
		c.Net.At(at, func() { c.Join(i, seeds...) })
	}
}

// Crash stops node i.
func (c *Cluster) Crash(i int) { c.Net.Crash(i) }

// Receive implements simnet.Node.
func (nd *Node) Receive(now time.Time, from netip.AddrPort, payload any) {
	for _, m := range payload.([]wire.Message) {
		nd.Core.HandlePacket(now, from, m)
	}
	nd.flush()
}

// Serve implements simnet.Node.
func (nd *Node) Serve(now time.Time, from netip.AddrPort, req any) (any, int) {
	resp := nd.Core.HandleStream(now, from, req.([]wire.Message))
	nd.flush()
	return resp, streamSize(resp)
}

// StreamDone implements simnet.Node.
func (nd *Node) StreamDone(now time.Time, id uint64, resp any, err error) {
	msgs, _ := resp.([]wire.Message)
	_ = nd.Core.StreamDone(now, id, msgs, err) // an old process's stream is unknown: fine
	nd.flush()
}

// Tick implements simnet.Node.
func (nd *Node) Tick(now time.Time) {
	nd.Core.Tick(now)
	nd.flush()
}

// Next implements simnet.Node.
func (nd *Node) Next() time.Time { return nd.next }

func streamSize(msgs []wire.Message) int {
	n := 0
	for _, m := range msgs {
		n += frameHeaderBytes - 3 + swim.MessageSize(m)
	}
	return n
}

// Flush hands the core's outputs to the network; call it (and Net.Wake)
// after calling the core from outside the simulator.
func (nd *Node) Flush() { nd.flush() }

// flush hands the core's outputs to the network.
func (nd *Node) flush() {
	c := nd.c
	r := nd.Core.Ready()
	nd.next = r.Next
	budget := c.Cfg.MaxPacketBytes - c.Cfg.PacketOverheadBytes
	for _, p := range r.Packets {
		body := swim.BodySize(p.Msgs)
		if body > budget {
			c.Oversize++
		}
		if c.OnSend != nil {
			c.OnSend(nd.ID, p)
		}
		nd.host.Send(p.To, p.Msgs, packetHeaderBytes+body)
		if c.trace != nil {
			c.traceMsgs(nd.ID, p.To, p.Msgs)
		}
	}
	for _, s := range r.Streams {
		nd.host.Open(s.ID, s.To, s.Msgs, streamSize(s.Msgs), s.Deadline)
		if c.trace != nil {
			c.traceMsgs(nd.ID, s.To, s.Msgs)
		}
	}
	if c.OnData != nil {
		for _, d := range r.Data {
			c.OnData(nd.ID, d)
		}
	}
	for _, ev := range r.Events {
		nd.Events[ev.Kind]++
		if c.trace != nil {
			c.buf = fmt.Appendf(c.buf[:0], "%d %v %v %s %d %d %v", nd.ID, ev.At.UnixNano(), ev.Kind, ev.Member.Name, ev.Member.Gen, ev.Member.Incarnation, ev.Verdict)
			c.trace.Write(c.buf)
		}
		if c.OnEvent != nil {
			c.OnEvent(nd.ID, ev)
		}
	}
}

func (c *Cluster) traceMsgs(id int, to netip.AddrPort, msgs []wire.Message) {
	b := binary.AppendUvarint(c.buf[:0], uint64(id))
	b = binary.AppendUvarint(b, uint64(c.Net.Now().UnixNano()))
	b = to.AppendTo(b)
	for _, m := range msgs {
		b, _ = wire.AppendPart(b, m)
	}
	c.buf = b
	c.trace.Write(b)
}

// splitmix is the SplitMix64 finaliser: a bijective mix of x.
func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

package replsim

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/meshnode/meshnode/internal/simnet"
	"github.com/meshnode/meshnode/internal/simnet/swimsim"
	"github.com/meshnode/meshnode/radix"
	"github.com/meshnode/meshnode/replica"
	"github.com/meshnode/meshnode/store"
	"github.com/meshnode/meshnode/swim"
	"github.com/meshnode/meshnode/wire"
)

const (
	// frameBytes is a stream frame's header (length, type, flags).
	frameBytes = 6
	// packetOverheadBytes is what a delta packet adds to its payload:
	// Data's framing and the packet's header and checksum.
	packetOverheadBytes = 16
	// streamBit marks the replication streams' IDs apart from swim's
	// (which count from 1).
	streamBit = 1 << 62
	// pushStream is the ID of every delta push, fire and forget; an
	// exchange's streams count from streamBit+1.
	pushStream = streamBit
)

// Config configures a cluster. Every field is required but Index.
type Config struct {
	// Swim is each member's membership configuration (node.SwimConfig).
	Swim swim.Config
	// Replica returns member i's replication configuration, with its own
	// Rand (node.ReplicaConfig).
	Replica func(i int) replica.Config
	// Index, if set, returns member i's prefix index (nil: none); the
	// engine replicates it with the store.
	Index func(i int) *radix.Index
	// DataBytes is the largest delta a packet carries (node.DeltaBudget);
	// larger ones travel over streams.
	DataBytes int
	// StreamTimeout is the deadline of one stream exchange
	// (node.DefaultStreamTimeout).
	StreamTimeout time.Duration
	// Link is the network's default link.
	Link simnet.Link
}

// Messages the driver carries on the network besides swim's.
type (
	deltaPacket struct {
		kind uint8
		b    []byte
	}
	deltaPush struct {
		kind uint8
		b    []byte
	}
	storePull struct{ digest []byte }
	storePage struct {
		page []byte
		more bool
	}
	storeDigestReq  struct{}
	storeDigestResp struct{ digest []byte }
	storeServePage  struct{ page []byte }
	indexPull       struct{ digest []byte }
	indexBatches    struct{ batches [][]byte }
	indexDigestReq  struct{}
	indexDigestResp struct{ digest []byte }
	indexServe      struct{ batches [][]byte }
	ack             struct{}
)

// Cluster is a set of members on one simulated network.
type Cluster struct {
	// Net is the network; callers may add nodes of their own to it.
	Net *simnet.Net
	// Swim is the membership layer (real swim cores).
	Swim    *swimsim.Cluster
	Members []*Member
	cfg     Config
	byName  map[string]int
	// Bytes sent, before loss: deltas (packets, streams and the Data
	// messages swim piggybacks, each time it sends them) and anti-entropy
	// streams.
	DeltaBytes, AEBytes uint64
	// Exchanges counts anti-entropy exchanges, Failed those that failed.
	Exchanges, Failed int
	// Deltas the members addressed: handed to swim's gossip, sent in
	// packets, pushed over streams (each message once per recipient) and
	// dropped by a full gossip queue.
	Gossiped, Packets, Pushes, GossipDropped int
	err                                      error
}

// App is what a member runs besides membership and replication: it gets
// the payloads the driver does not know and has a timer of its own.
type App interface {
	Receive(now time.Time, from netip.AddrPort, payload any)
	Tick(now time.Time)
	// Next is when Tick is next due (zero: never).
	Next() time.Time
}

// Member is one member: a swim core and a replication engine over a store
// and, optionally, an index.
type Member struct {
	ID   int
	Name string
	Eng  *replica.Engine
	// App, if set, receives what the driver does not handle; set it
	// before the run.
	App  App
	c    *Cluster
	sw   *swimsim.Node
	next time.Time // when the engine wants Tick
	// One anti-entropy exchange at a time, as node runs them.
	sid   uint64
	peer  netip.AddrPort
	exch  store.Actor
	phase phase
	pages int
	// view is the membership last given to the engine; stale is set by
	// every swim event of this member, which is when it changes.
	view  []replica.Member
	stale bool
}

// phase is a step of an anti-entropy exchange, as node's pull and
// serveMissing run them.
type phase uint8

const (
	idle phase = iota
	pullStore
	pullIndex
	serveStore
	serveLastStore
	serveIndexDigest
	serveIndex
)

// New builds a cluster of n members named as swimsim names them, with
// link cfg.Link and no loss. The members start alone; call Form.
func New(seed uint64, n int, cfg Config) (*Cluster, error) {
	if cfg.Replica == nil || cfg.DataBytes <= 0 || cfg.StreamTimeout <= 0 {
		return nil, errors.New("replsim: Replica, DataBytes and StreamTimeout are required")
	}
	sc, err := swimsim.New(seed, n, cfg.Swim, cfg.Link)
	if err != nil {
		return nil, err
	}
	c := &Cluster{Net: sc.Net, Swim: sc, cfg: cfg, byName: map[string]int{}}
	for i, sw := range sc.Nodes {
		st, err := store.New(store.Config{Actor: store.Actor{Name: sw.Name, Gen: sw.Gen}})
		if err != nil {
			return nil, err
		}
		var ix *radix.Index
		if cfg.Index != nil {
			ix = cfg.Index(i)
		}
		m := &Member{ID: i, Name: sw.Name, c: c, sw: sw, sid: streamBit, next: sc.Net.Now(), stale: true,
			Eng: replica.New(st, ix, cfg.Replica(i))}
		c.Members = append(c.Members, m)
		c.byName[sw.Name] = i
		sc.Net.Restart(i, m)
	}
	sc.OnData = func(obs int, d swim.Received) {
		m := c.Members[obs]
		m.receive(d.Data.Kind, d.Data.Payload, replica.ViaPacket, sc.Net.Now())
	}
	sc.OnEvent = func(obs int, _ swim.Event) { c.Members[obs].stale = true }
	sc.OnSend = func(_ int, p swim.Packet) {
		for _, msg := range p.Msgs {
			if _, ok := msg.(*wire.Data); ok {
				c.DeltaBytes += uint64(swim.MessageSize(msg))
			}
		}
	}
	return c, nil
}

// Form joins every member through member 0 within 2 s and runs until
// every member sees every other alive and swim has no news left to
// gossip, or limit has passed.
func (c *Cluster) Form(limit time.Duration) error {
	sc := c.Swim
	if _, ok := sc.Bootstrap(limit, 0); !ok {
		return fmt.Errorf("replsim: %d members did not converge in %v", len(c.Members), limit)
	}
	sc.RunUntil(limit, func() bool {
		for _, sw := range sc.Nodes {
			if sw.Core.Pending() > 0 {
				return false
			}
		}
		return true
	})
	return c.Err()
}

// Err returns the first error a member met: a delta or page its engine
// refused, which the product's own traffic never causes.
func (c *Cluster) Err() error { return c.err }

func (c *Cluster) fail(m *Member, what string, err error) {
	if c.err == nil {
		c.err = fmt.Errorf("replsim: %s: %s: %w", m.Name, what, err)
	}
}

// members is what node gives the engine (node.replicaMembers), rebuilt
// only after a swim event: Core.Members sorts, which in a large cluster
// would dominate the run.
func (m *Member) members() []replica.Member {
	if !m.stale {
		return m.view
	}
	m.stale = false
	out := m.view[:0]
	for _, sm := range m.sw.Core.Members() {
		out = append(out, replica.Member{
			Actor: store.Actor{Name: sm.Name, Gen: sm.Gen},
			Live:  sm.State == swim.StateAlive || sm.State == swim.StateSuspect,
			Since: sm.Since,
		})
	}
	m.view = out
	return out
}

// Disseminate sends the store's pending local changes, as node's flush
// does. Call it from outside the member's own callbacks (any time).
func (m *Member) Disseminate() {
	m.Eng.SetMembers(m.members())
	m.send(m.Eng.Disseminate(m.c.cfg.DataBytes), true)
}

// Broadcast sends one local delta already encoded (an index batch,
// replica.KindIndexBatch), as node's flush does.
func (m *Member) Broadcast(kind uint8, payload []byte) {
	m.Eng.SetMembers(m.members())
	m.send(m.Eng.Broadcast(kind, payload, m.c.cfg.DataBytes), true)
}

// BroadcastIndex sends a batch of local index deltas, as node's flush
// does (replica.Engine.BroadcastIndex).
func (m *Member) BroadcastIndex(b *radix.Batch) error {
	m.Eng.SetMembers(m.members())
	rd, _, err := m.Eng.BroadcastIndex(b, m.c.cfg.DataBytes)
	if err != nil {
		return err
	}
	m.send(rd, true)
	return nil
}

// send does what node.send does: gossip into swim's queue, packets and
// streams to the members named. outside is set when called from outside
// the member's own callbacks.
func (m *Member) send(rd replica.Ready, outside bool) {
	c := m.c
	net := c.Net
	for _, msg := range rd.Messages {
		switch msg.Via {
		case replica.ViaGossip:
			// A full queue drops the delta; anti-entropy repairs it.
			c.Gossiped++
			if m.sw.Core.Broadcast(wire.Data{Kind: msg.Kind, Payload: msg.Payload}) != nil {
				c.GossipDropped++
			}
		case replica.ViaPacket:
			c.Packets++
			size := len(msg.Payload) + packetOverheadBytes
			c.DeltaBytes += uint64(size)
			net.Host(m.ID).Send(net.Addr(c.byName[msg.To.Name]), deltaPacket{kind: msg.Kind, b: msg.Payload}, size)
		case replica.ViaStream:
			c.Pushes++
			size := len(msg.Payload) + frameBytes
			c.DeltaBytes += uint64(size)
			net.Host(m.ID).Open(pushStream, net.Addr(c.byName[msg.To.Name]), deltaPush{kind: msg.Kind, b: msg.Payload}, size, net.Now().Add(c.cfg.StreamTimeout))
		}
	}
	if outside {
		m.sw.Flush()
		net.Wake(m.ID)
	}
}

func (m *Member) receive(kind uint8, b []byte, via replica.Via, now time.Time) {
	rd, err := m.Eng.Receive(kind, b, via, now)
	if err != nil {
		m.c.fail(m, "receive a delta", err)
		return
	}
	m.send(rd, false)
}

// Receive implements simnet.Node.
func (m *Member) Receive(now time.Time, from netip.AddrPort, payload any) {
	switch p := payload.(type) {
	case []wire.Message:
		m.sw.Receive(now, from, payload)
	case deltaPacket:
		m.receive(p.kind, p.b, replica.ViaPacket, now)
	default:
		if m.App != nil {
			m.App.Receive(now, from, payload)
		}
	}
}

// Serve implements simnet.Node: swim's streams, delta pushes and the
// serving side of anti-entropy.
func (m *Member) Serve(now time.Time, from netip.AddrPort, req any) (any, int) {
	c := m.c
	var resp any
	size := 0
	switch r := req.(type) {
	case []wire.Message:
		return m.sw.Serve(now, from, req)
	case deltaPush:
		m.receive(r.kind, r.b, replica.ViaStream, now)
		return nil, 0
	case storePull:
		page, more, err := m.Eng.Answer(nil, r.digest, now)
		if err != nil {
			c.fail(m, "answer a digest", err)
		}
		resp, size = storePage{page: page, more: more}, len(page)
	case storeDigestReq:
		d := m.Eng.AppendDigest(nil)
		resp, size = storeDigestResp{digest: d}, len(d)
	case storeServePage:
		if err := m.Eng.Apply(r.page, now); err != nil {
			c.fail(m, "apply a store page", err)
		}
		resp = ack{}
	case indexPull:
		bs, n := m.answerIndex(r.digest, now)
		resp, size = indexBatches{batches: bs}, n
	case indexDigestReq:
		d := m.Eng.AppendIndexDigest(nil)
		resp, size = indexDigestResp{digest: d}, len(d)
	case indexServe:
		m.applyIndex(r.batches)
		resp = ack{}
	default:
		return nil, 0
	}
	size += frameBytes
	c.AEBytes += uint64(size)
	return resp, size
}

// answerIndex is the index part of an anti-entropy answer: the batches a
// peer with digest lacks, and their size on the stream.
func (m *Member) answerIndex(digest []byte, now time.Time) ([][]byte, int) {
	pages, err := m.Eng.AnswerIndex(digest, now)
	if err != nil {
		m.c.fail(m, "answer an index digest", err)
		return nil, 0
	}
	var out [][]byte
	size := frameBytes // the closing frame
	for {
		b, ok, err := pages.Next(nil)
		if err != nil {
			m.c.fail(m, "write index pages", err)
			return out, size
		}
		if !ok {
			return out, size
		}
		out = append(out, b)
		size += len(b) + frameBytes
	}
}

func (m *Member) applyIndex(batches [][]byte) {
	for _, b := range batches {
		if err := m.Eng.ApplyIndexPage(b); err != nil {
			m.c.fail(m, "apply an index page", err)
			return
		}
	}
}

func (m *Member) open(now time.Time, req any, size int) {
	m.sid++
	size += frameBytes
	m.c.AEBytes += uint64(size)
	m.c.Net.Host(m.ID).Open(m.sid, m.peer, req, size, now.Add(m.c.cfg.StreamTimeout))
}

// StreamDone implements simnet.Node: the steps of one exchange, as node's
// pull and serveMissing run them (store pages, then the index).
func (m *Member) StreamDone(now time.Time, id uint64, resp any, err error) {
	if id == pushStream {
		return
	}
	if id&streamBit == 0 {
		m.sw.StreamDone(now, id, resp, err)
		return
	}
	if id != m.sid || m.phase == idle {
		return
	}
	if err != nil {
		m.exchangeDone(now, err)
		return
	}
	switch r := resp.(type) {
	case storePage:
		if err := m.Eng.Apply(r.page, now); err != nil {
			m.c.fail(m, "apply a store page", err)
		}
		m.pages++
		if r.more && m.pages < m.Eng.Config().MaxPages {
			d := m.Eng.AppendDigest(nil)
			m.open(now, storePull{digest: d}, len(d))
			return
		}
		if m.c.cfg.Index == nil {
			m.serve(now)
			return
		}
		m.phase = pullIndex
		d := m.Eng.AppendIndexDigest(nil)
		m.open(now, indexPull{digest: d}, len(d))
	case indexBatches:
		m.applyIndex(r.batches)
		m.serve(now)
	case storeDigestResp:
		page, more, err := m.Eng.Answer(nil, r.digest, now)
		if err != nil {
			m.c.fail(m, "answer a digest", err)
		}
		m.pages++
		if !more || m.pages >= m.Eng.Config().MaxPages {
			m.phase = serveLastStore
		}
		m.open(now, storeServePage{page: page}, len(page))
	case indexDigestResp:
		bs, n := m.answerIndex(r.digest, now)
		m.phase = serveIndex
		m.open(now, indexServe{batches: bs}, n-frameBytes)
	case ack:
		switch m.phase {
		case serveStore:
			m.open(now, storeDigestReq{}, 0)
		case serveLastStore:
			if m.c.cfg.Index == nil {
				m.exchangeDone(now, nil)
				return
			}
			m.phase = serveIndexDigest
			m.open(now, indexDigestReq{}, 0)
		case serveIndex:
			m.exchangeDone(now, nil)
		}
	}
}

// serve starts the second half of an exchange: serving the peer what it
// lacks.
func (m *Member) serve(now time.Time) {
	m.phase, m.pages = serveStore, 0
	m.open(now, storeDigestReq{}, 0)
}

func (m *Member) exchangeDone(now time.Time, err error) {
	m.phase = idle
	m.c.Exchanges++
	if err != nil {
		m.c.Failed++
	}
	m.Eng.ExchangeDone(m.exch, err, now)
	m.next = now // the next exchange may be due already
}

// Tick implements simnet.Node: swim's timers, the App's and the
// replication engine's (anti-entropy with whom and when it decides).
func (m *Member) Tick(now time.Time) {
	if next := m.sw.Next(); !next.IsZero() && !now.Before(next) {
		m.sw.Tick(now)
	}
	if m.App != nil {
		if next := m.App.Next(); !next.IsZero() && !now.Before(next) {
			m.App.Tick(now)
		}
	}
	if now.Before(m.next) {
		return
	}
	m.Eng.SetMembers(m.members())
	rd := m.Eng.Tick(now)
	m.next = rd.Next
	if rd.Exchange.Name != "" { // the engine hands out one at a time
		m.peer = m.c.Net.Addr(m.c.byName[rd.Exchange.Name])
		m.exch = rd.Exchange
		m.phase, m.pages = pullStore, 0
		d := m.Eng.AppendDigest(nil)
		m.open(now, storePull{digest: d}, len(d))
	}
}

// Next implements simnet.Node.
func (m *Member) Next() time.Time {
	next := m.next
	earlier := func(t time.Time) {
		if !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	earlier(m.sw.Next())
	if m.App != nil {
		earlier(m.App.Next())
	}
	return next
}

// SentBytes returns every byte the members sent, before loss.
func (c *Cluster) SentBytes() uint64 {
	var b uint64
	for i := range c.Members {
		st := c.Net.Stats(i)
		b += st.BytesSent + st.StreamBytesSent
	}
	return b
}

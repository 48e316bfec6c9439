package bench

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/meshnode/meshnode/internal/simnet"
	"github.com/meshnode/meshnode/internal/simnet/swimsim"
	"github.com/meshnode/meshnode/node"
	"github.com/meshnode/meshnode/replica"
	"github.com/meshnode/meshnode/store"
	"github.com/meshnode/meshnode/swim"
	"github.com/meshnode/meshnode/wire"
)

// The replication simulation runs, for every member, the product's code:
// a real swim core with node's configuration (node.SwimConfig("lan")) for
// membership and gossip, and a real store driven by the replication core
// (replica.Engine) with node's defaults, on simnet in virtual time. The
// engine decides everything node lets it decide: which deltas go where
// (above node.DefaultEagerMembers by gossip, each member forwarding a delta
// the first time it receives it), when and with whom anti-entropy runs. The
// driver does what node's runners do: it hands gossip to swim's broadcast
// queue, sends packets, and runs each anti-entropy exchange's steps over a
// simulated stream (store pages only: the index is not exercised).

const (
	simNS = "kv"
	// simDataBytes is the delta budget of one packet: node's
	// codec.MaxMessageBytes()-16 with the default 1200-byte packet budget
	// is a little above.
	simDataBytes = 1100
	// simFrameBytes is a stream frame's header (length, type, flags).
	simFrameBytes = 6
	// simStream marks the replication streams' IDs apart from swim's.
	simStream = 1 << 62
)

// Messages the driver carries on the simulated network besides swim's.
type (
	simDelta struct{ b []byte } // one packet
	simPush  struct{ b []byte } // a delta pushed over a stream
	simPull  struct{ digest []byte }
	simPage  struct {
		page []byte
		more bool
	}
	simDigestReq  struct{}
	simDigestResp struct{ digest []byte }
	simServePage  struct{ page []byte }
	simAck        struct{}
)

// replSim is one simulated cluster.
type replSim struct {
	tb    testing.TB
	sc    *swimsim.Cluster
	nodes []*replNode
	byNam map[string]int
	// Bytes sent, before loss: deltas (packets and the Data messages swim
	// piggybacks, each time it sends them) and anti-entropy streams.
	deltaBytes, aeBytes uint64
	exchanges, failed   int
}

type replNode struct {
	id    int
	s     *replSim
	sw    *swimsim.Node
	eng   *replica.Engine
	next  time.Time // when the engine wants Tick
	sid   uint64
	peer  netip.AddrPort
	exch  store.Actor
	phase int // 0 idle, 1 pulling, 2 serving, 3 sending the last page
	pages int
	// view is the membership last given to the engine; stale is set by
	// every swim event of this member, which is when it changes.
	view  []replica.Member
	stale bool
}

// newReplSim forms a cluster of n members at link l (no loss), then lets
// the join news drain.
func newReplSim(tb testing.TB, seed uint64, n int) *replSim {
	link := simnet.Link{Delay: 200 * time.Microsecond, Jitter: 300 * time.Microsecond}
	sc, err := swimsim.New(seed, n, node.SwimConfig("lan"), link)
	if err != nil {
		tb.Fatal(err)
	}
	s := &replSim{tb: tb, sc: sc, byNam: map[string]int{}}
	for i, sw := range sc.Nodes {
		st, err := store.New(store.Config{Actor: store.Actor{Name: sw.Name, Gen: sw.Gen}})
		if err != nil {
			tb.Fatal(err)
		}
		nd := &replNode{id: i, s: s, sw: sw, sid: simStream, next: sc.Net.Now(), stale: true,
			eng: replica.New(st, nil, replica.Config{
				ExchangeInterval: node.DefaultAntiEntropyInterval,
				EagerMembers:     node.DefaultEagerMembers,
				Rand:             rand.New(rand.NewPCG(seed, uint64(i)|1<<40)),
			})}
		s.nodes = append(s.nodes, nd)
		s.byNam[sw.Name] = i
		sc.Net.Restart(i, nd)
	}
	sc.OnData = func(obs int, d swim.Received) {
		nd := s.nodes[obs]
		rd, err := nd.eng.Receive(d.Data.Kind, d.Data.Payload, replica.ViaPacket, sc.Net.Now())
		if err != nil {
			tb.Fatalf("%s: receive: %v", nd.sw.Name, err)
		}
		nd.send(rd, false)
	}
	sc.OnEvent = func(obs int, _ swim.Event) { s.nodes[obs].stale = true }
	sc.OnSend = func(_ int, p swim.Packet) {
		for _, m := range p.Msgs {
			if _, ok := m.(*wire.Data); ok {
				s.deltaBytes += uint64(swim.MessageSize(m))
			}
		}
	}
	if _, ok := sc.Bootstrap(90*time.Second, 0); !ok {
		tb.Fatalf("n=%d: swim did not converge", n)
	}
	sc.RunUntil(60*time.Second, func() bool {
		for _, sw := range sc.Nodes {
			if sw.Core.Pending() > 0 {
				return false
			}
		}
		return true
	})
	return s
}

// members is what node gives the engine (node.replicaMembers), rebuilt
// only after a swim event: Core.Members sorts, which at N = 1000 would
// dominate the run.
func (nd *replNode) members() []replica.Member {
	if !nd.stale {
		return nd.view
	}
	nd.stale = false
	out := nd.view[:0]
	for _, m := range nd.sw.Core.Members() {
		out = append(out, replica.Member{
			Actor: store.Actor{Name: m.Name, Gen: m.Gen},
			Live:  m.State == swim.StateAlive || m.State == swim.StateSuspect,
			Since: m.Since,
		})
	}
	nd.view = out
	return out
}

// send does what node.send does: gossip into swim's queue, packets and
// streams to the members named. outside is set when called from outside
// the simulator's event loop.
func (nd *replNode) send(rd replica.Ready, outside bool) {
	s := nd.s
	net := s.sc.Net
	for _, m := range rd.Messages {
		switch m.Via {
		case replica.ViaGossip:
			_ = nd.sw.Core.Broadcast(wire.Data{Kind: m.Kind, Payload: m.Payload})
		case replica.ViaPacket:
			size := len(m.Payload) + 16
			s.deltaBytes += uint64(size)
			net.Host(nd.id).Send(net.Addr(s.byNam[m.To.Name]), simDelta{b: m.Payload}, size)
		case replica.ViaStream:
			size := len(m.Payload) + simFrameBytes
			s.deltaBytes += uint64(size)
			// A push is fire and forget: its answer goes nowhere.
			net.Host(nd.id).Open(1, net.Addr(s.byNam[m.To.Name]), simPush{b: m.Payload}, size, net.Now().Add(node.DefaultStreamTimeout))
		}
	}
	if outside {
		nd.sw.Flush()
		net.Wake(nd.id)
	}
}

func (nd *replNode) Receive(now time.Time, from netip.AddrPort, payload any) {
	switch m := payload.(type) {
	case []wire.Message:
		nd.sw.Receive(now, from, payload)
	case simDelta:
		rd, err := nd.eng.Receive(replica.KindStoreDelta, m.b, replica.ViaPacket, now)
		if err != nil {
			nd.s.tb.Fatalf("%s: receive: %v", nd.sw.Name, err)
		}
		nd.send(rd, false)
	}
}

func (nd *replNode) Serve(now time.Time, from netip.AddrPort, req any) (any, int) {
	s := nd.s
	var resp any
	size := 0
	switch m := req.(type) {
	case []wire.Message:
		return nd.sw.Serve(now, from, req)
	case simPush:
		if _, err := nd.eng.Receive(replica.KindStoreDelta, m.b, replica.ViaStream, now); err != nil {
			s.tb.Fatalf("%s: receive: %v", nd.sw.Name, err)
		}
		return nil, 0
	case simPull:
		page, more, err := nd.eng.Answer(nil, m.digest, now)
		if err != nil {
			s.tb.Fatalf("%s: answer: %v", nd.sw.Name, err)
		}
		resp, size = simPage{page: page, more: more}, len(page)
	case simDigestReq:
		d := nd.eng.AppendDigest(nil)
		resp, size = simDigestResp{digest: d}, len(d)
	case simServePage:
		if err := nd.eng.Apply(m.page, now); err != nil {
			s.tb.Fatalf("%s: apply page: %v", nd.sw.Name, err)
		}
		resp = simAck{}
	default:
		return nil, 0
	}
	size += simFrameBytes
	s.aeBytes += uint64(size)
	return resp, size
}

func (nd *replNode) open(now time.Time, req any, size int) {
	nd.sid++
	size += simFrameBytes
	nd.s.aeBytes += uint64(size)
	nd.s.sc.Net.Host(nd.id).Open(nd.sid, nd.peer, req, size, now.Add(node.DefaultStreamTimeout))
}

func (nd *replNode) StreamDone(now time.Time, id uint64, resp any, err error) {
	if id&simStream == 0 {
		if id != 1 { // 1: a delta push, answered by nothing
			nd.sw.StreamDone(now, id, resp, err)
		}
		return
	}
	if id != nd.sid || nd.phase == 0 {
		return
	}
	if err != nil {
		nd.exchangeDone(now, err)
		return
	}
	// The steps of one exchange, as node's pull and serveMissing run them.
	switch m := resp.(type) {
	case simPage:
		if err := nd.eng.Apply(m.page, now); err != nil {
			nd.s.tb.Fatalf("%s: apply page: %v", nd.sw.Name, err)
		}
		nd.pages++
		if m.more && nd.pages < nd.eng.Config().MaxPages {
			d := nd.eng.AppendDigest(nil)
			nd.open(now, simPull{digest: d}, len(d))
			return
		}
		nd.phase, nd.pages = 2, 0
		nd.open(now, simDigestReq{}, 0)
	case simDigestResp:
		page, more, err := nd.eng.Answer(nil, m.digest, now)
		if err != nil {
			nd.s.tb.Fatalf("%s: answer: %v", nd.sw.Name, err)
		}
		nd.pages++
		if !more || nd.pages >= nd.eng.Config().MaxPages {
			nd.phase = 3
		}
		nd.open(now, simServePage{page: page}, len(page))
	case simAck:
		if nd.phase == 3 {
			nd.exchangeDone(now, nil)
			return
		}
		nd.open(now, simDigestReq{}, 0)
	}
}

func (nd *replNode) exchangeDone(now time.Time, err error) {
	nd.phase = 0
	nd.s.exchanges++
	if err != nil {
		nd.s.failed++
	}
	nd.eng.ExchangeDone(nd.exch, err, now)
	nd.next = now // the next exchange may be due already
}

func (nd *replNode) Tick(now time.Time) {
	if next := nd.sw.Next(); !next.IsZero() && !now.Before(next) {
		nd.sw.Tick(now)
	}
	if now.Before(nd.next) {
		return
	}
	nd.eng.SetMembers(nd.members())
	rd := nd.eng.Tick(now)
	nd.next = rd.Next
	if rd.Exchange.Name != "" {
		nd.peer = nd.s.sc.Net.Addr(nd.s.byNam[rd.Exchange.Name])
		nd.exch = rd.Exchange
		nd.phase, nd.pages = 1, 0
		d := nd.eng.AppendDigest(nil)
		nd.open(now, simPull{digest: d}, len(d))
	}
}

func (nd *replNode) Next() time.Time {
	next := nd.next
	if sn := nd.sw.Next(); !sn.IsZero() && (next.IsZero() || sn.Before(next)) {
		next = sn
	}
	return next
}

// replResult is what one run measured.
type replResult struct {
	lat                   []time.Duration // per write: until the last member had it
	converged             time.Duration   // from the last write until every write was everywhere
	deltaBPS, aeBPS, swim float64         // bytes per node per second
	exchanges, failed     int
}

// run sets the loss, writes writes keys (64-byte values) at rate per
// second from random members, and runs until every member has every write
// or limit has passed since the last write.
func (s *replSim) run(loss float64, writes int, rate float64, limit time.Duration) replResult {
	net := s.sc.Net
	net.SetDefault(simnet.Link{Delay: 200 * time.Microsecond, Jitter: 300 * time.Microsecond, Loss: loss})
	n := len(s.nodes)
	rng := net.Rand()
	type write struct {
		key   string
		at    time.Time
		have  []bool
		count int
		last  time.Time
	}
	var ws []*write
	sent0 := s.sentBytes()
	d0, a0 := s.deltaBytes, s.aeBytes
	start := net.Now()
	for k := range writes {
		at := start.Add(time.Duration(float64(k) / rate * float64(time.Second)))
		w := &write{key: fmt.Sprintf("k%d", k), at: at, have: make([]bool, n)}
		ws = append(ws, w)
		net.At(at, func() {
			o := rng.IntN(n)
			nd := s.nodes[o]
			if err := nd.eng.Store().Put(simNS, w.key, make([]byte, 64), net.Now()); err != nil {
				s.tb.Fatal(err)
			}
			nd.eng.SetMembers(nd.members())
			nd.send(nd.eng.Disseminate(simDataBytes), true)
		})
	}
	end := start.Add(time.Duration(float64(writes) / rate * float64(time.Second))).Add(limit)
	pending := slices.Clone(ws)
	for len(pending) > 0 && net.Now().Before(end) {
		net.RunFor(10 * time.Millisecond)
		now := net.Now()
		pending = slices.DeleteFunc(pending, func(w *write) bool {
			if now.Before(w.at) {
				return false
			}
			for i, nd := range s.nodes {
				if !w.have[i] {
					if _, ok := nd.eng.Store().Get(simNS, w.key); ok {
						w.have[i], w.count, w.last = true, w.count+1, now
					}
				}
			}
			return w.count == n
		})
	}
	if len(pending) > 0 {
		s.tb.Fatalf("n=%d loss=%v: %d of %d writes not everywhere %v after the last", n, loss, len(pending), writes, limit)
	}
	var r replResult
	var last time.Time
	for _, w := range ws {
		r.lat = append(r.lat, w.last.Sub(w.at))
		if w.last.After(last) {
			last = w.last
		}
	}
	r.converged = last.Sub(ws[len(ws)-1].at)
	secs := net.Now().Sub(start).Seconds() * float64(n)
	r.deltaBPS = float64(s.deltaBytes-d0) / secs
	r.aeBPS = float64(s.aeBytes-a0) / secs
	r.swim = float64(s.sentBytes()-sent0-(s.deltaBytes-d0)-(s.aeBytes-a0)) / secs
	r.exchanges, r.failed = s.exchanges, s.failed
	return r
}

func (s *replSim) sentBytes() uint64 {
	var b uint64
	for i := range s.nodes {
		st := s.sc.Net.Stats(i)
		b += st.BytesSent + st.StreamBytesSent
	}
	return b
}

// TestReplicationConverges is the simulation's CI size: 64 members, with
// and without 10 % loss; every write reaches every member within the
// target for N = 64 (1 s of virtual time, so deterministic: a delta must
// spread by gossip, not wait for anti-entropy).
func TestReplicationConverges(t *testing.T) {
	const target = time.Second
	for _, loss := range []float64{0, 0.1} {
		t.Run(fmt.Sprintf("loss=%v", loss), func(t *testing.T) {
			s := newReplSim(t, 1, 64)
			r := s.run(loss, 50, 10, 10*time.Second)
			slices.Sort(r.lat)
			t.Logf("p50 %v, p99 %v, max %v; deltas %.0f B/node/s, anti-entropy %.0f B/node/s, swim %.0f B/node/s; %d exchanges, %d failed",
				r.lat[len(r.lat)/2], r.lat[len(r.lat)*99/100], r.lat[len(r.lat)-1], r.deltaBPS, r.aeBPS, r.swim, r.exchanges, r.failed)
			if worst := r.lat[len(r.lat)-1]; worst > target {
				t.Errorf("a write took %v to reach every member, target %v", worst, target)
			}
		})
	}
}

// BenchmarkSimReplication measures how fast writes reach every member of a
// cluster of N, and what replication costs each member, with the real
// replication core, store and swim cores on simnet (delay 0.2 ms + jitter
// 0.3 ms, the given loss on every packet; streams are lossless but pay
// retransmission delays). One iteration forms the cluster with no loss,
// sets the loss, writes 100 keys at 10 per second from random members, and
// runs until every member has every key. Figures: the p50, p99 and max of
// the time until the last member had a write, the time from the last write
// until all writes were everywhere, and the bytes each member sent per second for deltas,
// for anti-entropy and for swim itself.
func BenchmarkSimReplication(b *testing.B) {
	for _, n := range []int{64, 256, 1000} {
		for _, loss := range []float64{0, 0.1} {
			b.Run(fmt.Sprintf("n=%d/loss=%v", n, loss), func(b *testing.B) {
				var lat []time.Duration
				var r replResult
				seed := uint64(0)
				for b.Loop() {
					seed++
					s := newReplSim(b, seed, n)
					r = s.run(loss, 100, 10, 30*time.Second)
					lat = append(lat, r.lat...)
				}
				slices.Sort(lat)
				b.ReportMetric(float64(lat[len(lat)/2])/1e6, "p50-ms")
				b.ReportMetric(float64(lat[len(lat)*99/100])/1e6, "p99-ms")
				b.ReportMetric(float64(lat[len(lat)-1])/1e6, "max-ms")
				b.ReportMetric(float64(r.converged)/1e6, "converge-ms")
				b.ReportMetric(r.deltaBPS, "delta-B/node/s")
				b.ReportMetric(r.aeBPS, "ae-B/node/s")
				b.ReportMetric(r.swim, "swim-B/node/s")
			})
		}
	}
}

package node

import (
	"math/rand/v2"
	"net/netip"
	"time"

	"github.com/meshnode/meshnode/radix"
	"github.com/meshnode/meshnode/replica"
	"github.com/meshnode/meshnode/store"
	"github.com/meshnode/meshnode/swim"
	"github.com/meshnode/meshnode/wire"
)

// wire.Data kinds of the replication protocol (replica defines them).
const (
	kindStoreDelta    = replica.KindStoreDelta
	kindIndexBatch    = replica.KindIndexBatch
	kindStoreDigest   = replica.KindStoreDigest
	kindStorePage     = replica.KindStorePage
	kindStorePageMore = replica.KindStorePageMore
	kindIndexDigest   = replica.KindIndexDigest
	kindIndexDone     = replica.KindIndexDone
)

// Bounds of one anti-entropy exchange.
const (
	syncPageBytes     = 1 << 20 // one store page
	syncMaxPages      = 1 << 16 // store pages in one exchange
	maxPushesInFlight = 64      // peers with a delta push stream at once
	maxServedConns    = 128     // accepted TCP connections served at once, once proven
	maxPendingConns   = 64      // accepted TCP connections waiting for their first frame
)

// NotifyData applies a delta received over UDP (direct or gossiped); it
// implements swimnet.Delegate and runs on the Runner's delivery goroutine. The
// replication core decides whether to gossip it on.
func (n *Node) NotifyData(r swim.Received) {
	n.receive(r.Data.Kind, r.Data.Payload, replica.ViaPacket)
}

// NotifyState implements swimnet.Delegate. The node sends no push-pull state:
// anti-entropy runs on its own streams.
func (n *Node) NotifyState(swim.RemoteState) {}

// receive merges one delta a peer sent over via and sends what the
// replication core asks for in return.
func (n *Node) receive(kind uint8, payload []byte, via replica.Via) {
	s := n.st
	s.mu.Lock()
	rd, err := n.eng.Receive(kind, payload, via, time.Now())
	if kind == kindStoreDelta {
		s.changedLocked()
	}
	s.mu.Unlock()
	if err != nil {
		n.met.deltaErrors.Inc()
		return
	}
	n.met.deltasReceived.Inc()
	if rd.Duplicate {
		n.met.deltasDup.Inc()
	}
	n.send(rd)
}

// applyStore merges a store delta or anti-entropy page.
func (n *Node) applyStore(b []byte) error {
	s := n.st
	s.mu.Lock()
	err := n.eng.Apply(b, time.Now())
	s.changedLocked()
	s.mu.Unlock()
	return err
}

// onEvent follows membership changes.
func (n *Node) onEvent(ev swim.Event) {
	n.memberVersion.Add(1) // the proxies' load sums count live members only
	n.met.memberEvents.WithLabelValues(ev.Kind.String()).Inc()
	n.kv.kick() // the owners of engine event streams may have changed
	attrs := []any{"member", ev.Member.Name, "generation", ev.Member.Gen, "incarnation", ev.Member.Incarnation, "addr", ev.Member.Addr.String()}
	if ev.Verdict {
		attrs = append(attrs, "verdict", true) // this node's own verdict, not news it heard
	}
	if ev.Reason != "" {
		attrs = append(attrs, "reason", ev.Reason)
	}
	n.log.Info("member "+ev.Kind.String(), attrs...)
}

// flushLoop sends local changes as soon as they are made.
func (n *Node) flushLoop() {
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-n.st.dirty:
			n.flushDeltas()
		}
	}
}

// flushDeltas hands every pending local change to the replication core
// and sends the messages it addresses.
func (n *Node) flushDeltas() {
	if n.mem == nil {
		return
	}
	budget := n.mem.MaxDataBytes()
	members := n.replicaMembers()
	n.st.mu.Lock()
	n.eng.SetMembers(members)
	var rd replica.Ready
	deltas := n.eng.Flush(budget)
	for _, b := range deltas {
		rd.Messages = append(rd.Messages, n.eng.Broadcast(kindStoreDelta, b, budget).Messages...)
	}
	var err error
	if len(n.st.batch.Deltas) > 0 {
		var ird replica.Ready
		var encs [][]byte
		ird, encs, err = n.eng.BroadcastIndex(&n.st.batch, budget)
		n.st.batch.Reset()
		deltas = append(deltas, encs...)
		rd.Messages = append(rd.Messages, ird.Messages...)
	}
	n.st.mu.Unlock()
	for _, b := range deltas {
		n.met.deltasSent.Inc()
		n.met.deltaBytes.Add(float64(len(b)))
	}
	if err != nil {
		n.log.Error("index batch not sent", "err", err)
	}
	n.send(rd)
}

// send does what the replication core asked for in rd: packets, gossip
// and delta streams. A packet that cannot be sent goes over a stream.
func (n *Node) send(rd replica.Ready) {
	if len(rd.Messages) == 0 || n.mem == nil {
		return
	}
	var addrs map[string]netip.AddrPort
	for _, m := range rd.Messages {
		if m.Via == replica.ViaGossip {
			// A full queue drops the delta; anti-entropy repairs it.
			_ = n.mem.Broadcast(wire.Data{Kind: m.Kind, Payload: m.Payload})
			continue
		}
		if addrs == nil {
			addrs = map[string]netip.AddrPort{}
			for _, mb := range n.members() {
				addrs[mb.Name] = mb.Addr
			}
		}
		to, ok := addrs[m.To.Name]
		if !ok {
			continue
		}
		if m.Via == replica.ViaPacket {
			if err := n.mem.SendData(to, wire.Data{Kind: m.Kind, Payload: m.Payload}); err == nil {
				continue
			}
		}
		n.push(to, m.Kind, m.Payload)
	}
}

// serveDeltas applies the deltas a peer pushes over a stream.
func (n *Node) serveDeltas(sio *streamIO) error {
	var d wire.Data
	for {
		if err := sio.readData(&d); err != nil {
			return err
		}
		n.receive(d.Kind, d.Payload, replica.ViaStream)
		// A push stream stays open while its peer has deltas to send:
		// each delta renews the deadline.
		sio.c.SetDeadline(time.Now().Add(n.cfg.StreamTimeout.D()))
	}
}

// maintainLoop takes snapshots and sweeps the load counts of gone members
// (sweepLoads); the replication loop (antientropy.go) lets store time pass
// and collects tombstones.
func (n *Node) maintainLoop() {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	lastSnap := time.Now()
	for {
		select {
		case <-n.ctx.Done():
			return
		case now := <-t.C:
			n.sweepLoads(now)
			if n.cfg.DataDir != "" && now.Sub(lastSnap) >= n.cfg.SnapshotInterval.D() {
				lastSnap = now
				if err := n.snapshot(); err != nil {
					n.log.Error("snapshot failed", "err", err)
				}
			}
		}
	}
}

// collect runs a collection round now; the replication loop lets the
// core run one every CollectInterval.
func (n *Node) collect(now time.Time) {
	members := n.replicaMembers()
	n.st.mu.Lock()
	n.eng.SetMembers(members)
	c := n.eng.Collect(now)
	n.st.mu.Unlock()
	n.met.collected.Add(float64(c))
}

// newEngine builds the replication core of a node over st and ix.
func newEngine(st *store.Store, ix *radix.Index, cfg Config) *replica.Engine {
	return replica.New(st, ix, ReplicaConfig(cfg, rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))))
}

// ReplicaConfig is the configuration of the replication core of a node
// configured by cfg (zero fields take their defaults), drawing its random
// choices from rng. Simulations (replay, the replication benchmarks) run
// the core as nodes do with it.
func ReplicaConfig(cfg Config, rng *rand.Rand) replica.Config {
	cfg = cfg.withDefaults()
	return replica.Config{
		Horizon:          cfg.GCHorizon.D(),
		PageBytes:        syncPageBytes,
		MaxPages:         syncMaxPages,
		ExchangeInterval: cfg.AntiEntropyInterval.D(),
		EagerMembers:     cfg.EagerMembers,
		Rand:             rng,
	}
}

// dataFramingBytes is Data's msgpack framing: array header, kind, bin
// header.
const dataFramingBytes = 16

// DeltaBudget returns the largest delta a node whose codec is configured
// by cfg sends in one packet (larger ones go over streams): the largest
// message a packet carries alone, less Data's framing.
func DeltaBudget(cfg wire.Config) (int, error) {
	codec, err := wire.NewCodec(cfg)
	if err != nil {
		return 0, err
	}
	return codec.MaxMessageBytes() - dataFramingBytes, nil
}

// replicaMembers returns every member swim knows, in any state, for the
// replication core: collection counts members that are dead or left too,
// until the horizon has passed since they were last alive.
func (n *Node) replicaMembers() []replica.Member {
	all := n.members()
	out := make([]replica.Member, len(all))
	for i, m := range all {
		out[i] = replica.Member{
			Actor: store.Actor{Name: m.Name, Gen: m.Gen},
			Live:  m.State == swim.StateAlive || m.State == swim.StateSuspect,
			Since: m.Since,
		}
	}
	return out
}

package node

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sync"
	"time"

	"github.com/meshnode/meshnode/radix"
	"github.com/meshnode/meshnode/replica"
	"github.com/meshnode/meshnode/store"
	"github.com/meshnode/meshnode/swim"
	"github.com/meshnode/meshnode/wire"
)

// wire.Data kinds the sync engine sends. Numbers are part of the protocol
// between nodes: append only.
const (
	kindStoreDelta    uint8 = 1  // store.AppendDeltas output
	kindIndexBatch    uint8 = 2  // radix.AppendBatch output
	kindStoreDigest   uint8 = 10 // anti-entropy: a store digest
	kindStorePage     uint8 = 11 // anti-entropy: the last store page
	kindStorePageMore uint8 = 12 // anti-entropy: a store page, more follow
	kindIndexDigest   uint8 = 13 // anti-entropy: an index digest
	kindIndexDone     uint8 = 14 // anti-entropy: no more index batches
)

// Bounds of one anti-entropy exchange.
const (
	syncPageBytes     = 1 << 20 // one store page
	syncMaxPages      = 1 << 16 // store pages in one exchange
	syncBatchPages    = 1 << 15 // index pages in one batch
	syncMaxWorkers    = 1 << 16 // differing workers shipped in one exchange
	maxPushesInFlight = 8       // concurrent delta pushes over TCP
	maxServedConns    = 128     // accepted TCP connections served at once, once proven
	maxPendingConns   = 64      // accepted TCP connections waiting for their first frame
)

// NotifyData applies a delta received over UDP (direct or gossiped); it
// implements swim.Delegate and runs on the Runner's delivery goroutine. In
// clusters too large for eager sends, a delta seen for the first time is
// gossiped on, so that it spreads by infection.
func (n *Node) NotifyData(r swim.Received) {
	if err := n.applyData(r.Data.Kind, r.Data.Payload); err != nil {
		n.met.deltaErrors.Inc()
		return
	}
	if n.mem.NumAlive() > n.cfg.EagerMembers && n.seen.add(radix.XXH64(r.Data.Payload, uint64(r.Data.Kind))) {
		_ = n.mem.Broadcast(wire.Data{Kind: r.Data.Kind, Payload: r.Data.Payload})
	}
}

// NotifyState implements swim.Delegate. The node sends no push-pull state:
// anti-entropy runs on its own streams.
func (n *Node) NotifyState(swim.RemoteState) {}

// applyData merges one delta payload.
func (n *Node) applyData(kind uint8, payload []byte) error {
	switch kind {
	case kindStoreDelta:
		n.met.deltasReceived.Inc()
		return n.applyStore(payload)
	case kindIndexBatch:
		n.met.deltasReceived.Inc()
		return n.applyIndex(payload)
	}
	return fmt.Errorf("%w: unknown data kind %d", ErrStream, kind)
}

func (n *Node) applyStore(b []byte) error {
	s := n.st
	s.mu.Lock()
	err := n.eng.Apply(b, time.Now())
	s.changedLocked()
	s.mu.Unlock()
	return err
}

func (n *Node) applyIndex(b []byte) error {
	var batch radix.Batch
	if err := radix.DecodeBatch(&batch, b, radix.DefaultLimits()); err != nil {
		return err
	}
	return n.st.ix.ApplyBatch(&batch)
}

// onEvent follows membership changes.
func (n *Node) onEvent(ev swim.Event) {
	n.met.memberEvents.WithLabelValues(ev.Kind.String()).Inc()
	switch ev.Kind {
	case swim.EventIsolated:
		n.log.Warn("swim: this node distrusts itself: it withholds death verdicts and refutations", "reason", ev.Reason)
	case swim.EventRecovered:
		n.log.Info("swim: this node trusts itself again")
	case swim.EventRefuteWithheld:
		n.log.Warn("swim: an accusation of this node was not refuted while it distrusts itself")
	default:
		n.log.Info("member "+ev.Kind.String(), "member", ev.Member.Name, "generation", ev.Member.Gen, "addr", ev.Member.Addr.String())
	}
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

// flushDeltas disseminates every pending local change.
func (n *Node) flushDeltas() {
	if n.mem == nil {
		return
	}
	n.st.mu.Lock()
	deltas := n.eng.Flush(n.mem.MaxDataBytes())
	n.st.mu.Unlock()
	for _, b := range deltas {
		n.disseminate(kindStoreDelta, b)
	}
	n.st.mu.Lock()
	var b []byte
	var err error
	if len(n.st.batch.Deltas) > 0 {
		b, err = radix.AppendBatch(nil, &n.st.batch)
		n.st.batch.Reset()
	}
	n.st.mu.Unlock()
	if err != nil {
		n.log.Error("index batch not sent", "err", err)
		return
	}
	if b != nil {
		n.disseminate(kindIndexBatch, b)
	}
}

// disseminate sends a delta to every live member when the cluster is small,
// by gossip otherwise. A delta too large for a packet goes over TCP.
func (n *Node) disseminate(kind uint8, payload []byte) {
	live := n.liveMembers()
	self := n.name
	fits := len(payload) <= n.mem.MaxDataBytes()
	n.met.deltasSent.Inc()
	n.met.deltaBytes.Add(float64(len(payload)))
	if len(live) <= n.cfg.EagerMembers {
		for _, m := range live {
			if m.Name == self {
				continue
			}
			if fits {
				if err := n.mem.SendData(m.Addr, wire.Data{Kind: kind, Payload: payload}); err == nil {
					continue
				}
			}
			n.push(m.Addr, kind, payload)
		}
		return
	}
	if fits {
		n.seen.add(radix.XXH64(payload, uint64(kind)))
		if err := n.mem.Broadcast(wire.Data{Kind: kind, Payload: payload}); err == nil {
			return
		}
	}
	// Too large to gossip: push it to a few members; anti-entropy takes it
	// to the rest.
	rand.Shuffle(len(live), func(i, j int) { live[i], live[j] = live[j], live[i] })
	sent := 0
	for _, m := range live {
		if m.Name != self && sent < 3 {
			n.push(m.Addr, kind, payload)
			sent++
		}
	}
}

// push sends one delta over a TCP stream, in the background and bounded:
// when too many pushes are in flight, it is dropped and left to
// anti-entropy.
func (n *Node) push(to netip.AddrPort, kind uint8, payload []byte) {
	if !n.pushes.TryAcquire(1) {
		n.met.pushesDropped.Inc()
		return
	}
	n.g.Go(func() error {
		defer n.pushes.Release(1)
		ctx, cancel := context.WithCancel(n.ctx)
		defer cancel()
		c, err := n.tr.dial(ctx, to, chanDeltas, time.Now().Add(n.cfg.StreamTimeout.D()))
		if err != nil {
			n.met.streamErrors.Inc()
			return nil
		}
		defer c.Close()
		sio, err := newStreamIO(c, n.tr.codecCfg, n.streamBuf)
		if err == nil {
			err = sio.writeData(kind, payload)
			sio.close()
		}
		if err != nil {
			n.met.streamErrors.Inc()
		}
		return nil
	})
}

// serveDeltas applies the deltas a peer pushes over a stream.
func (n *Node) serveDeltas(sio *streamIO) error {
	var d wire.Data
	for {
		if err := sio.readData(&d); err != nil {
			return err
		}
		if err := n.applyData(d.Kind, d.Payload); err != nil {
			n.met.deltaErrors.Inc()
		}
	}
}

// maintainLoop lets store time pass, collects tombstones (the replication
// core decides when, and over which members) and takes snapshots.
func (n *Node) maintainLoop() {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	lastSnap := time.Now()
	for {
		select {
		case <-n.ctx.Done():
			return
		case now := <-t.C:
			members := n.replicaMembers()
			n.st.mu.Lock()
			c := n.eng.Tick(now, members)
			n.st.mu.Unlock()
			n.met.collected.Add(float64(c))
			if n.cfg.DataDir != "" && now.Sub(lastSnap) >= n.cfg.SnapshotInterval.D() {
				lastSnap = now
				if err := n.snapshot(); err != nil {
					n.log.Error("snapshot failed", "err", err)
				}
			}
		}
	}
}

// collect runs a collection round now; the maintenance loop lets the
// replication core run one every CollectInterval.
func (n *Node) collect(now time.Time) {
	members := n.replicaMembers()
	n.st.mu.Lock()
	c := n.eng.Collect(now, members)
	n.st.mu.Unlock()
	n.met.collected.Add(float64(c))
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

// seenSet remembers the hashes of the last few gossiped deltas.
type seenSet struct {
	mu   sync.Mutex
	set  map[uint64]struct{}
	ring []uint64
	pos  int
}

func newSeenSet(n int) *seenSet {
	return &seenSet{set: make(map[uint64]struct{}, n), ring: make([]uint64, n)}
}

// add records h and reports whether it is new.
func (s *seenSet) add(h uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.set[h]; ok {
		return false
	}
	delete(s.set, s.ring[s.pos])
	s.ring[s.pos] = h
	s.set[h] = struct{}{}
	s.pos = (s.pos + 1) % len(s.ring)
	return true
}

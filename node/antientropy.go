package node

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/meshnode/meshnode/replica"
	"github.com/meshnode/meshnode/wire"
)

// antiEntropyLoop drives the replication core's clock: every tick it
// gives the core the membership and the time, and runs the anti-entropy
// exchange the core hands out (with which member, and when, is the core's
// decision), in the background, one at a time.
func (n *Node) antiEntropyLoop() {
	t := time.NewTicker(replica.DefaultRetryInterval)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case now := <-t.C:
			n.tickReplica(now)
		}
	}
}

// tickReplica is one tick of the replication core.
func (n *Node) tickReplica(now time.Time) {
	bootstrap := n.joinWant.Load() && n.mem.Joined() && !n.synced.Load()
	members := n.replicaMembers()
	n.st.mu.Lock()
	n.eng.SetMembers(members)
	if bootstrap && !n.eng.Bootstrapping() {
		n.eng.Bootstrap()
	}
	rd := n.eng.Tick(now)
	if rd.Synced {
		// Under the lock, so that the next tick does not bootstrap again.
		n.synced.Store(true)
	}
	n.st.mu.Unlock()
	n.met.collected.Add(float64(rd.Collected))
	if rd.Synced {
		n.log.Info("first member of the cluster: nothing to sync")
	}
	if rd.Exchange.Name == "" {
		return
	}
	var addr netip.AddrPort
	for _, m := range n.members() {
		if m.Name == rd.Exchange.Name {
			addr = m.Addr
		}
	}
	n.g.Go(func() error {
		err := errNoPeer
		if addr.IsValid() {
			err = n.antiEntropyWith(addr)
		}
		n.st.mu.Lock()
		done := n.eng.ExchangeDone(rd.Exchange, err, time.Now())
		if done.Synced {
			n.synced.Store(true)
		}
		n.st.mu.Unlock()
		if done.Synced {
			n.log.Info("first sync done")
		}
		return nil
	})
}

var errNoPeer = errors.New("node: no live peer")

// antiEntropyWith runs one anti-entropy exchange with the member at addr: it pulls
// what it lacks, then serves what the peer lacks.
func (n *Node) antiEntropyWith(addr netip.AddrPort) error {
	start := time.Now()
	ctx, cancel := context.WithCancel(n.ctx)
	defer cancel()
	c, err := n.tr.dial(ctx, addr, chanAntiEntropy, start.Add(n.cfg.StreamTimeout.D()))
	if err != nil {
		n.met.syncRounds.WithLabelValues("error").Inc()
		return err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	sio, err := newStreamIO(c, n.tr.codecCfg, n.streamBuf)
	if err == nil {
		defer sio.close()
		err = n.pull(sio)
	}
	if err == nil {
		err = n.serveMissing(sio)
	}
	if err != nil {
		n.met.syncRounds.WithLabelValues("error").Inc()
		n.streamRejected(addr, "client", err)
		return fmt.Errorf("node: sync with %v: %w", addr, err)
	}
	n.met.syncRounds.WithLabelValues("ok").Inc()
	n.met.syncDuration.Observe(time.Since(start).Seconds())
	return nil
}

// serveAntiEntropy answers an anti-entropy exchange a peer opened.
func (n *Node) serveAntiEntropy(sio *streamIO) error {
	if err := n.serveMissing(sio); err != nil {
		return err
	}
	return n.pull(sio)
}

// pull sends digests and applies what the peer sends back.
func (n *Node) pull(sio *streamIO) error {
	var d wire.Data
	var buf []byte
	for range syncMaxPages {
		n.st.mu.Lock()
		buf = n.eng.AppendDigest(buf[:0])
		n.st.mu.Unlock()
		if err := sio.writeData(kindStoreDigest, buf); err != nil {
			return err
		}
		if err := sio.readData(&d); err != nil {
			return err
		}
		if d.Kind != kindStorePage && d.Kind != kindStorePageMore {
			return fmt.Errorf("%w: kind %d, want a store page", ErrStream, d.Kind)
		}
		n.met.syncBytes.Add(float64(len(d.Payload)))
		if err := n.applyStore(d.Payload); err != nil {
			return err
		}
		if d.Kind == kindStorePage {
			break
		}
	}
	n.st.mu.Lock()
	buf = n.eng.AppendIndexDigest(buf[:0])
	n.st.mu.Unlock()
	if err := sio.writeData(kindIndexDigest, buf); err != nil {
		return err
	}
	for {
		if err := sio.readData(&d); err != nil {
			return err
		}
		switch d.Kind {
		case kindIndexDone:
			return nil
		case kindIndexBatch:
			n.met.syncBytes.Add(float64(len(d.Payload)))
			n.st.mu.Lock()
			err := n.eng.ApplyIndexPage(d.Payload)
			n.st.mu.Unlock()
			if err != nil {
				return err
			}
		default:
			return fmt.Errorf("%w: kind %d, want an index batch", ErrStream, d.Kind)
		}
	}
}

// serveMissing answers the peer's digests with what it lacks.
func (n *Node) serveMissing(sio *streamIO) error {
	var d wire.Data
	var page []byte
	for range syncMaxPages {
		if err := sio.readData(&d); err != nil {
			return err
		}
		if d.Kind != kindStoreDigest {
			return fmt.Errorf("%w: kind %d, want a store digest", ErrStream, d.Kind)
		}
		n.st.mu.Lock()
		var more bool
		var err error
		page, more, err = n.eng.Answer(page[:0], d.Payload, time.Now())
		n.st.mu.Unlock()
		if err != nil {
			return err
		}
		kind := kindStorePage
		if more {
			kind = kindStorePageMore
		}
		if err := sio.writeData(kind, page); err != nil {
			return err
		}
		if !more {
			break
		}
	}
	if err := sio.readData(&d); err != nil {
		return err
	}
	if d.Kind != kindIndexDigest {
		return fmt.Errorf("%w: kind %d, want an index digest", ErrStream, d.Kind)
	}
	n.st.mu.Lock()
	pages, err := n.eng.AnswerIndex(d.Payload, time.Now())
	n.st.mu.Unlock()
	if err != nil {
		return err
	}
	n.met.indexDeferred.Add(float64(pages.Deferred))
	// The walk reads only the index (safe for concurrent use): no lock
	// while the batches go out.
	var out []byte
	for {
		var ok bool
		if out, ok, err = pages.Next(out[:0]); err != nil {
			return err
		}
		if !ok {
			break
		}
		if err := sio.writeData(kindIndexBatch, out); err != nil {
			return err
		}
	}
	return sio.writeData(kindIndexDone, nil)
}

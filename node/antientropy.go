package node

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"time"

	"github.com/meshnode/meshnode/radix"
	"github.com/meshnode/meshnode/swim"
	"github.com/meshnode/meshnode/wire"
)

// antiEntropyLoop runs anti-entropy with a random member every
// AntiEntropyInterval, and at once after a join until the first round succeeds.
func (n *Node) antiEntropyLoop() {
	period := n.cfg.AntiEntropyInterval.D()
	fast := time.NewTicker(50 * time.Millisecond)
	defer fast.Stop()
	next := time.Now().Add(period)
	for {
		select {
		case <-n.ctx.Done():
			return
		case now := <-fast.C:
			bootstrap := n.joinWant.Load() && n.mem.Joined() && !n.synced.Load()
			if !bootstrap && now.Before(next) {
				continue
			}
			// Jitter keeps nodes started together from syncing in lockstep.
			next = now.Add(period/2 + rand.N(period))
			err := n.antiEntropyRandom()
			switch {
			case !bootstrap:
			case err == nil:
				n.synced.Store(true)
				n.log.Info("first sync done")
			case errors.Is(err, errNoPeer):
				// Joined alone (the seeds named only this node): it is
				// the cluster's first member and has nothing to fetch.
				n.synced.Store(true)
				n.log.Info("first member of the cluster: nothing to sync")
			}
		}
	}
}

var errNoPeer = errors.New("node: no live peer")

// antiEntropyRandom runs one anti-entropy exchange with a random live member.
func (n *Node) antiEntropyRandom() error {
	live := n.liveMembers()
	var peers []swim.Member
	for _, m := range live {
		if m.Name != n.name {
			peers = append(peers, m)
		}
	}
	if len(peers) == 0 {
		return errNoPeer
	}
	return n.antiEntropyWith(peers[rand.N(len(peers))].Addr)
}

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
	if err := sio.writeData(kindIndexDigest, radix.AppendDigest(nil, n.st.ix.Digest())); err != nil {
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
			if err := n.applyIndex(d.Payload); err != nil && !errors.Is(err, radix.ErrConflict) {
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
	remote, err := radix.DecodeDigest(d.Payload, radix.Limits{MaxWorkers: syncMaxWorkers})
	if err != nil {
		return err
	}
	local := n.st.ix.Digest()
	diff := radix.Difference(local, remote)
	known := make(map[string]bool, len(local))
	for _, w := range local {
		known[w.Worker] = true
	}
	var b radix.Batch
	var out []byte
	for i, w := range diff {
		if i == syncMaxWorkers || !known[w] {
			continue
		}
		for from := 0; from >= 0; {
			b.Reset()
			from = n.st.ix.Holdings(&b, w, from, syncBatchPages)
			if len(b.Deltas) == 0 {
				continue
			}
			if out, err = radix.AppendBatch(out[:0], &b); err != nil {
				return err
			}
			if err := sio.writeData(kindIndexBatch, out); err != nil {
				return err
			}
		}
	}
	return sio.writeData(kindIndexDone, nil)
}

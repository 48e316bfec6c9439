package node

import (
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/meshnode/meshnode/radix"
)

// TestVirtualPushBurst: a burst of deltas too large for a packet, pushed
// to one peer faster than any one of them travels, all arrive over the
// peer's push stream, none dropped, with no anti-entropy to repair them.
// With one stream per delta, at most maxPushesInFlight travelled at once
// and the rest were dropped.
func TestVirtualPushBurst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newVirtualCluster(t, 2, false)
		from, to := c.nodes[0], c.nodes[1]
		before := testutil.ToFloat64(to.met.deltasReceived) + testutil.ToFloat64(to.met.deltaErrors)
		const burst = 300
		for i := range burst {
			var b radix.Batch
			pages := make([]uint64, 64)
			for j := range pages {
				pages[j] = uint64(i*1000 + j + 1)
			}
			b.Add(radix.Delta{Op: radix.OpInsert, Worker: fmt.Sprintf("w%d", i%7), Epoch: 1, Stamp: 1, Pages: pages})
			payload, err := radix.AppendBatch(nil, &b)
			if err != nil {
				t.Fatal(err)
			}
			from.push(to.Addr(), kindIndexBatch, payload)
		}
		eventually(t, "every pushed delta received", func() error {
			got := testutil.ToFloat64(to.met.deltasReceived) + testutil.ToFloat64(to.met.deltaErrors) - before
			if got < burst {
				return fmt.Errorf("%v of %d received", got, burst)
			}
			return nil
		})
		if d := testutil.ToFloat64(from.met.pushesDropped); d != 0 {
			t.Errorf("%v pushes dropped", d)
		}
		// The stream closes once idle, and its slot is free again.
		eventually(t, "push stream retired", func() error {
			from.pushQ.mu.Lock()
			defer from.pushQ.mu.Unlock()
			if k := len(from.pushQ.byAddr); k != 0 {
				return fmt.Errorf("%d push queues left", k)
			}
			return nil
		})
		// ... and the connection with it: the receiver serves no stream,
		// long before its stream timeout would have ended it.
		retired := time.Now()
		eventually(t, "receiver's push stream ended", func() error {
			if !to.served.TryAcquire(maxServedConns) {
				return fmt.Errorf("a served connection is still open")
			}
			to.served.Release(maxServedConns)
			return nil
		})
		if d := time.Since(retired); d >= to.cfg.StreamTimeout.D()/2 {
			t.Errorf("the receiver's stream ended %v after the sender retired it", d)
		}
	})
}

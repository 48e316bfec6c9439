package node

import (
	"context"
	"net/netip"
	"sync"
	"time"
)

// Delta pushes (deltas too large for a packet) travel on one stream per
// peer, kept open while there is something to send and for
// pushIdleTimeout after, instead of one connection per delta: a stream per
// delta let at most maxPushesInFlight deltas travel at once, so a busy
// node (engine KV events at thousands of blocks a second) dropped pushes
// and left them to anti-entropy, seconds later.
const (
	// pushIdleTimeout closes a peer's push stream after it has had nothing
	// to send for this long. It is well under the receiver's stream
	// timeout, which each frame renews.
	pushIdleTimeout = 2 * time.Second
	// maxPushQueueBytes bounds the deltas queued for one peer; past it a
	// delta is dropped (counted) and left to anti-entropy.
	maxPushQueueBytes = 4 << 20
)

// pushQueue is one peer's queue of deltas waiting for its stream.
type pushQueue struct {
	items   []pushItem
	bytes   int
	running bool // a goroutine owns the stream and drains the queue
	wake    chan struct{}
}

type pushItem struct {
	kind    uint8
	payload []byte
}

// pushers holds the push queues, one per peer address with a stream open
// or deltas waiting.
type pushers struct {
	mu     sync.Mutex
	byAddr map[netip.AddrPort]*pushQueue
}

// push queues one delta for to's push stream, starting the stream's
// goroutine if none runs; at most maxPushesInFlight peers have one at a
// time. A delta that does not fit (too many streams, or the peer's queue
// is full) is dropped, counted, and left to anti-entropy. payload is not
// modified afterwards by the caller (it is an encoded batch).
func (n *Node) push(to netip.AddrPort, kind uint8, payload []byte) {
	p := &n.pushQ
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.byAddr == nil {
		p.byAddr = map[netip.AddrPort]*pushQueue{}
	}
	q := p.byAddr[to]
	if q == nil {
		if !n.pushes.TryAcquire(1) {
			n.met.pushesDropped.Inc()
			return
		}
		q = &pushQueue{wake: make(chan struct{}, 1)}
		p.byAddr[to] = q
	}
	if q.bytes+len(payload) > maxPushQueueBytes && q.bytes > 0 {
		n.met.pushesDropped.Inc()
		return
	}
	q.items = append(q.items, pushItem{kind, payload})
	q.bytes += len(payload)
	if !q.running {
		q.running = true
		n.g.Go(func() error {
			n.pushLoop(to, q)
			return nil
		})
		return
	}
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// takePushes removes and returns q's queued deltas.
func (n *Node) takePushes(q *pushQueue) []pushItem {
	n.pushQ.mu.Lock()
	defer n.pushQ.mu.Unlock()
	items := q.items
	q.items, q.bytes = nil, 0
	return items
}

// retirePushes ends q's stream goroutine and frees its slot, unless deltas
// arrived meanwhile and force is unset; forced (at shutdown), it drops
// them. It reports whether q was retired.
func (n *Node) retirePushes(to netip.AddrPort, q *pushQueue, force bool) bool {
	p := &n.pushQ
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(q.items) > 0 {
		if !force {
			return false
		}
		n.met.pushesDropped.Add(float64(len(q.items)))
		q.items, q.bytes = nil, 0
	}
	q.running = false
	delete(p.byAddr, to)
	n.pushes.Release(1)
	return true
}

// pushLoop owns to's push stream: it dials when there is something to
// send, writes every queued delta in order, and closes the stream after
// pushIdleTimeout without deltas. A failed dial or write drops what was
// being sent (anti-entropy repairs it) and the next delta dials again.
func (n *Node) pushLoop(to netip.AddrPort, q *pushQueue) {
	var s *pushStream
	defer func() { s.close() }()
	idle := time.NewTimer(pushIdleTimeout)
	defer idle.Stop()
	for {
		items := n.takePushes(q)
		if len(items) == 0 {
			select {
			case <-n.ctx.Done():
				n.retirePushes(to, q, true)
				return
			case <-q.wake:
			case <-idle.C:
				if n.retirePushes(to, q, false) {
					return
				}
				idle.Reset(pushIdleTimeout)
			}
			continue
		}
		for i, it := range items {
			if s == nil {
				var err error
				if s, err = n.dialPush(to); err != nil {
					n.met.streamErrors.Inc()
					n.met.pushesDropped.Add(float64(len(items) - i))
					break
				}
			}
			s.sio.c.SetDeadline(time.Now().Add(n.cfg.StreamTimeout.D()))
			if err := s.sio.writeData(it.kind, it.payload); err != nil {
				n.met.streamErrors.Inc()
				n.met.pushesDropped.Add(float64(len(items) - i))
				s.close()
				s = nil
				break
			}
		}
		idle.Reset(pushIdleTimeout)
	}
}

// pushStream is an open delta stream; the node's shutdown closes it.
type pushStream struct {
	sio  *streamIO
	stop func() bool
}

func (s *pushStream) close() {
	if s == nil {
		return
	}
	s.stop()
	s.sio.close()
	_ = s.sio.c.Close()
}

// dialPush opens a delta stream to a peer.
func (n *Node) dialPush(to netip.AddrPort) (*pushStream, error) {
	ctx, cancel := context.WithTimeout(n.ctx, n.cfg.StreamTimeout.D())
	defer cancel()
	c, err := n.tr.dial(ctx, to, chanDeltas, time.Now().Add(n.cfg.StreamTimeout.D()))
	if err != nil {
		return nil, err
	}
	sio, err := newStreamIO(c, n.tr.codecCfg, n.streamBuf)
	if err != nil {
		c.Close()
		return nil, err
	}
	// A write blocked on a stalled peer ends with the node, not only
	// at its deadline.
	stop := context.AfterFunc(n.ctx, func() { _ = c.Close() })
	return &pushStream{sio: sio, stop: stop}, nil
}

package node

import (
	"errors"
	"net"
	"os"
	"sync"
	"sync/atomic"

	"github.com/meshnode/meshnode/swim/swimnet"
	"github.com/meshnode/meshnode/wire"
	"golang.org/x/sync/semaphore"
)

// An accepted TCP connection is a stranger until it has sent a valid first
// frame (after the TLS handshake, when TLS is on; authenticated, when a
// gossip key is required) within Config.FirstFrameTimeout. Strangers wait in
// a pool of their own (maxPendingConns); when it is full the oldest stranger
// is closed to make room, so a flood of idle or garbage connections delays
// a member's connection by at most its first round trip and never takes a
// slot of the served pool (maxServedConns), which only proven connections
// enter. Strangers may also hold at most a quarter of the stream buffer
// budget, so the rest stays for members.

// Reasons a connection is closed by the node, as the reason label of
// meshnode_tcp_conns_closed_total.
const (
	closedPendingFull  = "pending_full"        // the oldest stranger, to make room for a new one
	closedServedFull   = "served_full"         // proven, but every served slot was taken
	closedFirstTimeout = "first_frame_timeout" // no valid first frame (or TLS handshake) in time
	closedFirstBad     = "first_frame_bad"     // the TLS handshake, channel byte or first frame was invalid, or the peer closed first
	closedBufferBudget = "buffer_budget"       // the stream buffer budget was spent
)

// streamBudget is the node's stream buffer budget: a semaphore of bytes
// that also counts what is lent, for the gauge.
type streamBudget struct {
	sem  *semaphore.Weighted
	used atomic.Int64
}

var _ wire.Budget = (*streamBudget)(nil)

func newStreamBudget(bytes int64) *streamBudget {
	return &streamBudget{sem: semaphore.NewWeighted(bytes)}
}

// TryAcquire takes n bytes if they are free.
func (b *streamBudget) TryAcquire(n int64) bool {
	if !b.sem.TryAcquire(n) {
		return false
	}
	b.used.Add(n)
	return true
}

// Release gives n bytes back.
func (b *streamBudget) Release(n int64) {
	b.used.Add(-n)
	b.sem.Release(n)
}

// connBudget is what one accepted connection's reader charges: while the
// connection is a stranger, both the strangers' share and the node's
// budget; once proven, the node's budget only.
type connBudget struct {
	all, strangers *streamBudget
	mu             sync.Mutex
	proven         bool
	strangerHeld   int64
}

// TryAcquire takes n bytes from the node's budget and, for a stranger,
// from the strangers' share.
func (b *connBudget) TryAcquire(n int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.proven {
		if !b.strangers.TryAcquire(n) {
			return false
		}
		b.strangerHeld += n
	}
	if !b.all.TryAcquire(n) {
		if !b.proven {
			b.strangers.Release(n)
			b.strangerHeld -= n
		}
		return false
	}
	return true
}

// Release gives n bytes back, to the strangers' share first while the
// connection holds some of it.
func (b *connBudget) Release(n int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if s := min(n, b.strangerHeld); s > 0 {
		b.strangers.Release(s)
		b.strangerHeld -= s
	}
	b.all.Release(n)
}

// prove moves the connection out of the strangers' share: what it holds
// stays charged to the node's budget only.
func (b *connBudget) prove() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.proven = true
	if b.strangerHeld > 0 {
		b.strangers.Release(b.strangerHeld)
		b.strangerHeld = 0
	}
}

// pendingConns is the strangers' pool: accepted connections that have not
// yet sent a valid first frame, oldest first.
type pendingConns struct {
	mu    sync.Mutex
	max   int
	next  uint64
	conns map[uint64]net.Conn
}

func newPendingConns(max int) *pendingConns {
	return &pendingConns{max: max, conns: make(map[uint64]net.Conn, max)}
}

// add admits c and returns its ticket; when the pool is full, it takes the
// oldest stranger out and returns it for the caller to close.
func (p *pendingConns) add(c net.Conn) (ticket uint64, evicted net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.conns) >= p.max {
		oldest := p.next
		for t := range p.conns {
			oldest = min(oldest, t)
		}
		evicted = p.conns[oldest]
		delete(p.conns, oldest)
	}
	ticket = p.next
	p.next++
	p.conns[ticket] = c
	return ticket, evicted
}

// remove takes ticket's connection out and reports whether it was still
// there (false: it was evicted).
func (p *pendingConns) remove(ticket uint64) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.conns[ticket]
	delete(p.conns, ticket)
	return ok
}

// len returns the strangers waiting.
func (p *pendingConns) len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

// replayConn hands a swim stream to the Runner after serveConn read its
// first frame: it replays that frame's bytes before reading the connection,
// gives the reader's budget back once they are read, and runs done once on
// Close.
type replayConn struct {
	swimnet.Conn
	replay  [][]byte // the first frame's header and body, as received
	release func()   // gives the first frame's bytes back
	done    func()
	once    sync.Once
	relOnce sync.Once
}

// Read serves the replayed bytes first.
func (c *replayConn) Read(b []byte) (int, error) {
	for len(c.replay) > 0 {
		n := copy(b, c.replay[0])
		if c.replay[0] = c.replay[0][n:]; len(c.replay[0]) == 0 {
			c.replay = c.replay[1:]
		}
		if len(c.replay) == 0 {
			c.relOnce.Do(c.release)
		}
		if n > 0 {
			return n, nil
		}
	}
	return c.Conn.Read(b)
}

// Close closes the connection, then gives back what it held.
func (c *replayConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.relOnce.Do(c.release)
		c.done()
	})
	return err
}

// closeReason classifies the error that ended a stranger.
func closeReason(err error) string {
	switch {
	case errors.Is(err, wire.ErrBudget):
		return closedBufferBudget
	case errors.Is(err, os.ErrDeadlineExceeded):
		return closedFirstTimeout
	}
	return closedFirstBad
}

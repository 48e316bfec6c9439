package swimnet

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// MemNetwork is an in-memory network of MemTransports, for tests of Runners
// and of the layers above: packets travel through bounded channels, with
// optional loss and delay; streams are in-memory pipes with half-close and
// deadlines. It uses no sockets and only channels, mutexes and timers, so it
// works inside a testing/synctest bubble, where runners then run in virtual
// time. It is safe for concurrent use.
type MemNetwork struct {
	mu     sync.Mutex
	nodes  map[netip.AddrPort]*MemTransport
	drop   func(from, to netip.AddrPort, stream bool) bool
	delay  time.Duration
	queue  int
	nextIP uint32
}

// ErrUnreachable reports a packet or stream to an address where no
// MemTransport listens, or that a loss rule drops.
var ErrUnreachable = errors.New("swimnet: unreachable")

// NewMemNetwork returns an empty network. queue is the receive bound of each
// transport, in packets and in streams (at least 1; 0 means 1024).
func NewMemNetwork(queue int) *MemNetwork {
	if queue <= 0 {
		queue = 1024
	}
	return &MemNetwork{nodes: make(map[netip.AddrPort]*MemTransport), queue: queue}
}

// SetDrop installs a loss rule: a packet (stream false) or a stream dial
// (stream true) from -> to is dropped when drop returns true. drop is called
// with the network's lock held and must not call back into it. nil removes
// the rule.
func (n *MemNetwork) SetDrop(drop func(from, to netip.AddrPort, stream bool) bool) {
	n.mu.Lock()
	n.drop = drop
	n.mu.Unlock()
}

// SetDelay makes every packet arrive d after it was sent (0: at once).
func (n *MemNetwork) SetDelay(d time.Duration) {
	n.mu.Lock()
	n.delay = d
	n.mu.Unlock()
}

// Listen returns a transport at addr; an invalid addr picks the next free
// address 10.0.0.x:7946.
func (n *MemNetwork) Listen(addr netip.AddrPort) (*MemTransport, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !addr.IsValid() {
		for {
			n.nextIP++
			ip := netip.AddrFrom4([4]byte{10, byte(n.nextIP >> 16), byte(n.nextIP >> 8), byte(n.nextIP)})
			if addr = netip.AddrPortFrom(ip, 7946); n.nodes[addr] == nil {
				break
			}
		}
	}
	if n.nodes[addr] != nil {
		return nil, fmt.Errorf("swimnet: listen %v: address in use", addr)
	}
	t := &MemTransport{
		net:     n,
		addr:    addr,
		packets: make(chan Inbound, n.queue),
		streams: make(chan Incoming, n.queue),
		done:    make(chan struct{}),
	}
	n.nodes[addr] = t
	return t, nil
}

// route returns the transport at to, or nil if none listens or the loss rule
// drops the traffic.
func (n *MemNetwork) route(from, to netip.AddrPort, stream bool) (*MemTransport, time.Duration) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.drop != nil && n.drop(from, to, stream) {
		return nil, 0
	}
	return n.nodes[to], n.delay
}

// MemTransport is one endpoint of a MemNetwork. It implements Transport.
type MemTransport struct {
	net     *MemNetwork
	addr    netip.AddrPort
	packets chan Inbound
	streams chan Incoming
	done    chan struct{}
	once    sync.Once
	port    atomic.Uint32 // ephemeral ports of dialled streams
	dropped atomic.Uint64
}

var _ Transport = (*MemTransport)(nil)

// Dropped returns the number of packets and streams refused because the
// receive queue was full or the transport was shut down.
func (t *MemTransport) Dropped() uint64 { return t.dropped.Load() }

// WriteTo implements Transport. b is copied.
func (t *MemTransport) WriteTo(b []byte, to netip.AddrPort) error {
	dst, delay := t.net.route(t.addr, to, false)
	if dst == nil {
		return nil // UDP does not report loss
	}
	p := Inbound{From: t.addr, Buf: slices.Clone(b)}
	if delay <= 0 {
		dst.deliver(p)
		return nil
	}
	time.AfterFunc(delay, func() { dst.deliver(p) })
	return nil
}

func (t *MemTransport) deliver(p Inbound) {
	select {
	case <-t.done:
		t.dropped.Add(1)
		return
	default:
	}
	select {
	case t.packets <- p:
	default:
		t.dropped.Add(1)
	}
}

// Packets implements Transport.
func (t *MemTransport) Packets() <-chan Inbound { return t.packets }

// Streams implements Transport.
func (t *MemTransport) Streams() <-chan Incoming { return t.streams }

// Addr implements Transport.
func (t *MemTransport) Addr() netip.AddrPort { return t.addr }

// DialStream implements Transport. The stream is accepted at once if the
// peer's queue has room; its deadlines come from the caller.
func (t *MemTransport) DialStream(ctx context.Context, to netip.AddrPort) (Conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	dst, _ := t.net.route(t.addr, to, true)
	if dst == nil {
		return nil, fmt.Errorf("%w: dial %v", ErrUnreachable, to)
	}
	c1a, c1b := net.Pipe() // opener -> acceptor
	c2a, c2b := net.Pipe() // acceptor -> opener
	opener := &memConn{r: c2b, w: c1a}
	acceptor := &memConn{r: c1b, w: c2a}
	from := netip.AddrPortFrom(t.addr.Addr(), uint16(40000+t.port.Add(1)%20000))
	select {
	case <-dst.done:
	default:
		select {
		case dst.streams <- Incoming{From: from, Conn: acceptor}:
			return opener, nil
		default:
		}
	}
	dst.dropped.Add(1)
	opener.Close()
	acceptor.Close()
	return nil, fmt.Errorf("%w: dial %v: refused", ErrUnreachable, to)
}

// Shutdown implements Transport: the address is released and later packets
// and dials to it fail. Streams already handed out are not closed.
func (t *MemTransport) Shutdown() error {
	t.once.Do(func() {
		close(t.done)
		t.net.mu.Lock()
		if t.net.nodes[t.addr] == t {
			delete(t.net.nodes, t.addr)
		}
		t.net.mu.Unlock()
		// Streams queued but never taken: close them so their openers see
		// end of stream rather than wait for their deadline.
		for {
			select {
			case in := <-t.streams:
				in.Conn.Close()
			default:
				return
			}
		}
	})
	return nil
}

// memConn is one end of an in-memory stream: two synchronous pipes, one per
// direction, so that one direction can be closed alone.
type memConn struct {
	r, w net.Conn
}

func (c *memConn) Read(b []byte) (int, error)  { return c.r.Read(b) }
func (c *memConn) Write(b []byte) (int, error) { return c.w.Write(b) }
func (c *memConn) CloseWrite() error           { return c.w.Close() }

func (c *memConn) Close() error {
	return errors.Join(c.r.Close(), c.w.Close())
}

func (c *memConn) SetDeadline(t time.Time) error {
	return errors.Join(c.r.SetDeadline(t), c.w.SetDeadline(t))
}

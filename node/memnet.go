package node

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/meshnode/meshnode/swim/swimnet"
)

// The gossip port over a swimnet.MemNetwork instead of sockets, for tests
// that run whole nodes in virtual time (testing/synctest): the node's
// transport keeps its channel bytes, admission and budgets, and only the
// UDP socket, the TCP listener and the dialer are replaced by adapters over
// one MemTransport. A test sets Node.memNet between New and Start.

// packetConn is what the transport needs of its UDP socket; *net.UDPConn
// and memPacketConn implement it.
type packetConn interface {
	ReadFromUDPAddrPort(b []byte) (int, netip.AddrPort, error)
	WriteToUDPAddrPort(b []byte, to netip.AddrPort) (int, error)
	Close() error
}

// listenMem listens on mem at bind (an ip:port; anything else picks the
// network's next free address) and returns the transport's packet
// conn, listener and dialer over it, and the address.
func listenMem(mem *swimnet.MemNetwork, bind string) (packetConn, net.Listener, func(ctx context.Context, to netip.AddrPort) (net.Conn, error), netip.AddrPort, error) {
	addr, _ := netip.ParseAddrPort(bind)
	if addr.Port() == 0 {
		addr = netip.AddrPort{}
	}
	t, err := mem.Listen(addr)
	if err != nil {
		return nil, nil, nil, netip.AddrPort{}, err
	}
	done := make(chan struct{})
	var once sync.Once
	shut := func() error {
		once.Do(func() { close(done); t.Shutdown() })
		return nil
	}
	pc := &memPacketConn{t: t, done: done, close: shut}
	ln := &memListener{t: t, done: done, close: shut}
	dial := func(ctx context.Context, to netip.AddrPort) (net.Conn, error) {
		c, err := t.DialStream(ctx, to)
		if err != nil {
			return nil, err
		}
		return &memNetConn{Conn: c, local: t.Addr(), remote: to}, nil
	}
	return pc, ln, dial, t.Addr(), nil
}

// memPacketConn is a packetConn over a MemTransport.
type memPacketConn struct {
	t     *swimnet.MemTransport
	done  chan struct{}
	close func() error
}

func (c *memPacketConn) ReadFromUDPAddrPort(b []byte) (int, netip.AddrPort, error) {
	select {
	case p := <-c.t.Packets():
		return copy(b, p.Buf), p.From, nil
	case <-c.done:
		return 0, netip.AddrPort{}, net.ErrClosed
	}
}

func (c *memPacketConn) WriteToUDPAddrPort(b []byte, to netip.AddrPort) (int, error) {
	if err := c.t.WriteTo(b, to); err != nil {
		return 0, err
	}
	return len(b), nil
}

func (c *memPacketConn) Close() error { return c.close() }

// memListener is a net.Listener over a MemTransport's streams.
type memListener struct {
	t     *swimnet.MemTransport
	done  chan struct{}
	close func() error
}

func (l *memListener) Accept() (net.Conn, error) {
	select {
	case in := <-l.t.Streams():
		return &memNetConn{Conn: in.Conn, local: l.t.Addr(), remote: in.From}, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *memListener) Close() error   { return l.close() }
func (l *memListener) Addr() net.Addr { return net.TCPAddrFromAddrPort(l.t.Addr()) }

// memNetConn makes a swimnet.Conn a net.Conn.
type memNetConn struct {
	swimnet.Conn
	local, remote netip.AddrPort
}

func (c *memNetConn) LocalAddr() net.Addr  { return net.TCPAddrFromAddrPort(c.local) }
func (c *memNetConn) RemoteAddr() net.Addr { return net.TCPAddrFromAddrPort(c.remote) }

// SetReadDeadline and SetWriteDeadline set both: the in-memory stream has
// one deadline, and the node sets both at once anyway.
func (c *memNetConn) SetReadDeadline(t time.Time) error  { return c.Conn.SetDeadline(t) }
func (c *memNetConn) SetWriteDeadline(t time.Time) error { return c.Conn.SetDeadline(t) }

package node

import (
	"context"
	"errors"
	"net/netip"

	"github.com/meshnode/meshnode/swim/swimnet"
)

// SwimTransport is the gossip port on its own: the transport the daemon
// ships (UDP and TCP on one port, TLS, a channel byte per connection, the
// first-frame admission and stream budgets of conns.go), without the
// replication engine, membership or API around it. It is a swimnet.Transport
// for a swimnet.Runner that a program drives itself, such as the
// comparison with hashicorp/memberlist in bench/memberlist, so that what is
// measured is what the daemon runs.
//
// It answers the replication channels (anti-entropy, delta pushes) from an
// empty store; peers of a SwimTransport are expected to speak swim only.
type SwimTransport struct {
	n *Node
}

var _ swimnet.Transport = (*SwimTransport)(nil)

// ListenSwimTransport binds cfg.BindAddr (UDP and TCP on one port; port 0
// picks a free one) and starts receiving. Of cfg it uses what concerns the
// gossip port: Name, BindAddr, AdvertiseAddr, Label, the gossip keys, TLS,
// FirstFrameTimeout, StreamTimeout, MaxStreamBufferBytes and Logger; the
// rest is validated as for New. cfg.APIAddr is ignored.
func ListenSwimTransport(cfg Config) (*SwimTransport, error) {
	n, err := New(cfg)
	if err != nil {
		return nil, err
	}
	n.started.Store(true) // Start is not for this node
	if err := n.openTransport(); err != nil {
		n.met.unregister()
		return nil, err
	}
	n.serveTransport()
	return &SwimTransport{n: n}, nil
}

// WriteTo implements swimnet.Transport.
func (t *SwimTransport) WriteTo(b []byte, to netip.AddrPort) error { return t.n.tr.WriteTo(b, to) }

// Packets implements swimnet.Transport.
func (t *SwimTransport) Packets() <-chan swimnet.Inbound { return t.n.tr.Packets() }

// DialStream implements swimnet.Transport.
func (t *SwimTransport) DialStream(ctx context.Context, to netip.AddrPort) (swimnet.Conn, error) {
	return t.n.tr.DialStream(ctx, to)
}

// Streams implements swimnet.Transport.
func (t *SwimTransport) Streams() <-chan swimnet.Incoming { return t.n.tr.Streams() }

// Addr implements swimnet.Transport: the advertised address.
func (t *SwimTransport) Addr() netip.AddrPort { return t.n.tr.Addr() }

// SwimTransportStats counts what a SwimTransport carried and dropped.
type SwimTransportStats struct {
	UDPSentBytes, UDPReceivedBytes uint64 // datagram payload bytes
	TCPSentBytes, TCPReceivedBytes uint64 // stream bytes, channel byte and TLS included
	PacketsDropped                 uint64 // datagrams dropped because the Runner was behind
	StreamsDropped                 uint64 // swim streams dropped because the Runner was behind
}

// Stats returns the transport's counters.
func (t *SwimTransport) Stats() SwimTransportStats {
	tr := t.n.tr
	return SwimTransportStats{
		UDPSentBytes: tr.udpSent.Load(), UDPReceivedBytes: tr.udpRecv.Load(),
		TCPSentBytes: tr.tcpSent.Load(), TCPReceivedBytes: tr.tcpRecv.Load(),
		PacketsDropped: tr.dropped.Load(), StreamsDropped: tr.streamsDropped.Load(),
	}
}

// Shutdown implements swimnet.Transport: it closes the sockets and waits
// for the transport's goroutines, including the streams being served, to
// end. It is idempotent.
func (t *SwimTransport) Shutdown() error {
	err := t.n.tr.close()
	if e := t.n.Shutdown(context.Background()); e != nil && !errors.Is(e, context.Canceled) {
		err = errors.Join(err, e)
	}
	return err
}

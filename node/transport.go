package node

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshnode/meshnode/swim/swimnet"
	"github.com/meshnode/meshnode/wire"
)

// Every TCP connection between members starts with one byte naming what it
// carries, so that swim's streams and the sync engine share the gossip port.
const (
	chanSwim        byte = 'S' // a swim stream exchange: push-pull, TCP ping
	chanAntiEntropy byte = 'A' // anti-entropy
	chanDeltas      byte = 'D' // a one-way push of delta batches too large for UDP
)

// Limits of stream reading.
const (
	// maxTransferBytes bounds one reassembled transfer on a stream.
	maxTransferBytes = 64 << 20
)

// ErrStream reports a stream that broke the protocol.
var ErrStream = errors.New("node: stream protocol")

// transport owns the shared port: the UDP socket and the TCP listener, and
// dials other members, with TLS when configured.
type transport struct {
	udp packetConn // a *net.UDPConn but in tests (memnet.go)
	tcp net.Listener
	// dialRaw opens a connection before TLS and the channel byte; nil
	// means TCP.
	dialRaw   func(ctx context.Context, to netip.AddrPort) (net.Conn, error)
	addr      netip.AddrPort // advertised
	tlsServer *tls.Config
	tlsClient *tls.Config
	codecCfg  wire.Config
	// streamBudget bounds the bytes the swim Runner's stream readers hold.
	streamBudget wire.Budget
	// Bytes sent and received, for bandwidth figures; datagrams and swim
	// streams dropped because the Runner was behind.
	udpSent, udpRecv, tcpSent, tcpRecv atomic.Uint64
	dropped, streamsDropped            atomic.Uint64
	// packets and streams feed the swim Runner.
	packets   chan swimnet.Inbound
	streams   chan swimnet.Incoming
	closeOnce sync.Once
	// onTLSFail, if not nil, hears of every failed client handshake.
	onTLSFail func(to netip.AddrPort, err error)
}

// close closes the sockets; it is idempotent.
func (t *transport) close() error {
	t.closeOnce.Do(func() {
		t.udp.Close()
		t.tcp.Close()
	})
	return nil
}

// countingConn counts the bytes of a TCP connection (below TLS).
type countingConn struct {
	net.Conn
	sent, recv *atomic.Uint64
}

func (c countingConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.recv.Add(uint64(n))
	return n, err
}

// CloseWrite half-closes the TCP connection.
func (c countingConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Conn.Close()
}

func (c countingConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.sent.Add(uint64(n))
	return n, err
}

// writeUDP sends one packet.
func (t *transport) writeUDP(b []byte, to netip.AddrPort) error {
	n, err := t.udp.WriteToUDPAddrPort(b, to)
	t.udpSent.Add(uint64(n))
	return err
}

// listen binds UDP and TCP on the same port. With port 0 it retries a few
// times, since the port UDP got may be taken for TCP.
func listen(bind string) (*net.UDPConn, net.Listener, error) {
	host, port, err := net.SplitHostPort(bind)
	if err != nil {
		return nil, nil, fmt.Errorf("node: bind %q: %w", bind, err)
	}
	var lastErr error
	for range 10 {
		u, err := net.ListenPacket("udp", net.JoinHostPort(host, port))
		if err != nil {
			return nil, nil, fmt.Errorf("node: bind udp %s: %w", bind, err)
		}
		p := u.LocalAddr().(*net.UDPAddr).Port
		l, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(p)))
		if err == nil {
			return u.(*net.UDPConn), l, nil
		}
		u.Close()
		lastErr = err
		if port != "0" {
			break
		}
	}
	return nil, nil, fmt.Errorf("node: bind tcp %s: %w", bind, lastErr)
}

// advertise picks the address to announce.
func advertise(cfg string, bound netip.AddrPort) (netip.AddrPort, error) {
	if cfg != "" {
		return netip.ParseAddrPort(cfg)
	}
	if !bound.Addr().IsUnspecified() {
		return bound, nil
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("node: advertise: %w", err)
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(ipn.IP); ok && !ip.Unmap().IsLoopback() && ip.Unmap().Is4() {
				return netip.AddrPortFrom(ip.Unmap(), bound.Port()), nil
			}
		}
	}
	return netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), bound.Port()), nil
}

// dial opens a stream of kind ch to a member before deadline.
func (t *transport) dial(ctx context.Context, to netip.AddrPort, ch byte, deadline time.Time) (net.Conn, error) {
	var raw net.Conn
	var err error
	if t.dialRaw != nil {
		raw, err = t.dialRaw(ctx, to)
	} else {
		d := net.Dialer{Deadline: deadline}
		raw, err = d.DialContext(ctx, "tcp", to.String())
	}
	if err != nil {
		return nil, err
	}
	var c net.Conn = countingConn{raw, &t.tcpSent, &t.tcpRecv}
	if t.tlsClient != nil {
		tc := tls.Client(c, t.tlsClient)
		tc.SetDeadline(deadline)
		if err := tc.HandshakeContext(ctx); err != nil {
			c.Close()
			err = fmt.Errorf("%w with %v: %w", errTLSHandshake, to, err)
			if t.onTLSFail != nil {
				t.onTLSFail(to, err)
			}
			return nil, err
		}
		c = tc
	}
	c.SetDeadline(deadline)
	if _, err := c.Write([]byte{ch}); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// accept wraps an accepted connection in TLS when configured and reads the
// channel byte.
func (t *transport) accept(c net.Conn, deadline time.Time) (net.Conn, byte, error) {
	c = countingConn{c, &t.tcpSent, &t.tcpRecv}
	c.SetDeadline(deadline)
	if t.tlsServer != nil {
		tc := tls.Server(c, t.tlsServer)
		if err := tc.Handshake(); err != nil {
			return nil, 0, fmt.Errorf("%w: %w", errTLSHandshake, err)
		}
		c = tc
	}
	var b [1]byte
	if _, err := io.ReadFull(c, b[:]); err != nil {
		return nil, 0, err
	}
	return c, b[0], nil
}

// streamIO reads and writes wire messages on one stream. Its reader's
// buffers grow with the bytes received and are charged to the node's
// stream buffer budget; close gives them back.
type streamIO struct {
	c     net.Conn
	sr    *wire.StreamReader
	codec *wire.Codec
	// first is the frame serveConn read to admit the stream; read
	// returns its message first.
	first *wire.Frame
	xfer  uint32
}

func newStreamIO(c net.Conn, cfg wire.Config, budget wire.Budget) (*streamIO, error) {
	codec, err := wire.NewCodec(cfg)
	if err != nil {
		return nil, err
	}
	sr := wire.NewStreamReader(codec, c, wire.StreamLimits{MaxTransferBytes: maxTransferBytes, MaxTransfers: 1, Budget: budget})
	return &streamIO{c: c, sr: sr, codec: codec}, nil
}

// close gives the reader's bytes back to the budget; the connection is
// the caller's to close.
func (s *streamIO) close() { s.sr.Close() }

// write sends one message, chunked when large.
func (s *streamIO) write(m wire.Message) error {
	s.xfer++
	return s.codec.WriteFrames(s.c, m.Type(), m.AppendBody(nil), s.xfer)
}

// writeData sends one Data message with kind and payload.
func (s *streamIO) writeData(kind uint8, payload []byte) error {
	return s.write(&wire.Data{Kind: kind, Payload: payload})
}

// read returns the next whole message's type and body; the body is valid
// until the next read.
func (s *streamIO) read() (wire.Type, []byte, error) {
	if f := s.first; f != nil {
		s.first = nil
		if t, body, done, err := s.sr.Add(*f); err != nil || done {
			return t, body, err
		}
	}
	return s.sr.Next()
}

// readData reads the next message, which must be a Data message.
func (s *streamIO) readData(d *wire.Data) error {
	t, body, err := s.read()
	if err != nil {
		return err
	}
	if t != wire.TypeData {
		return fmt.Errorf("%w: got %v, want data", ErrStream, t)
	}
	return d.DecodeBody(body)
}

package swimnet

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// NetConfig configures a NetTransport. Zero fields take the defaults in
// brackets.
type NetConfig struct {
	// BindAddr is the local address UDP and TCP both listen on. Port 0
	// picks a free port that is free for both protocols.
	BindAddr netip.AddrPort
	// AdvertiseAddr is the address peers are told to use (behind NAT or
	// when binding to an unspecified address). A zero AdvertiseAddr means
	// BindAddr; a zero port means the bound port. An unspecified address
	// (0.0.0.0, ::) cannot be advertised.
	AdvertiseAddr netip.AddrPort
	// MaxPacketBytes is the largest datagram accepted [65507]; larger ones
	// are dropped and counted as oversized. It sizes the read buffer.
	MaxPacketBytes int
	// PacketQueue bounds the datagrams received and not yet taken [1024];
	// beyond it they are dropped and counted.
	PacketQueue int
	// MaxStreams bounds the accepted streams not yet closed [64: the
	// Runner's default 16 served plus 48 waiting]; beyond it new
	// connections are closed at once and counted.
	MaxStreams int
	// StreamTimeout is the deadline set on an accepted connection before it
	// is handed out [10s], so that a silent peer cannot hold a slot.
	StreamTimeout time.Duration
}

// NetStats counts what a NetTransport dropped.
type NetStats struct {
	PacketsReceived  uint64 // datagrams handed out
	PacketsDropped   uint64 // datagrams dropped because the queue was full
	PacketsOversized uint64 // datagrams above MaxPacketBytes
	StreamsAccepted  uint64 // connections handed out
	StreamsRejected  uint64 // connections closed because MaxStreams were open
}

// maxUDPPayload is the largest UDP payload over IPv4.
const maxUDPPayload = 65507

// bindAttempts bounds the retries when port 0 picks a TCP port whose UDP
// twin is taken.
const bindAttempts = 16

// NetTransport is a Transport over UDP and TCP sharing one port, IPv4 or
// IPv6. It starts two goroutines (the UDP reader and the TCP accept loop),
// which Shutdown ends.
type NetTransport struct {
	cfg  NetConfig
	addr netip.AddrPort
	udp  *net.UDPConn
	tcp  *net.TCPListener

	packets chan Inbound
	streams chan Incoming
	slots   chan struct{}
	done    chan struct{}
	once    sync.Once
	wg      sync.WaitGroup

	received, dropped, oversized, accepted, rejected atomic.Uint64
}

var _ Transport = (*NetTransport)(nil)

// NewNetTransport binds TCP then UDP on cfg.BindAddr and starts receiving.
func NewNetTransport(cfg NetConfig) (*NetTransport, error) {
	if cfg.MaxPacketBytes <= 0 {
		cfg.MaxPacketBytes = maxUDPPayload
	}
	if cfg.PacketQueue <= 0 {
		cfg.PacketQueue = 1024
	}
	if cfg.MaxStreams <= 0 {
		cfg.MaxStreams = 64
	}
	if cfg.StreamTimeout <= 0 {
		cfg.StreamTimeout = 10 * time.Second
	}
	if !cfg.BindAddr.IsValid() {
		return nil, fmt.Errorf("swimnet: bind address %v is not valid", cfg.BindAddr)
	}
	tcp, udp, err := bindBoth(cfg.BindAddr)
	if err != nil {
		return nil, err
	}
	port := uint16(tcp.Addr().(*net.TCPAddr).Port)
	adv := cfg.AdvertiseAddr
	if !adv.IsValid() {
		adv = netip.AddrPortFrom(cfg.BindAddr.Addr(), port)
	} else if adv.Port() == 0 {
		adv = netip.AddrPortFrom(adv.Addr(), port)
	}
	if adv.Addr().IsUnspecified() {
		tcp.Close()
		udp.Close()
		return nil, fmt.Errorf("swimnet: cannot advertise unspecified address %v: set AdvertiseAddr", adv)
	}
	t := &NetTransport{
		cfg:     cfg,
		addr:    netip.AddrPortFrom(adv.Addr().Unmap(), adv.Port()),
		udp:     udp,
		tcp:     tcp,
		packets: make(chan Inbound, cfg.PacketQueue),
		streams: make(chan Incoming, cfg.MaxStreams),
		slots:   make(chan struct{}, cfg.MaxStreams),
		done:    make(chan struct{}),
	}
	t.wg.Add(2)
	go t.readLoop()
	go t.acceptLoop()
	return t, nil
}

// bindBoth listens on TCP first, then UDP on the port TCP got. With port 0 a
// UDP conflict closes the TCP listener and tries another port.
func bindBoth(bind netip.AddrPort) (*net.TCPListener, *net.UDPConn, error) {
	var lastErr error
	for range bindAttempts {
		tcp, err := net.ListenTCP("tcp", net.TCPAddrFromAddrPort(bind))
		if err != nil {
			return nil, nil, fmt.Errorf("swimnet: listen tcp %v: %w", bind, err)
		}
		port := uint16(tcp.Addr().(*net.TCPAddr).Port)
		udp, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(bind.Addr(), port)))
		if err == nil {
			return tcp, udp, nil
		}
		tcp.Close()
		lastErr = err
		if bind.Port() != 0 || !errors.Is(err, syscall.EADDRINUSE) {
			break
		}
	}
	return nil, nil, fmt.Errorf("swimnet: listen udp %v: %w", bind, lastErr)
}

// Addr implements Transport.
func (t *NetTransport) Addr() netip.AddrPort { return t.addr }

// LocalAddr returns the address the sockets are bound to.
func (t *NetTransport) LocalAddr() netip.AddrPort {
	return t.tcp.Addr().(*net.TCPAddr).AddrPort()
}

// Packets implements Transport.
func (t *NetTransport) Packets() <-chan Inbound { return t.packets }

// Streams implements Transport.
func (t *NetTransport) Streams() <-chan Incoming { return t.streams }

// Stats returns the transport's counters.
func (t *NetTransport) Stats() NetStats {
	return NetStats{
		PacketsReceived:  t.received.Load(),
		PacketsDropped:   t.dropped.Load(),
		PacketsOversized: t.oversized.Load(),
		StreamsAccepted:  t.accepted.Load(),
		StreamsRejected:  t.rejected.Load(),
	}
}

// WriteTo implements Transport.
func (t *NetTransport) WriteTo(b []byte, to netip.AddrPort) error {
	if _, err := t.udp.WriteToUDPAddrPort(b, to); err != nil {
		return fmt.Errorf("swimnet: send to %v: %w", to, err)
	}
	return nil
}

// DialStream implements Transport.
func (t *NetTransport) DialStream(ctx context.Context, to netip.AddrPort) (Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", to.String())
	if err != nil {
		return nil, fmt.Errorf("swimnet: dial %v: %w", to, err)
	}
	return c.(*net.TCPConn), nil
}

// Shutdown implements Transport.
func (t *NetTransport) Shutdown() error {
	var err error
	t.once.Do(func() {
		close(t.done)
		err = errors.Join(t.tcp.Close(), t.udp.Close())
		t.wg.Wait()
		// Connections accepted but never taken.
		for {
			select {
			case in := <-t.streams:
				in.Conn.Close()
				continue
			default:
			}
			break
		}
	})
	return err
}

func (t *NetTransport) readLoop() {
	defer t.wg.Done()
	// One byte more than the limit tells an oversized datagram from one
	// of exactly the limit: the kernel truncates to the buffer.
	buf := make([]byte, t.cfg.MaxPacketBytes+1)
	for {
		n, from, err := t.udp.ReadFromUDPAddrPort(buf)
		if err != nil {
			if t.closed() {
				return
			}
			continue // ICMP errors surface here on some systems; keep reading
		}
		if n > t.cfg.MaxPacketBytes {
			t.oversized.Add(1)
			continue
		}
		p := Inbound{From: netip.AddrPortFrom(from.Addr().Unmap(), from.Port()), Buf: append([]byte(nil), buf[:n]...)}
		select {
		case t.packets <- p:
			t.received.Add(1)
		default:
			t.dropped.Add(1)
		}
	}
}

func (t *NetTransport) acceptLoop() {
	defer t.wg.Done()
	for {
		c, err := t.tcp.AcceptTCP()
		if err != nil {
			if t.closed() {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			// Out of file descriptors and the like: back off a little
			// rather than spin; Shutdown interrupts the wait.
			select {
			case <-t.done:
				return
			case <-time.After(50 * time.Millisecond):
			}
			continue
		}
		select {
		case t.slots <- struct{}{}:
		default:
			t.rejected.Add(1)
			c.Close()
			continue
		}
		c.SetDeadline(time.Now().Add(t.cfg.StreamTimeout))
		from := c.RemoteAddr().(*net.TCPAddr).AddrPort()
		in := Incoming{From: netip.AddrPortFrom(from.Addr().Unmap(), from.Port()), Conn: &slotConn{TCPConn: c, slots: t.slots}}
		// The queue holds MaxStreams and every queued stream holds a slot,
		// so this send never blocks.
		t.streams <- in
		t.accepted.Add(1)
	}
}

func (t *NetTransport) closed() bool {
	select {
	case <-t.done:
		return true
	default:
		return false
	}
}

// slotConn releases its stream slot on the first Close.
type slotConn struct {
	*net.TCPConn
	slots chan struct{}
	once  sync.Once
}

func (c *slotConn) Close() error {
	err := c.TCPConn.Close()
	c.once.Do(func() { <-c.slots })
	return err
}

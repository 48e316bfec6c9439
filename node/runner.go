package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshnode/meshnode/swim"
	"github.com/meshnode/meshnode/wire"
)

// membership is what the node needs of the membership layer; runnerMembership
// implements it over swim.Runner.
type membership interface {
	// Self and Members return snapshots; Members includes self and the
	// dead and left tombstones.
	Self() swim.Member
	Members() []swim.Member
	// NumAlive returns the members alive or suspect, self included.
	NumAlive() int
	// Joined reports whether the last Join has succeeded (true when none
	// was asked for).
	Joined() bool
	// Join starts joining through seeds and returns at once; Joined turns
	// true when an attempt succeeds.
	Join(seeds []string) error
	Leave(timeout time.Duration) error
	// Broadcast gossips d; SendData sends d to one member in one UDP
	// packet, failing with ErrTooLarge when it does not fit (use a stream).
	Broadcast(d wire.Data) error
	SendData(to netip.AddrPort, d wire.Data) error
	// MaxDataBytes is the largest Data payload SendData and Broadcast take.
	MaxDataBytes() int
}

// ErrTooLarge reports a payload that must travel over a stream.
var ErrTooLarge = errors.New("node: too large for a packet")

// ErrClosed reports a call on a node that is shut down.
var ErrClosed = errors.New("node: closed")

// runnerMembership drives swim.Runner over the node's transport. Gossiped
// and directly sent Data reach the node through the Runner's Delegate.
type runnerMembership struct {
	r      *swim.Runner
	t      *transport
	ctx    context.Context // ends at Shutdown
	joined atomic.Bool
	// mu guards codec, used to encode direct Data packets.
	mu      sync.Mutex
	codec   *wire.Codec
	maxData int
	wg      *sync.WaitGroup
}

// newRunnerMembership starts a swim Runner over t with opts (its Wire
// configuration is t's).
func newRunnerMembership(ctx context.Context, t *transport, cfg swim.Config, id swim.Identity, opts swim.RunnerOptions, onEvent func(swim.Event), wg *sync.WaitGroup) (*runnerMembership, error) {
	codec, err := wire.NewCodec(t.codecCfg)
	if err != nil {
		return nil, err
	}
	cfg.MaxPacketBytes = codec.BudgetBytes()
	opts.Wire = t.codecCfg
	opts.StreamBudget = t.streamBudget
	r, err := swim.NewRunner(cfg, id, (*swimTransport)(t), opts)
	if err != nil {
		return nil, err
	}
	m := &runnerMembership{r: r, t: t, ctx: ctx, codec: codec, wg: wg,
		// Data's msgpack framing: array header, kind, bin header.
		maxData: codec.MaxMessageBytes() - 16}
	m.joined.Store(true)
	if err := r.Start(); err != nil {
		return nil, err
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ev := range r.Events() {
			onEvent(ev)
		}
	}()
	return m, nil
}

func (m *runnerMembership) Self() swim.Member      { return m.r.Self() }
func (m *runnerMembership) Members() []swim.Member { return m.r.Members() }
func (m *runnerMembership) NumAlive() int          { return m.r.NumAlive() }
func (m *runnerMembership) Joined() bool           { return m.joined.Load() }
func (m *runnerMembership) MaxDataBytes() int      { return m.maxData }

func (m *runnerMembership) Join(seeds []string) error {
	if len(seeds) == 0 {
		return fmt.Errorf("%w: no seeds", ErrBadRequest)
	}
	m.joined.Store(false)
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		// Until the node shuts down: the Runner backs off between attempts.
		if _, err := m.r.Join(m.ctx, seeds...); err == nil {
			m.joined.Store(true)
		}
	}()
	return nil
}

func (m *runnerMembership) Leave(timeout time.Duration) error { return m.r.Leave(timeout) }

func (m *runnerMembership) Broadcast(d wire.Data) error {
	if len(d.Payload) > m.maxData {
		return ErrTooLarge
	}
	return m.r.Broadcast(d.Kind, d.Payload)
}

func (m *runnerMembership) SendData(to netip.AddrPort, d wire.Data) error {
	if len(d.Payload) > m.maxData {
		return ErrTooLarge
	}
	m.mu.Lock()
	buf, err := m.codec.AppendPacket(nil, &d)
	m.mu.Unlock()
	if err != nil {
		return err
	}
	return m.t.writeUDP(buf, to)
}

func (m *runnerMembership) shutdown() error { return m.r.Shutdown() }

// swimTransport is the node's transport as swim.Transport: the Runner gets
// the UDP packets and the TCP streams that start with chanSwim; the sync
// engine's streams never reach it.
type swimTransport transport

func (s *swimTransport) WriteTo(b []byte, to netip.AddrPort) error {
	return (*transport)(s).writeUDP(b, to)
}

func (s *swimTransport) Packets() <-chan swim.Inbound { return s.packets }

func (s *swimTransport) DialStream(ctx context.Context, to netip.AddrPort) (swim.Conn, error) {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(DefaultSyncTimeout)
	}
	c, err := (*transport)(s).dial(ctx, to, chanSwim, deadline)
	if err != nil {
		return nil, err
	}
	return c.(swim.Conn), nil
}

func (s *swimTransport) Streams() <-chan swim.Incoming { return s.streams }

func (s *swimTransport) Addr() netip.AddrPort { return s.addr }

func (s *swimTransport) Shutdown() error { return (*transport)(s).close() }

// readLoop hands received datagrams to the Runner, dropping (and counting)
// what it has no room for.
func (t *transport) readLoop(wg *sync.WaitGroup) {
	defer wg.Done()
	buf := make([]byte, 65536)
	for {
		n, from, err := t.udp.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		if t.cut.Load() {
			continue
		}
		t.udpRecv.Add(uint64(n))
		select {
		case t.packets <- swim.Inbound{From: netip.AddrPortFrom(from.Addr().Unmap(), from.Port()), Buf: append([]byte(nil), buf[:n]...)}:
		default:
			t.dropped.Add(1)
		}
	}
}

package node

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

	"github.com/meshnode/meshnode/swim"
	"github.com/meshnode/meshnode/swim/swimnet"
	"github.com/meshnode/meshnode/wire"
	"golang.org/x/sync/errgroup"
)

// ErrTooLarge reports a payload that must travel over a stream.
var ErrTooLarge = errors.New("node: too large for a packet")

// ErrClosed reports a call on a node that is shut down.
var ErrClosed = errors.New("node: closed")

// membership drives swimnet.Runner over the node's transport: it is what the
// node needs of the membership layer. Gossiped and directly sent Data reach
// the node through the Runner's Delegate. Its goroutines (event delivery,
// the join loop) run in the node's group and end with the node's context.
type membership struct {
	r      *swimnet.Runner
	t      *transport
	ctx    context.Context // ends at Shutdown
	g      *errgroup.Group // the node's goroutines
	joined atomic.Bool
	// mu guards codec, used to encode direct Data packets.
	mu      sync.Mutex
	codec   *wire.Codec
	maxData int
	// joinMu orders Join calls; join is the last join loop started.
	joinMu sync.Mutex
	join   *joinLoop
}

// joinLoop is one join in flight: the Runner's attempts through seeds,
// with backoff, until one succeeds or cancel is called.
type joinLoop struct {
	seeds  []string
	cancel context.CancelFunc
	done   chan struct{} // closed when the loop has ended
}

// newMembership starts a swim Runner over t with opts (its Wire
// configuration is t's); its goroutines run in g until ctx ends.
func newMembership(ctx context.Context, g *errgroup.Group, t *transport, cfg swim.Config, id swim.Identity, opts swimnet.RunnerOptions, onEvent func(swim.Event)) (*membership, error) {
	codec, err := wire.NewCodec(t.codecCfg)
	if err != nil {
		return nil, err
	}
	cfg.MaxPacketBytes = codec.BudgetBytes()
	opts.Wire = t.codecCfg
	opts.StreamBudget = t.streamBudget
	r, err := swimnet.NewRunner(cfg, id, t, opts)
	if err != nil {
		return nil, err
	}
	m := &membership{r: r, t: t, ctx: ctx, g: g, codec: codec,
		maxData: codec.MaxMessageBytes() - dataFramingBytes}
	m.joined.Store(true)
	if err := r.Start(); err != nil {
		return nil, err
	}
	g.Go(func() error {
		for ev := range r.Events() {
			onEvent(ev)
		}
		return nil
	})
	return m, nil
}

// Self and Members return snapshots; Members includes self and the dead
// and left tombstones.
func (m *membership) Self() swim.Member      { return m.r.Self() }
func (m *membership) Members() []swim.Member { return m.r.Members() }

// NumAlive returns the members alive or suspect, self included.
func (m *membership) NumAlive() int { return m.r.NumAlive() }

// Joined reports whether the last Join has succeeded (true when none was
// asked for).
func (m *membership) Joined() bool { return m.joined.Load() }

// MaxDataBytes is the largest Data payload SendData and Broadcast take.
func (m *membership) MaxDataBytes() int { return m.maxData }

// Join starts joining through seeds and returns at once; Joined turns true
// when an attempt succeeds. There is at most one join loop: a Join through
// the seeds of the loop in flight joins it; a Join through other seeds
// replaces it (the loop in flight is stopped, and Join waits for it to end,
// before the new one starts). The loop ends when an attempt succeeds or the
// node shuts down. fresh, if not nil, runs once the previous loop has ended
// and before the new one starts; it does not run when Join joins the loop
// in flight.
func (m *membership) Join(seeds []string, fresh func()) error {
	if len(seeds) == 0 {
		return fmt.Errorf("%w: no seeds", ErrBadRequest)
	}
	m.joinMu.Lock()
	defer m.joinMu.Unlock()
	if j := m.join; j != nil {
		select {
		case <-j.done:
		default:
			if slices.Equal(j.seeds, seeds) {
				return nil
			}
			j.cancel()
			<-j.done
		}
	}
	if m.ctx.Err() != nil {
		return ErrClosed
	}
	if fresh != nil {
		fresh()
	}
	ctx, cancel := context.WithCancel(m.ctx)
	j := &joinLoop{seeds: slices.Clone(seeds), cancel: cancel, done: make(chan struct{})}
	m.join = j
	m.joined.Store(false)
	m.g.Go(func() error {
		defer close(j.done)
		defer cancel()
		m.joinLoop(ctx, j.seeds)
		return nil
	})
	return nil
}

// joinLoop runs the Runner's join attempts (it backs off between them)
// until one succeeds or ctx ends.
func (m *membership) joinLoop(ctx context.Context, seeds []string) {
	if _, err := m.r.Join(ctx, seeds...); err == nil {
		m.joined.Store(true)
	}
}

// Leave announces a graceful departure and waits up to timeout for it to
// spread.
func (m *membership) Leave(timeout time.Duration) error { return m.r.Leave(timeout) }

// Broadcast gossips d.
func (m *membership) Broadcast(d wire.Data) error {
	if len(d.Payload) > m.maxData {
		return ErrTooLarge
	}
	return m.r.Broadcast(d.Kind, d.Payload)
}

// SendData sends d to one member in one UDP packet, failing with
// ErrTooLarge when it does not fit (use a stream).
func (m *membership) SendData(to netip.AddrPort, d wire.Data) error {
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

func (m *membership) shutdown() error { return m.r.Shutdown() }

// The transport is swim's Transport: the Runner gets the UDP packets and
// the TCP streams that start with chanSwim; the replication streams
// (anti-entropy, delta pushes) never reach it.
var _ swimnet.Transport = (*transport)(nil)

// WriteTo sends one UDP packet; it implements swimnet.Transport.
func (t *transport) WriteTo(b []byte, to netip.AddrPort) error { return t.writeUDP(b, to) }

// Packets returns the received datagrams; it implements swimnet.Transport.
func (t *transport) Packets() <-chan swimnet.Inbound { return t.packets }

// DialStream opens a swim stream; it implements swimnet.Transport.
func (t *transport) DialStream(ctx context.Context, to netip.AddrPort) (swimnet.Conn, error) {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(DefaultStreamTimeout)
	}
	c, err := t.dial(ctx, to, chanSwim, deadline)
	if err != nil {
		return nil, err
	}
	return c.(swimnet.Conn), nil
}

// Streams returns the accepted swim streams; it implements swimnet.Transport.
func (t *transport) Streams() <-chan swimnet.Incoming { return t.streams }

// Addr returns the advertised address; it implements swimnet.Transport.
func (t *transport) Addr() netip.AddrPort { return t.addr }

// Shutdown closes the sockets; it implements swimnet.Transport.
func (t *transport) Shutdown() error { return t.close() }

// readLoop hands received datagrams to the Runner, dropping (and counting)
// what it has no room for. It returns when the UDP socket is closed.
func (t *transport) readLoop() error {
	buf := make([]byte, 65536)
	for {
		n, from, err := t.udp.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			continue
		}
		t.udpRecv.Add(uint64(n))
		select {
		case t.packets <- swimnet.Inbound{From: netip.AddrPortFrom(from.Addr().Unmap(), from.Port()), Buf: append([]byte(nil), buf[:n]...)}:
		default:
			t.dropped.Add(1)
		}
	}
}

package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshnode/meshnode/swim"
	"github.com/meshnode/meshnode/wire"
)

// membership is what the node needs of the membership layer. swimDriver
// implements it over swim.Core; swim's own runner can take its place.
type membership interface {
	// Self and Members return snapshots; Members includes self and the
	// dead and left tombstones.
	Self() swim.Member
	Members() []swim.Member
	// Joined reports whether the last Join has succeeded (true when none
	// was asked for).
	Joined() bool
	Join(ctx context.Context, seeds []string) error
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

// swimDriver runs a swim.Core: one goroutine owns the core and the timer,
// one reads the UDP socket, and stream exchanges run on their own goroutines.
type swimDriver struct {
	t       *transport
	codec   *wire.Codec // loop goroutine only
	core    *swim.Core  // loop goroutine only
	onData  func(swim.Received)
	onEvent func(swim.Event)
	log     func(msg string, args ...any)

	in     chan udpPacket
	ctl    chan func(now time.Time)
	done   chan streamResult
	stop   chan struct{}
	wg     *sync.WaitGroup
	ctx    context.Context
	cancel context.CancelFunc

	members  atomic.Pointer[[]swim.Member]
	self     atomic.Pointer[swim.Member]
	joined   atomic.Bool
	leftCh   chan struct{}
	leaving  bool // loop goroutine only
	maxData  int
	dropped  atomic.Uint64 // packets dropped because the loop was behind
	badInput atomic.Uint64 // packets or parts that did not decode
}

type udpPacket struct {
	from netip.AddrPort
	b    []byte
}

type streamResult struct {
	id   uint64
	resp []wire.Message
	err  error
}

type streamRequest struct {
	from  netip.AddrPort
	msgs  []wire.Message
	reply chan []wire.Message
}

func newSwimDriver(t *transport, cfg swim.Config, id swim.Identity, wg *sync.WaitGroup) (*swimDriver, error) {
	codec, err := wire.NewCodec(t.codecCfg)
	if err != nil {
		return nil, err
	}
	cfg.MaxPacketBytes = codec.BudgetBytes()
	core, err := swim.NewCore(cfg, id, rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())), time.Now())
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	d := &swimDriver{
		t: t, codec: codec, core: core,
		in: make(chan udpPacket, 1024), ctl: make(chan func(time.Time), 64), done: make(chan streamResult, 64),
		stop: make(chan struct{}), wg: wg, ctx: ctx, cancel: cancel, leftCh: make(chan struct{}),
		maxData: codec.MaxMessageBytes() - 16, // Data's msgpack framing: array, kind, bin header
	}
	d.publish()
	d.joined.Store(true)
	return d, nil
}

func (d *swimDriver) start() {
	d.wg.Add(2)
	go d.readLoop()
	go d.loop()
}

// close stops the goroutines; the caller closes the sockets and waits.
func (d *swimDriver) close() {
	d.cancel()
	close(d.stop)
}

func (d *swimDriver) readLoop() {
	defer d.wg.Done()
	buf := make([]byte, 65536)
	for {
		n, from, err := d.t.udp.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		if d.t.cut.Load() {
			continue
		}
		d.t.udpRecv.Add(uint64(n))
		select {
		case d.in <- udpPacket{from, append([]byte(nil), buf[:n]...)}:
		case <-d.stop:
			return
		default:
			d.dropped.Add(1)
		}
	}
}

func (d *swimDriver) loop() {
	defer d.wg.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		r := d.core.Ready()
		d.flush(r)
		if d.leaving && d.core.Pending() == 0 {
			select {
			case <-d.leftCh:
			default:
				close(d.leftCh)
			}
		}
		timer.Reset(max(time.Until(r.Next), time.Millisecond))
		select {
		case <-d.stop:
			return
		case pkt := <-d.in:
			d.handlePacket(time.Now(), pkt.from, pkt.b)
		case f := <-d.ctl:
			f(time.Now())
		case res := <-d.done:
			_ = d.core.StreamDone(time.Now(), res.id, res.resp, res.err)
		case <-timer.C:
			d.core.Tick(time.Now())
			d.publish()
		}
	}
}

func (d *swimDriver) handlePacket(now time.Time, from netip.AddrPort, pkt []byte) {
	body, err := d.codec.OpenPacket(pkt)
	if err != nil {
		d.badInput.Add(1)
		return
	}
	r := wire.NewPartReader(body)
	for {
		typ, b, err := r.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			d.badInput.Add(1)
			if errors.Is(err, wire.ErrUnknownType) {
				continue
			}
			return
		}
		m, err := wire.DecodeMessage(typ, b)
		if err != nil {
			d.badInput.Add(1)
			continue
		}
		d.core.HandlePacket(now, from, m)
	}
}

func (d *swimDriver) flush(r swim.Ready) {
	var buf []byte
	for _, p := range r.Packets {
		var err error
		buf, err = d.codec.AppendPacket(buf[:0], p.Msgs...)
		if err != nil {
			d.badInput.Add(1)
			continue
		}
		_ = d.t.writeUDP(buf, p.To)
	}
	for _, s := range r.Streams {
		d.wg.Add(1)
		go d.runStream(s)
	}
	for _, rcv := range r.Data {
		if d.onData != nil {
			d.onData(rcv)
		}
	}
	if len(r.Events) > 0 {
		d.publish()
	}
	for _, ev := range r.Events {
		if d.onEvent != nil {
			d.onEvent(ev)
		}
	}
	d.joined.Store(d.core.Joined())
}

func (d *swimDriver) publish() {
	ms := d.core.Members()
	self := d.core.Self()
	d.members.Store(&ms)
	d.self.Store(&self)
}

func (d *swimDriver) runStream(s swim.Stream) {
	defer d.wg.Done()
	resp, err := d.exchange(s)
	select {
	case d.done <- streamResult{s.ID, resp, err}:
	case <-d.stop:
	}
}

func (d *swimDriver) exchange(s swim.Stream) ([]wire.Message, error) {
	c, err := d.t.dial(d.ctx, s.To, chanSwim, s.Deadline)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	sio, err := newStreamIO(c, d.t.codecCfg)
	if err != nil {
		return nil, err
	}
	if err := sio.writeMsgs(s.Msgs); err != nil {
		return nil, err
	}
	if s.OneWay {
		return nil, nil
	}
	return sio.readMsgs()
}

// serveStream answers a swim stream a peer opened.
func (d *swimDriver) serveStream(c net.Conn) error {
	sio, err := newStreamIO(c, d.t.codecCfg)
	if err != nil {
		return err
	}
	msgs, err := sio.readMsgs()
	if err != nil {
		return err
	}
	from, _ := netip.ParseAddrPort(c.RemoteAddr().String())
	reply := make(chan []wire.Message, 1)
	if err := d.do(func(now time.Time) { reply <- d.core.HandleStream(now, from, msgs) }); err != nil {
		return err
	}
	var resp []wire.Message
	select {
	case resp = <-reply:
	case <-d.stop:
		return ErrClosed
	}
	if resp == nil {
		return nil
	}
	return sio.writeMsgs(resp)
}

// do runs f on the loop goroutine.
func (d *swimDriver) do(f func(now time.Time)) error {
	select {
	case d.ctl <- f:
		return nil
	case <-d.stop:
		return ErrClosed
	}
}

// call runs f on the loop goroutine and waits for its error.
func (d *swimDriver) call(f func(now time.Time) error) error {
	ch := make(chan error, 1)
	if err := d.do(func(now time.Time) { ch <- f(now) }); err != nil {
		return err
	}
	select {
	case err := <-ch:
		return err
	case <-d.stop:
		return ErrClosed
	}
}

func (d *swimDriver) Self() swim.Member      { return *d.self.Load() }
func (d *swimDriver) Members() []swim.Member { return *d.members.Load() }
func (d *swimDriver) Joined() bool           { return d.joined.Load() }
func (d *swimDriver) MaxDataBytes() int      { return d.maxData }

func (d *swimDriver) Join(ctx context.Context, seeds []string) error {
	var addrs []netip.AddrPort
	var errs []error
	for _, s := range seeds {
		host, port, err := net.SplitHostPort(s)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		p, err := net.LookupPort("tcp", port)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, ip := range ips {
			ap := netip.AddrPortFrom(ip.Unmap(), uint16(p))
			if ap != d.Self().Addr {
				addrs = append(addrs, ap)
			}
		}
	}
	if len(addrs) == 0 {
		return fmt.Errorf("node: join: no seed resolves: %w", errors.Join(errs...))
	}
	d.joined.Store(false)
	return d.call(func(now time.Time) error {
		d.core.SetSeeds(addrs)
		d.core.Join(now, addrs)
		return nil
	})
}

func (d *swimDriver) Leave(timeout time.Duration) error {
	if err := d.call(func(now time.Time) error {
		d.core.Leave(now)
		d.leaving = true
		d.publish()
		return nil
	}); err != nil {
		return err
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-d.leftCh:
		return nil
	case <-t.C:
		return fmt.Errorf("node: leave: broadcasts still queued after %v", timeout)
	case <-d.stop:
		return ErrClosed
	}
}

func (d *swimDriver) Broadcast(data wire.Data) error {
	if len(data.Payload) > d.maxData {
		return ErrTooLarge
	}
	return d.call(func(time.Time) error { return d.core.Broadcast(data) })
}

func (d *swimDriver) SendData(to netip.AddrPort, data wire.Data) error {
	if len(data.Payload) > d.maxData {
		return ErrTooLarge
	}
	return d.call(func(time.Time) error {
		buf, err := d.codec.AppendPacket(nil, &data)
		if err != nil {
			return err
		}
		return d.t.writeUDP(buf, to)
	})
}

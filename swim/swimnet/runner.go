package swimnet

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
	"golang.org/x/sync/semaphore"
)

// Runner errors.
var (
	// ErrNotRunning reports a call that needs the protocol loop (Join,
	// Leave) before Start or after Shutdown.
	ErrNotRunning = errors.New("swimnet: runner not running")
	// ErrJoin reports a join whose attempts all failed.
	ErrJoin = errors.New("swimnet: join failed")
	// ErrLeaveTimeout reports a Leave whose announcement was still queued
	// when its timeout passed.
	ErrLeaveTimeout = errors.New("swimnet: leave timed out")
)

// Delegate receives what the cluster sends to the layer above. Its methods
// are called in order from one goroutine of the Runner, never from the
// protocol loop: they may block (delivery then lags, and once the delivery
// buffer is full further items are dropped and counted in
// RunnerStats.DeliveriesDropped) and they may call the Runner. The values are
// the delegate's to keep.
//
// The layer above's push-pull state goes the other way through
// [swim.Config].State, which the core calls synchronously on the protocol loop: it
// must return quickly and must not call the Runner.
type Delegate interface {
	// NotifyData is called with each Data payload gossiped to this member.
	NotifyData(swim.Received)
	// NotifyState is called with the layer above's state a peer sent in a
	// push-pull exchange.
	NotifyState(swim.RemoteState)
}

// RunnerOptions are the Runner's settings beyond the protocol's [swim.Config].
// Zero fields take the defaults in brackets.
type RunnerOptions struct {
	// Wire configures the packet and frame codec: cluster label, keyring,
	// limits. A zero BudgetBytes is set to [swim.Config].MaxPacketBytes.
	Wire wire.Config
	// Delegate, if not nil, receives Data payloads and remote states.
	Delegate Delegate
	// Resolver looks up seed names [net.DefaultResolver].
	Resolver Resolver
	// Rand seeds the core [a random seed].
	Rand *rand.Rand
	// EventBuffer bounds the Events channel [256]; when it is full, events
	// are dropped and counted, never waited for.
	EventBuffer int
	// DeliveryBuffer bounds the items waiting for the Delegate [256].
	DeliveryBuffer int
	// JoinAttempts bounds the attempts of one Join [0: until its context
	// ends].
	JoinAttempts int
	// MaxIncomingStreams bounds the streams peers opened that are served at
	// once [16]. Beyond it up to 3 times as many wait (unread, so holding
	// no buffers) for up to a quarter of the stream timeout, so that a burst
	// of joins through one seed is served rather than sent into backoff;
	// streams beyond that, or that wait too long, are closed and counted.
	MaxIncomingStreams int
	// MaxStreamBytes bounds the bytes of one message reassembled from a
	// stream [wire.DefaultMaxFrameBytes].
	MaxStreamBytes int
	// OnBadInput, if not nil, is called with every packet dropped because
	// it could not be opened or parsed (the same packets
	// RunnerStats.PacketsBad counts), every stream a peer opened whose
	// request could not be read, and every reply that could not be read
	// on a stream this member opened. It is called from the protocol loop
	// and from stream workers, possibly at once: it must be safe for
	// concurrent use, return quickly and not call the Runner.
	OnBadInput func(BadInput)
	// OnJoinFailed, if not nil, is called after every failed attempt of a
	// Join, with the attempt's number and its error, which says for each
	// seed address why it did not answer. It is called from the goroutine
	// that called Join and may block it.
	OnJoinFailed func(attempt int, err error)
	// StreamBudget, if not nil, is charged for the buffers of every stream
	// the Runner reads (they grow with the bytes received); a stream that
	// cannot get budget fails. Share it with the process's other stream
	// readers to bound their total.
	StreamBudget wire.Budget
}

// BadInput describes input a Runner could not read, for
// RunnerOptions.OnBadInput.
type BadInput struct {
	// From is the sender's address: for a stream a peer opened, its
	// ephemeral port; for a reply, the address this member dialled.
	From netip.AddrPort
	// Stream is true for a stream, false for a UDP packet.
	Stream bool
	// Reply is true for the reply to a stream this member opened.
	Reply bool
	// Err wraps the wire error, so errors.Is tells the cause
	// (wire.ErrUnknownKey, wire.ErrAuth, ...). For a stream it may also be
	// an I/O error that says nothing about the peer (a reset, a deadline).
	Err error
}

// RunnerStats counts what a Runner did and dropped, on top of the core's
// counters.
type RunnerStats struct {
	Core              swim.Stats
	EventsDropped     uint64 // events not delivered because the Events buffer was full
	DeliveriesDropped uint64 // payloads and states not delivered because the Delegate lagged
	PacketsBad        uint64 // packets that could not be opened or parsed
	PartsUnknown      uint64 // packet parts and stream messages of unknown types, skipped
	PacketsUnsent     uint64 // packets that could not be encoded or sent
	StreamsRejected   uint64 // streams from peers closed because MaxIncomingStreams were served
	StreamErrors      uint64 // stream exchanges that failed: dial, deadline, framing
	SeedLookups       uint64 // seed resolutions: one per join attempt and per reseed round
}

// Runner drives a [swim.Core] over a Transport. One goroutine, the protocol loop,
// owns the core: it waits for packets, streams, stream results, API calls
// and the core's next deadline, and hands the core's output to the transport
// (packets encoded with the Runner's wire.Codec), to stream workers (bounded,
// with deadlines; their results go back to the loop), to the Events channel
// and to the Delegate. The core therefore needs no lock, and no lock is held
// while events are delivered.
//
// Lifecycle: NewRunner, then Start, then Join; Leave announces a graceful
// departure; Shutdown stops every goroutine and shuts the transport down.
// A Runner's methods are safe for concurrent use.
type Runner struct {
	cfg  swim.Config
	opts RunnerOptions
	tr   Transport
	core *swim.Core

	ctx    context.Context // ends at Shutdown
	cancel context.CancelFunc

	mu        sync.Mutex // guards started, seedNames, and the core while the loop is not running
	started   bool
	seedNames []string // of the last successful Join, re-resolved periodically
	loopDone  chan struct{}
	shutdown  sync.Once
	wg        sync.WaitGroup // stream workers, the delivery and reseed goroutines

	calls      chan call
	results    chan streamResult
	serves     chan serveReq
	events     chan swim.Event
	deliveries chan any
	inSlots    *semaphore.Weighted // streams served at once
	inWaiting  *semaphore.Weighted // streams waiting briefly for a slot
	codecs     sync.Pool           // *wire.Codec for stream workers

	// Owned by the loop.
	codec       *wire.Codec
	pbuf        []byte
	msgs        map[wire.Type]wire.Message
	joinStreams map[uint64]struct{}
	joinOK      int
	joinErrs    []error // of the join exchanges of the current attempt that failed
	joinWaiters []chan joinResult
	leaveWaits  []chan struct{}

	eventsDropped, deliveriesDropped, packetsBad, partsUnknown,
	packetsUnsent, streamsRejected, streamErrors, seedLookups atomic.Uint64
}

type call struct {
	fn   func()
	done chan struct{}
}

type streamResult struct {
	id   uint64
	msgs []wire.Message
	err  error
}

type serveReq struct {
	from  netip.AddrPort
	msgs  []wire.Message
	reply chan []wire.Message
}

type joinResult struct {
	n      int
	joined bool
	errs   []error // why seeds did not answer
}

// NewRunner returns a Runner for member self over t, not yet started. If
// self.Addr is not valid, the transport's address is used. Once NewRunner
// succeeds the Runner owns t (Shutdown shuts it down); if it fails, t is
// still the caller's.
func NewRunner(cfg swim.Config, self swim.Identity, t Transport, opts RunnerOptions) (*Runner, error) {
	if !self.Addr.IsValid() {
		self.Addr = t.Addr()
	}
	if opts.Wire.BudgetBytes == 0 {
		opts.Wire.BudgetBytes = cfg.MaxPacketBytes
	}
	if opts.Resolver == nil {
		opts.Resolver = net.DefaultResolver
	}
	if opts.Rand == nil {
		opts.Rand = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	if opts.EventBuffer <= 0 {
		opts.EventBuffer = 256
	}
	if opts.DeliveryBuffer <= 0 {
		opts.DeliveryBuffer = 256
	}
	if opts.MaxIncomingStreams <= 0 {
		opts.MaxIncomingStreams = 16
	}
	if opts.MaxStreamBytes <= 0 {
		opts.MaxStreamBytes = wire.DefaultMaxFrameBytes
	}
	codec, err := wire.NewCodec(opts.Wire)
	if err != nil {
		return nil, fmt.Errorf("swimnet: runner codec: %w", err)
	}
	core, err := swim.NewCore(cfg, self, opts.Rand, time.Now())
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Runner{
		cfg:         cfg,
		opts:        opts,
		tr:          t,
		core:        core,
		ctx:         ctx,
		cancel:      cancel,
		loopDone:    make(chan struct{}),
		calls:       make(chan call),
		results:     make(chan streamResult),
		serves:      make(chan serveReq),
		events:      make(chan swim.Event, opts.EventBuffer),
		deliveries:  make(chan any, opts.DeliveryBuffer),
		inSlots:     semaphore.NewWeighted(int64(opts.MaxIncomingStreams)),
		inWaiting:   semaphore.NewWeighted(int64(waitingPerSlot * opts.MaxIncomingStreams)),
		codec:       codec,
		msgs:        make(map[wire.Type]wire.Message),
		joinStreams: make(map[uint64]struct{}),
	}, nil
}

// Start starts the protocol loop, the goroutine that re-resolves seeds, and
// the delivery goroutine if there is a Delegate. It fails after Shutdown or
// a second Start.
func (r *Runner) Start() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.started {
		return ErrNotRunning
	}
	r.started = true
	if r.opts.Delegate != nil {
		r.wg.Add(1)
		go r.deliverLoop()
	}
	r.wg.Add(1)
	go r.reseedLoop()
	go r.loop()
	return nil
}

// Shutdown stops the Runner without announcing anything (call Leave first
// for a graceful departure): it stops the loop, shuts the transport down,
// ends the stream workers and the delivery goroutine, waits for all of them
// and closes the Events channel. It is idempotent; later calls return nil.
// Members and Stats still answer afterwards, from the final state.
func (r *Runner) Shutdown() error {
	var err error
	r.shutdown.Do(func() {
		r.cancel()
		r.mu.Lock()
		started := r.started
		r.started = true
		if !started {
			close(r.loopDone)
		}
		r.mu.Unlock()
		<-r.loopDone
		err = r.tr.Shutdown()
		r.wg.Wait()
		close(r.events)
	})
	return err
}

// Events returns the channel of membership events. It is buffered
// (RunnerOptions.EventBuffer); when the reader falls behind, events are
// dropped and counted in RunnerStats.EventsDropped rather than stall the
// protocol. It is closed by Shutdown.
func (r *Runner) Events() <-chan swim.Event { return r.events }

// Addr returns the address this member advertises.
func (r *Runner) Addr() netip.AddrPort { return r.tr.Addr() }

// do runs fn with exclusive access to the core: on the loop while it runs,
// under the mutex before Start and after Shutdown. It reports whether the
// loop ran it.
func (r *Runner) do(fn func()) bool {
	r.mu.Lock()
	if !r.started {
		defer r.mu.Unlock()
		fn()
		return false
	}
	r.mu.Unlock()
	if r.onLoop(fn) {
		return true
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	fn()
	return false
}

// onLoop runs fn on the loop and reports true, or reports false without
// running it if the loop is not running.
func (r *Runner) onLoop(fn func()) bool {
	r.mu.Lock()
	started := r.started
	r.mu.Unlock()
	if !started {
		return false
	}
	c := call{fn: fn, done: make(chan struct{})}
	select {
	case r.calls <- c:
		<-c.done
		return true
	case <-r.loopDone:
		return false
	}
}

// Members returns a snapshot of every member known, self included, dead and
// left tombstones included, sorted by name.
func (r *Runner) Members() []swim.Member {
	var ms []swim.Member
	r.do(func() { ms = r.core.Members() })
	return ms
}

// Member returns the record of the named member.
func (r *Runner) Member(name string) (m swim.Member, ok bool) {
	r.do(func() { m, ok = r.core.Member(name) })
	return m, ok
}

// Self returns this member's own record.
func (r *Runner) Self() swim.Member {
	var m swim.Member
	r.do(func() { m = r.core.Self() })
	return m
}

// NumAlive returns the number of members alive or suspect, self included.
func (r *Runner) NumAlive() int {
	var n int
	r.do(func() { n = r.core.NumAlive() })
	return n
}

// SetMeta replaces the local metadata (at most [swim.Config].MaxMetaBytes) and
// broadcasts it. b is copied.
func (r *Runner) SetMeta(b []byte) error {
	var err error
	r.do(func() { err = r.core.SetMeta(time.Now(), b) })
	return err
}

// Broadcast queues payload for gossip to every member, tagged with kind for
// the layer above. It must fit one packet on its own (ErrTooLarge
// otherwise: send large state through push-pull);
// ErrQueueFull reports that the queue is full of more urgent news. payload is
// copied.
func (r *Runner) Broadcast(kind uint8, payload []byte) error {
	d := wire.Data{Kind: kind, Payload: append([]byte(nil), payload...)}
	var err error
	r.do(func() { err = r.core.Broadcast(d) })
	return err
}

// Stats returns the Runner's and the core's counters.
func (r *Runner) Stats() RunnerStats {
	var s RunnerStats
	r.do(func() { s.Core = r.core.Stats() })
	s.EventsDropped = r.eventsDropped.Load()
	s.DeliveriesDropped = r.deliveriesDropped.Load()
	s.PacketsBad = r.packetsBad.Load()
	s.PartsUnknown = r.partsUnknown.Load()
	s.PacketsUnsent = r.packetsUnsent.Load()
	s.StreamsRejected = r.streamsRejected.Load()
	s.StreamErrors = r.streamErrors.Load()
	s.SeedLookups = r.seedLookups.Load()
	return s
}

// Leave announces that this member leaves the cluster and waits until the
// announcement has been gossiped its full number of times, or timeout.
// Afterwards the member probes no one and refuses to rejoin; call Shutdown to
// stop. A timeout returns an error matching ErrLeaveTimeout: the departure
// may still become known through the others' failure detection.
func (r *Runner) Leave(timeout time.Duration) error {
	done := make(chan struct{}, 1)
	if !r.onLoop(func() {
		r.core.Leave(time.Now())
		r.leaveWaits = append(r.leaveWaits, done)
	}) {
		return ErrNotRunning
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-done:
		return nil
	case <-t.C:
		var n int
		r.do(func() { n = r.core.Pending() })
		return fmt.Errorf("%w after %v: %d broadcasts still queued", ErrLeaveTimeout, timeout, n)
	case <-r.ctx.Done():
		return ErrNotRunning
	}
}

// loop is the protocol loop: the only goroutine that touches the core while
// the Runner runs.
func (r *Runner) loop() {
	defer close(r.loopDone)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	packets, streams := r.tr.Packets(), r.tr.Streams()
	for {
		next := r.flush()
		r.checkWaiters()
		timer.Reset(max(time.Until(next), 0))
		select {
		case <-r.ctx.Done():
			return
		case <-timer.C:
			r.core.Tick(time.Now())
		case p := <-packets:
			r.handlePacket(p)
		case in := <-streams:
			r.admit(in)
		case res := <-r.results:
			if _, ok := r.joinStreams[res.id]; ok {
				delete(r.joinStreams, res.id)
				if res.err == nil && len(res.msgs) > 0 {
					r.joinOK++
				} else if res.err != nil && len(r.joinErrs) < maxJoinErrs {
					r.joinErrs = append(r.joinErrs, res.err)
				}
			}
			_ = r.core.StreamDone(time.Now(), res.id, res.msgs, res.err) // unknown: the core gave up on it
		case req := <-r.serves:
			req.reply <- r.core.HandleStream(time.Now(), req.from, req.msgs)
		case c := <-r.calls:
			c.fn()
			close(c.done)
		}
	}
}

// flush carries out everything the core wants done and returns when it next
// needs Tick.
func (r *Runner) flush() time.Time {
	rd := r.core.Ready()
	for _, p := range rd.Packets {
		var err error
		r.pbuf, err = r.codec.AppendPacket(r.pbuf[:0], p.Msgs...)
		if err == nil {
			err = r.tr.WriteTo(r.pbuf, p.To)
		}
		if err != nil {
			r.packetsUnsent.Add(1)
		}
	}
	for _, s := range rd.Streams {
		if pp, ok := s.Msgs[0].(*wire.PushPull); ok && pp.Join {
			r.joinStreams[s.ID] = struct{}{}
		}
		r.wg.Add(1)
		go r.open(s)
	}
	for _, ev := range rd.Events {
		select {
		case r.events <- ev:
		default:
			r.eventsDropped.Add(1)
		}
	}
	if r.opts.Delegate != nil {
		for _, d := range rd.Data {
			r.deliver(d)
		}
		for _, s := range rd.States {
			r.deliver(s)
		}
	}
	return rd.Next
}

func (r *Runner) deliver(v any) {
	select {
	case r.deliveries <- v:
	default:
		r.deliveriesDropped.Add(1)
	}
}

// checkWaiters answers the Join and Leave calls whose condition holds.
func (r *Runner) checkWaiters() {
	// A join attempt ends when all its exchanges (with every seed, at
	// once) have ended, so that the count says how many seeds answered.
	if len(r.joinWaiters) > 0 && len(r.joinStreams) == 0 {
		joined := r.core.Joined()
		for _, w := range r.joinWaiters {
			w <- joinResult{n: r.joinOK, joined: joined, errs: r.joinErrs}
		}
		r.joinWaiters = r.joinWaiters[:0]
	}
	if len(r.leaveWaits) > 0 && (r.core.Pending() == 0 || r.core.NumAlive() == 1) {
		for _, w := range r.leaveWaits {
			w <- struct{}{}
		}
		r.leaveWaits = r.leaveWaits[:0]
	}
}

// handlePacket opens a packet and hands its messages to the core in order.
func (r *Runner) handlePacket(p Inbound) {
	body, err := r.codec.OpenPacket(p.Buf)
	if err != nil {
		r.badPacket(p.From, err)
		return
	}
	now := time.Now()
	pr := wire.NewPartReader(body)
	for {
		t, b, err := pr.Next()
		if err == io.EOF {
			return
		}
		if errors.Is(err, wire.ErrUnknownType) {
			r.partsUnknown.Add(1)
			continue
		}
		if err != nil {
			r.badPacket(p.From, err)
			return
		}
		m := r.msgs[t]
		if m == nil {
			if m, err = wire.NewMessage(t); err != nil {
				r.partsUnknown.Add(1)
				continue
			}
			r.msgs[t] = m
		}
		if err := r.codec.Decode(m, b); err != nil {
			r.badPacket(p.From, fmt.Errorf("swimnet: %v part: %w", t, err))
			return
		}
		r.core.HandlePacket(now, p.From, m)
	}
}

// badPacket counts a packet that could not be opened or parsed and reports
// it to RunnerOptions.OnBadInput.
func (r *Runner) badPacket(from netip.AddrPort, err error) {
	r.packetsBad.Add(1)
	if r.opts.OnBadInput != nil {
		r.opts.OnBadInput(BadInput{From: from, Err: err})
	}
}

// deliverLoop hands Data payloads and remote states to the Delegate.
func (r *Runner) deliverLoop() {
	defer r.wg.Done()
	for {
		select {
		case <-r.ctx.Done():
			return
		case v := <-r.deliveries:
			switch v := v.(type) {
			case swim.Received:
				r.opts.Delegate.NotifyData(v)
			case swim.RemoteState:
				r.opts.Delegate.NotifyState(v)
			}
		}
	}
}

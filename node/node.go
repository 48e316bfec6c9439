package node

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshnode/meshnode/radix"
	"github.com/meshnode/meshnode/replica"
	"github.com/meshnode/meshnode/store"
	"github.com/meshnode/meshnode/swim"
	"github.com/meshnode/meshnode/swim/swimnet"
	"github.com/meshnode/meshnode/wire"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/semaphore"
)

// Node is one mesh node: membership, the replicated store and index, their
// replication (delta flushing and anti-entropy), the HTTP API and persistence.
//
// Lifecycle: New, then Start (binds the port and the API), then Join (or
// nothing, for the first node). Leave announces departure and takes a final
// snapshot; Shutdown stops everything and may follow Leave or replace it
// (a crash-like stop). Methods are safe for concurrent use.
type Node struct {
	cfg  Config
	log  *slog.Logger
	name string
	gen  uint64
	st   *state
	eng  *replica.Engine // replication decisions over st.store, guarded by st.mu
	met  *metrics

	token   string
	keyring *wire.Keyring
	// keyringMu orders the API's keyring changes and their saving.
	keyringMu sync.Mutex
	tlsSrv    *tls.Config
	cert      atomic.Pointer[tls.Certificate] // current pair, for ReloadTLS
	tlsCli    *tls.Config
	apiTLS    bool
	handler   http.Handler
	apiLn     net.Listener
	apiSrv    *http.Server
	tr        *transport
	mem       *membership // nil before Start
	// ctx ends at Shutdown, the node's one stop signal; every goroutine
	// the node starts runs in g and ends when ctx does.
	ctx            context.Context
	cancel         context.CancelFunc
	g              errgroup.Group
	started        atomic.Bool
	leaving        atomic.Bool
	joinWant       atomic.Bool
	synced         atomic.Bool         // a first anti-entropy round succeeded (or none was needed)
	antiEntropySem *semaphore.Weighted // anti-entropy streams served
	pushes         *semaphore.Weighted // peers with a push stream (push.go)
	pushQ          pushers
	pending        *pendingConns       // accepted connections not yet proven
	served         *semaphore.Weighted // proven connections being served
	// streamBuf bounds the bytes all stream readers hold; strangerBuf,
	// a quarter of it, what connections not yet proven may hold.
	streamBuf, strangerBuf *streamBudget
	watchers               atomic.Int64
	// subscribed counts watch requests whose start index is fixed (tests
	// wait for it before writing).
	subscribed atomic.Int64
	closeOnce  sync.Once
	// memNet, when a test sets it before Start, carries the gossip port
	// instead of sockets (memnet.go).
	memNet *swimnet.MemNetwork
	// rejects rate-limits the log lines of refused packets and streams and
	// of failed join attempts; joinErr is the last failed attempt's error.
	rejects *rateLog
	joinErr atomic.Pointer[error]
	// proxy is the routing proxy (nil without Config.ProxyAddr); remote
	// caches the loads other members' proxies published, rebuilt when
	// nsLoad or memberVersion (bumped by every membership event) changes.
	proxy         *proxy
	remote        remoteLoads
	memberVersion atomic.Uint64
	// loadSweep is sweepLoads' state (maintainLoop's goroutine).
	loadSweep loadSweeper
	// kv holds the engine KV event subscriptions this node runs
	// (kvsub.go); evIx is the index's event-sourced side they feed.
	kv   *kvSubs
	evIx EventIndex
}

// New builds a node from cfg: it validates cfg, loads keys and certificates,
// restores a snapshot from cfg.DataDir if there is one, and registers
// metrics. It opens no socket: Start does.
func New(cfg Config) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	n := &Node{cfg: cfg, log: cfg.Logger, antiEntropySem: semaphore.NewWeighted(int64(cfg.MaxAntiEntropyStreams)), pushes: semaphore.NewWeighted(maxPushesInFlight),
		pending: newPendingConns(maxPendingConns), served: semaphore.NewWeighted(maxServedConns),
		streamBuf: newStreamBudget(cfg.MaxStreamBufferBytes), strangerBuf: newStreamBudget(max(cfg.MaxStreamBufferBytes/4, 1)),
		rejects: newRateLog(rejectLogWindow, time.Now)}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	if n.log == nil {
		n.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	n.name = cfg.Name
	if n.name == "" {
		h, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("node: name: %w", err)
		}
		n.name = h
	}
	if err := n.loadSecurity(); err != nil {
		return nil, err
	}
	gen, err := n.nextGeneration(time.Now())
	if err != nil {
		return nil, err
	}
	n.gen = gen
	st, err := store.New(store.Config{Actor: store.Actor{Name: n.name, Gen: gen}, MaxBytes: cfg.StoreMaxBytes})
	if err != nil {
		return nil, fmt.Errorf("node: store: %w", err)
	}
	ix, err := n.restore(st)
	if err != nil {
		return nil, err
	}
	n.st = newState(st, ix, newHistory(cfg.WatchHistory, cfg.WatchHistoryBytes, uint64(time.Now().UnixMicro())))
	n.eng = newEngine(st, ix, cfg)
	if cfg.ProxyAddr != "" {
		tok, err := readSecret(cfg.ProxyToken, cfg.ProxyTokenFile, "proxy token")
		if err != nil {
			return nil, err
		}
		n.proxy = newProxy(n, tok)
		if err := n.proxy.loadTLS(); err != nil {
			return nil, err
		}
	}
	n.kv = newKVSubs()
	n.st.onWorkers = n.kv.kick
	n.evIx = ix
	n.met = newMetrics(n, cfg.Registerer, cfg.Version)
	n.handler = n.routes()
	return n, nil
}

// indexConfig is the index configuration every replica must share.
func (n *Node) indexConfig() radix.Config {
	return radix.Config{WorkerPages: n.cfg.WorkerPages, MaxHolderPages: n.cfg.MaxHolderPages}
}

// Name returns the member name.
func (n *Node) Name() string { return n.name }

// Generation returns the generation of this process.
func (n *Node) Generation() uint64 { return n.gen }

// Handler returns the HTTP API handler (also served on Config.APIAddr). Serve
// it after Start returns, or on a node that is never started.
func (n *Node) Handler() http.Handler { return n.handler }

// Addr returns the advertised gossip address (valid after Start).
func (n *Node) Addr() netip.AddrPort {
	if n.tr == nil {
		return netip.AddrPort{}
	}
	return n.tr.addr
}

// APIAddr returns the API listener's address (valid after Start), or "".
func (n *Node) APIAddr() string {
	if n.apiLn == nil {
		return ""
	}
	return n.apiLn.Addr().String()
}

// swimConfig returns the swim configuration of the node's profile.
func (n *Node) swimConfig() swim.Config {
	c := SwimConfig(n.cfg.Profile)
	c.ReapTimeout = n.cfg.ReapTimeout.D()
	return c
}

// SwimConfig returns the swim configuration a node uses for profile ("lan",
// "wan" or "local"; anything else is "lan"). It is swim's profile with
// faster, wider gossip: above Config.EagerMembers deltas travel by gossip,
// and gossip rounds send nothing when there is no news, so a shorter
// interval, a wider fan-out and more retransmissions cost bandwidth only
// while there are writes. The retransmissions matter most: with swim's
// 4*log10(N) copies per member, one member in a few thousand misses a
// delta and waits for anti-entropy (seconds); with 6*log10(N) about one in
// a million does.
func SwimConfig(profile string) swim.Config {
	var c swim.Config
	switch profile {
	case "wan":
		return swim.WANConfig()
	case "local":
		c = swim.LocalConfig()
	default:
		c = swim.LANConfig()
	}
	c.GossipInterval = min(c.GossipInterval, 100*time.Millisecond)
	c.GossipNodes = max(c.GossipNodes, 4)
	c.RetransmitMult = max(c.RetransmitMult, 6)
	return c
}

// Start binds the gossip port and the API listener and starts the
// membership, flush, anti-entropy and maintenance (snapshot) loops.
func (n *Node) Start() error {
	if !n.started.CompareAndSwap(false, true) {
		return errors.New("node: already started")
	}
	if err := n.openTransport(); err != nil {
		return err
	}
	adv := n.tr.addr
	mem, err := newMembership(n.ctx, &n.g, n.tr, n.swimConfig(), swim.Identity{Name: n.name, Gen: n.gen, Addr: adv},
		swimnet.RunnerOptions{Delegate: n, OnBadInput: n.badInput, OnJoinFailed: n.joinFailed}, n.onEvent)
	if err != nil {
		n.tr.close()
		return fmt.Errorf("node: swim: %w", err)
	}
	n.mem = mem
	if n.cfg.APIAddr != "off" {
		ln, err := net.Listen("tcp", n.cfg.APIAddr)
		if err != nil {
			_ = mem.shutdown()
			return fmt.Errorf("node: api listen %s: %w", n.cfg.APIAddr, err)
		}
		if n.apiTLS {
			ln = tls.NewListener(ln, n.apiTLSConfig())
		}
		n.apiLn = ln
		n.apiSrv = &http.Server{Handler: n.handler, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(n.log.Handler(), slog.LevelWarn)}
		n.g.Go(func() error {
			if err := n.apiSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				n.log.Error("api server stopped", "err", err)
			}
			return nil
		})
	}
	if n.proxy != nil {
		if err := n.proxy.start(); err != nil {
			if n.apiLn != nil {
				n.apiLn.Close()
			}
			_ = mem.shutdown()
			return err
		}
	}
	n.synced.Store(true) // nothing to sync with until a Join
	// The loops return nil: an error in one is logged and counted where it
	// happens, and only Shutdown (ending n.ctx and closing the sockets)
	// stops them.
	n.serveTransport()
	n.g.Go(func() error { n.flushLoop(); return nil })
	n.g.Go(func() error { n.antiEntropyLoop(); return nil })
	n.g.Go(func() error { n.maintainLoop(); return nil })
	n.g.Go(func() error { n.kvLoop(); return nil })
	n.log.Info("node started", "name", n.name, "generation", n.gen, "addr", adv.String(), "api", n.APIAddr())
	return nil
}

// openTransport binds the gossip port (UDP and TCP on one port) and builds
// the node's transport on it; serveTransport starts receiving.
func (n *Node) openTransport() error {
	var udp packetConn
	var tcp net.Listener
	var dialRaw func(context.Context, netip.AddrPort) (net.Conn, error)
	var adv netip.AddrPort
	if n.memNet != nil {
		var err error
		if udp, tcp, dialRaw, adv, err = listenMem(n.memNet, n.cfg.BindAddr); err != nil {
			return err
		}
	} else {
		u, l, err := listen(n.cfg.BindAddr)
		if err != nil {
			return err
		}
		bound, _ := netip.ParseAddrPort(u.LocalAddr().String())
		adv, err = advertise(n.cfg.AdvertiseAddr, netip.AddrPortFrom(bound.Addr().Unmap(), bound.Port()))
		if err != nil {
			u.Close()
			l.Close()
			return err
		}
		udp, tcp = u, l
	}
	n.tr = &transport{udp: udp, tcp: tcp, dialRaw: dialRaw, addr: adv, tlsServer: n.tlsSrv, tlsClient: n.tlsCli,
		codecCfg: wire.Config{Label: n.cfg.Label, Keyring: n.keyring}, streamBudget: n.streamBuf,
		packets: make(chan swimnet.Inbound, 1024), streams: make(chan swimnet.Incoming, maxQueuedSwimStreams),
		onTLSFail: func(to netip.AddrPort, err error) { n.streamRejected(to, "client", err) }}
	return nil
}

// maxQueuedSwimStreams bounds the proven swim streams waiting for the
// Runner. A seed takes a burst of joins, one stream each, when a fleet
// starts: with 16, 49 joiners at once lost up to 10 streams to this queue
// and waited out a join backoff (the memberlist comparison's N = 50
// bootstrap doubled). Each waiting stream already holds a served slot
// and its first frame, charged to the stream budget.
const maxQueuedSwimStreams = 64

// serveTransport starts the gossip port's loops: the UDP reader and the TCP
// accept loop with its admission (see conns.go). They run in the node's
// group and end when the sockets are closed.
func (n *Node) serveTransport() {
	n.g.Go(n.tr.readLoop)
	n.g.Go(func() error { n.acceptLoop(); return nil })
}

// Join joins the cluster through seeds (host:port; names are resolved again
// at every attempt); with no seeds it uses Config.Seeds. It returns once the
// join is under way: attempts continue with backoff until one succeeds or the
// node shuts down, and /readyz reports when the join and the first sync are
// done. There is one join at a time: Join through the seeds of the join in
// flight joins it, Join through other seeds replaces it.
func (n *Node) Join(seeds ...string) error {
	if n.mem == nil {
		return errors.New("node: join before start")
	}
	if n.ctx.Err() != nil {
		return ErrClosed
	}
	if len(seeds) == 0 {
		seeds = n.cfg.Seeds
	}
	if len(seeds) == 0 {
		return fmt.Errorf("%w: no seeds", ErrBadRequest)
	}
	return n.mem.Join(seeds, func() {
		n.joinWant.Store(true)
		n.synced.Store(false)
		n.joinErr.Store(nil)
	})
}

// Leave announces a graceful departure, waits up to timeout (Config's when
// zero) for the news to spread, and takes a final snapshot. The node keeps
// answering reads until Shutdown.
func (n *Node) Leave(timeout time.Duration) error {
	if n.mem == nil {
		return errors.New("node: leave before start")
	}
	if timeout <= 0 {
		timeout = n.cfg.LeaveTimeout.D()
	}
	n.leaving.Store(true)
	// Others stop counting this node's proxied requests now, not when
	// swim tells them it left.
	n.withdrawLoad(time.Now())
	n.kv.kick() // hand the engine event streams over
	// Send what is pending first so that writes made just before leaving
	// are not left to anti-entropy that will never run.
	n.flushDeltas()
	err := n.mem.Leave(timeout)
	if serr := n.snapshot(); serr != nil {
		err = errors.Join(err, serr)
	}
	return err
}

// Shutdown stops the node at once: it cancels the node's context (its one
// stop signal), closes the listeners and sockets, and waits until ctx ends
// for the node's goroutines, which all run in one group. It does not
// announce a departure (see Leave) nor snapshot (see Leave); others will
// find the node dead.
func (n *Node) Shutdown(ctx context.Context) error {
	var err error
	n.closeOnce.Do(func() {
		n.cancel()
		if n.apiSrv != nil {
			sctx, cancel := context.WithTimeout(ctx, time.Second)
			if e := n.apiSrv.Shutdown(sctx); e != nil {
				n.apiSrv.Close()
			}
			cancel()
		}
		if n.proxy != nil {
			n.proxy.stop(ctx)
		}
		if n.mem != nil {
			if e := n.mem.shutdown(); e != nil {
				err = e
			}
			n.tr.close()
		}
		done := make(chan struct{})
		go func() { _ = n.g.Wait(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			err = fmt.Errorf("node: shutdown: %w", ctx.Err())
		}
		n.met.unregister()
	})
	return err
}

// Ready reports whether the node is joined, has finished its first sync and
// is not leaving, and with Config.ReadyRequiresMajority whether it sees a
// majority of the last known cluster.
func (n *Node) Ready() (bool, string) {
	switch {
	case !n.started.Load() || n.ctx.Err() != nil:
		return false, "not running"
	case n.leaving.Load():
		return false, "leaving"
	case n.joinWant.Load() && !n.mem.Joined():
		return false, "joining"
	case !n.synced.Load():
		return false, "first sync pending"
	}
	if n.cfg.ReadyRequiresMajority {
		if _, _, majority := n.quorum(); !majority {
			return false, "no majority"
		}
	}
	return true, "ok"
}

// members returns the member snapshot (self alone before Start).
func (n *Node) members() []swim.Member {
	if n.mem == nil {
		return []swim.Member{{Name: n.name, Gen: n.gen, State: swim.StateAlive}}
	}
	return n.mem.Members()
}

// self returns this member's record.
func (n *Node) self() swim.Member {
	if n.mem == nil {
		return swim.Member{Name: n.name, Gen: n.gen, State: swim.StateAlive}
	}
	return n.mem.Self()
}

// liveMembers returns the members alive or suspect, self included.
func (n *Node) liveMembers() []swim.Member {
	all := n.members()
	out := all[:0:0]
	for _, m := range all {
		if m.State == swim.StateAlive || m.State == swim.StateSuspect {
			out = append(out, m)
		}
	}
	return out
}

// quorum returns the members alive or suspect, the last known cluster
// size and whether this node sees a majority of it. The size counts members
// not known to have left, so a partition does not shrink it (until dead
// members are reaped) while graceful departures do. Only members confirmed
// alive count towards the majority: a cut-off node suspects everyone but,
// guarding against its own isolation, may never declare them dead.
func (n *Node) quorum() (live, known int, majority bool) {
	alive := 0
	for _, m := range n.members() {
		switch m.State {
		case swim.StateAlive:
			alive++
			live++
			known++
		case swim.StateSuspect:
			live++
			known++
		case swim.StateDead:
			known++
		}
	}
	known = max(known, 1)
	return live, known, 2*alive > known
}

// acceptLoop serves TCP streams on the gossip port. Each accepted
// connection starts as a stranger (see conns.go) and is served once it has
// sent a valid first frame. It returns when the listener is closed.
func (n *Node) acceptLoop() {
	for {
		c, err := n.tr.tcp.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		ticket, evicted := n.pending.add(c)
		if evicted != nil {
			// Too many strangers: the oldest makes room, so that a member
			// connecting now is not refused behind idle connections.
			n.met.connsClosed.WithLabelValues(closedPendingFull).Inc()
			evicted.Close()
		}
		n.g.Go(func() error {
			defer n.pending.remove(ticket)
			// Close the connection when the node stops, so a served stream
			// never outlives Shutdown.
			stop := context.AfterFunc(n.ctx, func() { c.Close() })
			defer stop()
			if !n.serveConn(c, ticket) {
				c.Close()
			}
			return nil
		})
	}
}

// serveConn serves one accepted connection; it reports whether it handed the
// connection on (to the swim Runner), which then closes it. The TLS
// handshake, the channel byte and the first frame must arrive within
// Config.FirstFrameTimeout; the stream then gets a served slot and
// Config.StreamTimeout.
func (n *Node) serveConn(raw net.Conn, ticket uint64) (handedOff bool) {
	from, _ := netip.ParseAddrPort(raw.RemoteAddr().String())
	c, ch, err := n.tr.accept(raw, time.Now().Add(n.cfg.FirstFrameTimeout.D()))
	if err != nil {
		n.met.streamErrors.Inc()
		if n.pending.remove(ticket) { // else evicted, and counted so
			n.met.connsClosed.WithLabelValues(closeReason(err)).Inc()
		}
		n.streamRejected(from, "server", err)
		return false
	}
	if ch != chanSwim && ch != chanAntiEntropy && ch != chanDeltas {
		err = fmt.Errorf("%w: unknown channel %q", ErrStream, ch)
		if ch == 0x16 {
			err = fmt.Errorf("%w (a TLS handshake: the peer uses TLS and this node does not)", err)
		}
		n.met.streamErrors.Inc()
		n.met.connsClosed.WithLabelValues(closedFirstBad).Inc()
		n.streamRejected(from, "server", err)
		n.log.Debug("stream failed", "channel", string(ch), "err", err)
		return false
	}
	budget := &connBudget{all: n.streamBuf, strangers: n.strangerBuf}
	sio, err := newStreamIO(c, n.tr.codecCfg, budget)
	if err != nil {
		n.met.streamErrors.Inc()
		n.streamRejected(from, "server", err)
		return false
	}
	f, err := sio.sr.ReadFrame()
	if err != nil {
		sio.close()
		n.met.streamErrors.Inc()
		if n.pending.remove(ticket) { // else evicted, and counted so
			n.met.connsClosed.WithLabelValues(closeReason(err)).Inc()
			n.log.Debug("stream refused", "channel", string(ch), "err", err)
		}
		n.streamRejected(from, "server", err)
		return false
	}
	// Proven: leave the strangers' pool for a served slot.
	budget.prove()
	if !n.pending.remove(ticket) {
		sio.close() // evicted meanwhile; acceptLoop counted it
		return false
	}
	if !n.served.TryAcquire(1) {
		// Too many connections are being served: refuse rather than
		// grow without bound. Peers retry; anti-entropy repairs.
		sio.close()
		n.met.connsRefused.Inc()
		n.met.connsClosed.WithLabelValues(closedServedFull).Inc()
		return false
	}
	c.SetDeadline(time.Now().Add(n.cfg.StreamTimeout.D()))
	if ch == chanSwim {
		hdr, body := sio.sr.Raw()
		rc := &replayConn{Conn: c.(swimnet.Conn), replay: [][]byte{hdr, body}, release: sio.close, done: func() { n.served.Release(1) }}
		select {
		case n.tr.streams <- swimnet.Incoming{From: from, Conn: rc}:
			return true
		default:
			n.tr.streamsDropped.Add(1)
			sio.close()
			n.served.Release(1)
			return false
		}
	}
	defer n.served.Release(1)
	defer sio.close()
	sio.first = &f
	switch ch {
	case chanAntiEntropy:
		if !n.antiEntropySem.TryAcquire(1) {
			n.met.syncRefused.Inc()
			return false
		}
		err = n.serveAntiEntropy(sio)
		n.antiEntropySem.Release(1)
	case chanDeltas:
		err = n.serveDeltas(sio)
	}
	if err != nil && !errors.Is(err, io.EOF) {
		n.met.streamErrors.Inc()
		if errors.Is(err, wire.ErrBudget) {
			n.met.connsClosed.WithLabelValues(closedBufferBudget).Inc()
		}
		n.streamRejected(from, "server", err)
		n.log.Debug("stream failed", "channel", string(ch), "err", err)
	}
	return false
}

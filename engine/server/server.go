package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/meshnode/meshnode/engine"
	"golang.org/x/sync/errgroup"
)

// Config configures a Server. Zero fields take the defaults in brackets.
type Config struct {
	// Addr is the HTTP listen address [127.0.0.1:8000]; port 0 picks one.
	Addr string
	// Models are the model names served; a request naming another gets
	// 404, one naming none gets the first [meshnode-emulated].
	Models []string
	// Engine configures the modeled engine (engine.DefaultConfig for its
	// zero fields).
	Engine engine.Config

	// KVEvents is the ZMQ PUB endpoint for KV events, e.g.
	// tcp://127.0.0.1:5557 (port 0 picks one); empty publishes none.
	KVEvents string
	// KVReplay is the ZMQ ROUTER endpoint that replays kept batches;
	// empty offers no replay. It needs KVEvents.
	KVReplay string
	// KVTopic is the topic frame of each message [""].
	KVTopic string
	// KVKeep is the number of batches kept for replay [10000].
	KVKeep int

	// MaxBodyBytes caps a request body; larger ones get 413 [4 MiB].
	MaxBodyBytes int64
	// MaxPromptTokens caps a prompt; longer ones get 400 [131072].
	MaxPromptTokens int
	// MaxTokens caps a request's max_tokens; more gets 400 [4096].
	MaxTokens int
	// DefaultMaxTokens is the output length of a request that sets no
	// max_tokens [16, or MaxTokens if less].
	DefaultMaxTokens int
	// Seed varies the filler text [0].
	Seed uint64
	// Logger receives warnings (a failed publish); nil logs nothing.
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.Addr == "" {
		c.Addr = "127.0.0.1:8000"
	}
	if len(c.Models) == 0 {
		c.Models = []string{"meshnode-emulated"}
	}
	c.Engine = c.Engine.WithDefaults()
	if c.KVKeep == 0 {
		c.KVKeep = 10000
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = 4 << 20
	}
	if c.MaxPromptTokens == 0 {
		c.MaxPromptTokens = 131072
	}
	if c.MaxTokens == 0 {
		c.MaxTokens = 4096
	}
	if c.DefaultMaxTokens == 0 {
		c.DefaultMaxTokens = max(1, min(16, c.MaxTokens))
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate reports every problem of c (after defaults) at once.
func (c Config) Validate() error {
	c = c.withDefaults()
	errs := []error{c.Engine.Validate()}
	seen := map[string]bool{}
	for _, m := range c.Models {
		if m == "" || seen[m] {
			errs = append(errs, fmt.Errorf("server: model name %q is empty or repeated", m))
		}
		seen[m] = true
	}
	if c.KVReplay != "" && c.KVEvents == "" {
		errs = append(errs, errors.New("server: a replay endpoint needs an events endpoint"))
	}
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"kv keep", int64(c.KVKeep)}, {"max body bytes", c.MaxBodyBytes}, {"max prompt tokens", int64(c.MaxPromptTokens)},
		{"max tokens", int64(c.MaxTokens)}, {"default max tokens", int64(c.DefaultMaxTokens)},
	} {
		if f.v < 1 {
			errs = append(errs, fmt.Errorf("server: %s %d is less than 1", f.name, f.v))
		}
	}
	if c.DefaultMaxTokens > c.MaxTokens {
		errs = append(errs, fmt.Errorf("server: default max tokens %d above max tokens %d", c.DefaultMaxTokens, c.MaxTokens))
	}
	return errors.Join(errs...)
}

// Server is an emulated inference engine: an engine.Model run on the real
// clock behind an OpenAI-compatible HTTP API, publishing its cache's KV
// events in vLLM's format. New makes it; Handler serves without sockets
// (tests under testing/synctest use it); Start opens the sockets; Close
// stops everything.
type Server struct {
	cfg Config
	log *slog.Logger
	mux *http.ServeMux

	mu      sync.Mutex // guards the fields below
	model   *engine.Model
	origin  time.Time
	timer   *time.Timer
	waiters map[engine.ID]chan engine.Result
	events  chan []engine.Event // to the publisher; nil without one
	reqSeq  uint64
	started bool

	closed    chan struct{}
	closeOnce sync.Once
	httpSrv   *http.Server
	ln        net.Listener
	kv        *kvState
	group     *errgroup.Group
	kvClose   sync.Once
	kvErr     error
}

// New returns a server that is not listening yet.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	m, err := engine.NewModel(cfg.Engine)
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg: cfg, log: cfg.Logger, model: m, origin: time.Now(),
		waiters: make(map[engine.ID]chan engine.Result),
		closed:  make(chan struct{}),
	}
	s.mux = s.routes()
	return s, nil
}

// Handler serves the API. It works without Start (KV events are then not
// published).
func (s *Server) Handler() http.Handler { return s.mux }

// Start listens on Config.Addr, opens the KV-event sockets and serves
// until ctx is done or Close is called. It returns once listening.
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	if s.started {
		s.mu.Unlock()
		return errors.New("server: already started")
	}
	s.started = true
	s.mu.Unlock()
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("server: listen: %w", err)
	}
	s.ln = ln
	g, gctx := errgroup.WithContext(context.Background())
	s.group = g
	if s.cfg.KVEvents != "" {
		kv, err := startKV(gctx, s.cfg)
		if err != nil {
			ln.Close()
			return err
		}
		s.kv = kv
		events := make(chan []engine.Event, 1024)
		s.mu.Lock()
		s.events = events
		s.mu.Unlock()
		g.Go(func() error { s.publishLoop(events); return nil })
	}
	s.httpSrv = &http.Server{Handler: s.mux, ReadHeaderTimeout: 10 * time.Second}
	g.Go(func() error {
		if err := s.httpSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Warn("engine server stopped", "err", err)
		}
		return nil
	})
	g.Go(func() error {
		select {
		case <-ctx.Done():
			s.shutdown()
		case <-s.closed:
		}
		return nil
	})
	return nil
}

// Addr is the HTTP listen address (host:port), once started.
func (s *Server) Addr() string {
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// KVEventsAddr is the events endpoint with its port resolved
// (tcp://127.0.0.1:PORT), once started; empty without one.
func (s *Server) KVEventsAddr() string {
	if s.kv == nil {
		return ""
	}
	return s.kv.addr()
}

// KVReplayAddr is the replay endpoint with its port resolved, once
// started; empty without one.
func (s *Server) KVReplayAddr() string {
	if s.kv == nil {
		return ""
	}
	return s.kv.replayAddr()
}

// KVSubscribed reports whether a subscription to the server's topic has
// reached its PUB socket: a test waits for it before it expects live
// events (ZeroMQ drops what a PUB socket sends before that; replay
// recovers it).
func (s *Server) KVSubscribed() bool {
	return s.kv != nil && s.kv.pub.Subscribed(s.cfg.KVTopic)
}

// Close stops serving (in-flight requests end at once), publishes what
// the model produced so far, closes the KV sockets and waits for the
// server's goroutines. Calling it again does nothing.
func (s *Server) Close() error {
	s.shutdown()
	if s.group != nil {
		_ = s.group.Wait()
	}
	s.kvClose.Do(func() {
		if s.kv != nil {
			s.kvErr = s.kv.pub.Close()
		}
	})
	return s.kvErr
}

func (s *Server) shutdown() {
	s.closeOnce.Do(func() {
		// closed first: a send to the publisher blocked under mu gives up.
		close(s.closed)
		s.mu.Lock()
		if s.timer != nil {
			s.timer.Stop()
		}
		if s.events != nil {
			close(s.events)
			s.events = nil
		}
		s.mu.Unlock()
		if s.httpSrv != nil {
			_ = s.httpSrv.Close()
		}
	})
}

// Stats returns the model's counters.
func (s *Server) Stats() engine.Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advanceLocked()
	return s.model.Stats()
}

// CachedBlocks returns the hashes of the cached blocks, least recent
// first: what the engine's events say it holds.
func (s *Server) CachedBlocks() []uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advanceLocked()
	return s.model.Cache().AppendBlocks(nil)
}

// ResetPrefixCache empties the cache (an AllBlocksCleared event), like
// vLLM's POST /reset_prefix_cache.
func (s *Server) ResetPrefixCache() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.model.Clear(s.now())
	s.advanceLocked()
}

// now is the model's time: the time since New on the real (or, under
// synctest, the bubble's) clock.
func (s *Server) now() time.Duration { return time.Since(s.origin) }

// submit queues a request and returns its ID and the channel its result
// arrives on when its prefill ends.
func (s *Server) submit(req engine.Request) (engine.ID, <-chan engine.Result, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.closed:
		return 0, nil, errClosed
	default:
	}
	s.advanceLocked()
	id, err := s.model.Submit(s.now(), req)
	if err != nil {
		return 0, nil, err
	}
	ch := make(chan engine.Result, 1)
	s.waiters[id] = ch
	s.advanceLocked() // it may have started and, with nothing to prefill, ended at once
	s.rearmLocked()
	return id, ch, nil
}

var errClosed = errors.New("server: closed")

// cancel drops a request whose client went away.
func (s *Server) cancel(id engine.ID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.waiters, id)
	s.model.Cancel(s.now(), id)
	s.advanceLocked()
	s.rearmLocked()
}

// advanceLocked runs the model to now, hands results to their waiters and
// events to the publisher.
func (s *Server) advanceLocked() {
	out := s.model.Advance(s.now())
	for _, r := range out.Results {
		if ch, ok := s.waiters[r.ID]; ok {
			ch <- r
			delete(s.waiters, r.ID)
		}
	}
	if len(out.Events) > 0 && s.events != nil {
		evs := append([]engine.Event(nil), out.Events...)
		select {
		case s.events <- evs:
		case <-s.closed:
		}
	}
}

// rearmLocked sets the timer for the model's next change.
func (s *Server) rearmLocked() {
	next, ok := s.model.Next()
	if !ok {
		return
	}
	select {
	case <-s.closed:
		return
	default:
	}
	d := max(next-s.now(), 0)
	if s.timer == nil {
		s.timer = time.AfterFunc(d, s.tick)
		return
	}
	s.timer.Reset(d)
}

func (s *Server) tick() {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.closed:
		return
	default:
	}
	s.advanceLocked()
	s.rearmLocked()
}

package replica

import (
	"errors"
	"fmt"
	"time"

	"github.com/meshnode/meshnode/store"
)

// Defaults of Config.
const (
	// DefaultCollectInterval: a stability round needs a fresh digest from
	// every member, which anti-entropy brings every few seconds.
	DefaultCollectInterval = 10 * time.Second
	// DefaultHorizon: a member away longer than this no longer holds back
	// collection and must resynchronise when it returns.
	DefaultHorizon = 10 * time.Minute
	// DefaultPageBytes bounds one anti-entropy page.
	DefaultPageBytes = 1 << 20
	// DefaultMaxPages bounds the pages of one pull.
	DefaultMaxPages = 1 << 16
)

// Config configures an Engine. Zero fields take the defaults.
type Config struct {
	// CollectInterval is the period of collection rounds [DefaultCollectInterval].
	CollectInterval time.Duration
	// Horizon is how long a member no longer live still counts for
	// collection [DefaultHorizon].
	Horizon time.Duration
	// PageBytes bounds one anti-entropy page [DefaultPageBytes].
	PageBytes int
	// MaxPages bounds the pages of one pull [DefaultMaxPages]; the caller
	// enforces it, since pages cross its transport.
	MaxPages int
}

func (c *Config) setDefaults() {
	if c.CollectInterval <= 0 {
		c.CollectInterval = DefaultCollectInterval
	}
	if c.Horizon <= 0 {
		c.Horizon = DefaultHorizon
	}
	if c.PageBytes <= 0 {
		c.PageBytes = DefaultPageBytes
	}
	if c.MaxPages <= 0 {
		c.MaxPages = DefaultMaxPages
	}
}

// Member is one member of the cluster as membership reports it.
type Member struct {
	Actor store.Actor
	// Live is set for members alive or suspect.
	Live bool
	// Since is when the member entered its current state; for a member not
	// live, roughly when it was last known alive. Zero means unknown.
	Since time.Time
}

// Engine is the replication core of one node over its store.
type Engine struct {
	cfg         Config
	st          *store.Store
	nextCollect time.Time
	dig         store.Digest
}

// New returns an engine over st. The engine does not own st: the caller
// may read and write it directly (under the same serialisation).
func New(st *store.Store, cfg Config) *Engine {
	cfg.setDefaults()
	return &Engine{cfg: cfg, st: st}
}

// Store returns the engine's store.
func (e *Engine) Store() *store.Store { return e.st }

// Config returns the engine's configuration, defaults applied.
func (e *Engine) Config() Config { return e.cfg }

// Tick lets store time pass and, every CollectInterval, runs a collection
// round over members. It returns the number of tombstones collected.
func (e *Engine) Tick(now time.Time, members []Member) int {
	e.st.Tick(now)
	if e.nextCollect.IsZero() {
		e.nextCollect = now.Add(e.cfg.CollectInterval)
		return 0
	}
	if now.Before(e.nextCollect) {
		return 0
	}
	e.nextCollect = now.Add(e.cfg.CollectInterval)
	return e.Collect(now, members)
}

// Collect runs one collection round now over members (see the package
// documentation for which members count).
func (e *Engine) Collect(now time.Time, members []Member) int {
	return e.st.CollectPeers(Peers(members), now, e.cfg.Horizon)
}

// Peers turns membership into the peers store.CollectPeers counts: every
// member known, live or not, with the time it was last known alive.
func Peers(members []Member) []store.Peer {
	out := make([]store.Peer, 0, len(members))
	for _, m := range members {
		out = append(out, store.Peer{Actor: m.Actor, Live: m.Live, LastLive: m.Since})
	}
	return out
}

// Flush returns the pending local changes as deltas of at most budget
// bytes each (one write always goes, whatever its size).
func (e *Engine) Flush(budget int) [][]byte {
	var out [][]byte
	for {
		b, ok, more := e.st.AppendDeltas(nil, budget)
		if ok {
			out = append(out, b)
		}
		if !more {
			return out
		}
	}
}

// Apply merges a delta or an anti-entropy page received from a peer.
func (e *Engine) Apply(b []byte, now time.Time) error {
	return e.st.Apply(b, now)
}

// AppendDigest appends the digest a puller sends, to dst.
func (e *Engine) AppendDigest(dst []byte) []byte {
	return e.st.AppendDigest(dst)
}

// ErrExchange wraps what ends an anti-entropy exchange early.
var ErrExchange = errors.New("replica: exchange")

// Answer answers a puller's digest: it records the digest (for stability,
// and the floor it carries) and appends to dst the page of what the puller
// lacks; more reports that further pages follow.
func (e *Engine) Answer(dst, digest []byte, now time.Time) (page []byte, more bool, err error) {
	if err := store.DecodeDigest(digest, &e.dig); err != nil {
		return dst, false, fmt.Errorf("%w: %w", ErrExchange, err)
	}
	if err := e.st.ObserveDigest(&e.dig, now); err != nil {
		return dst, false, fmt.Errorf("%w: %w", ErrExchange, err)
	}
	page, more = e.st.AppendMissing(dst, &e.dig, e.cfg.PageBytes)
	return page, more, nil
}

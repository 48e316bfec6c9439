package replica

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/meshnode/meshnode/radix"
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
	// DefaultExchangeInterval: anti-entropy repairs what deltas lost; a
	// few seconds keeps the repair prompt at the cost of one digest per
	// period per node.
	DefaultExchangeInterval = 2 * time.Second
	// DefaultRetryInterval: after a join, a failed first exchange is retried
	// this soon, so that a new member fetches the state without waiting a
	// period.
	DefaultRetryInterval = 50 * time.Millisecond
	// DefaultEagerMembers: up to this cluster size every delta goes to every
	// member directly; above, by gossip (infection), which costs each
	// member a bounded share whatever the size.
	DefaultEagerMembers = 16
	// DefaultPushFanout: a delta too large for a packet is pushed over a
	// stream to this many members in a large cluster; anti-entropy takes it
	// to the rest.
	DefaultPushFanout = 3
	// DefaultSeenDeltas is how many gossiped deltas a node remembers, so
	// that it forwards each once.
	DefaultSeenDeltas = 4096
	// DefaultIndexSettle: a worker whose holdings changed within this time
	// is active, and a small difference in its summary is taken for deltas
	// still in flight (see AnswerIndex).
	DefaultIndexSettle = 3 * time.Second
	// DefaultIndexMaxDefer bounds how long an active worker's holdings may
	// go unshipped by this node's anti-entropy answers.
	DefaultIndexMaxDefer = 30 * time.Second
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
	// ExchangeInterval is the mean period of anti-entropy exchanges with a
	// random live member, jittered over [1/2, 3/2) of it
	// [DefaultExchangeInterval].
	ExchangeInterval time.Duration
	// RetryInterval is how soon a failed first exchange after a join is
	// retried [DefaultRetryInterval].
	RetryInterval time.Duration
	// EagerMembers is the largest cluster (self included) in which deltas
	// go to every live member directly [DefaultEagerMembers].
	EagerMembers int
	// PushFanout is how many members a delta too large for a packet is
	// pushed to in a cluster above EagerMembers [DefaultPushFanout].
	PushFanout int
	// SeenDeltas is how many gossiped deltas are remembered
	// [DefaultSeenDeltas].
	SeenDeltas int
	// IndexSettle and IndexMaxDefer shape anti-entropy of busy workers
	// [DefaultIndexSettle, DefaultIndexMaxDefer]: see AnswerIndex.
	IndexSettle   time.Duration
	IndexMaxDefer time.Duration
	// Rand is the engine's only source of randomness (peer choice, jitter).
	// Nil means a source seeded with zero: deterministic, fine for tests.
	Rand *rand.Rand
}

func (c *Config) setDefaults() {
	orDefault(&c.CollectInterval, DefaultCollectInterval)
	orDefault(&c.Horizon, DefaultHorizon)
	orDefault(&c.PageBytes, DefaultPageBytes)
	orDefault(&c.MaxPages, DefaultMaxPages)
	orDefault(&c.ExchangeInterval, DefaultExchangeInterval)
	orDefault(&c.RetryInterval, DefaultRetryInterval)
	orDefault(&c.EagerMembers, DefaultEagerMembers)
	orDefault(&c.PushFanout, DefaultPushFanout)
	orDefault(&c.SeenDeltas, DefaultSeenDeltas)
	orDefault(&c.IndexSettle, DefaultIndexSettle)
	orDefault(&c.IndexMaxDefer, DefaultIndexMaxDefer)
	if c.Rand == nil {
		c.Rand = rand.New(rand.NewPCG(0, 0))
	}
}

// orDefault sets *p to d when it is zero or negative.
func orDefault[T int | time.Duration](p *T, d T) {
	if *p <= 0 {
		*p = d
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

// Engine is the replication core of one node over its store (and
// optionally its prefix index).
type Engine struct {
	cfg         Config
	st          *store.Store
	ix          *radix.Index
	nextCollect time.Time
	dig         store.Digest

	// members is the last membership given to SetMembers; peers the live
	// ones other than self.
	members []Member
	peers   []Member
	seen    seenSet

	nextExchange time.Time
	exchanging   bool      // an exchange was handed out and is not done
	bootstrap    bool      // a join succeeded and no exchange since
	retryAt      time.Time // the next bootstrap exchange, after a failure

	// activity tracks, per index worker, when its summary last changed
	// and when its holdings were last shipped (AnswerIndex).
	activity map[string]*workerActivity
}

// New returns an engine over st and ix (nil when the node keeps no index).
// The engine does not own them: the caller may read and write them
// directly (under the same serialisation).
func New(st *store.Store, ix *radix.Index, cfg Config) *Engine {
	cfg.setDefaults()
	e := &Engine{cfg: cfg, st: st, ix: ix, seen: newSeenSet(cfg.SeenDeltas)}
	e.members = []Member{{Actor: st.Self(), Live: true}}
	return e
}

// Store returns the engine's store.
func (e *Engine) Store() *store.Store { return e.st }

// Config returns the engine's configuration, defaults applied.
func (e *Engine) Config() Config { return e.cfg }

// SetMembers replaces the membership the engine works with: every member
// known, in any state, self included or not. The engine keeps its own copy.
func (e *Engine) SetMembers(members []Member) {
	self := e.st.Self().Name
	e.members = append(e.members[:0], members...)
	e.peers = e.peers[:0]
	for _, m := range members {
		if m.Live && m.Actor.Name != self {
			e.peers = append(e.peers, m)
		}
	}
}

// Tick lets store time pass, runs a collection round every
// CollectInterval, and hands out the next anti-entropy exchange when it is
// due. The caller calls it at Ready.Next at the latest.
func (e *Engine) Tick(now time.Time) Ready {
	var r Ready
	e.st.Tick(now)
	switch {
	case e.nextCollect.IsZero():
		e.nextCollect = now.Add(e.cfg.CollectInterval)
	case !now.Before(e.nextCollect):
		e.nextCollect = now.Add(e.cfg.CollectInterval)
		r.Collected = e.Collect(now)
	}
	e.tickExchange(now, &r)
	r.Next = e.nextCollect
	switch {
	case e.exchanging:
	case e.bootstrap:
		r.Next = now.Add(e.cfg.RetryInterval)
	case e.nextExchange.Before(r.Next):
		r.Next = e.nextExchange
	}
	return r
}

// Collect runs one collection round now over the members (see the package
// documentation for which members count).
func (e *Engine) Collect(now time.Time) int {
	return e.st.CollectPeers(Peers(e.members), now, e.cfg.Horizon)
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
// bytes each (one write always goes, whatever its size). Disseminate
// flushes and addresses them.
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

package node

import (
	"encoding/json"
	"maps"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshnode/meshnode/swim"
)

// Load without reporting: each node's proxy counts the requests it has in
// flight on each worker and the prompt tokens of those still waiting for
// their first byte (queued or in prefill), and publishes its counts in the
// replicated namespace nsLoad under its own name, at most every
// loadPublishInterval while they change. Routing adds, for each worker, the
// counts of every live member (this node's own from memory, fresher than
// what it published) to the load the worker reports. A dead or departed
// member's counts stop counting as soon as swim says so: readers skip the
// keys of members that are not alive or suspect, and a node that leaves
// deletes its key. The key of a node that crashed, or of a name no member
// bears any more, is garbage: the lowest-named live member deletes it once
// its owner has been gone for loadKeyGrace (sweepLoads), and the
// tombstone replicates and is collected like any other. A live node whose
// key was deleted (it was taken for dead) writes it again.

const (
	// nsLoad holds each proxying node's in-flight counts, keyed by node
	// name. Reserved: only the proxy writes it.
	nsLoad = "load"
	// loadPublishInterval bounds how often a node writes its counts: a
	// few writes a second keep every node's view within a fraction of a
	// request's duration, at a handful of small deltas per second. The
	// trace replay (issue 13's targets) needs the others' counts at most
	// about 50 ms old: at 100 ms the p99 queue wait passed 1.5x an
	// oracle's (bench/RESULTS.md).
	loadPublishInterval = 50 * time.Millisecond
	// tokensPerLoad converts queued prompt tokens into load units (one
	// unit is one request in flight): a request whose 1,024 prompt tokens
	// still wait for prefill weighs as much as a second request.
	tokensPerLoad = 1024
	// loadKeyGrace is how long a member must have been dead or left (or
	// unknown to swim: reaped, or never seen) before its key is deleted.
	// Its counts stopped counting at once; the grace only spares the
	// writes when a member is taken for dead and comes back at once.
	loadKeyGrace = 30 * time.Second
	// loadSweepInterval is how often the sweeping member reads nsLoad.
	loadSweepInterval = 5 * time.Second
)

// workerLoad is one node's counts on one worker.
type workerLoad struct {
	Requests int64 `json:"r"`
	Tokens   int64 `json:"t"`
}

// units is the load the routing policy sees.
func (l workerLoad) units() int { return int(l.Requests + l.Tokens/tokensPerLoad) }

// loadBook counts this node's proxied requests per worker. It is safe for
// concurrent use.
type loadBook struct {
	mu    sync.Mutex
	local map[string]workerLoad
	// version grows with every change; published is the version last
	// written to the store.
	version, published uint64
	inFlight           atomic.Int64
}

// newLoadBook returns an empty book whose first snapshot is due: a node
// that restarts under the same name publishes its zero counts at once,
// replacing what its previous process left in the store.
func newLoadBook() *loadBook { return &loadBook{local: map[string]workerLoad{}, version: 1} }

// lease is one request's claim on a worker, released exactly once.
type lease struct {
	mu       sync.Mutex
	b        *loadBook
	worker   string
	tokens   int64
	prefill  bool // tokens still counted
	released bool
}

// acquire counts a request with tokens prompt tokens on worker.
func (b *loadBook) acquire(worker string, tokens int64) *lease {
	b.add(worker, 1, tokens)
	b.inFlight.Add(1)
	return &lease{b: b, worker: worker, tokens: tokens, prefill: true}
}

// prefilled uncounts the lease's tokens: the answer has started.
func (l *lease) prefilled() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.prefill && !l.released {
		l.prefill = false
		l.b.add(l.worker, 0, -l.tokens)
	}
}

// release uncounts the request; later calls do nothing.
func (l *lease) release() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.released {
		return
	}
	l.released = true
	tok := int64(0)
	if l.prefill {
		tok = l.tokens
	}
	l.b.add(l.worker, -1, -tok)
	l.b.inFlight.Add(-1)
}

func (b *loadBook) add(worker string, reqs, tokens int64) {
	b.mu.Lock()
	l := b.local[worker]
	l.Requests += reqs
	l.Tokens += tokens
	if l == (workerLoad{}) {
		delete(b.local, worker)
	} else {
		b.local[worker] = l
	}
	b.version++
	b.mu.Unlock()
}

// get returns this node's counts on worker.
func (b *loadBook) get(worker string) workerLoad {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.local[worker]
}

// snapshot returns the counts to publish when they changed since the last
// call that was marked published, with the version they have.
func (b *loadBook) snapshot() (value []byte, version uint64, changed bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.version == b.published {
		return nil, b.version, false
	}
	v, _ := json.Marshal(b.local) // a map of strings to plain structs
	return v, b.version, true
}

func (b *loadBook) markPublished(version uint64) {
	b.mu.Lock()
	b.published = max(b.published, version)
	b.mu.Unlock()
}

// unpublish makes the counts due for publishing although they did not
// change.
func (b *loadBook) unpublish() {
	b.mu.Lock()
	b.published = 0
	b.mu.Unlock()
}

// remoteLoads caches the sum, per worker, of the counts other live members
// published; it is rebuilt when the namespace or the membership changes.
type remoteLoads struct {
	mu        sync.Mutex
	nsIndex   uint64
	members   uint64
	valid     bool
	perWorker map[string]workerLoad
}

// proxyLoad returns the load units the proxies of the live members have
// on worker: this node's own counts plus what the others published.
func (n *Node) proxyLoad(worker string) int {
	return n.proxyLoadWith(n.remoteLoads(), worker, false)
}

// proxyLoadWith is proxyLoad with the others' counts already read (once
// per routing decision).
//
// Under the cost rule (tokens set) the load is the prompt tokens the
// proxies have sent to the worker and not yet seen a first byte for: the
// queued prefill work the rule weighs against the tokens a worker lacks.
func (n *Node) proxyLoadWith(remote map[string]workerLoad, worker string, tokens bool) int {
	var l workerLoad
	if n.proxy != nil {
		l = n.proxy.load.get(worker)
	}
	r := remote[worker]
	l.Requests += r.Requests
	l.Tokens += r.Tokens
	if tokens {
		return int(min(l.Tokens, math.MaxInt32))
	}
	return l.units()
}

// remoteLoads returns the counts the other live members published, per
// worker. The map is shared: read it, never write it.
func (n *Node) remoteLoads() map[string]workerLoad {
	rl := &n.remote
	idx := n.st.index(nsLoad)
	mv := n.memberVersion.Load()
	rl.mu.Lock()
	defer rl.mu.Unlock()
	if !rl.valid || rl.nsIndex != idx || rl.members != mv {
		rl.perWorker = n.sumRemoteLoads()
		rl.nsIndex, rl.members, rl.valid = idx, mv, true
	}
	return rl.perWorker
}

// sumRemoteLoads reads the namespace and sums the counts of the live
// members other than this node.
func (n *Node) sumRemoteLoads() map[string]workerLoad {
	n.st.mu.Lock()
	kvs := n.st.store.List(nsLoad, "")
	n.st.mu.Unlock()
	if len(kvs) == 0 {
		return nil
	}
	live := map[string]bool{}
	for _, m := range n.liveMembers() {
		live[m.Name] = true
	}
	out := map[string]workerLoad{}
	for _, kv := range kvs {
		if kv.Key == n.name || !live[kv.Key] {
			continue
		}
		var m map[string]workerLoad
		if json.Unmarshal([]byte(kv.Value), &m) != nil {
			continue
		}
		for w, l := range m {
			if l.Requests < 0 || l.Tokens < 0 {
				continue // a broken publisher must not make a worker look idle
			}
			s := out[w]
			s.Requests += l.Requests
			s.Tokens += l.Tokens
			out[w] = s
		}
	}
	return out
}

// publishLoad writes this node's counts when they changed.
func (n *Node) publishLoad(now time.Time) {
	if n.proxy == nil || n.leaving.Load() {
		return
	}
	v, ver, changed := n.proxy.load.snapshot()
	if !changed {
		if _, ok := n.st.get(nsLoad, n.name); ok {
			return
		}
		// Another member deleted the key, taking this node for gone (or
		// a race with its sweep of an earlier process of this name): the
		// others would not see these counts until they change.
		n.proxy.load.unpublish()
		v, ver, _ = n.proxy.load.snapshot()
	}
	err := n.st.write(func() error { return n.st.store.Put(nsLoad, n.name, v, now) })
	if err != nil {
		n.log.Warn("proxy: load not published", "err", err)
		return
	}
	n.proxy.load.markPublished(ver)
}

// withdrawLoad deletes this node's published counts (on Leave), so that
// others stop counting them before swim tells them the node left.
func (n *Node) withdrawLoad(now time.Time) {
	if n.proxy == nil {
		return
	}
	_ = n.st.write(func() error {
		if _, ok := n.st.store.Get(nsLoad, n.name); !ok {
			return nil
		}
		return n.st.store.Delete(nsLoad, n.name, now)
	})
}

// loadLoop publishes this node's counts every loadPublishInterval while
// they change, until the node stops.
func (n *Node) loadLoop() {
	t := time.NewTicker(loadPublishInterval)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case now := <-t.C:
			n.publishLoad(now)
		}
	}
}

// loadSweeper is the state of sweepLoads, kept by the maintenance loop's
// goroutine alone.
type loadSweeper struct {
	last time.Time
	// unknown holds, per key of a name swim does not know, when a sweep
	// first found it.
	unknown map[string]time.Time
}

// sweepLoads deletes, every loadSweepInterval, the nsLoad keys of members
// gone for loadKeyGrace: dead or left (since swim says so) or unknown to
// swim (since this node's first sweep found the key). Only the
// lowest-named live member sweeps, so that one member writes the
// tombstones; were two to sweep while their views differ, the deletes
// would agree.
func (n *Node) sweepLoads(now time.Time) {
	sw := &n.loadSweep
	if now.Sub(sw.last) < loadSweepInterval || n.leaving.Load() {
		return
	}
	sw.last = now
	byName := map[string]swim.Member{}
	lowest := n.name
	for _, m := range n.members() {
		byName[m.Name] = m
		if (m.State == swim.StateAlive || m.State == swim.StateSuspect) && m.Name < lowest {
			lowest = m.Name
		}
	}
	if lowest != n.name {
		sw.unknown = nil
		return
	}
	n.st.mu.Lock()
	kvs := n.st.store.List(nsLoad, "")
	n.st.mu.Unlock()
	var gone []string
	seen := map[string]bool{}
	for _, kv := range kvs {
		m, known := byName[kv.Key]
		since := m.Since
		switch {
		case known && (m.State == swim.StateAlive || m.State == swim.StateSuspect):
			continue
		case !known:
			if sw.unknown == nil {
				sw.unknown = map[string]time.Time{}
			}
			t, ok := sw.unknown[kv.Key]
			if !ok {
				t = now
				sw.unknown[kv.Key] = t
			}
			since = t
			seen[kv.Key] = true
		}
		if now.Sub(since) >= loadKeyGrace {
			gone = append(gone, kv.Key)
		}
	}
	maps.DeleteFunc(sw.unknown, func(k string, _ time.Time) bool { return !seen[k] })
	if len(gone) == 0 {
		return
	}
	err := n.st.write(func() error {
		for _, k := range gone {
			if err := n.st.store.Delete(nsLoad, k, now); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		n.log.Warn("proxy: load counts of gone members not deleted", "err", err)
		return
	}
	n.log.Info("proxy: deleted the load counts of gone members", "members", gone)
}

package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/meshnode/meshnode/radix"
	"github.com/meshnode/meshnode/store"
)

// Namespaces the node itself uses. The KV API refuses writes to them: they are
// written through the workers and rate-limit APIs, which keep their invariants.
const (
	nsWorkers = "workers"
	nsConfig  = "config"
	// limitPrefix prefixes rate-limit definitions in nsConfig.
	limitPrefix = "limit/"
)

// stampEpoch is the origin of index stamps: seconds since then fit a uint32
// until the 22nd century, and every replica computes the same stamp.
var stampEpoch = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// indexStamp converts a time to an index stamp.
func indexStamp(t time.Time) uint32 {
	s := t.Sub(stampEpoch) / time.Second
	if s < 0 {
		return 0
	}
	return uint32(min(s, 1<<32-1))
}

// Worker is an inference server as the workers API and namespace hold it.
type Worker struct {
	ID     string            `json:"id"`
	URL    string            `json:"url"`
	Model  string            `json:"model"`
	Health string            `json:"health"` // "healthy", "unhealthy", "draining"
	Load   int               `json:"load"`
	Labels map[string]string `json:"labels,omitempty"`
	// Epoch is the worker's index epoch: set when the worker is first
	// registered and kept by updates, so that a removed worker that comes
	// back starts a new epoch.
	Epoch uint64 `json:"epoch"`
	// KVEvents names the worker's engine KV event stream, when it
	// publishes one: one live node subscribes to it (kvsub.go) and the
	// index follows what the engine really caches.
	KVEvents *KVEvents `json:"kv_events,omitempty"`
}

// KVEvents is where a worker's engine publishes its KV cache events (vLLM's
// and SGLang's --kv-events-config): ZMQ endpoints tcp://host:port or
// ipc://path.
type KVEvents struct {
	// Endpoint is the engine's PUB socket.
	Endpoint string `json:"endpoint"`
	// ReplayEndpoint is the engine's replay (ROUTER) socket, if any: a new
	// subscriber replays what it missed from there.
	ReplayEndpoint string `json:"replay_endpoint,omitempty"`
	// Topic filters the stream ("" takes every message).
	Topic string `json:"topic,omitempty"`
}

// Limit is a rate-limit definition, replicated in the config namespace.
type Limit struct {
	Limit  uint64   `json:"limit"`
	Window Duration `json:"window"`
}

// state is the replicated state of one node: the store and the index, plus
// what the node derives from them. Everything but ix is guarded by mu; ix is
// safe for concurrent use on its own.
type state struct {
	mu    sync.Mutex
	store *store.Store
	ix    *radix.Index
	// batch collects local index deltas until the sync engine sends them.
	batch radix.Batch
	// epochs maps worker IDs to their epoch, from the workers namespace, so
	// that a replicated delete can remove the worker from the index.
	epochs map[string]uint64
	subW   *store.Subscription
	// hist keeps every namespace's recent changes with their index, for
	// watches (fed by the store's observer).
	hist *history
	// byModel caches the parsed worker records by model for routing; nil
	// when a change to the workers namespace invalidated it.
	byModel map[string][]Worker
	// changed is closed and replaced whenever the store changes, waking
	// watchers.
	changed chan struct{}
	// dirty is signalled (without blocking) when local changes wait to be
	// disseminated.
	dirty chan struct{}
	// onWorkers, if set, is called (under mu; it must not block) when the
	// workers namespace changed.
	onWorkers func()
}

func newState(st *store.Store, ix *radix.Index, hist *history) *state {
	s := &state{store: st, ix: ix, hist: hist, epochs: map[string]uint64{}, changed: make(chan struct{}), dirty: make(chan struct{}, 1)}
	s.subW = st.Subscribe(nsWorkers, "", 4096)
	st.Observe(hist.add)
	s.rebuildEpochsLocked()
	return s
}

// changedLocked follows every change of the store: it keeps the index in step
// with the workers namespace and wakes watchers.
func (s *state) changedLocked() {
	for {
		ev, ok := s.subW.Next()
		if !ok {
			break
		}
		s.byModel = nil
		if s.onWorkers != nil {
			s.onWorkers()
		}
		if ev.Lagged {
			s.rebuildEpochsLocked()
			continue
		}
		if ev.Deleted {
			if ep, ok := s.epochs[ev.Key]; ok {
				// The delete may come from another replica: drop the worker
				// here too. Its own removal delta will come again; it is
				// idempotent.
				_, _ = s.ix.RemoveWorker(ev.Key, ep)
				delete(s.epochs, ev.Key)
			}
			continue
		}
		var w Worker
		if json.Unmarshal([]byte(ev.Value), &w) == nil {
			s.epochs[ev.Key] = w.Epoch
		}
	}
	close(s.changed)
	s.changed = make(chan struct{})
}

// rebuildEpochsLocked recomputes epochs from the namespace, after a restore or
// a lagged subscription, and removes from the index the workers that vanished.
func (s *state) rebuildEpochsLocked() {
	seen := map[string]uint64{}
	for _, kv := range s.store.List(nsWorkers, "") {
		var w Worker
		if json.Unmarshal([]byte(kv.Value), &w) == nil {
			seen[kv.Key] = w.Epoch
		}
	}
	for id, ep := range s.epochs {
		if _, ok := seen[id]; !ok {
			_, _ = s.ix.RemoveWorker(id, ep)
		}
	}
	s.epochs = seen
}

// kick tells the sync engine that local changes wait.
func (s *state) kick() {
	select {
	case s.dirty <- struct{}{}:
	default:
	}
}

// Errors the node's operations return; the API maps them to status codes.
var (
	// ErrNotFound: no such key, worker or limit.
	ErrNotFound = errors.New("node: not found")
	// ErrReserved: the namespace is written through another API.
	ErrReserved = errors.New("node: namespace reserved")
	// ErrBadRequest: the arguments are invalid.
	ErrBadRequest = errors.New("node: bad request")
	// ErrNoWorker: no healthy worker serves the model.
	ErrNoWorker = errors.New("node: no healthy worker")
)

func reserved(ns string) bool { return ns == nsWorkers || ns == nsConfig || ns == nsLoad }

// put writes a key of a user namespace.
func (s *state) put(ns, key string, value []byte, now time.Time) error {
	if reserved(ns) {
		return fmt.Errorf("%w: %q: written through the workers and limits APIs and the proxy", ErrReserved, ns)
	}
	return s.write(func() error { return s.store.Put(ns, key, value, now) })
}

// del deletes a key of a user namespace.
func (s *state) del(ns, key string, now time.Time) error {
	if reserved(ns) {
		return fmt.Errorf("%w: %q: written through the workers and limits APIs and the proxy", ErrReserved, ns)
	}
	return s.write(func() error {
		if _, ok := s.store.Get(ns, key); !ok {
			return fmt.Errorf("%w: key %q in %q", ErrNotFound, key, ns)
		}
		return s.store.Delete(ns, key, now)
	})
}

// write runs a store mutation under the lock and follows it up.
func (s *state) write(f func() error) error {
	s.mu.Lock()
	err := f()
	if err == nil {
		s.changedLocked()
	}
	s.mu.Unlock()
	if err == nil {
		s.kick()
	}
	return err
}

// get returns a key's value.
func (s *state) get(ns, key string) (string, bool) {
	v, ok, _ := s.getIndexed(ns, key)
	return v, ok
}

// getIndexed returns a key's value and the namespace's watch index, read
// together.
func (s *state) getIndexed(ns, key string) (string, bool, uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.store.Get(ns, key)
	return v, ok, s.hist.nsIndex(ns)
}

// list returns up to limit keys of ns with prefix, after the key cursor.
func (s *state) list(ns, prefix, cursor string, limit int) (items []store.KV, next string) {
	items, next, _ = s.listIndexed(ns, prefix, cursor, limit)
	return items, next
}

// listIndexed is list that also returns the namespace's watch index, read
// with the keys.
func (s *state) listIndexed(ns, prefix, cursor string, limit int) (items []store.KV, next string, index uint64) {
	s.mu.Lock()
	all := s.store.List(ns, prefix)
	index = s.hist.nsIndex(ns)
	s.mu.Unlock()
	i := 0
	if cursor != "" {
		for i < len(all) && all[i].Key <= cursor {
			i++
		}
	}
	items = all[i:]
	if len(items) > limit {
		items = items[:limit]
		next = items[limit-1].Key
	}
	return items, next, index
}

// index returns namespace ns's watch index. Read before the data it goes
// with, it may make a watcher see a change twice, never miss one.
func (s *state) index(ns string) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hist.nsIndex(ns)
}

// putWorker registers or updates a worker, keeping its epoch.
func (s *state) putWorker(w Worker, now time.Time) (Worker, error) {
	var out Worker
	err := s.write(func() error {
		if v, ok := s.store.Get(nsWorkers, w.ID); ok {
			var old Worker
			if json.Unmarshal([]byte(v), &old) == nil {
				w.Epoch = old.Epoch
			}
		}
		if w.Epoch == 0 {
			// Milliseconds are above any epoch a previous registration
			// of this ID can have used, so a worker that comes back after
			// removal is not mistaken for its old self.
			w.Epoch = uint64(now.UnixMilli())
		}
		b, err := json.Marshal(w)
		if err != nil {
			return err
		}
		out = w
		return s.store.Put(nsWorkers, w.ID, b, now)
	})
	return out, err
}

// worker returns a worker's record.
func (s *state) worker(id string) (Worker, bool) {
	v, ok := s.get(nsWorkers, id)
	if !ok {
		return Worker{}, false
	}
	var w Worker
	if json.Unmarshal([]byte(v), &w) != nil {
		return Worker{}, false
	}
	return w, true
}

// workers returns the workers of model (all when empty), after cursor.
func (s *state) workers(model, cursor string, limit int) ([]Worker, string) {
	s.mu.Lock()
	all := s.store.List(nsWorkers, "")
	s.mu.Unlock()
	var out []Worker
	next := ""
	for _, kv := range all {
		if cursor != "" && kv.Key <= cursor {
			continue
		}
		var w Worker
		if json.Unmarshal([]byte(kv.Value), &w) != nil || (model != "" && w.Model != model) {
			continue
		}
		if len(out) == limit {
			next = out[len(out)-1].ID
			break
		}
		out = append(out, w)
	}
	return out, next
}

// modelWorkers returns the workers of model from the cache, which it builds
// when a change invalidated it. The slice must not be modified.
func (s *state) modelWorkers(model string) []Worker {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byModel == nil {
		s.byModel = map[string][]Worker{}
		for _, kv := range s.store.List(nsWorkers, "") {
			var w Worker
			if json.Unmarshal([]byte(kv.Value), &w) == nil {
				s.byModel[w.Model] = append(s.byModel[w.Model], w)
			}
		}
	}
	return s.byModel[model]
}

// removeWorker deletes a worker's record and its index holdings.
func (s *state) removeWorker(id string, now time.Time) error {
	return s.write(func() error {
		v, ok := s.store.Get(nsWorkers, id)
		if !ok {
			return fmt.Errorf("%w: worker %q", ErrNotFound, id)
		}
		var w Worker
		_ = json.Unmarshal([]byte(v), &w)
		if d, err := s.ix.RemoveWorker(id, w.Epoch); err == nil {
			s.batch.Add(d)
		}
		return s.store.Delete(nsWorkers, id, now)
	})
}

// removeFromIndex drops a worker from the index only (its record stays).
func (s *state) removeFromIndex(id string) error {
	w, ok := s.worker(id)
	if !ok {
		return fmt.Errorf("%w: worker %q", ErrNotFound, id)
	}
	d, err := s.ix.RemoveWorker(id, w.Epoch)
	if err != nil {
		return err
	}
	// The record stays, so the worker's next inserts must use a new epoch
	// or they would be ignored: bump it.
	w.Epoch++
	s.mu.Lock()
	s.batch.Add(d)
	s.mu.Unlock()
	_, err = s.putWorkerExact(w, time.Now())
	return err
}

// putWorkerExact writes w as is, epoch included.
func (s *state) putWorkerExact(w Worker, now time.Time) (Worker, error) {
	b, err := json.Marshal(w)
	if err != nil {
		return w, err
	}
	return w, s.write(func() error { return s.store.Put(nsWorkers, w.ID, b, now) })
}

// addDelta records a local index change for dissemination.
func (s *state) addDelta(d radix.Delta) {
	d.Pages = append([]uint64(nil), d.Pages...) // the batch keeps them past the caller
	s.mu.Lock()
	s.batch.Add(d)
	s.mu.Unlock()
	s.kick()
}

// limit returns a rate-limit definition.
func (s *state) limit(name string) (Limit, bool) {
	v, ok := s.get(nsConfig, limitPrefix+name)
	if !ok {
		return Limit{}, false
	}
	var l Limit
	if json.Unmarshal([]byte(v), &l) != nil {
		return Limit{}, false
	}
	return l, true
}

// setLimit defines or changes a limit.
func (s *state) setLimit(name string, l Limit, now time.Time) error {
	b, _ := json.Marshal(l)
	return s.write(func() error { return s.store.Put(nsConfig, limitPrefix+name, b, now) })
}

// deleteLimit removes a limit definition.
func (s *state) deleteLimit(name string, now time.Time) error {
	return s.write(func() error {
		if _, ok := s.store.Get(nsConfig, limitPrefix+name); !ok {
			return fmt.Errorf("%w: limit %q", ErrNotFound, name)
		}
		return s.store.Delete(nsConfig, limitPrefix+name, now)
	})
}

// limits lists limit names after cursor.
func (s *state) limits(cursor string, max int) ([]string, string) {
	items, next := s.list(nsConfig, limitPrefix, limitPrefix+cursor, max)
	out := make([]string, len(items))
	for i, kv := range items {
		out[i] = strings.TrimPrefix(kv.Key, limitPrefix)
	}
	return out, strings.TrimPrefix(next, limitPrefix)
}

// take admits n against a limit scaled by share (1 for the whole limit).
func (s *state) take(name string, n uint64, l Limit, share float64, now time.Time) (bool, uint64, time.Time, error) {
	lim := l.Limit
	if share < 1 {
		lim = uint64(float64(lim) * share)
	}
	s.mu.Lock()
	ok, rem, reset := s.store.Take(name, n, lim, l.Window.D(), now)
	s.mu.Unlock()
	if ok && n > 0 {
		s.kick()
	}
	return ok, rem, reset, nil
}

// usage returns the count of the current window.
func (s *state) usage(name string, l Limit, now time.Time) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.store.Count(name, l.Window.D(), now)
}

// wait returns a channel closed at the next store change.
func (s *state) wait() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

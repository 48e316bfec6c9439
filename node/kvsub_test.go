package node

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/meshnode/meshnode/kvevents"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/vmihailenco/msgpack/v5"
)

// memEngine is an engine's KV event publisher in memory, for whole nodes
// in virtual time: an LRU cache of blocks whose stores and evictions it
// publishes as vLLM does (msgpack, array form), a replay of every batch it
// published, and a count of the subscriptions each node holds.
type memEngine struct {
	mu        sync.Mutex
	blockSize int
	capBlocks int
	seq       int64
	kept      []kvevents.Message
	subs      map[*memStream]bool
	down      bool
	// stopped: the engine process is stopped (SIGSTOP): its streams stay
	// open and silent, and dials and replays hang until
	// kvevents.HandshakeTimeout fails them, as its kernel still accepts
	// connections that no one answers.
	stopped  bool
	dropNext bool            // the next batch reaches no subscriber (only the replay)
	cached   map[uint64]bool // block hashes cached
	lru      []uint64        // cached blocks, oldest first
	open     map[string]int  // open subscriptions by node
}

func newMemEngine(blockSize, capBlocks int) *memEngine {
	return &memEngine{blockSize: blockSize, capBlocks: capBlocks, subs: map[*memStream]bool{}, cached: map[uint64]bool{}, open: map[string]int{}}
}

var errEngineDown = errors.New("test: engine unreachable")

type memStream struct {
	e    *memEngine
	node string
	ch   chan kvevents.Message
	done chan struct{}
	once sync.Once
}

func (s *memStream) Recv() (kvevents.Message, error) {
	select {
	case m := <-s.ch:
		return m, nil
	case <-s.done:
		return kvevents.Message{}, errStreamClosed
	}
}

var errStreamClosed = errors.New("test: stream closed")

func (s *memStream) Close() error {
	s.once.Do(func() {
		close(s.done)
		s.e.mu.Lock()
		delete(s.e.subs, s)
		s.e.open[s.node]--
		s.e.mu.Unlock()
	})
	return nil
}

// hang waits as a dial to a stopped process does: until the handshake
// deadline or ctx's end.
func hang(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(kvevents.HandshakeTimeout):
		return errors.New("test: handshake timed out")
	}
}

func (e *memEngine) isStopped() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.stopped
}

func (e *memEngine) setStopped(stopped bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.stopped = stopped
}

func (e *memEngine) dial(ctx context.Context, node string) (EventStream, error) {
	if e.isStopped() {
		return nil, hang(ctx)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.down {
		return nil, errEngineDown
	}
	s := &memStream{e: e, node: node, ch: make(chan kvevents.Message, 1024), done: make(chan struct{})}
	e.subs[s] = true
	e.open[node]++
	return s, nil
}

func (e *memEngine) replay(ctx context.Context, from int64, fn func(kvevents.Message) error) error {
	if e.isStopped() {
		return hang(ctx)
	}
	e.mu.Lock()
	if e.down {
		e.mu.Unlock()
		return errEngineDown
	}
	var ms []kvevents.Message
	for _, m := range e.kept {
		if m.Seq >= from {
			ms = append(ms, m)
		}
	}
	e.mu.Unlock()
	for _, m := range append(ms, kvevents.Message{Seq: -1}) {
		if err := fn(m); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// subscribers returns the nodes with an open subscription.
func (e *memEngine) subscribers() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for n, c := range e.open {
		if c > 0 {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

// publishLocked sends one batch of events (vLLM's msgspec array form).
func (e *memEngine) publishLocked(evs []any) {
	payload, err := msgpack.Marshal([]any{float64(time.Now().UnixNano()) / 1e9, evs})
	if err != nil {
		panic(err)
	}
	m := kvevents.Message{Topic: "kv", Seq: e.seq, Payload: payload}
	e.seq++
	e.kept = append(e.kept, m)
	if e.dropNext {
		e.dropNext = false
		return
	}
	for s := range e.subs {
		select {
		case s.ch <- m:
		default: // a slow subscriber loses it, as with ZMQ's high-water mark
		}
	}
}

// blockHash chains a block's tokens to its parent, as engines do.
func blockHash(parent uint64, toks []uint32) uint64 {
	h := mix64(parent ^ 0x9e3779b97f4a7c15)
	for _, t := range toks {
		h = mix64(h ^ uint64(t))
	}
	return h >> 2 // below 2^62: a plain msgpack integer in every encoder
}

// prefill caches a prompt's full blocks, publishing the new ones (one
// BlockStored) and the blocks evicted to make room (BlockRemoved).
func (e *memEngine) prefill(tokens []uint32) {
	e.mu.Lock()
	defer e.mu.Unlock()
	var parent uint64
	var newHashes []uint64
	var newParent any
	var newToks []uint32
	for i := 0; i+e.blockSize <= len(tokens); i += e.blockSize {
		blk := tokens[i : i+e.blockSize]
		h := blockHash(parent, blk)
		if e.cached[h] {
			e.lru = slices.DeleteFunc(e.lru, func(x uint64) bool { return x == h })
		} else {
			if len(newHashes) == 0 && i > 0 {
				newParent = parent
			}
			newHashes = append(newHashes, h)
			newToks = append(newToks, blk...)
			e.cached[h] = true
		}
		e.lru = append(e.lru, h)
		parent = h
	}
	var evs []any
	if len(newHashes) > 0 {
		evs = append(evs, []any{"BlockStored", newHashes, newParent, newToks, e.blockSize, nil, "GPU", nil})
	}
	var evicted []uint64
	for len(e.lru) > e.capBlocks {
		evicted = append(evicted, e.lru[0])
		delete(e.cached, e.lru[0])
		e.lru = e.lru[1:]
	}
	if len(evicted) > 0 {
		evs = append(evs, []any{"BlockRemoved", evicted, "GPU"})
	}
	if len(evs) > 0 {
		e.publishLocked(evs)
	}
}

// setDown makes the engine unreachable (its streams break, dials and
// replays fail) or reachable again.
func (e *memEngine) setDown(down bool) {
	e.mu.Lock()
	e.down = down
	var ss []*memStream
	if down {
		for s := range e.subs {
			ss = append(ss, s)
		}
	}
	e.mu.Unlock()
	for _, s := range ss {
		s.Close()
	}
}

// restart is a new engine process behind the same endpoints: an empty
// cache, sequence numbers from 0 again, nothing kept for replay.
func (e *memEngine) restart() {
	e.mu.Lock()
	defer e.mu.Unlock()
	clear(e.cached)
	e.lru, e.kept, e.seq = nil, nil, 0
}

// reset empties the cache (AllBlocksCleared).
func (e *memEngine) reset() {
	e.mu.Lock()
	defer e.mu.Unlock()
	clear(e.cached)
	e.lru = nil
	e.publishLocked([]any{[]any{"AllBlocksCleared"}})
}

// cachedBlocks returns how many leading blocks of tokens the engine caches.
func (e *memEngine) cachedBlocks(tokens []uint32) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	var parent uint64
	n := 0
	for i := 0; i+e.blockSize <= len(tokens); i += e.blockSize {
		h := blockHash(parent, tokens[i:i+e.blockSize])
		if !e.cached[h] {
			break
		}
		n++
		parent = h
	}
	return n
}

// memEngines routes endpoints (events and replay) to in-memory engines.
type memEngines map[string]*memEngine

// config points a node's KV event seams at the engines.
func (es memEngines) config(cfg *Config) {
	name := cfg.Name
	cfg.KVEventsDial = func(ctx context.Context, endpoint, topic string) (EventStream, error) {
		e, ok := es[endpoint]
		if !ok {
			return nil, fmt.Errorf("test: no engine at %s", endpoint)
		}
		return e.dial(ctx, name)
	}
	cfg.KVEventsReplay = func(ctx context.Context, endpoint string, from int64, fn func(kvevents.Message) error) error {
		e, ok := es[endpoint]
		if !ok {
			return fmt.Errorf("test: no engine replays at %s", endpoint)
		}
		return e.replay(ctx, from, fn)
	}
}

// prompt returns n tokens of conversation c.
func prompt(c, n int) []uint32 { return toks(c*100000, n) }

// TestKVSubscriptionRunner drives one node's subscription to an engine in
// virtual time against a recording index: catching up, live events, a
// gap filled by replay, an engine restart, an engine unreachable past the
// grace period, and the end of the subscription when the worker goes.
func TestKVSubscriptionRunner(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newMemEngine(16, 1000)
		es := memEngines{"tcp://127.0.0.1:5557": e, "tcp://127.0.0.1:5558": e}
		cfg := Config{Name: "n0", BindAddr: "127.0.0.1:0", APIAddr: "off", KVGrace: Duration(10 * time.Second)}
		es.config(&cfg)
		n, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer n.Shutdown(t.Context())
		ix := newFakeEventIndex(16)
		n.evIx = ix
		n.synced.Store(true)     // as after Start: the node may own streams
		e.prefill(prompt(1, 32)) // before the subscription: replayed
		if _, err := n.st.putWorker(Worker{ID: "e1", URL: "http://127.0.0.1:8001", Model: "m", Health: "healthy",
			KVEvents: &KVEvents{Endpoint: "tcp://127.0.0.1:5557", ReplayEndpoint: "tcp://127.0.0.1:5558"}}, time.Now()); err != nil {
			t.Fatal(err)
		}
		n.reconcileKV()
		synctest.Wait()
		step := func(what string, want ...string) {
			t.Helper()
			synctest.Wait()
			if diff := cmp.Diff(want, ix.takeLog()); diff != "" {
				t.Fatalf("%s: index calls (-want +got):\n%s", what, diff)
			}
		}
		step("catch up by replay", "store gen=1 ver=0:0 parent=false pages=2 blocks=["+hashes(prompt(1, 32), 16)+"] ppb=1")
		if got := e.subscribers(); !slices.Equal(got, []string{"n0"}) {
			t.Fatalf("subscribers %v", got)
		}
		e.prefill(prompt(1, 48))
		step("live", "store gen=1 ver=1:0 parent=true pages=1 blocks=["+hashes(prompt(1, 48), 16)[len(hashes(prompt(1, 32), 16))+1:]+"] ppb=1")

		e.mu.Lock()
		e.dropNext = true
		e.mu.Unlock()
		e.prefill(prompt(2, 16))
		e.prefill(prompt(3, 16))
		step("a gap filled by replay",
			"store gen=1 ver=2:0 parent=false pages=1 blocks=["+hashes(prompt(2, 16), 16)+"] ppb=1",
			"store gen=1 ver=3:0 parent=false pages=1 blocks=["+hashes(prompt(3, 16), 16)+"] ppb=1")

		e.restart()
		e.prefill(prompt(4, 16))
		step("an engine restart clears, then replays from the start",
			"clear gen=2",
			"store gen=2 ver=0:0 parent=false pages=1 blocks=["+hashes(prompt(4, 16), 16)+"] ppb=1")

		e.setDown(true)
		time.Sleep(5 * time.Second)
		step("unreachable within the grace period")
		// The drop comes with the first failed dial past the grace
		// period; dials are up to a jittered kvBackoffMax apart.
		time.Sleep(5*time.Second + kvBackoffMax*5/4 + time.Second)
		step("unreachable past the grace period", "clear gen=3")
		st := n.KVSubscriptions()
		if len(st) != 1 || st[0].State != kvStateDropped || st[0].Error == "" {
			t.Fatalf("status: %+v", st)
		}
		e.setDown(false)
		e.prefill(prompt(5, 16))
		time.Sleep(kvBackoffMax*5/4 + time.Second)
		step("back: the dropped pages are rebuilt by a replay from the start",
			"store gen=3 ver=0:0 parent=false pages=1 blocks=["+hashes(prompt(4, 16), 16)+"] ppb=1",
			"store gen=3 ver=1:0 parent=false pages=1 blocks=["+hashes(prompt(5, 16), 16)+"] ppb=1")
		if st := n.KVSubscriptions(); st[0].State != kvStateStreaming || st[0].LastSeq != 1 || st[0].Gen != 3 {
			t.Fatalf("status: %+v", st[0])
		}

		for _, m := range []struct {
			name string
			c    prometheus.Metric
			want float64
		}{
			{"gaps", n.met.kvGaps, 1},
			{"restarts", n.met.kvRestarts, 1},
			{"replays ok", n.met.kvReplays.WithLabelValues("ok"), 4}, // catch-up, gap, restart, return
			{"stored", n.met.kvEvents.WithLabelValues("stored"), 7},
			{"batches", n.met.kvBatches, 13}, // duplicates of replays included
		} {
			var v dto.Metric
			if err := m.c.Write(&v); err != nil {
				t.Fatal(err)
			}
			if got := v.GetCounter().GetValue(); got != m.want {
				t.Errorf("%s: %v, want %v", m.name, got, m.want)
			}
		}

		// A changed record restarts the subscription, once the old one
		// has ended.
		if _, err := n.st.putWorker(Worker{ID: "e1", URL: "http://127.0.0.1:8001", Model: "m", Health: "healthy",
			KVEvents: &KVEvents{Endpoint: "tcp://127.0.0.1:5557", ReplayEndpoint: "tcp://127.0.0.1:5558", Topic: "kv"}}, time.Now()); err != nil {
			t.Fatal(err)
		}
		n.reconcileKV()
		synctest.Wait()
		if got := e.subscribers(); !slices.Equal(got, []string{"n0"}) {
			t.Fatalf("subscribers after a record change: %v", got)
		}
		if st := n.KVSubscriptions(); len(st) != 1 || st[0].State != kvStateStreaming {
			t.Fatalf("status after a record change: %+v", st)
		}
		e.prefill(prompt(6, 16))
		step("the restarted subscription resumes after the last batch applied",
			"store gen=3 ver=2:0 parent=false pages=1 blocks=["+hashes(prompt(6, 16), 16)+"] ppb=1")

		// A node leaving hands its streams over.
		n.leaving.Store(true)
		n.reconcileKV()
		synctest.Wait()
		if got := e.subscribers(); len(got) != 0 {
			t.Fatalf("subscribers while leaving: %v", got)
		}
		n.leaving.Store(false)
		n.reconcileKV()
		synctest.Wait()
		if got := e.subscribers(); !slices.Equal(got, []string{"n0"}) {
			t.Fatalf("subscribers back: %v", got)
		}

		if err := n.st.removeWorker("e1", time.Now()); err != nil {
			t.Fatal(err)
		}
		n.reconcileKV()
		synctest.Wait()
		if got := e.subscribers(); len(got) != 0 {
			t.Fatalf("subscribers after the worker left: %v", got)
		}
	})
}

// hashes formats the engine block hashes of tokens, as the fake index logs
// them.
func hashes(tokens []uint32, blockSize int) string {
	var parent uint64
	var out []string
	for i := 0; i+blockSize <= len(tokens); i += blockSize {
		parent = blockHash(parent, tokens[i:i+blockSize])
		out = append(out, fmt.Sprint(parent))
	}
	return strings.Join(out, " ")
}

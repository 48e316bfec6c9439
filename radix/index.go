package radix

import (
	"errors"
	"fmt"
	"sync"
	"unsafe"
)

// Errors returned by the index. Test with errors.Is.
var (
	ErrConflict       = errors.New("radix: page hash conflicts with the index")
	ErrBadDelta       = errors.New("radix: malformed delta")
	ErrTooManyWorkers = errors.New("radix: too many workers")
	ErrNoCandidates   = errors.New("radix: no candidates")
)

// ModelConfig sets how a model's prompts are cut into pages.
type ModelConfig struct {
	PageTokens int // tokens per page; default DefaultPageTokens
	PageBytes  int // bytes per text page; default DefaultPageBytes
}

// Config configures an Index. Every replica must use the same budgets, or
// their indexes differ by design.
type Config struct {
	// WorkerPages is each worker's page budget; 0 means unlimited.
	// SetWorkerBudget overrides it per worker.
	WorkerPages int64
	// MaxHolderPages caps the holder-pages of the whole index; 0 means
	// unlimited.
	MaxHolderPages int64
	// MaxWorkers bounds the worker table, removed workers included
	// [65536].
	MaxWorkers int
	// MaxPending bounds the deltas waiting for their anchor page [1024];
	// MaxPendingPages bounds their pages [1<<20]. Deltas beyond are
	// dropped, counted in Stats.PendingDropped, and left to anti-entropy.
	MaxPending      int
	MaxPendingPages int
	// Models holds per-model page sizes; absent models use the defaults.
	Models map[string]ModelConfig
	// ExpectedPages sizes the page table up front (distinct pages), so
	// that it does not grow (and rebuild) while filling; 0 starts small.
	ExpectedPages int
	// MaxEventTombstones bounds the tombstones of removed engine blocks
	// kept per event-sourced worker [DefaultEventTombstones]; past it the
	// oldest go, counted in Stats.TombstonesDropped. A tombstone matters
	// while a store older than its removal may still arrive (reordering,
	// a second subscriber, anti-entropy from a replica that missed the
	// removal).
	MaxEventTombstones int
}

func (c Config) withDefaults() Config {
	if c.MaxWorkers <= 0 {
		c.MaxWorkers = 1 << 16
	}
	if c.MaxPending <= 0 {
		c.MaxPending = 1024
	}
	if c.MaxPendingPages <= 0 {
		c.MaxPendingPages = 1 << 20
	}
	if c.MaxEventTombstones <= 0 {
		c.MaxEventTombstones = DefaultEventTombstones
	}
	return c
}

// Hit is a worker's matched depth for a prompt, in pages.
type Hit struct {
	Worker string
	Pages  int
}

// Stats is the index's memory accounting.
type Stats struct {
	Pages          int64 // distinct pages
	HolderPages    int64 // (page, worker) pairs, pending pages apart
	Chains         int
	Workers        int
	Bytes          int64 // estimate of the heap the index uses, all included
	Pending        int   // deltas waiting for their anchor page
	PendingDropped int64
	Evicted        int64 // holder-pages evicted by budgets and the cap

	// Event-sourced workers and in-flight routes.
	EventWorkers      int   // workers with event-sourced state
	EngineEntries     int64 // engine map entries (block hash -> page)
	Tombstones        int64 // tombstones of removed engine blocks
	TombstonesDropped int64 // tombstones dropped past MaxEventTombstones
	EventBytes        int64 // heap of engine maps and tombstones (in Bytes)
	PendingPages      int64 // (page, worker) pairs of in-flight routes
}

// Index is the replicated prefix index. It is safe for concurrent use:
// queries take a read lock, changes a write lock. It never does I/O, starts
// no goroutine and reads no clock; stamps are arguments.
type Index struct {
	mu   sync.RWMutex
	x    *core
	pool sync.Pool // *scratch
}

type scratch struct {
	hashes []uint64
	path   []step
	depths []workerDepth
	byW    []uint32
	ranks  []uint64
}

// New returns an empty index.
func New(cfg Config) *Index {
	ix := &Index{x: newCore(cfg)}
	ix.pool.New = func() any { return new(scratch) }
	return ix
}

func (ix *Index) getScratch() *scratch { return ix.pool.Get().(*scratch) }

// seen returns s.byW with room for n workers, zeroed.
func (s *scratch) seen(n int) []uint32 {
	if cap(s.byW) < n {
		s.byW = make([]uint32, n)
	}
	return s.byW[:n]
}
func (ix *Index) putScratch(s *scratch) { ix.pool.Put(s) }

// PageTokens returns the page size in tokens of model.
func (ix *Index) PageTokens(model string) int {
	if m, ok := ix.x.cfg.Models[model]; ok && m.PageTokens > 0 {
		return m.PageTokens
	}
	return DefaultPageTokens
}

// PageBytes returns the text page size in bytes of model.
func (ix *Index) PageBytes(model string) int {
	if m, ok := ix.x.cfg.Models[model]; ok && m.PageBytes > 0 {
		return m.PageBytes
	}
	return DefaultPageBytes
}

// AppendPages appends the lineage hashes of a token prompt of model to dst.
func (ix *Index) AppendPages(dst []uint64, model string, tokens []uint32) []uint64 {
	return AppendTokenPages(dst, TokenSeed(model), ix.PageTokens(model), tokens)
}

// AppendTextPages appends the lineage hashes of a text prompt of model.
func (ix *Index) AppendTextPages(dst []uint64, model string, text []byte) []uint64 {
	return AppendTextPages(dst, TextSeed(model), ix.PageBytes(model), text)
}

// Match appends to dst each worker's matched depth (in pages) for a token
// prompt of model, deepest first. It allocates nothing when dst has room.
func (ix *Index) Match(dst []Hit, model string, tokens []uint32) []Hit {
	s := ix.getScratch()
	s.hashes = ix.AppendPages(s.hashes[:0], model, tokens)
	dst = ix.MatchPages(dst, s.hashes)
	ix.putScratch(s)
	return dst
}

// MatchText is Match for a text prompt of model.
func (ix *Index) MatchText(dst []Hit, model string, text []byte) []Hit {
	s := ix.getScratch()
	s.hashes = ix.AppendTextPages(s.hashes[:0], model, text)
	dst = ix.MatchPages(dst, s.hashes)
	ix.putScratch(s)
	return dst
}

// MatchPages is Match for a prompt already cut into lineage hashes.
func (ix *Index) MatchPages(dst []Hit, pages []uint64) []Hit {
	s := ix.getScratch()
	ix.mu.RLock()
	s.path = ix.x.walk(s.path[:0], pages)
	s.depths = ix.x.appendDepths(s.depths[:0], s.path)
	dst = ix.x.appendHits(dst, s.depths, s.seen(len(ix.x.workers)))
	ix.mu.RUnlock()
	ix.putScratch(s)
	return dst
}

// SetWorkerBudget sets the page budget of worker (0: the index default) and
// evicts at once if it is exceeded. Replicas must agree on budgets.
func (ix *Index) SetWorkerBudget(worker string, pages int64) error {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	w, err := ix.x.workerIndex(worker)
	if err != nil {
		return err
	}
	ix.x.workers[w].budget = pages
	ix.x.enforce(w)
	return nil
}

// Apply applies one delta. It is idempotent and, for deltas whose anchors
// are known or arrive while the delta waits, independent of order. A delta
// whose anchor page is unknown waits (bounded by Config.MaxPending) and is
// applied when the anchor arrives.
func (ix *Index) Apply(d Delta) error {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	return ix.x.apply(d)
}

// ApplyBatch applies every delta of b in order and returns the errors of
// the deltas that failed, joined; the others still apply.
func (ix *Index) ApplyBatch(b *Batch) error {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	var errs []error
	for i := range b.Deltas {
		if err := ix.x.apply(b.Deltas[i]); err != nil {
			errs = append(errs, fmt.Errorf("delta %d: %w", i, err))
		}
	}
	return errors.Join(errs...)
}

// Insert marks pages (a prompt's lineage hashes from the root) as held by
// worker at stamp, applies the change and returns the delta to replicate.
// The delta's Pages alias pages.
func (ix *Index) Insert(worker string, epoch uint64, stamp uint32, pages []uint64) (Delta, error) {
	_, d, err := ix.matchInsert(nil, false, worker, epoch, stamp, pages)
	return d, err
}

// MatchAndInsert matches pages like MatchPages, appending to dst, then marks
// them as held by worker at stamp and returns the delta to replicate: an
// insert anchored at the worker's matched depth carrying only the pages it
// lacked, or a touch when it held them all. The delta's Pages alias pages.
func (ix *Index) MatchAndInsert(dst []Hit, worker string, epoch uint64, stamp uint32, pages []uint64) ([]Hit, Delta, error) {
	return ix.matchInsert(dst, true, worker, epoch, stamp, pages)
}

func (ix *Index) matchInsert(dst []Hit, collect bool, worker string, epoch uint64, stamp uint32, pages []uint64) ([]Hit, Delta, error) {
	s := ix.getScratch()
	defer ix.putScratch(s)
	ix.mu.Lock()
	defer ix.mu.Unlock()
	x := ix.x
	s.path = x.walk(s.path[:0], pages)
	if collect {
		s.depths = x.appendDepths(s.depths[:0], s.path)
		dst = x.appendHits(dst, s.depths, s.seen(len(x.workers)))
	}
	held := 0
	if w, ok := x.byName[worker]; ok && x.workers[w].epoch == epoch {
		for j := len(s.path) - 1; j >= 0; j-- {
			if _, ok := findHolder(x.chains[s.path[j].ci].holders, w); ok {
				held = int(s.path[j].end)
				break
			}
		}
	}
	d := Delta{Op: OpInsert, Worker: worker, Epoch: epoch, Stamp: stamp, Pages: pages[held:]}
	if held > 0 {
		d.Anchor = pages[held-1]
	}
	if held == len(pages) && held > 0 {
		d = Delta{Op: OpTouch, Worker: worker, Epoch: epoch, Stamp: stamp, Anchor: pages[held-1]}
	}
	if len(pages) == 0 {
		return dst, d, nil
	}
	return dst, d, x.apply(d)
}

// Touch marks the prompt ending with page as used by worker at stamp.
func (ix *Index) Touch(worker string, epoch uint64, stamp uint32, page uint64) (Delta, error) {
	d := Delta{Op: OpTouch, Worker: worker, Epoch: epoch, Stamp: stamp, Anchor: page}
	return d, ix.Apply(d)
}

// RemoveWorker drops worker's holdings of epoch everywhere and returns the
// delta to replicate. A worker that comes back must use a higher epoch.
func (ix *Index) RemoveWorker(worker string, epoch uint64) (Delta, error) {
	d := Delta{Op: OpRemove, Worker: worker, Epoch: epoch}
	return d, ix.Apply(d)
}

// Stats returns the index's memory accounting.
func (ix *Index) Stats() Stats {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	x := ix.x
	st := Stats{
		Pages:          x.pages,
		HolderPages:    x.holderPages,
		Chains:         len(x.chains) - len(x.free),
		Pending:        x.pend.n,
		PendingDropped: x.pend.dropped,
		Evicted:        x.evicted,
	}
	for i := range x.workers {
		wk := &x.workers[i]
		if wk.owner != 0 {
			st.PendingPages += wk.pages
			continue
		}
		st.Workers++
		if ev := wk.ev; ev != nil {
			st.EventWorkers++
			st.EngineEntries += ev.entries
			st.Tombstones += int64(ev.tombs.len())
			st.TombstonesDropped += ev.tombs.dropped
			st.EventBytes += int64(ev.tombs.bytes()) + int64(unsafe.Sizeof(eventState{}))
			if ev.rev != nil {
				st.EventBytes += int64(ev.rev.bytes())
			}
		}
	}
	st.HolderPages -= st.PendingPages
	b := int64(x.table.bytes()) + int64(cap(x.chains))*int64(chainSize) + int64(cap(x.free))*4
	for i := range x.chains {
		c := &x.chains[i]
		b += int64(cap(c.hashes))*8 + int64(cap(c.holders))*int64(holderSize) + int64(cap(c.children))*4
		for j := range c.holders {
			// Engine arrays: the event-sourced workers' engine maps.
			st.EventBytes += int64(cap(c.holders[j].engine)) * 8
		}
	}
	for i := range x.workers {
		b += int64(len(x.workers[i].chains))*8 + 64 + int64(len(x.workers[i].name))
	}
	st.Bytes = b + st.EventBytes
	return st
}

const (
	chainSize  = int(unsafe.Sizeof(chain{}))
	holderSize = int(unsafe.Sizeof(holder{}))
)

// workerIndex returns the index of worker, adding it if new.
func (x *core) workerIndex(name string) (uint32, error) {
	if w, ok := x.byName[name]; ok {
		return w, nil
	}
	if name == "" || len(name) > MaxNameBytes {
		return 0, fmt.Errorf("%w: worker name of %d bytes", ErrBadDelta, len(name))
	}
	if len(x.workers) >= x.cfg.MaxWorkers {
		return 0, ErrTooManyWorkers
	}
	w := uint32(len(x.workers))
	x.workers = append(x.workers, worker{name: name, chains: make(map[uint32]struct{})})
	x.byName[name] = w
	return w, nil
}

// dropWorker drops everything w holds: its holdings, its pending pages and
// its event-sourced state.
func (x *core) dropWorker(w uint32) {
	x.workers[w].ev = nil
	x.dropHoldings(w)
	if s := x.workers[w].shadow; s != 0 {
		x.dropHoldings(s - 1)
	}
}

// shadowIndex returns the index of the worker holding w's pending pages,
// adding it if new.
func (x *core) shadowIndex(w uint32) (uint32, error) {
	if s := x.workers[w].shadow; s != 0 {
		return s - 1, nil
	}
	if len(x.workers) >= x.cfg.MaxWorkers {
		return 0, ErrTooManyWorkers
	}
	s := uint32(len(x.workers))
	x.workers = append(x.workers, worker{name: x.workers[w].name, chains: make(map[uint32]struct{}), owner: w + 1})
	x.workers[w].shadow = s + 1
	return s, nil
}

// apply applies d and then any waiting delta whose anchor d created.
func (x *core) apply(d Delta) error {
	if x.pend.n == 0 {
		return x.apply1(d)
	}
	x.record = true
	x.created = x.created[:0]
	err := x.apply1(d)
	for len(x.created) > 0 {
		h := x.created[len(x.created)-1]
		x.created = x.created[:len(x.created)-1]
		for _, p := range x.pend.take(h) {
			_ = x.apply1(p) // a waiting delta that fails now is dropped
		}
		if x.pend.n == 0 {
			break
		}
	}
	x.record = false
	x.created = x.created[:0]
	return err
}

func (x *core) apply1(d Delta) error {
	switch d.Op {
	case OpInsert, OpTouch, OpRemove, OpPending:
	case OpStoreEvents, OpRemoveEvents, OpClearEvents, OpEngineMap:
	default:
		return fmt.Errorf("%w: op %d", ErrBadDelta, d.Op)
	}
	if d.Op == OpTouch && (d.Anchor == 0 || len(d.Pages) > 0) {
		return fmt.Errorf("%w: touch needs a page and no new pages", ErrBadDelta)
	}
	w, err := x.workerIndex(d.Worker)
	if err != nil {
		return err
	}
	wk := &x.workers[w]
	switch {
	case d.Epoch < wk.epoch:
		return nil
	case d.Epoch > wk.epoch:
		x.dropWorker(w)
		wk = &x.workers[w]
		wk.epoch, wk.removed = d.Epoch, false
	}
	if wk.removed {
		return nil
	}
	switch d.Op {
	case OpRemove:
		x.dropWorker(w)
		x.workers[w].removed = true
		return nil
	case OpStoreEvents, OpRemoveEvents, OpClearEvents, OpEngineMap:
		return x.applyEvents(w, d)
	case OpPending:
		s, err := x.shadowIndex(w)
		if err != nil {
			return err
		}
		w = s
	}
	if ev := x.workers[w].ev; ev != nil {
		// A recorded insert into a worker with events stops at its
		// tombstones (insertCut).
		_, err = x.insertCut(w, ev, d.Stamp, 0, d.Anchor, d.Pages)
	} else {
		err = x.insertPath(w, d.Stamp, 0, d.Anchor, d.Pages)
	}
	if err == errNoAnchor {
		x.pend.add(d, x.cfg)
		return nil
	}
	if err != nil {
		return err
	}
	x.enforce(w)
	return nil
}

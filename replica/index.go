package replica

import (
	"errors"
	"fmt"
	"time"

	"github.com/meshnode/meshnode/radix"
)

// The index half of an exchange. After the store pages, the puller sends
// its index digest (AppendIndexDigest); the other side answers with the
// holdings of every worker whose summary differs and that it knows
// (AnswerIndex, then IndexPages.Next until done), each batch applied by the
// puller with ApplyIndexPage. Batches are cut so that one exchange never
// holds more than one in memory.

// Bounds of the index half of an exchange.
const (
	// IndexBatchBytes bounds one index batch of an exchange.
	IndexBatchBytes = 1 << 15
	// IndexMaxWorkers bounds the workers of a digest, and the differing
	// workers shipped in one exchange.
	IndexMaxWorkers = 1 << 16
)

// ErrNoIndex reports an index step on an engine built without an index.
var ErrNoIndex = errors.New("replica: no index")

// AppendIndexDigest appends the index digest a puller sends, to dst.
func (e *Engine) AppendIndexDigest(dst []byte) []byte {
	if e.ix == nil {
		return radix.AppendDigest(dst, nil)
	}
	return radix.AppendDigest(dst, e.ix.Digest())
}

// IndexPages walks the index batches that answer one index digest. It
// reads only the index, which is safe for concurrent use, so its caller
// need not hold the engine's serialisation between batches.
type IndexPages struct {
	ix      *radix.Index
	workers []string
	i, from int
	b       radix.Batch
	// Deferred counts the differing workers left out because they are
	// busy and close (see AnswerIndex).
	Deferred int
}

// AnswerIndex decodes a puller's index digest and returns the walk over
// the batches it lacks: the holdings of the workers whose summaries differ
// and that this side knows (a worker only the puller knows is its to send),
// at most IndexMaxWorkers of them.
//
// A worker whose holdings change all the time (an engine streaming KV
// events, a busy recorded worker) nearly always differs by the deltas
// still in flight, and shipping all its holdings for that costs far more
// than the deltas themselves. So a worker is deferred (left out, counted
// in IndexPages.Deferred) when it is active (its summary here changed
// within Config.IndexSettle), the difference is small (same epoch and
// event generation, page counts within max(1024, 1/8)), and its holdings
// were shipped by this node within Config.IndexMaxDefer. A lost delta of a
// busy worker is thus repaired within IndexMaxDefer, or IndexSettle after
// the worker goes quiet; a puller far behind (new, restarted, another
// generation) gets it at once.
func (e *Engine) AnswerIndex(digest []byte, now time.Time) (*IndexPages, error) {
	if e.ix == nil {
		return nil, ErrNoIndex
	}
	remote, err := radix.DecodeDigest(digest, radix.Limits{MaxWorkers: IndexMaxWorkers})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrExchange, err)
	}
	local := e.ix.Digest()
	mine := make(map[string]*radix.WorkerSummary, len(local))
	for i := range local {
		mine[local[i].Worker] = &local[i]
	}
	theirs := make(map[string]*radix.WorkerSummary, len(remote))
	for i := range remote {
		theirs[remote[i].Worker] = &remote[i]
	}
	e.noteActivity(local, now)
	p := &IndexPages{ix: e.ix}
	for i, w := range radix.Difference(local, remote) {
		if i == IndexMaxWorkers {
			break
		}
		l, ok := mine[w]
		if !ok {
			continue
		}
		if a := e.activity[w]; a != nil && closeSummaries(l, theirs[w]) {
			// Only answers to pullers that nearly have the worker count
			// towards IndexMaxDefer: one far behind says nothing of the
			// others.
			if e.deferIndex(a, now) {
				p.Deferred++
				continue
			}
			a.shipped = now
		}
		p.workers = append(p.workers, w)
	}
	return p, nil
}

// workerActivity is what AnswerIndex remembers of one worker.
type workerActivity struct {
	sum     radix.WorkerSummary // the summary last seen here
	changed time.Time           // when it last changed
	shipped time.Time           // when its holdings were last shipped
	seen    time.Time           // when it was last in the local digest
}

// noteActivity records which workers' summaries changed since the last
// answer, and forgets workers gone from the index for IndexMaxDefer.
func (e *Engine) noteActivity(local radix.Digest, now time.Time) {
	if e.activity == nil {
		e.activity = make(map[string]*workerActivity)
	}
	for _, s := range local {
		a := e.activity[s.Worker]
		if a == nil {
			// First sight: not known to be active, so not deferred.
			e.activity[s.Worker] = &workerActivity{sum: s, seen: now}
			continue
		}
		if a.sum != s {
			a.sum, a.changed = s, now
		}
		a.seen = now
	}
	for w, a := range e.activity {
		if now.Sub(a.seen) > e.cfg.IndexMaxDefer {
			delete(e.activity, w)
		}
	}
}

// deferIndex says whether a busy worker's holdings, which a puller
// nearly has, may wait: see AnswerIndex.
func (e *Engine) deferIndex(a *workerActivity, now time.Time) bool {
	if a.changed.IsZero() || now.Sub(a.changed) >= e.cfg.IndexSettle {
		return false // quiet: the difference is real
	}
	return now.Sub(a.shipped) < e.cfg.IndexMaxDefer
}

// closeSummaries says whether a puller's summary r is close to the local
// l: same epoch and generation, page counts within max(1024, 1/8).
func closeSummaries(l, r *radix.WorkerSummary) bool {
	if r == nil || l.Epoch != r.Epoch || l.Removed != r.Removed || l.Gen != r.Gen {
		return false
	}
	slack := max(1024, l.Pages/8)
	return l.Pages-r.Pages <= slack && r.Pages-l.Pages <= slack
}

// Next appends the next batch to dst; ok is false when none is left.
func (p *IndexPages) Next(dst []byte) (batch []byte, ok bool, err error) {
	for p.i < len(p.workers) {
		p.b.Reset()
		p.from = p.ix.Holdings(&p.b, p.workers[p.i], p.from, IndexBatchBytes)
		if p.from < 0 {
			p.i, p.from = p.i+1, 0
		}
		if len(p.b.Deltas) == 0 {
			continue
		}
		batch, err = radix.AppendBatch(dst, &p.b)
		return batch, err == nil, err
	}
	return dst, false, nil
}

// ApplyIndexPage merges one index batch of an exchange. A conflict (a
// batch of an older epoch of a worker) is not an error: the exchange goes
// on.
func (e *Engine) ApplyIndexPage(b []byte) error {
	if e.ix == nil {
		return ErrNoIndex
	}
	if err := e.applyIndex(b); err != nil && !errors.Is(err, radix.ErrConflict) {
		return err
	}
	return nil
}

package replica

import (
	"errors"
	"fmt"

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
}

// AnswerIndex decodes a puller's index digest and returns the walk over
// the batches it lacks: the holdings of the workers whose summaries differ
// and that this side knows (a worker only the puller knows is its to send),
// at most IndexMaxWorkers of them.
func (e *Engine) AnswerIndex(digest []byte) (*IndexPages, error) {
	if e.ix == nil {
		return nil, ErrNoIndex
	}
	remote, err := radix.DecodeDigest(digest, radix.Limits{MaxWorkers: IndexMaxWorkers})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrExchange, err)
	}
	local := e.ix.Digest()
	known := make(map[string]bool, len(local))
	for _, w := range local {
		known[w.Worker] = true
	}
	p := &IndexPages{ix: e.ix}
	for i, w := range radix.Difference(local, remote) {
		if i == IndexMaxWorkers {
			break
		}
		if known[w] {
			p.workers = append(p.workers, w)
		}
	}
	return p, nil
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

package radix

import "slices"

// pending holds deltas whose anchor page is not in the index yet, keyed by
// that page, so that deltas apply in any order. It is bounded; what does not
// fit is dropped, counted, and repaired by anti-entropy.
type pending struct {
	byAnchor map[uint64][]Delta
	n        int
	pages    int
	dropped  int64
}

func (p *pending) init() { p.byAnchor = make(map[uint64][]Delta) }

func (p *pending) add(d Delta, cfg Config) {
	if p.n >= cfg.MaxPending || p.pages+len(d.Pages) > cfg.MaxPendingPages {
		p.dropped++
		return
	}
	for _, e := range p.byAnchor[d.Anchor] {
		if e.Op == d.Op && e.Worker == d.Worker && e.Epoch == d.Epoch && e.Stamp == d.Stamp &&
			e.Gen == d.Gen && e.Ver == d.Ver && slices.Equal(e.Pages, d.Pages) && slices.Equal(e.Hashes, d.Hashes) {
			return // a duplicate
		}
	}
	// They may alias a receive buffer.
	d.Pages, d.Hashes = slices.Clone(d.Pages), slices.Clone(d.Hashes)
	p.byAnchor[d.Anchor] = append(p.byAnchor[d.Anchor], d)
	p.n++
	p.pages += len(d.Pages)
}

// take removes and returns the deltas waiting for page h.
func (p *pending) take(h uint64) []Delta {
	ds, ok := p.byAnchor[h]
	if !ok {
		return nil
	}
	delete(p.byAnchor, h)
	p.n -= len(ds)
	for _, d := range ds {
		p.pages -= len(d.Pages)
	}
	return ds
}

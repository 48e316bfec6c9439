package radix

import (
	"cmp"
	"slices"
)

// In-flight routes: a prompt routed to a worker whose engine reports its
// cache through events is in that cache only once its prefill is done, so
// a follow-up that arrives before would miss it. InsertPending records the
// prompt's pages as pending on the worker, in a shadow holder apart from the
// worker's own holdings (same name and epoch, invisible in digests,
// holdings, snapshots and the worker count). Matching and routing take a
// worker's depth as the greater of its own and its pending depth, so pages
// the engine confirms make the pending ones irrelevant. ExpirePending drops
// pending pages past a timeout with each replica's own clock: expiry is
// local, not a delta, and pending pages are not repaired by anti-entropy.

// InsertPending records pages (a prompt's lineage hashes from the root) as
// pending on worker at stamp, applies the change and returns the delta to
// replicate. The delta is always anchored at the root: replicas expire
// pending pages on their own clocks, so an anchor in pending pages might be
// gone at the receiver. The delta's Pages alias pages.
func (ix *Index) InsertPending(worker string, epoch uint64, stamp uint32, pages []uint64) (Delta, error) {
	d := Delta{Op: OpPending, Worker: worker, Epoch: epoch, Stamp: stamp, Pages: pages}
	if len(pages) == 0 {
		return d, nil
	}
	return d, ix.Apply(d)
}

// ExpirePending drops every pending page stamped before olderThan and
// returns how many (page, worker) pairs went. It changes this replica only.
func (ix *Index) ExpirePending(olderThan uint32) int {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	x := ix.x
	n := 0
	for w := range x.workers {
		if x.workers[w].owner == 0 {
			continue
		}
		cs := x.chainScr[:0]
		for ci := range x.workers[w].chains {
			c := &x.chains[ci]
			i, _ := findHolder(c.holders, uint32(w))
			if c.holders[i].stamp < olderThan {
				cs = append(cs, ci)
			}
		}
		// Stamps never grow with depth, so the expired chains are closed
		// downwards; deepest first keeps every step prefix-closed.
		slices.SortFunc(cs, func(a, b uint32) int { return cmp.Compare(x.chains[b].depth, x.chains[a].depth) })
		for _, ci := range cs {
			n += len(x.chains[ci].hashes)
			x.removeHolder(ci, uint32(w))
			if len(x.chains[ci].holders) == 0 {
				x.deleteChain(ci)
			}
		}
		x.chainScr = cs[:0]
	}
	return n
}

// appendHits appends the hits of depths, each worker once: a worker's
// depth is the greater of its own and its pending depth (depths come
// deepest first). seen is scratch of len(x.workers), left zeroed.
func (x *core) appendHits(dst []Hit, depths []workerDepth, seen []uint32) []Hit {
	shadows := false
	for _, d := range depths {
		if x.workers[d.w].owner != 0 {
			shadows = true
			break
		}
	}
	if !shadows {
		for _, d := range depths {
			dst = append(dst, Hit{x.workers[d.w].name, int(d.pages)})
		}
		return dst
	}
	for _, d := range depths {
		w := d.w
		if o := x.workers[w].owner; o != 0 {
			w = o - 1
		}
		if seen[w] != 0 {
			continue
		}
		seen[w] = 1
		dst = append(dst, Hit{x.workers[w].name, int(d.pages)})
	}
	for _, d := range depths {
		w := d.w
		if o := x.workers[w].owner; o != 0 {
			w = o - 1
		}
		seen[w] = 0
	}
	return dst
}

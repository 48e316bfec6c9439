package radix

import (
	"cmp"
	"slices"
)

// Eviction is a function of the replicated state only. A worker's pages are
// ranked by (stamp ascending, depth descending, hash descending) and the
// lowest ranked go first. Stamps never grow with depth along a worker's path
// and ties go to the deeper page, so the lowest ranked page is always a leaf
// of the worker's holdings: eviction keeps every worker's set prefix-closed.
// Because the ranking depends on pages and stamps only, not on chain layout
// or arrival order, truncating after every merge gives the same result as
// truncating once after merging everything (see doc.go for the exact claim).

// evCand is a chain on which a worker's pages share the lowest stamp.
type evCand struct {
	ci    uint32
	left  int // pages not yet chosen for eviction
	evict int
}

// lastPage returns the depth and hash of the deepest page of cand not yet
// chosen.
func (x *core) lastPage(e *evCand) (uint32, uint64) {
	c := &x.chains[e.ci]
	return c.depth + uint32(e.left) - 1, c.hashes[e.left-1]
}

// minStamp returns the lowest stamp among w's chains, cached until w's
// holders change.
func (x *core) minStamp(w uint32) (uint32, bool) {
	wk := &x.workers[w]
	if len(wk.chains) == 0 {
		return 0, false
	}
	if wk.minValid {
		return wk.minStamp, true
	}
	m := ^uint32(0)
	for ci := range wk.chains {
		c := &x.chains[ci]
		i, _ := findHolder(c.holders, w)
		m = min(m, c.holders[i].stamp)
	}
	wk.minStamp, wk.minValid = m, true
	return m, true
}

// evictWorker evicts up to k of w's lowest ranked pages. With oneStamp it
// stops after the pages sharing the lowest stamp. It returns the number of
// pages evicted.
func (x *core) evictWorker(w uint32, k int64, oneStamp bool) int64 {
	var done int64
	for k > 0 {
		// One pass: the chains where w's stamp is lowest.
		cands := x.evScr[:0]
		s := ^uint32(0)
		for ci := range x.workers[w].chains {
			c := &x.chains[ci]
			i, _ := findHolder(c.holders, w)
			switch st := c.holders[i].stamp; {
			case st < s || len(cands) == 0:
				s = st
				cands = append(cands[:0], evCand{ci: ci, left: len(c.hashes)})
			case st == s:
				cands = append(cands, evCand{ci: ci, left: len(c.hashes)})
			}
		}
		if len(cands) == 0 {
			break
		}
		for k > 0 {
			best := -1
			var bd uint32
			var bh uint64
			for i := range cands {
				if cands[i].left == 0 {
					continue
				}
				d, h := x.lastPage(&cands[i])
				if best < 0 || d > bd || (d == bd && h > bh) {
					best, bd, bh = i, d, h
				}
			}
			if best < 0 {
				break
			}
			cands[best].left--
			cands[best].evict++
			k--
			done++
		}
		// Deeper chains first, so a chain is emptied after its children.
		slices.SortFunc(cands, func(a, b evCand) int {
			return cmp.Compare(x.chains[b.ci].depth, x.chains[a.ci].depth)
		})
		for _, e := range cands {
			if e.evict > 0 {
				x.evictSuffix(e.ci, w, e.evict)
			}
		}
		x.evScr = cands[:0]
		if oneStamp {
			break
		}
	}
	x.evicted += done
	return done
}

// evictSuffix removes w from the last m pages of chain ci.
func (x *core) evictSuffix(ci, w uint32, m int) {
	if n := len(x.chains[ci].hashes); m < n {
		ci = x.split(ci, n-m)
	}
	x.removeHolder(ci, w)
	if len(x.chains[ci].holders) == 0 {
		x.deleteChain(ci)
	}
}

func (x *core) budget(w uint32) int64 {
	if b := x.workers[w].budget; b != 0 {
		return b
	}
	return x.cfg.WorkerPages
}

// enforce evicts until w is within its budget and the index within its cap.
func (x *core) enforce(w uint32) {
	if b := x.budget(w); b > 0 && x.workers[w].pages > b {
		x.evictWorker(w, x.workers[w].pages-b, false)
	}
	for x.cfg.MaxHolderPages > 0 && x.holderPages > x.cfg.MaxHolderPages {
		// The worker holding the globally oldest stamp (ties: smallest
		// name) gives up pages of that stamp first.
		var (
			victim uint32
			vs     uint32
			found  bool
		)
		for i := range x.workers {
			s, ok := x.minStamp(uint32(i))
			if !ok {
				continue
			}
			if !found || s < vs || (s == vs && x.workers[i].name < x.workers[victim].name) {
				victim, vs, found = uint32(i), s, true
			}
		}
		if !found || x.evictWorker(victim, x.holderPages-x.cfg.MaxHolderPages, true) == 0 {
			return
		}
	}
}

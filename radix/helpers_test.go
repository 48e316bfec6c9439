package radix

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
)

// checkInvariants verifies the structural invariants of x (see chain).
func checkInvariants(x *core) error {
	var pages, holderPages int64
	wpages := make([]int64, len(x.workers))
	entries := make([]int64, len(x.workers))
	sums := make([]uint64, len(x.workers))
	live := 0
	for ci := range x.chains {
		c := &x.chains[ci]
		if c.hashes == nil {
			if !slices.Contains(x.free, uint32(ci)) {
				return fmt.Errorf("chain %d empty but not free", ci)
			}
			continue
		}
		live++
		if len(c.holders) == 0 {
			return fmt.Errorf("chain %d has no holders", ci)
		}
		if !slices.IsSortedFunc(c.holders, func(a, b holder) int { return cmp.Compare(a.w, b.w) }) {
			return fmt.Errorf("chain %d holders unsorted", ci)
		}
		if c.sum != sumHashes(c.hashes) {
			return fmt.Errorf("chain %d sum stale", ci)
		}
		for off, h := range c.hashes {
			gc, goff, ok := x.table.get(h)
			if !ok || gc != uint32(ci) || goff != uint32(off) {
				return fmt.Errorf("chain %d page %d (%#x): table says (%d,%d,%v)", ci, off, h, gc, goff, ok)
			}
		}
		pages += int64(len(c.hashes))
		for _, h := range c.holders {
			if len(h.engine) > len(c.hashes) {
				return fmt.Errorf("chain %d holder %d: %d engine hashes for %d pages", ci, h.w, len(h.engine), len(c.hashes))
			}
			for off, e := range h.engine {
				if e != 0 {
					entries[h.w]++
					sums[h.w] += entryMix(e, c.hashes[off])
				}
			}
			holderPages += int64(len(c.hashes))
			wpages[h.w] += int64(len(c.hashes))
			if _, ok := x.workers[h.w].chains[uint32(ci)]; !ok {
				return fmt.Errorf("chain %d missing from worker %d's set", ci, h.w)
			}
		}
		if c.parent == noChain {
			if c.depth != 0 {
				return fmt.Errorf("root chain %d at depth %d", ci, c.depth)
			}
		} else {
			p := &x.chains[c.parent]
			if int(c.pos) >= len(p.children) || p.children[c.pos] != uint32(ci) {
				return fmt.Errorf("chain %d not at its position %d among its parent's children", ci, c.pos)
			}
			if p.depth+uint32(len(p.hashes)) != c.depth {
				return fmt.Errorf("chain %d depth %d, parent ends at %d", ci, c.depth, p.depth+uint32(len(p.hashes)))
			}
			for _, h := range c.holders {
				i, ok := findHolder(p.holders, h.w)
				if !ok || p.holders[i].stamp < h.stamp || p.holders[i].ver < h.ver {
					return fmt.Errorf("chain %d holder %v not nested in parent", ci, h)
				}
			}
		}
		for _, ch := range c.children {
			if x.chains[ch].parent != uint32(ci) {
				return fmt.Errorf("child %d of %d has parent %d", ch, ci, x.chains[ch].parent)
			}
		}
	}
	if pages != x.pages || holderPages != x.holderPages || int64(x.table.n) != pages {
		return fmt.Errorf("pages %d/%d, holder-pages %d/%d, table %d", pages, x.pages, holderPages, x.holderPages, x.table.n)
	}
	for w := range x.workers {
		if ev := x.workers[w].ev; ev != nil && (ev.entries != entries[w] || ev.sum != sums[w]) {
			return fmt.Errorf("worker %s: %d engine entries (sum %#x), counted %d (%#x)", x.workers[w].name, ev.entries, ev.sum, entries[w], sums[w])
		}
		if ev := x.workers[w].ev; ev == nil && entries[w] != 0 {
			return fmt.Errorf("worker %s without events has %d engine entries", x.workers[w].name, entries[w])
		}
		if wpages[w] != x.workers[w].pages {
			return fmt.Errorf("worker %s pages %d, counted %d", x.workers[w].name, x.workers[w].pages, wpages[w])
		}
		for ci := range x.workers[w].chains {
			if _, ok := findHolder(x.chains[ci].holders, uint32(w)); !ok {
				return fmt.Errorf("worker %d lists chain %d it does not hold", w, ci)
			}
		}
	}
	return nil
}

// universe is a set of prompts (as lineage hashes) with realistic sharing:
// a few system prompts, conversations that extend earlier prompts, and
// unique prompts.
type universe struct {
	prompts [][]uint64
}

func newUniverse(rng *rand.Rand, n, pageTokens int) *universe {
	u := &universe{}
	var toks [][]uint32
	seed := TokenSeed("model")
	for len(toks) < n {
		var p []uint32
		switch k := rng.IntN(10); {
		case k < 6 && len(toks) > 0:
			// Extend an earlier prompt (a later turn, or a fork).
			base := toks[rng.IntN(len(toks))]
			cut := len(base)
			if rng.IntN(3) == 0 {
				cut = rng.IntN(len(base) + 1)
			}
			p = append(slices.Clone(base[:cut]), randTokens(rng, pageTokens*(1+rng.IntN(4)))...)
		default:
			p = randTokens(rng, pageTokens*(1+rng.IntN(6)))
		}
		toks = append(toks, p)
	}
	for _, p := range toks {
		u.prompts = append(u.prompts, AppendTokenPages(nil, seed, pageTokens, p))
	}
	return u
}

func randTokens(rng *rand.Rand, n int) []uint32 {
	t := make([]uint32, n)
	for i := range t {
		t[i] = rng.Uint32N(50000)
	}
	return t
}

// refModel is the naive reference: per worker, the set of pages it holds
// (each page names its whole prefix) with stamps.
type refModel struct {
	parent  map[uint64]uint64
	depth   map[uint64]int
	held    map[string]map[uint64]uint32
	epoch   map[string]uint64
	removed map[string]bool
	budget  int
	cap     int
}

func newRef(budget, capPages int) *refModel {
	return &refModel{
		parent: map[uint64]uint64{}, depth: map[uint64]int{},
		held: map[string]map[uint64]uint32{}, epoch: map[string]uint64{}, removed: map[string]bool{},
		budget: budget, cap: capPages,
	}
}

func (m *refModel) learn(path []uint64) {
	var prev uint64
	for i, p := range path {
		m.parent[p], m.depth[p] = prev, i
		prev = p
	}
}

func (m *refModel) known(p uint64) bool {
	for _, h := range m.held {
		if _, ok := h[p]; ok {
			return true
		}
	}
	return false
}

func (m *refModel) setEpoch(w string, e uint64) bool {
	switch {
	case e < m.epoch[w]:
		return false
	case e > m.epoch[w]:
		m.epoch[w], m.removed[w] = e, false
		delete(m.held, w)
	}
	return !m.removed[w]
}

// insert marks p and all its ancestors held by w at stamp.
func (m *refModel) insert(w string, e uint64, stamp uint32, p uint64) {
	if !m.setEpoch(w, e) {
		return
	}
	if m.held[w] == nil {
		m.held[w] = map[uint64]uint32{}
	}
	for ; p != 0; p = m.parent[p] {
		m.held[w][p] = max(m.held[w][p], stamp)
	}
	m.enforce(w)
}

func (m *refModel) remove(w string, e uint64) {
	if !m.setEpoch(w, e) {
		return
	}
	delete(m.held, w)
	m.removed[w] = true
}

// lowest returns w's lowest ranked page.
func (m *refModel) lowest(w string) uint64 {
	var best uint64
	first := true
	for p, s := range m.held[w] {
		if first {
			best, first = p, false
			continue
		}
		bs := m.held[w][best]
		if s < bs || (s == bs && (m.depth[p] > m.depth[best] || (m.depth[p] == m.depth[best] && p > best))) {
			best = p
		}
	}
	return best
}

func (m *refModel) enforce(w string) {
	for m.budget > 0 && len(m.held[w]) > m.budget {
		delete(m.held[w], m.lowest(w))
	}
	for m.cap > 0 {
		total := 0
		for _, h := range m.held {
			total += len(h)
		}
		if total <= m.cap {
			return
		}
		var victim string
		var vs uint32
		found := false
		for name, h := range m.held {
			if len(h) == 0 {
				continue
			}
			s := h[m.lowest(name)]
			if !found || s < vs || (s == vs && name < victim) {
				victim, vs, found = name, s, true
			}
		}
		for n := total - m.cap; n > 0 && len(m.held[victim]) > 0; n-- {
			p := m.lowest(victim)
			if m.held[victim][p] != vs {
				break
			}
			delete(m.held[victim], p)
		}
	}
}

// match returns each worker's matched depth for path, sorted.
func (m *refModel) match(path []uint64) []Hit {
	var out []Hit
	for w, h := range m.held {
		d := 0
		for d < len(path) {
			if _, ok := h[path[d]]; !ok {
				break
			}
			d++
		}
		if d > 0 {
			out = append(out, Hit{w, d})
		}
	}
	sortHits(out)
	return out
}

func sortHits(h []Hit) {
	slices.SortFunc(h, func(a, b Hit) int { return cmp.Compare(a.Worker, b.Worker) })
}

func (m *refModel) holderPages() int {
	n := 0
	for _, h := range m.held {
		n += len(h)
	}
	return n
}

func newTestRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, seed^0x5eed)) }

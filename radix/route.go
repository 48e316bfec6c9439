package radix

import (
	"fmt"
	"strings"
	"unsafe"
)

// Rule says which branch of the routing policy chose a worker.
type Rule uint8

// Routing rules.
const (
	// RuleImbalance: loads were imbalanced, the least loaded won.
	RuleImbalance Rule = iota + 1
	// RuleCacheHit: the best match ratio reached the cache threshold,
	// the best-matching worker won (ties by load).
	RuleCacheHit
	// RuleLeastLoaded: no worker matched enough, the least loaded won.
	RuleLeastLoaded
	// RuleCost: the cost rule (Policy.CostWeight) chose the worker with
	// the least queued work plus weighted unmatched prompt tokens.
	RuleCost
)

// String returns the rule's name as in logs and metrics labels.
func (r Rule) String() string {
	switch r {
	case RuleImbalance:
		return "imbalance"
	case RuleCacheHit:
		return "cache-hit"
	case RuleLeastLoaded:
		return "least-loaded"
	case RuleCost:
		return "cost"
	}
	return fmt.Sprintf("Rule(%d)", uint8(r))
}

// Candidate is a worker a request may go to, with its current load: under
// the threshold rules any measure (requests in flight, say); under the cost
// rule (Policy.CostWeight) the prefill work queued on it, in tokens.
type Candidate struct {
	Worker string
	Load   int
	// Capacity is the worker's prefill speed relative to the other
	// candidates' (tokens per second, or any unit they share); 0 counts
	// as 1. Only the cost rule uses it: a worker twice as fast drains its
	// queue and the prompt's unmatched tokens in half the time.
	Capacity float64
}

// Policy is the cache-aware routing policy gateways use. It has two
// forms. The threshold rules (CostWeight 0, the default): imbalanced loads
// send the request to the least loaded worker; otherwise the best-matching
// worker wins when its match ratio reaches CacheThreshold, and the least
// loaded otherwise. The cost rule (CostWeight > 0) estimates each worker's
// time to first token instead: its cost is
//
//	(Load + CostWeight * (prompt pages - matched pages) * PageTokens) / Capacity
//
// with Load the tokens queued for prefill on it, and the cheapest wins.
// Ties go to the highest rendezvous rank of the prompt's first page.
//
// The values the traces support (issue 13; bench/RESULTS.md, "Routing
// quality"): with loads as requests in flight, no thresholds (absolute
// 0-32, relative 1.1-3, cache 0.1-0.5) bring the p99 time to first token
// within 1.5x of an oracle's, because a count of requests does not see that
// one prompt is a hundred times longer than another; the cost rule with
// loads in queued tokens and CostWeight 3 comes within 1.02x of it, at a
// hit ratio within 1 point of the best strategy's (weight 2: 2-3 points
// lower, 4: the queue wait grows).
type Policy struct {
	// CacheThreshold is the match ratio (matched pages / prompt pages)
	// from which the best-matching worker wins [0.5].
	CacheThreshold float64
	// Loads are imbalanced when max-min > BalanceAbsThreshold [32] and
	// max > BalanceRelThreshold * min [1.1].
	BalanceAbsThreshold int
	BalanceRelThreshold float64
	// CostWeight, when positive, selects the cost rule: how many queued
	// tokens one uncached prompt token is worth [0: threshold rules].
	// Above 1 it favours cache hits over balance: an uncached token costs
	// prefill now and, cached, saves it for the prompts that follow.
	CostWeight float64
	// PageTokens is the page size the cost rule counts unmatched tokens
	// by [DefaultPageTokens]; it should be the model's
	// (ModelConfig.PageTokens).
	PageTokens int
}

// DefaultPolicy returns the gateways' defaults: the threshold rules.
func DefaultPolicy() Policy {
	return Policy{CacheThreshold: 0.5, BalanceAbsThreshold: 32, BalanceRelThreshold: 1.1}
}

// DefaultCostWeight is the cost rule's weight the traces support.
const DefaultCostWeight = 3

// CostPolicy returns the cost rule with DefaultCostWeight for pages of
// pageTokens tokens; the candidates' loads must be queued prefill tokens.
func CostPolicy(pageTokens int) Policy {
	p := DefaultPolicy()
	p.CostWeight, p.PageTokens = DefaultCostWeight, pageTokens
	return p
}

// cost is the cost rule's estimate for candidate c with matched of the
// prompt's n pages.
func (p *Policy) cost(c *Candidate, matched, n int) float64 {
	pt := p.PageTokens
	if pt <= 0 {
		pt = DefaultPageTokens
	}
	v := float64(c.Load) + p.CostWeight*float64((n-matched)*pt)
	if c.Capacity > 0 {
		v /= c.Capacity
	}
	return v
}

// Source names where a worker's matched pages came from. It is a bit set.
type Source uint8

// Sources of matched pages.
const (
	// SourceRecorded: pages recorded when gateways routed prompts.
	SourceRecorded Source = 1 << iota
	// SourceEvents: pages the worker's engine reported through KV events.
	SourceEvents
	// SourcePending: pages of prompts routed to the worker whose prefill
	// the engine has not confirmed yet (InsertPending).
	SourcePending
)

var sourceNames = [...]string{"recorded", "events", "pending"}

// Names returns the names of the sources in s ("recorded", "events",
// "pending"), in that order; nil for none.
func (s Source) Names() []string {
	var out []string
	for i, n := range sourceNames {
		if s&(1<<i) != 0 {
			out = append(out, n)
		}
	}
	return out
}

// String returns the names of the sources joined with "+", or "none".
func (s Source) String() string {
	if s == 0 {
		return "none"
	}
	return strings.Join(s.Names(), "+")
}

// Decision is the outcome of Route.
type Decision struct {
	Worker       string
	Rule         Rule
	MatchedPages int     // pages of the prompt the chosen worker holds
	MatchRatio   float64 // MatchedPages / prompt pages (0 for an empty prompt)
	// Sources says which sources gave the chosen worker's MatchedPages
	// (0 when it matched nothing): its own holdings (recorded or events,
	// by how the deepest matched page was stored) and its pending pages,
	// each when it reaches that depth.
	Sources Source
}

// Route picks a worker for a token prompt of model among candidates.
func (ix *Index) Route(model string, tokens []uint32, cands []Candidate, p Policy) (Decision, error) {
	s := ix.getScratch()
	s.hashes = ix.AppendPages(s.hashes[:0], model, tokens)
	d, err := ix.routePages(s, s.hashes, cands, p)
	ix.putScratch(s)
	return d, err
}

// RoutePages is Route for a prompt already cut into lineage hashes.
func (ix *Index) RoutePages(pages []uint64, cands []Candidate, p Policy) (Decision, error) {
	s := ix.getScratch()
	d, err := ix.routePages(s, pages, cands, p)
	ix.putScratch(s)
	return d, err
}

// rendezvous ranks candidate name for a prompt whose first page is first:
// ties between equally good candidates go to the highest rank, so that a
// given prefix goes to the same worker on every replica and equal workers
// share distinct prefixes.
func rendezvous(name string, first uint64) uint64 {
	return XXH64(unsafe.Slice(unsafe.StringData(name), len(name)), first)
}

// routePages applies the policy. Ties (equal load for the least loaded,
// equal depth and load for the best match) go to the candidate of highest
// rendezvous rank for the prompt's first page (0 for an empty prompt).
func (ix *Index) routePages(s *scratch, pages []uint64, cands []Candidate, p Policy) (Decision, error) {
	if len(cands) == 0 {
		return Decision{}, ErrNoCandidates
	}
	var first uint64
	if len(pages) > 0 {
		first = pages[0]
	}
	// rank computes rendezvous ranks lazily: most decisions have no tie.
	ranks := s.ranks[:0]
	rank := func(i int) uint64 {
		if ranks == nil || len(ranks) == 0 {
			if cap(s.ranks) < len(cands) {
				s.ranks = make([]uint64, len(cands))
			}
			ranks = s.ranks[:len(cands)]
			for j := range ranks {
				ranks[j] = rendezvous(cands[j].Worker, first)
			}
		}
		return ranks[i]
	}
	lo, hi := 0, 0
	for i, c := range cands {
		if c.Load < cands[lo].Load || (c.Load == cands[lo].Load && i != lo && rank(i) > rank(lo)) {
			lo = i
		}
		if c.Load > cands[hi].Load {
			hi = i
		}
	}
	minL, maxL := cands[lo].Load, cands[hi].Load
	imbalanced := maxL-minL > p.BalanceAbsThreshold && float64(maxL) > p.BalanceRelThreshold*float64(minL)

	// byW[w] is worker w's matched depth; a shadow's depth counts for its
	// owner.
	ix.mu.RLock()
	x := ix.x
	s.path = x.walk(s.path[:0], pages)
	s.depths = x.appendDepths(s.depths[:0], s.path)
	byW := s.seen(len(x.workers))
	for _, d := range s.depths {
		byW[d.w] = d.pages
	}
	own := func(i int) (int, int) {
		w, ok := x.byName[cands[i].Worker]
		if !ok {
			return 0, 0
		}
		m := int(byW[w])
		var pend int
		if sh := x.workers[w].shadow; sh != 0 {
			pend = int(byW[sh-1])
		}
		return m, pend
	}
	matched := func(i int) int {
		m, pend := own(i)
		return max(m, pend)
	}
	best := 0
	bestM := matched(0)
	for i := 1; i < len(cands); i++ {
		m := matched(i)
		if m > bestM || (m == bestM && (cands[i].Load < cands[best].Load ||
			(cands[i].Load == cands[best].Load && rank(i) > rank(best)))) {
			best, bestM = i, m
		}
	}
	ratio := func(m int) float64 {
		if len(pages) == 0 {
			return 0
		}
		return float64(m) / float64(len(pages))
	}
	var d Decision
	chosen := lo
	switch {
	case p.CostWeight > 0:
		bestC := p.cost(&cands[0], matched(0), len(pages))
		chosen = 0
		for i := 1; i < len(cands); i++ {
			c := p.cost(&cands[i], matched(i), len(pages))
			if c < bestC || (c == bestC && rank(i) > rank(chosen)) {
				chosen, bestC = i, c
			}
		}
		d = Decision{Worker: cands[chosen].Worker, Rule: RuleCost, MatchedPages: matched(chosen)}
	case imbalanced:
		d = Decision{Worker: cands[lo].Worker, Rule: RuleImbalance, MatchedPages: matched(lo)}
	case bestM > 0 && ratio(bestM) >= p.CacheThreshold:
		d = Decision{Worker: cands[best].Worker, Rule: RuleCacheHit, MatchedPages: bestM}
		chosen = best
	default:
		d = Decision{Worker: cands[lo].Worker, Rule: RuleLeastLoaded, MatchedPages: matched(lo)}
	}
	if d.MatchedPages > 0 {
		m, pend := own(chosen)
		if pend == d.MatchedPages {
			d.Sources |= SourcePending
		}
		if m == d.MatchedPages {
			d.Sources |= x.ownSource(x.byName[d.Worker], s.path, m)
		}
	}
	for _, dp := range s.depths {
		byW[dp.w] = 0
	}
	ix.mu.RUnlock()
	d.MatchRatio = ratio(d.MatchedPages)
	return d, nil
}

// ownSource says whether w's page at depth m on path (its deepest matched)
// came from events or recorded routes.
func (x *core) ownSource(w uint32, path []step, m int) Source {
	for j := len(path) - 1; j >= 0; j-- {
		if int(path[j].end) < m {
			break
		}
		if i, ok := findHolder(x.chains[path[j].ci].holders, w); ok {
			if x.chains[path[j].ci].holders[i].ver > 0 {
				return SourceEvents
			}
			return SourceRecorded
		}
	}
	return SourceRecorded
}

package radix

import "fmt"

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
	}
	return fmt.Sprintf("Rule(%d)", uint8(r))
}

// Candidate is a worker a request may go to, with its current load (e.g.
// requests in flight).
type Candidate struct {
	Worker string
	Load   int
}

// Policy is the cache-aware routing policy gateways use.
type Policy struct {
	// CacheThreshold is the match ratio (matched pages / prompt pages)
	// from which the best-matching worker wins [0.5].
	CacheThreshold float64
	// Loads are imbalanced when max-min > BalanceAbsThreshold [32] and
	// max > BalanceRelThreshold * min [1.1].
	BalanceAbsThreshold int
	BalanceRelThreshold float64
}

// DefaultPolicy returns the gateways' defaults.
func DefaultPolicy() Policy {
	return Policy{CacheThreshold: 0.5, BalanceAbsThreshold: 32, BalanceRelThreshold: 1.1}
}

// Decision is the outcome of Route.
type Decision struct {
	Worker       string
	Rule         Rule
	MatchedPages int     // pages of the prompt the chosen worker holds
	MatchRatio   float64 // MatchedPages / prompt pages (0 for an empty prompt)
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

// routePages applies the policy. Ties on load go to the earlier candidate,
// so the caller's order breaks them deterministically.
func (ix *Index) routePages(s *scratch, pages []uint64, cands []Candidate, p Policy) (Decision, error) {
	if len(cands) == 0 {
		return Decision{}, ErrNoCandidates
	}
	lo, hi := 0, 0
	for i, c := range cands {
		if c.Load < cands[lo].Load {
			lo = i
		}
		if c.Load > cands[hi].Load {
			hi = i
		}
	}
	minL, maxL := cands[lo].Load, cands[hi].Load
	imbalanced := maxL-minL > p.BalanceAbsThreshold && float64(maxL) > p.BalanceRelThreshold*float64(minL)

	// matched[i] is candidate i's matched depth.
	ix.mu.RLock()
	x := ix.x
	s.path = x.walk(s.path[:0], pages)
	s.depths = x.appendDepths(s.depths[:0], s.path)
	if cap(s.byW) < len(x.workers) {
		s.byW = make([]uint32, len(x.workers))
	}
	byW := s.byW[:len(x.workers)]
	for _, d := range s.depths {
		byW[d.w] = d.pages
	}
	matched := func(i int) int {
		if w, ok := x.byName[cands[i].Worker]; ok {
			return int(byW[w])
		}
		return 0
	}
	best := 0
	bestM := matched(0)
	for i := 1; i < len(cands); i++ {
		m := matched(i)
		if m > bestM || (m == bestM && cands[i].Load < cands[best].Load) {
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
	switch {
	case imbalanced:
		d = Decision{Worker: cands[lo].Worker, Rule: RuleImbalance, MatchedPages: matched(lo)}
	case bestM > 0 && ratio(bestM) >= p.CacheThreshold:
		d = Decision{Worker: cands[best].Worker, Rule: RuleCacheHit, MatchedPages: bestM}
	default:
		d = Decision{Worker: cands[lo].Worker, Rule: RuleLeastLoaded, MatchedPages: matched(lo)}
	}
	for _, dp := range s.depths {
		byW[dp.w] = 0
	}
	ix.mu.RUnlock()
	d.MatchRatio = ratio(d.MatchedPages)
	return d, nil
}

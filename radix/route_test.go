package radix

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestRoute(t *testing.T) {
	ix := New(Config{})
	prompt := []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	// a holds 8 of 10 pages, b 3, c 8 (a fork at page 9), d none.
	mustInsert(t, ix, "a", 1, prompt[:8])
	mustInsert(t, ix, "b", 1, prompt[:3])
	mustInsert(t, ix, "c", 1, append(append([]uint64(nil), prompt[:8]...), 99))
	p := DefaultPolicy()
	cost := Policy{CostWeight: 2, PageTokens: 10}
	tests := []struct {
		name   string
		pages  []uint64
		cands  []Candidate
		policy Policy
		want   Decision
	}{
		{"cache hit", prompt, []Candidate{{Worker: "a", Load: 5}, {Worker: "b", Load: 5}, {Worker: "d", Load: 5}}, p,
			Decision{Worker: "a", Rule: RuleCacheHit, MatchedPages: 8, MatchRatio: 0.8, Sources: SourceRecorded}},
		{"cache hit tie goes to lower load", prompt, []Candidate{{Worker: "a", Load: 9}, {Worker: "c", Load: 4}, {Worker: "b", Load: 0}}, p,
			Decision{Worker: "c", Rule: RuleCacheHit, MatchedPages: 8, MatchRatio: 0.8, Sources: SourceRecorded}},
		{"cache hit tie on load goes by rendezvous", prompt, []Candidate{{Worker: "c", Load: 4}, {Worker: "a", Load: 4}}, p,
			Decision{Worker: higherRank("c", "a", prompt[0]), Rule: RuleCacheHit, MatchedPages: 8, MatchRatio: 0.8, Sources: SourceRecorded}},
		{"below threshold: least loaded", prompt, []Candidate{{Worker: "b", Load: 7}, {Worker: "d", Load: 2}}, p,
			Decision{Worker: "d", Rule: RuleLeastLoaded}},
		{"ratio exactly at threshold hits", prompt[:6], []Candidate{{Worker: "b", Load: 9}, {Worker: "d", Load: 2}}, p,
			Decision{Worker: "b", Rule: RuleCacheHit, MatchedPages: 3, MatchRatio: 0.5, Sources: SourceRecorded}},
		{"imbalance beats the cache", prompt, []Candidate{{Worker: "a", Load: 100}, {Worker: "d", Load: 10}}, p,
			Decision{Worker: "d", Rule: RuleImbalance}},
		{"absolute gap too small: no imbalance", prompt, []Candidate{{Worker: "a", Load: 40}, {Worker: "d", Load: 10}}, p,
			Decision{Worker: "a", Rule: RuleCacheHit, MatchedPages: 8, MatchRatio: 0.8, Sources: SourceRecorded}},
		{"relative gap too small: no imbalance", prompt, []Candidate{{Worker: "a", Load: 1000}, {Worker: "d", Load: 950}}, p,
			Decision{Worker: "a", Rule: RuleCacheHit, MatchedPages: 8, MatchRatio: 0.8, Sources: SourceRecorded}},
		{"imbalance reports the chosen worker's match", prompt, []Candidate{{Worker: "d", Load: 100}, {Worker: "b", Load: 10}}, p,
			Decision{Worker: "b", Rule: RuleImbalance, MatchedPages: 3, MatchRatio: 0.3, Sources: SourceRecorded}},
		{"unknown candidates", prompt, []Candidate{{Worker: "x", Load: 3}, {Worker: "y", Load: 1}}, p,
			Decision{Worker: "y", Rule: RuleLeastLoaded}},
		{"unmatched prompt", []uint64{77, 78}, []Candidate{{Worker: "a", Load: 3}, {Worker: "b", Load: 1}}, p,
			Decision{Worker: "b", Rule: RuleLeastLoaded}},
		{"empty prompt", nil, []Candidate{{Worker: "a", Load: 3}, {Worker: "b", Load: 1}}, p,
			Decision{Worker: "b", Rule: RuleLeastLoaded}},
		{"least-loaded tie goes by rendezvous", []uint64{77}, []Candidate{{Worker: "b", Load: 1}, {Worker: "a", Load: 1}}, p,
			Decision{Worker: higherRank("b", "a", 77), Rule: RuleLeastLoaded}},
		// The cost rule, pages of 10 tokens: a lacks 2 of 10 pages (20
		// tokens, weighted 40), b 7 (140), d all (200).
		{"cost: equal loads, the best match", prompt, []Candidate{{Worker: "d", Load: 100}, {Worker: "b", Load: 100}, {Worker: "a", Load: 100}}, cost,
			Decision{Worker: "a", Rule: RuleCost, MatchedPages: 8, MatchRatio: 0.8, Sources: SourceRecorded}},
		{"cost: queued work outweighs the match", prompt, []Candidate{{Worker: "a", Load: 170}, {Worker: "d", Load: 0}}, cost,
			Decision{Worker: "d", Rule: RuleCost}},
		{"cost: a little queued work does not", prompt, []Candidate{{Worker: "a", Load: 150}, {Worker: "d", Load: 0}}, cost,
			Decision{Worker: "a", Rule: RuleCost, MatchedPages: 8, MatchRatio: 0.8, Sources: SourceRecorded}},
		{"cost: a faster worker drains its queue sooner", prompt, []Candidate{{Worker: "a", Load: 300, Capacity: 4}, {Worker: "d", Load: 0, Capacity: 1}}, cost,
			Decision{Worker: "a", Rule: RuleCost, MatchedPages: 8, MatchRatio: 0.8, Sources: SourceRecorded}},
		{"cost: ties by rendezvous", prompt, []Candidate{{Worker: "c", Load: 7}, {Worker: "a", Load: 7}}, cost,
			Decision{Worker: higherRank("c", "a", prompt[0]), Rule: RuleCost, MatchedPages: 8, MatchRatio: 0.8, Sources: SourceRecorded}},
		{"cost: imbalance thresholds do not apply", prompt, []Candidate{{Worker: "a", Load: 100}, {Worker: "d", Load: 10}}, cost,
			Decision{Worker: "a", Rule: RuleCost, MatchedPages: 8, MatchRatio: 0.8, Sources: SourceRecorded}},
		{"cost: default page size", prompt, []Candidate{{Worker: "a", Load: 70}, {Worker: "d", Load: 0}}, Policy{CostWeight: 1},
			Decision{Worker: "a", Rule: RuleCost, MatchedPages: 8, MatchRatio: 0.8, Sources: SourceRecorded}},
		{"zero threshold still needs a match", []uint64{77}, []Candidate{{Worker: "a", Load: 5}, {Worker: "b", Load: 1}}, Policy{BalanceAbsThreshold: 32, BalanceRelThreshold: 1.1},
			Decision{Worker: "b", Rule: RuleLeastLoaded}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ix.RoutePages(tc.pages, tc.cands, tc.policy)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	t.Run("no candidates", func(t *testing.T) {
		if _, err := ix.RoutePages(prompt, nil, p); !errors.Is(err, ErrNoCandidates) {
			t.Errorf("err = %v, want ErrNoCandidates", err)
		}
	})
	t.Run("tokens", func(t *testing.T) {
		toks := randTokens(newTestRand(3), 64)
		pages := ix.AppendPages(nil, "m", toks)
		mustInsert(t, ix, "e", 1, pages)
		got, err := ix.Route("m", toks, []Candidate{{Worker: "a", Load: 0}, {Worker: "e", Load: 3}}, p)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(Decision{Worker: "e", Rule: RuleCacheHit, MatchedPages: 4, MatchRatio: 1, Sources: SourceRecorded}, got); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	})
}

// higherRank returns which of a and b wins a tie for a prompt whose first
// page is first.
func higherRank(a, b string, first uint64) string {
	if XXH64([]byte(b), first) > XXH64([]byte(a), first) {
		return b
	}
	return a
}

func mustInsert(t testing.TB, ix *Index, w string, stamp uint32, pages []uint64) {
	t.Helper()
	if _, err := ix.Insert(w, 0, stamp, pages); err != nil {
		t.Fatal(err)
	}
}

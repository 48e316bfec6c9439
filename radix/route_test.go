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
	tests := []struct {
		name   string
		pages  []uint64
		cands  []Candidate
		policy Policy
		want   Decision
	}{
		{"cache hit", prompt, []Candidate{{"a", 5}, {"b", 5}, {"d", 5}}, p,
			Decision{Worker: "a", Rule: RuleCacheHit, MatchedPages: 8, MatchRatio: 0.8, Sources: SourceRecorded}},
		{"cache hit tie goes to lower load", prompt, []Candidate{{"a", 9}, {"c", 4}, {"b", 0}}, p,
			Decision{Worker: "c", Rule: RuleCacheHit, MatchedPages: 8, MatchRatio: 0.8, Sources: SourceRecorded}},
		{"cache hit tie on load goes by rendezvous", prompt, []Candidate{{"c", 4}, {"a", 4}}, p,
			Decision{Worker: higherRank("c", "a", prompt[0]), Rule: RuleCacheHit, MatchedPages: 8, MatchRatio: 0.8, Sources: SourceRecorded}},
		{"below threshold: least loaded", prompt, []Candidate{{"b", 7}, {"d", 2}}, p,
			Decision{Worker: "d", Rule: RuleLeastLoaded}},
		{"ratio exactly at threshold hits", prompt[:6], []Candidate{{"b", 9}, {"d", 2}}, p,
			Decision{Worker: "b", Rule: RuleCacheHit, MatchedPages: 3, MatchRatio: 0.5, Sources: SourceRecorded}},
		{"imbalance beats the cache", prompt, []Candidate{{"a", 100}, {"d", 10}}, p,
			Decision{Worker: "d", Rule: RuleImbalance}},
		{"absolute gap too small: no imbalance", prompt, []Candidate{{"a", 40}, {"d", 10}}, p,
			Decision{Worker: "a", Rule: RuleCacheHit, MatchedPages: 8, MatchRatio: 0.8, Sources: SourceRecorded}},
		{"relative gap too small: no imbalance", prompt, []Candidate{{"a", 1000}, {"d", 950}}, p,
			Decision{Worker: "a", Rule: RuleCacheHit, MatchedPages: 8, MatchRatio: 0.8, Sources: SourceRecorded}},
		{"imbalance reports the chosen worker's match", prompt, []Candidate{{"d", 100}, {"b", 10}}, p,
			Decision{Worker: "b", Rule: RuleImbalance, MatchedPages: 3, MatchRatio: 0.3, Sources: SourceRecorded}},
		{"unknown candidates", prompt, []Candidate{{"x", 3}, {"y", 1}}, p,
			Decision{Worker: "y", Rule: RuleLeastLoaded}},
		{"unmatched prompt", []uint64{77, 78}, []Candidate{{"a", 3}, {"b", 1}}, p,
			Decision{Worker: "b", Rule: RuleLeastLoaded}},
		{"empty prompt", nil, []Candidate{{"a", 3}, {"b", 1}}, p,
			Decision{Worker: "b", Rule: RuleLeastLoaded}},
		{"least-loaded tie goes by rendezvous", []uint64{77}, []Candidate{{"b", 1}, {"a", 1}}, p,
			Decision{Worker: higherRank("b", "a", 77), Rule: RuleLeastLoaded}},
		{"zero threshold still needs a match", []uint64{77}, []Candidate{{"a", 5}, {"b", 1}}, Policy{BalanceAbsThreshold: 32, BalanceRelThreshold: 1.1},
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
		got, err := ix.Route("m", toks, []Candidate{{"a", 0}, {"e", 3}}, p)
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

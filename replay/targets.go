package replay

import (
	"fmt"
	"slices"
)

// Target is one of issue 13's targets for a strategy, checked on a report.
type Target struct {
	Name   string `json:"name"`
	Met    bool   `json:"met"`
	Detail string `json:"detail"`
}

// Target thresholds (issue 13, item 7).
const (
	// TargetHitPoints: the strategy's hit ratio is within this many
	// points (hundredths) of the best strategy's at every G.
	TargetHitPoints = 0.03
	// TargetWaitVsOracle and TargetTTFTVsOracle bound its p99 queue wait
	// and p99 TTFT as multiples of the oracle's.
	TargetWaitVsOracle = 1.5
	TargetTTFTVsOracle = 1.2
	// TargetGateways is the fleet size at which the p99 targets are set
	// (the G = 16); a run without it has them checked at every G.
	TargetGateways = 16
)

// CheckTargets checks strategy's figures in rep against the targets: its
// hit ratio within TargetHitPoints of the best of any strategy at each
// fleet size, and its p99 queue wait and p99 TTFT within
// TargetWaitVsOracle and TargetTTFTVsOracle of the oracle's at
// TargetGateways, or at each fleet size when the report lacks that one
// (when the report has an oracle); the other fleet sizes' ratios are
// listed, marked "not judged". A fleet size without the strategy fails
// the target.
func CheckTargets(rep *Report, strategy string) []Target {
	var gs []int
	for _, r := range rep.Results {
		if !slices.Contains(gs, r.Gateways) {
			gs = append(gs, r.Gateways)
		}
	}
	judged := func(g int) bool { return g == TargetGateways || !slices.Contains(gs, TargetGateways) }
	at := "at every G"
	if slices.Contains(gs, TargetGateways) {
		at = fmt.Sprintf("at G=%d", TargetGateways)
	}
	hit := Target{Name: fmt.Sprintf("%s hit ratio within %.0f points of the best at every G", strategy, 100*TargetHitPoints), Met: true}
	wait := Target{Name: fmt.Sprintf("%s p99 queue wait at most %gx the oracle's %s", strategy, TargetWaitVsOracle, at), Met: true}
	ttft := Target{Name: fmt.Sprintf("%s p99 TTFT at most %gx the oracle's %s", strategy, TargetTTFTVsOracle, at), Met: true}
	oracle := false
	for _, g := range gs {
		var mine *Result
		best, bestName := -1.0, ""
		for i := range rep.Results {
			r := &rep.Results[i]
			if r.Gateways != g {
				continue
			}
			if r.Strategy == strategy {
				mine = r
			}
			if r.Strategy == StrategyOracle {
				oracle = true
			}
			if r.HitRatio > best {
				best, bestName = r.HitRatio, r.Strategy
			}
		}
		sep := func(t *Target) string {
			if t.Detail == "" {
				return ""
			}
			return "; "
		}
		if mine == nil {
			hit.Met, wait.Met, ttft.Met = false, false, false
			hit.Detail += sep(&hit) + fmt.Sprintf("G=%d: not run", g)
			continue
		}
		gap := best - mine.HitRatio
		if gap > TargetHitPoints {
			hit.Met = false
		}
		hit.Detail += sep(&hit) + fmt.Sprintf("G=%d: %.3f vs %.3f (%s)", g, mine.HitRatio, best, bestName)
		if mine.WaitP99VsOracle > 0 || mine.TTFTP99VsOracle > 0 {
			note := ""
			if judged(g) {
				if mine.WaitP99VsOracle > TargetWaitVsOracle {
					wait.Met = false
				}
				if mine.TTFTP99VsOracle > TargetTTFTVsOracle {
					ttft.Met = false
				}
			} else {
				note = " (not judged)"
			}
			wait.Detail += sep(&wait) + fmt.Sprintf("G=%d: %.2fx%s", g, mine.WaitP99VsOracle, note)
			ttft.Detail += sep(&ttft) + fmt.Sprintf("G=%d: %.2fx%s", g, mine.TTFTP99VsOracle, note)
		}
	}
	out := []Target{hit}
	if oracle {
		out = append(out, wait, ttft)
	}
	return out
}

package replay

import (
	"fmt"
	"io"
	"text/tabwriter"
)

// WriteTable writes rep as text tables, one per fleet size.
func WriteTable(w io.Writer, rep *Report) error {
	c := rep.Config
	fmt.Fprintf(w, "trace: %d requests over %.0f s (after speed-up %g), %d input tokens; infinite-cache hit ratio %.3f\n",
		rep.Trace.Requests, rep.Trace.DurationSeconds, c.Speedup, rep.Trace.InputTokens, rep.Trace.InfiniteCacheHitRatio)
	fmt.Fprintf(w, "engines: W = %d, cache %d tokens (%d blocks of %d), prefill %g tokens/s, decode %g tokens/s, batch %d; index pages of %d tokens\n",
		c.Workers, c.CacheTokens, c.CacheTokens/c.BlockTokens, c.BlockTokens, c.PrefillTokensPerSecond, c.DecodeTokensPerSecond, c.MaxBatch, c.PageTokens)
	p := c.Policy
	if p.CostWeight > 0 {
		fmt.Fprintf(w, "policy of the index strategies: cost rule, least queued prefill tokens + %g x unmatched prompt tokens\n", p.CostWeight)
	} else {
		fmt.Fprintf(w, "policy of the index strategies: thresholds, best match from a match ratio of %g; least loaded (requests in flight) when max - min > %d and max > %g x min\n",
			p.CacheThreshold, p.BalanceAbsThreshold, p.BalanceRelThreshold)
	}
	g := -1
	var tw *tabwriter.Writer
	flush := func() error {
		if tw != nil {
			return tw.Flush()
		}
		return nil
	}
	for _, r := range rep.Results {
		if r.Gateways != g {
			if err := flush(); err != nil {
				return err
			}
			g = r.Gateways
			fmt.Fprintf(w, "\nG = %d gateways\n", g)
			tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
			fmt.Fprintln(tw, "strategy\thit\thit/oracle\tTTFT p50 s\tp90 s\tp99 s\tp99/oracle\twait p99 s\twait/oracle\timbalance\tutil\tdecisions/s\t")
		}
		dps := "-"
		if r.DecisionsPerSecond > 0 {
			dps = fmt.Sprintf("%.0f", r.DecisionsPerSecond)
		}
		fmt.Fprintf(tw, "%s\t%.3f\t%s\t%.2f\t%.2f\t%.2f\t%s\t%.2f\t%s\t%.2f\t%.2f\t%s\t\n",
			r.Strategy, r.HitRatio, ratio(r.HitVsOracle), r.TTFTP50Seconds, r.TTFTP90Seconds, r.TTFTP99Seconds,
			ratio(r.TTFTP99VsOracle), r.QueueWaitP99Seconds, ratio(r.WaitP99VsOracle), r.Imbalance, r.Utilisation, dps)
	}
	if err := flush(); err != nil {
		return err
	}
	if len(rep.Targets) > 0 {
		fmt.Fprintf(w, "\ntargets (issue 13):\n")
	}
	for _, t := range rep.Targets {
		met := "NOT MET"
		if t.Met {
			met = "met"
		}
		fmt.Fprintf(w, "  %-7s %s: %s\n", met, t.Name, t.Detail)
	}
	return nil
}

func ratio(x float64) string {
	if x == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", x)
}

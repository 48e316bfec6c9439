package memberlist

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// Summary aggregates the trials of one implementation at one size.
type Summary struct {
	Impl   string
	N      int
	Trials int
	// Bootstrap holds the bootstrap times of the trials that finished;
	// Unfinished counts the others.
	Bootstrap  []time.Duration
	Unfinished int
	// HoleTrials counts trials with holes; HolePairs sums the pairs;
	// HoleLasted is the longest a trial's holes lasted.
	HoleTrials, HolePairs int
	HoleLasted            time.Duration
	JoinErrors            int
	Sent, ByGossip        int
	Reached               int
	SendErrors            int
	Spread                []time.Duration
	// Idle holds the trials' idle bytes per node per second, IdleUDP the
	// UDP part.
	Idle, IdleUDP []float64
	Detect        []time.Duration
	Undetected    int
	FalseDead     int
}

// summarize folds the results of one implementation at one size.
func summarize(name string, rs []Result) Summary {
	s := Summary{Impl: name, Trials: len(rs)}
	for _, r := range rs {
		s.N = r.N
		if r.Bootstrap >= 0 {
			s.Bootstrap = append(s.Bootstrap, r.Bootstrap)
		} else {
			s.Unfinished++
		}
		if r.Holes > 0 {
			s.HoleTrials++
			s.HolePairs += r.Holes
			s.HoleLasted = max(s.HoleLasted, r.HoleLasted)
		}
		s.JoinErrors += r.JoinErrors
		s.Sent += r.Sent
		s.ByGossip += r.ByGossip
		s.Reached += r.Reached
		s.SendErrors += r.SendErrors
		s.Spread = append(s.Spread, r.Spread...)
		if r.IdleWindow > 0 {
			s.Idle = append(s.Idle, r.IdlePerNode())
			s.IdleUDP = append(s.IdleUDP, float64(r.Idle.UDP)/float64(r.N)/r.IdleWindow.Seconds())
		}
		if r.Detect >= 0 {
			s.Detect = append(s.Detect, r.Detect)
		} else {
			s.Undetected++
		}
		s.FalseDead += r.FalseDead
	}
	return s
}

// quantile returns the q-quantile (nearest rank) of xs, and false when xs
// is empty.
func quantile[T int64 | float64 | time.Duration](xs []T, q float64) (T, bool) {
	if len(xs) == 0 {
		return 0, false
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	i := int(q*float64(len(s))+0.5) - 1
	return s[min(max(i, 0), len(s)-1)], true
}

// row is one line of the table: a figure's text for both implementations
// and, for numeric figures, their ratio.
type row struct {
	figure string
	mn, ml string
	ratio  string
}

// seconds formats a quantile of durations in seconds, or "-".
func seconds(xs []time.Duration, q float64) (string, float64, bool) {
	v, ok := quantile(xs, q)
	if !ok {
		return "-", 0, false
	}
	return fmt.Sprintf("%.3f", v.Seconds()), v.Seconds(), true
}

// ratio formats a/b, or "-" when either is missing or b is 0.
func ratio(a, b float64, okA, okB bool) string {
	if !okA || !okB || b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", a/b)
}

// durationRow compares the q-quantile of two sets of durations.
func durationRow(figure string, mn, ml []time.Duration, q float64) row {
	a, av, aok := seconds(mn, q)
	b, bv, bok := seconds(ml, q)
	return row{figure: figure, mn: a, ml: b, ratio: ratio(av, bv, aok, bok)}
}

// floatRow compares the medians of two sets of figures, and lists the
// figures when there are several.
func floatRow(figure string, mn, ml []float64) row {
	a, aok := quantile(mn, 0.5)
	b, bok := quantile(ml, 0.5)
	f := func(v float64, ok bool, xs []float64) string {
		if !ok {
			return "-"
		}
		s := fmt.Sprintf("%.0f", v)
		if len(xs) > 1 {
			each := make([]string, len(xs))
			for i, x := range xs {
				each[i] = fmt.Sprintf("%.0f", x)
			}
			s += " (" + strings.Join(each, ", ") + ")"
		}
		return s
	}
	return row{figure: figure, mn: f(a, aok, mn), ml: f(b, bok, ml), ratio: ratio(a, b, aok, bok)}
}

// share formats k of n as a fraction and a percentage.
func share(k, n int) string {
	if n == 0 {
		return "-"
	}
	return fmt.Sprintf("%d/%d (%.1f%%)", k, n, 100*float64(k)/float64(n))
}

// rows lays out the comparison of a (meshnode) and b (memberlist).
func rows(a, b Summary) []row {
	count := func(figure string, x, y int) row {
		return row{figure: figure, mn: fmt.Sprint(x), ml: fmt.Sprint(y), ratio: "-"}
	}
	text := func(figure, x, y string) row { return row{figure: figure, mn: x, ml: y, ratio: "-"} }
	return []row{
		durationRow("bootstrap, median (s)", a.Bootstrap, b.Bootstrap, 0.5),
		durationRow("bootstrap, worst (s)", a.Bootstrap, b.Bootstrap, 1),
		count("trials whose bootstrap did not finish", a.Unfinished, b.Unfinished),
		text("trials with holes after settling", share(a.HoleTrials, a.Trials), share(b.HoleTrials, b.Trials)),
		count("hole pairs (a does not know b), all trials", a.HolePairs, b.HolePairs),
		text("longest-lasting hole after the count (s)", fmt.Sprintf("%.3f", a.HoleLasted.Seconds()), fmt.Sprintf("%.3f", b.HoleLasted.Seconds())),
		count("failed join calls", a.JoinErrors, b.JoinErrors),
		durationRow("broadcast to all, median (s)", a.Spread, b.Spread, 0.5),
		durationRow("broadcast to all, p99 (s)", a.Spread, b.Spread, 0.99),
		durationRow("broadcast to all, worst (s)", a.Spread, b.Spread, 1),
		text("broadcasts that reached every node by gossip alone", share(a.ByGossip, a.Sent), share(b.ByGossip, b.Sent)),
		text("broadcasts that reached every node, push-pull repair included", share(a.Reached, a.Sent), share(b.Reached, b.Sent)),
		floatRow("idle bytes sent per node per second, median", a.Idle, b.Idle),
		floatRow("  of which UDP", a.IdleUDP, b.IdleUDP),
		durationRow("crash detected by all, median (s)", a.Detect, b.Detect, 0.5),
		durationRow("crash detected by all, worst (s)", a.Detect, b.Detect, 1),
		count("crashes not detected within the limit", a.Undetected, b.Undetected),
		count("false deaths at the end (pairs)", a.FalseDead, b.FalseDead),
	}
}

// writeTable writes the markdown comparison of meshnode (a) and memberlist
// (b) at one size.
func writeTable(w io.Writer, a, b Summary) {
	fmt.Fprintf(w, "### N = %d (%d trials each)\n\n", a.N, a.Trials)
	fmt.Fprintf(w, "| figure | meshnode | memberlist | meshnode/memberlist |\n|---|---|---|---|\n")
	for _, r := range rows(a, b) {
		fmt.Fprintf(w, "| %s | %s | %s | %s |\n", r.figure, r.mn, r.ml, r.ratio)
	}
	fmt.Fprintln(w)
}

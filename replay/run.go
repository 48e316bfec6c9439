package replay

import (
	"fmt"
	"slices"
	"time"

	"golang.org/x/sync/errgroup"
)

// Result is one strategy's figures at one fleet size.
type Result struct {
	Strategy string `json:"strategy"`
	Gateways int    `json:"gateways"`
	// HitRatio is input tokens served from an engine's prefix cache over
	// input tokens.
	HitRatio     float64 `json:"hit_ratio"`
	CachedTokens int64   `json:"cached_tokens"`
	// Modeled time to first token (queue wait plus prefill of the uncached
	// tokens) and queue wait, in seconds.
	TTFTP50Seconds      float64 `json:"ttft_p50_seconds"`
	TTFTP90Seconds      float64 `json:"ttft_p90_seconds"`
	TTFTP99Seconds      float64 `json:"ttft_p99_seconds"`
	QueueWaitP99Seconds float64 `json:"queue_wait_p99_seconds"`
	// Imbalance is the engines' max busy time over their mean busy time.
	Imbalance float64 `json:"imbalance"`
	// Utilisation is the engines' busy time over W times the run's span.
	Utilisation float64 `json:"utilisation"`
	// DecisionsPerSecond is routing decisions per second of wall time
	// spent deciding (0 when not measured). Not deterministic.
	DecisionsPerSecond float64 `json:"decisions_per_second"`
	// Ratios to the oracle of the same fleet size (0 without an oracle
	// run): hit ratio, p99 TTFT and p99 queue wait.
	HitVsOracle     float64 `json:"hit_vs_oracle,omitempty"`
	TTFTP99VsOracle float64 `json:"ttft_p99_vs_oracle,omitempty"`
	WaitP99VsOracle float64 `json:"queue_wait_p99_vs_oracle,omitempty"`
}

// TraceInfo summarises the replayed trace.
type TraceInfo struct {
	Requests        int     `json:"requests"`
	InputTokens     int64   `json:"input_tokens"`
	DurationSeconds float64 `json:"duration_seconds"`
	// InfiniteCacheHitRatio is the hit ratio of one unbounded cache: the
	// trace's upper bound.
	InfiniteCacheHitRatio float64 `json:"infinite_cache_hit_ratio"`
}

// Report is the outcome of Run.
type Report struct {
	Trace   TraceInfo `json:"trace"`
	Config  Config    `json:"config"`
	Results []Result  `json:"results"`
	// Targets are issue 13's targets checked for the meshnode strategies
	// in Results (CheckTargets).
	Targets []Target `json:"targets,omitempty"`
}

// Check sets rep.Targets for each meshnode strategy in rep.Results.
func (rep *Report) Check() {
	rep.Targets = nil
	for _, name := range []string{StrategyEvents, StrategyRecorded} {
		if slices.ContainsFunc(rep.Results, func(r Result) bool { return r.Strategy == name }) {
			rep.Targets = append(rep.Targets, CheckTargets(rep, name)...)
		}
	}
}

// Options are the parts of a run that are not the fleet's configuration.
type Options struct {
	// Gateways lists the fleet sizes G to run [1].
	Gateways []int
	// Strategies lists the strategies by name [Strategies()].
	Strategies []string
	// Wall, when set, is the wall clock used to measure routing decisions
	// per second (time.Now); nil leaves them at 0 and the report
	// deterministic.
	Wall func() time.Time
	// Parallel is how many runs (a strategy at a fleet size) go at once
	// [1]; the figures do not depend on it, but decisions per second do.
	Parallel int
}

// Run replays reqs through every strategy at every fleet size of opt with
// cfg's engines and network, and returns the figures, ordered by fleet
// size then strategy (as listed in opt). cfg.Gateways is ignored.
func Run(reqs []Request, cfg Config, opt Options) (*Report, error) {
	cfg = cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if len(reqs) == 0 {
		return nil, fmt.Errorf("%w: no requests", ErrTrace)
	}
	if len(opt.Gateways) == 0 {
		opt.Gateways = []int{1}
	}
	if len(opt.Strategies) == 0 {
		opt.Strategies = Strategies()
	}
	for _, name := range opt.Strategies {
		if _, err := newStrategy(name); err != nil {
			return nil, err
		}
	}
	for _, g := range opt.Gateways {
		c := cfg
		c.Gateways = g
		if err := c.Validate(); err != nil {
			return nil, err
		}
	}
	for i := range reqs {
		if len(reqs[i].Blocks) == 0 {
			return nil, fmt.Errorf("%w: request %d has no blocks", ErrTrace, i)
		}
	}
	rep := NewReport(reqs, cfg)
	hashes := engineHashes(reqs, cfg.BlockTokens)
	pages := make([][]uint64, len(reqs))
	var buf []uint32
	for i := range reqs {
		pages[i], buf = appendPages(nil, buf, &reqs[i], cfg.BlockTokens, cfg.PageTokens)
	}
	// The runs are independent and each deterministic: they run side by
	// side, at most Parallel at once, and are reported in order.
	ns := len(opt.Strategies)
	rep.Results = make([]Result, len(opt.Gateways)*ns)
	var eg errgroup.Group
	eg.SetLimit(max(opt.Parallel, 1))
	for gi, g := range opt.Gateways {
		c := cfg
		c.Gateways = g
		for si, name := range opt.Strategies {
			eg.Go(func() error {
				st, _ := newStrategy(name)
				res, err := runOne(c, reqs, pages, hashes, st, opt.Wall)
				if err != nil {
					return fmt.Errorf("replay: %s at G = %d: %w", name, g, err)
				}
				rep.Results[gi*ns+si] = res
				return nil
			})
		}
	}
	if err := eg.Wait(); err != nil {
		return nil, err
	}
	for gi := range opt.Gateways {
		OracleRatios(rep.Results[gi*ns : (gi+1)*ns])
	}
	rep.Check()
	return rep, nil
}

// NewReport returns a report of reqs under cfg (defaults filled in) with
// the trace's summary and no results yet.
func NewReport(reqs []Request, cfg Config) *Report {
	cfg = cfg.Defaults()
	rep := &Report{Config: cfg}
	rep.Trace.Requests = len(reqs)
	for i := range reqs {
		rep.Trace.InputTokens += int64(reqs[i].InputTokens)
	}
	if len(reqs) > 0 {
		rep.Trace.DurationSeconds = reqs[len(reqs)-1].At.Seconds() / cfg.Speedup
	}
	rep.Trace.InfiniteCacheHitRatio = InfiniteCacheHitRatio(reqs, cfg.BlockTokens)
	return rep
}

// Sample is one request's outcome.
type Sample struct {
	InputTokens, CachedTokens int
	TTFT, QueueWait           time.Duration
}

// Summarise computes a strategy's Result at G gateways from its requests'
// samples and each engine's busy (prefill) time over a run of span.
// DecisionsPerSecond and the oracle ratios are left to the caller.
func Summarise(strategy string, gateways int, samples []Sample, busy []time.Duration, span time.Duration) Result {
	r := Result{Strategy: strategy, Gateways: gateways}
	var in int64
	ttft := make([]time.Duration, len(samples))
	wait := make([]time.Duration, len(samples))
	for i, f := range samples {
		in += int64(f.InputTokens)
		r.CachedTokens += int64(f.CachedTokens)
		ttft[i], wait[i] = f.TTFT, f.QueueWait
	}
	if in > 0 {
		r.HitRatio = float64(r.CachedTokens) / float64(in)
	}
	slices.Sort(ttft)
	slices.Sort(wait)
	r.TTFTP50Seconds = percentile(ttft, 50).Seconds()
	r.TTFTP90Seconds = percentile(ttft, 90).Seconds()
	r.TTFTP99Seconds = percentile(ttft, 99).Seconds()
	r.QueueWaitP99Seconds = percentile(wait, 99).Seconds()
	var sum, top time.Duration
	for _, b := range busy {
		sum += b
		top = max(top, b)
	}
	if sum > 0 {
		r.Imbalance = float64(top) / (float64(sum) / float64(len(busy)))
	}
	if span > 0 && len(busy) > 0 {
		r.Utilisation = float64(sum) / (float64(len(busy)) * float64(span))
	}
	return r
}

// runOne replays the trace through one strategy at one fleet size.
func runOne(cfg Config, reqs []Request, pages, hashes [][]uint64, st Strategy, wall func() time.Time) (Result, error) {
	s, err := newSim(cfg, reqs, pages, hashes, st)
	if err != nil {
		return Result{}, err
	}
	s.wallNow = wall
	if err := s.run(); err != nil {
		return Result{}, err
	}
	samples := make([]Sample, len(reqs))
	var span time.Duration
	for i, f := range s.first {
		samples[i] = Sample{InputTokens: reqs[i].InputTokens, CachedTokens: f.CachedTokens, TTFT: f.TTFT(), QueueWait: f.QueueWait()}
		span = max(span, f.FirstToken)
	}
	busy := make([]time.Duration, len(s.engines))
	for w, e := range s.engines {
		busy[w] = e.m.Stats().PrefillBusy
	}
	r := Summarise(st.Name(), cfg.Gateways, samples, busy, span)
	if s.routeWall > 0 {
		r.DecisionsPerSecond = float64(s.decisions) / s.routeWall.Seconds()
	}
	return r, nil
}

// percentile returns the nearest-rank p-th percentile of sorted xs.
func percentile(xs []time.Duration, p int) time.Duration {
	if len(xs) == 0 {
		return 0
	}
	k := (p*len(xs) + 99) / 100 // ceil(p/100 * n)
	return xs[max(k, 1)-1]
}

// OracleRatios fills each result's ratios to the oracle's result among rs
// (none without one).
func OracleRatios(rs []Result) {
	i := slices.IndexFunc(rs, func(r Result) bool { return r.Strategy == StrategyOracle })
	if i < 0 {
		return
	}
	o := rs[i]
	div := func(a, b float64) float64 {
		if b == 0 {
			return 0
		}
		return a / b
	}
	for j := range rs {
		rs[j].HitVsOracle = div(rs[j].HitRatio, o.HitRatio)
		rs[j].TTFTP99VsOracle = div(rs[j].TTFTP99Seconds, o.TTFTP99Seconds)
		rs[j].WaitP99VsOracle = div(rs[j].QueueWaitP99Seconds, o.QueueWaitP99Seconds)
	}
}

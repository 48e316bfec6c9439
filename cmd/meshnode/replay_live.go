package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/semaphore"

	"github.com/meshnode/meshnode/engine"
	"github.com/meshnode/meshnode/engine/server"
	"github.com/meshnode/meshnode/node"
	"github.com/meshnode/meshnode/replay"
)

// Live replay bounds.
const (
	// liveMaxGateways bounds the agents started in this process.
	liveMaxGateways = 64
	// liveInFlight bounds the requests in flight at once.
	liveInFlight = 1024
	// liveSetup bounds starting and converging one fleet.
	liveSetup = 60 * time.Second
	// liveLoadEvery is how often the driver publishes the engines'
	// requests in flight as the workers' loads.
	liveLoadEvery = 50 * time.Millisecond
)

// liveStrategies are the strategies --live runs: the cache-blind ones the
// driver decides itself, and meshnode's through the agents' /v1/route.
var liveStrategies = []string{replay.StrategyRandom, replay.StrategyRoundRobin, replay.StrategyLeastLoad, replay.StrategyRecorded}

// liveFleet is one G: agents and engines on loopback, in this process.
type liveFleet struct {
	cfg     replay.Config
	nodes   []*demoNode
	engines []*server.Server
	urls    []string
	client  *http.Client
}

// runLive replays reqs on real agents and emulated engines on loopback, at
// cfg.Speedup: the engines' rates are multiplied by it and the measured
// times divided back, so the figures are in the trace's time.
func runLive(ctx context.Context, reqs []replay.Request, cfg replay.Config, gs []int, names []string, stderr io.Writer) (*replay.Report, error) {
	cfg = cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var run []string
	for _, n := range names {
		if slices.Contains(liveStrategies, n) {
			run = append(run, n)
		} else {
			fmt.Fprintf(stderr, "meshnode replay: --live skips %s (live: %s)\n", n, strings.Join(liveStrategies, ", "))
		}
	}
	if len(run) == 0 {
		return nil, fmt.Errorf("no strategy --live can run (live: %s)", strings.Join(liveStrategies, ", "))
	}
	rep := replay.NewReport(reqs, cfg)
	for _, g := range gs {
		if g > liveMaxGateways {
			return nil, fmt.Errorf("--live runs at most %d gateways, not %d", liveMaxGateways, g)
		}
		f, err := startFleet(ctx, cfg, g, reqs, run)
		if err != nil {
			return nil, err
		}
		for _, name := range run {
			res, err := f.replay(ctx, reqs, name)
			if err != nil {
				f.close()
				return nil, fmt.Errorf("%s at G = %d: %w", name, g, err)
			}
			rep.Results = append(rep.Results, res)
		}
		f.close()
	}
	rep.Check()
	return rep, nil
}

// liveModel is the model name of strategy name's workers: each strategy
// gets its own workers, so that its index starts empty.
func liveModel(name string) string { return "replay-" + name }

func startFleet(ctx context.Context, cfg replay.Config, g int, reqs []replay.Request, names []string) (*liveFleet, error) {
	// No keep-alive: a POST on a kept connection the server has just
	// closed fails and is not retried; one connection per request avoids
	// the race at a cost loopback does not notice.
	f := &liveFleet{cfg: cfg, client: &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}}
	maxIn, maxOut := 1, 1
	for _, r := range reqs {
		maxIn, maxOut = max(maxIn, r.InputTokens), max(maxOut, r.OutputTokens)
	}
	var models []string
	for _, n := range names {
		models = append(models, liveModel(n))
	}
	for range cfg.Workers {
		s, err := server.New(server.Config{
			Addr:   "127.0.0.1:0",
			Models: models,
			Engine: engine.Config{
				Blocks: cfg.CacheTokens / cfg.BlockTokens, BlockTokens: cfg.BlockTokens,
				PrefillTPS: cfg.PrefillTokensPerSecond * cfg.Speedup, DecodeTPS: cfg.DecodeTokensPerSecond * cfg.Speedup,
				MaxBatch: cfg.MaxBatch, MaxQueue: len(reqs) + 1,
			},
			MaxPromptTokens: maxIn,
			MaxTokens:       maxOut,
			MaxBodyBytes:    int64(16*maxIn + 4096),
		})
		if err == nil {
			err = s.Start(ctx)
		}
		if err != nil {
			f.close()
			return nil, fmt.Errorf("engine: %w", err)
		}
		f.engines = append(f.engines, s)
		f.urls = append(f.urls, "http://"+s.Addr())
	}
	for i := range g {
		dn := &demoNode{name: fmt.Sprintf("gateway-%d", i+1)}
		pol := cfg.Policy
		nd, err := node.New(node.Config{Name: dn.name, BindAddr: "127.0.0.1:0", APIAddr: "off", Profile: "local", Version: version,
			RouteCacheThreshold: pol.CacheThreshold, RouteBalanceAbs: pol.BalanceAbsThreshold, RouteBalanceRel: pol.BalanceRelThreshold,
			RouteCostWeight: pol.CostWeight})
		if err == nil {
			err = nd.Start()
		}
		if err == nil && i > 0 {
			err = nd.Join(f.nodes[0].n.Addr().String())
		}
		if err != nil {
			f.close()
			return nil, fmt.Errorf("%s: %w", dn.name, err)
		}
		dn.n, dn.up = nd, true
		f.nodes = append(f.nodes, dn)
	}
	for _, n := range names {
		for w, u := range f.urls {
			body := map[string]any{"url": u, "model": liveModel(n), "health": "healthy"}
			if _, err := f.nodes[0].call(http.MethodPut, fmt.Sprintf("/v1/workers/%s-w%d", n, w), body, nil); err != nil {
				f.close()
				return nil, fmt.Errorf("register a worker: %w", err)
			}
		}
	}
	// Every agent sees every agent alive and every worker.
	deadline := time.Now().Add(liveSetup)
	for {
		err := f.converged(len(names) * cfg.Workers)
		if err == nil {
			return f, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			f.close()
			return nil, fmt.Errorf("fleet of %d gateways not ready in %v: %w", g, liveSetup, err)
		}
		t := time.NewTimer(20 * time.Millisecond)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
	}
}

func (f *liveFleet) converged(workers int) error {
	for _, dn := range f.nodes {
		alive, err := dn.aliveMembers()
		if err != nil {
			return err
		}
		var ws struct {
			Workers []node.Worker `json:"workers"`
		}
		if _, err := dn.call(http.MethodGet, "/v1/workers", nil, &ws); err != nil {
			return err
		}
		if alive != len(f.nodes) || len(ws.Workers) != workers {
			return fmt.Errorf("%s sees %d of %d agents alive and %d of %d workers", dn.name, alive, len(f.nodes), len(ws.Workers), workers)
		}
	}
	return nil
}

func (f *liveFleet) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, dn := range f.nodes {
		if dn.n != nil {
			_ = dn.n.Shutdown(ctx)
		}
	}
	for _, s := range f.engines {
		_ = s.Close()
	}
	f.client.CloseIdleConnections()
}

// replay runs the whole trace through one strategy in real time.
func (f *liveFleet) replay(ctx context.Context, reqs []replay.Request, name string) (replay.Result, error) {
	cfg := f.cfg
	for _, s := range f.engines {
		s.ResetPrefixCache()
	}
	before := make([]time.Duration, len(f.engines))
	for w, s := range f.engines {
		before[w] = s.Stats().PrefillBusy
	}
	samples := make([]replay.Sample, len(reqs))
	// inflight counts each engine's requests until they end; queued its
	// prefill tokens until their first token, less what the route
	// expected cached: the load of the cost rule.
	inflight := make([]atomic.Int64, len(f.engines))
	queued := make([]atomic.Int64, len(f.engines))
	loads := inflight
	if cfg.Policy.CostWeight > 0 {
		loads = queued
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x11fe))
	var rngMu sync.Mutex
	rr := make([]int, len(f.nodes))
	for g := range rr {
		rr[g] = g % len(f.engines)
	}
	var rrMu sync.Mutex
	var decisions atomic.Int64
	var deciding atomic.Int64 // ns
	sem := semaphore.NewWeighted(liveInFlight)
	eg, ctx := errgroup.WithContext(ctx)
	start := time.Now()
	stopLoads := make(chan struct{})
	if name == replay.StrategyRecorded {
		eg.Go(func() error { return f.publishLoads(ctx, name, loads, stopLoads) })
	}
	scale := func(d time.Duration) time.Duration { return time.Duration(float64(d) * cfg.Speedup) }
	var drive errgroup.Group
	drive.Go(func() error {
		defer close(stopLoads)
		for i := range reqs {
			at := start.Add(time.Duration(float64(reqs[i].At) / cfg.Speedup))
			if d := time.Until(at); d > 0 {
				t := time.NewTimer(d)
				select {
				case <-ctx.Done():
					t.Stop()
					return ctx.Err()
				case <-t.C:
				}
			}
			if err := sem.Acquire(ctx, 1); err != nil {
				return err
			}
			eg.Go(func() error {
				defer sem.Release(1)
				r := &reqs[i]
				g := i % len(f.nodes)
				toks := replay.AppendTokens(make([]uint32, 0, r.InputTokens), r, cfg.BlockTokens)
				t0 := time.Now()
				var w, expected int
				switch name {
				case replay.StrategyRandom:
					rngMu.Lock()
					w = rng.IntN(len(f.engines))
					rngMu.Unlock()
				case replay.StrategyRoundRobin:
					rrMu.Lock()
					w = rr[g]
					rr[g] = (w + 1) % len(f.engines)
					rrMu.Unlock()
				case replay.StrategyLeastLoad:
					w = 0
					for k := range inflight {
						if inflight[k].Load() < inflight[w].Load() {
							w = k
						}
					}
				default:
					var res node.RouteResult
					if _, err := f.nodes[g].call(http.MethodPost, "/v1/route", map[string]any{"model": liveModel(name), "tokens": toks, "record": true}, &res); err != nil {
						return fmt.Errorf("route: %w", err)
					}
					if _, err := fmt.Sscanf(strings.TrimPrefix(res.Worker, name+"-"), "w%d", &w); err != nil || w < 0 || w >= len(f.engines) {
						return fmt.Errorf("route: unknown worker %q", res.Worker)
					}
					expected = res.MatchedPages * cfg.PageTokens
				}
				deciding.Add(int64(time.Since(t0)))
				decisions.Add(1)
				inflight[w].Add(1)
				defer inflight[w].Add(-1)
				est := int64(max(r.InputTokens-expected, 1))
				queued[w].Add(est)
				ttft, cached, err := f.complete(ctx, w, liveModel(name), toks, max(r.OutputTokens, 1), func() { queued[w].Add(-est) })
				if err != nil {
					return err
				}
				ttft = scale(ttft)
				prefill := time.Duration(float64(r.InputTokens-cached) / cfg.PrefillTokensPerSecond * float64(time.Second))
				samples[i] = replay.Sample{InputTokens: r.InputTokens, CachedTokens: cached, TTFT: ttft, QueueWait: max(ttft-prefill, 0)}
				return nil
			})
		}
		return nil
	})
	derr := drive.Wait()
	if err := eg.Wait(); err != nil {
		return replay.Result{}, err
	}
	if derr != nil {
		return replay.Result{}, derr
	}
	span := scale(time.Since(start))
	busy := make([]time.Duration, len(f.engines))
	for w, s := range f.engines {
		busy[w] = scale(s.Stats().PrefillBusy - before[w])
	}
	res := replay.Summarise(name, len(f.nodes), samples, busy, span)
	if d := time.Duration(deciding.Load()); d > 0 {
		res.DecisionsPerSecond = float64(decisions.Load()) / d.Seconds()
	}
	return res, nil
}

// publishLoads sets each worker's load to its engine's count in loads
// (requests in flight, or queued prefill tokens for the cost rule, as a
// proxy would count them), through the first agent, until stop.
func (f *liveFleet) publishLoads(ctx context.Context, name string, inflight []atomic.Int64, stop <-chan struct{}) error {
	last := make([]int64, len(inflight))
	t := time.NewTicker(liveLoadEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-stop:
			return nil
		case <-t.C:
		}
		for w := range inflight {
			n := inflight[w].Load()
			if n == last[w] {
				continue
			}
			last[w] = n
			if _, err := f.nodes[0].call(http.MethodPatch, fmt.Sprintf("/v1/workers/%s-w%d", name, w), map[string]any{"load": n}, nil); err != nil {
				return fmt.Errorf("publish a load: %w", err)
			}
		}
	}
}

// complete sends one streaming completion to engine w and returns the
// time to its first token and the prompt tokens the engine had cached;
// first runs when the first token comes (or the request fails).
func (f *liveFleet) complete(ctx context.Context, w int, model string, toks []uint32, out int, first func()) (time.Duration, int, error) {
	var once sync.Once
	defer once.Do(first)
	body, err := json.Marshal(map[string]any{"model": model, "prompt": toks, "max_tokens": out, "stream": true,
		"stream_options": map[string]any{"include_usage": true}})
	if err != nil {
		return 0, 0, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.urls[w]+"/v1/completions", bytes.NewReader(body))
	if err != nil {
		return 0, 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	t0 := time.Now()
	resp, err := f.client.Do(req)
	if err != nil {
		return 0, 0, fmt.Errorf("engine %d: %w", w, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return 0, 0, fmt.Errorf("engine %d: %s: %s", w, resp.Status, bytes.TrimSpace(b))
	}
	var ttft time.Duration
	cached := -1
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		if line == "[DONE]" {
			break
		}
		if ttft == 0 {
			ttft = time.Since(t0)
			once.Do(first)
		}
		var chunk struct {
			Usage *struct {
				Details struct {
					Cached int `json:"cached_tokens"`
				} `json:"prompt_tokens_details"`
			} `json:"usage"`
		}
		if json.Unmarshal([]byte(line), &chunk) == nil && chunk.Usage != nil {
			cached = chunk.Usage.Details.Cached
		}
	}
	if err := sc.Err(); err != nil {
		return 0, 0, fmt.Errorf("engine %d: %w", w, err)
	}
	if ttft == 0 || cached < 0 {
		return 0, 0, fmt.Errorf("engine %d: a stream without a token or usage", w)
	}
	return ttft, cached, nil
}

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/meshnode/meshnode/radix"
	"github.com/meshnode/meshnode/replay"
)

// runReplay is `meshnode replay TRACE`: it replays a request trace through
// G gateways and W modeled engines per routing strategy and prints the
// table (or JSON), and optionally writes the SVG.
func runReplay(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("replay", stderr)
	gateways := fs.String("gateways", "1,4,16,64", "comma-separated fleet sizes G to replay")
	workers := fs.Int("workers", 8, "engines W")
	blockTokens := fs.Int("block-tokens", 512, "tokens per block of the trace's hash_ids (and of the engines' cache)")
	pageTokens := fs.Int("page-tokens", 0, "the index's page size in tokens, a divisor of --block-tokens (0: the block size)")
	cacheTokens := fs.Int("cache-tokens", 300_000, "KV cache of each engine in tokens")
	prefill := fs.Float64("prefill-tps", 10_000, "prefill rate of each engine, uncached input tokens per second")
	decode := fs.Float64("decode-tps", 50, "decode rate of one sequence, tokens per second")
	maxBatch := fs.Int("max-batch", 64, "most sequences an engine runs at once")
	speedup := fs.Float64("speedup", 1, "divide the trace's arrival times by this factor")
	seed := fs.Uint64("seed", 1, "seed of every random choice: the same seed gives the same figures")
	strategies := fs.String("strategies", strings.Join(replay.Strategies(), ","), "comma-separated strategies to compare")
	svg := fs.String("svg", "replay.svg", `write hit ratio and p99 TTFT against G per strategy to this SVG file ("" for none)`)
	live := fs.Bool("live", false, "replay on real agents and emulated engines on loopback in this process, in real time divided by --speedup")
	asJSON := fs.Bool("json", false, "print the report as JSON instead of tables")
	def := radix.DefaultPolicy()
	cacheThreshold := fs.Float64("cache-threshold", def.CacheThreshold, "routing policy: match ratio from which the best-matching engine wins")
	balanceAbs := fs.Int("balance-abs", def.BalanceAbsThreshold, "routing policy: loads are imbalanced when max - min exceeds this")
	balanceRel := fs.Float64("balance-rel", def.BalanceRelThreshold, "routing policy: ... and max exceeds this times min")
	costWeight := fs.Float64("cost-weight", radix.DefaultCostWeight, "routing policy: the cost rule's weight of an unmatched prompt token against a queued one (0: the threshold rules)")
	loadInterval := fs.Duration("load-interval", 50*time.Millisecond, "gateways see the engines' loads as a snapshot taken this often, as proxies publish their counts (0: exactly, at once)")
	loadOwn := fs.Bool("load-own-routes", true, "with --load-interval, each gateway adds its own routes since the snapshot to it, as a proxy counts what it sends")
	pending := fs.Duration("pending-timeout", 5*time.Second, "how long routed pages count as pending in the events strategy")
	profile := fs.String("profile", "lan", "the gateways' swim profile (lan, wan or local), as meshnode agent --profile")
	eager := fs.Int("eager-members", 16, "the gateways' eager_members: up to this fleet size deltas go straight to every gateway, by gossip above")
	parallel := fs.Int("parallel", runtime.GOMAXPROCS(0), "simulation runs (a strategy at a fleet size) at once; the figures do not depend on it")
	pos, err := parseInterleaved(fs, args)
	if err == nil && len(pos) != 1 {
		err = badUsage("want one trace file, got %d arguments", len(pos))
	}
	var gs []int
	if err == nil {
		gs, err = parseInts(*gateways)
	}
	var names []string
	if err == nil {
		names = splitList(*strategies)
		if len(names) == 0 {
			err = badUsage("--strategies is empty")
		}
	}
	if err != nil {
		return usageError(stderr, "replay", err)
	}
	f, err := os.Open(pos[0])
	if err != nil {
		fmt.Fprintf(stderr, "meshnode replay: %v\n", err)
		return 1
	}
	lim := replay.DefaultLimits()
	lim.BlockTokens = *blockTokens
	reqs, err := replay.ParseTrace(f, lim)
	f.Close()
	if err != nil {
		fmt.Fprintf(stderr, "meshnode replay: %s: %v\n", pos[0], err)
		return 1
	}
	cfg := replay.Config{
		Workers:                *workers,
		BlockTokens:            *blockTokens,
		PageTokens:             *pageTokens,
		CacheTokens:            *cacheTokens,
		PrefillTokensPerSecond: *prefill,
		DecodeTokensPerSecond:  *decode,
		MaxBatch:               *maxBatch,
		Speedup:                *speedup,
		Seed:                   *seed,
		PendingTimeout:         *pending,
		LoadInterval:           *loadInterval,
		LoadOwnRoutes:          *loadOwn,
		Policy: radix.Policy{CacheThreshold: *cacheThreshold, BalanceAbsThreshold: *balanceAbs, BalanceRelThreshold: *balanceRel,
			CostWeight: *costWeight},
		Net: replay.Network{Profile: *profile, EagerMembers: *eager},
	}
	var rep *replay.Report
	if *live {
		rep, err = runLive(context.Background(), reqs, cfg, gs, names, stderr)
	} else {
		rep, err = replay.Run(reqs, cfg, replay.Options{Gateways: gs, Strategies: names, Wall: time.Now, Parallel: *parallel})
	}
	if err != nil {
		fmt.Fprintf(stderr, "meshnode replay: %s\n", oneLine(err))
		return 1
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			fmt.Fprintf(stderr, "meshnode replay: %v\n", err)
			return 1
		}
	} else if err := replay.WriteTable(stdout, rep); err != nil {
		fmt.Fprintf(stderr, "meshnode replay: %v\n", err)
		return 1
	}
	if *svg != "" {
		if err := os.WriteFile(*svg, replay.AppendSVG(nil, rep), 0o644); err != nil {
			fmt.Fprintf(stderr, "meshnode replay: %v\n", err)
			return 1
		}
		fmt.Fprintf(stderr, "meshnode replay: wrote %s\n", *svg)
	}
	return 0
}

// parseInts parses a comma-separated list of positive integers.
func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range splitList(s) {
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			return nil, badUsage("--gateways: %q is not a positive integer", f)
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		return nil, badUsage("--gateways is empty")
	}
	return out, nil
}

// splitList splits a comma-separated list, dropping blanks.
func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

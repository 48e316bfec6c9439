package replay

import (
	"bytes"
	"encoding/xml"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/meshnode/meshnode/radix"
)

// synthTrace returns n requests, one every gap: each starts with one of k
// system prompts (sysBlocks shared blocks, chosen with a skew towards the
// first ones) and ends with uniqBlocks blocks of its own.
func synthTrace(seed uint64, n, k, sysBlocks, uniqBlocks, blockTokens int, gap time.Duration) []Request {
	rng := rand.New(rand.NewPCG(seed, 1))
	reqs := make([]Request, n)
	next := uint64(1 << 20)
	for i := range reqs {
		p := min(rng.IntN(k), rng.IntN(k))
		var blocks []uint64
		for j := range sysBlocks {
			blocks = append(blocks, uint64(p*1000+j))
		}
		for range uniqBlocks {
			blocks = append(blocks, next)
			next++
		}
		reqs[i] = Request{
			At:           time.Duration(i) * gap,
			InputTokens:  len(blocks)*blockTokens - rng.IntN(blockTokens),
			OutputTokens: 1 + rng.IntN(20),
			Blocks:       blocks,
		}
	}
	return reqs
}

// testConfig is a small fleet: W engines with caches of cacheBlocks blocks
// of 16 tokens, 1000 prefill tokens/s.
func testConfig(w, cacheBlocks int) Config {
	return Config{
		Workers:                w,
		BlockTokens:            16,
		CacheTokens:            16 * cacheBlocks,
		PrefillTokensPerSecond: 1000,
		Seed:                   7,
	}.Defaults()
}

// simulate runs one strategy and returns the sim for inspection.
func simulate(t *testing.T, cfg Config, reqs []Request, name string) *sim {
	t.Helper()
	return simulateWith(t, cfg, reqs, name, nil)
}

// simulateWith runs one strategy, calling before (if set) once the fleet
// is built, before the trace starts.
func simulateWith(t *testing.T, cfg Config, reqs []Request, name string, before func(*sim)) *sim {
	t.Helper()
	st, err := newStrategy(name)
	if err != nil {
		t.Fatal(err)
	}
	cfg = cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	pages := make([][]uint64, len(reqs))
	var buf []uint32
	for i := range reqs {
		pages[i], buf = appendPages(nil, buf, &reqs[i], cfg.BlockTokens, cfg.PageTokens)
	}
	s, err := newSim(cfg, reqs, pages, engineHashes(reqs, cfg.BlockTokens), st)
	if err != nil {
		t.Fatal(err)
	}
	if before != nil {
		before(s)
	}
	if err := s.run(); err != nil {
		t.Fatal(err)
	}
	// Every request had its first token: nothing is queued any more.
	for w, q := range s.queued {
		if q != 0 {
			t.Fatalf("engine %d: %d tokens still counted as queued", w, q)
		}
	}
	return s
}

// TestEngineModel: TTFT is the queue wait plus the uncached tokens'
// prefill; a repeated prompt is served from the cache but its last token.
func TestEngineModel(t *testing.T) {
	cfg := testConfig(1, 64)
	// 100 tokens (6 full blocks of 16 and 4 more) at 1000 tokens/s.
	a := Request{At: 0, InputTokens: 100, OutputTokens: 1, Blocks: []uint64{1, 2, 3, 4, 5, 6, 7}}
	b := a // queued behind a: waits for its prefill, then finds 96 tokens cached
	c := a // long after: the same
	c.At = 10 * time.Second
	d := Request{At: 20 * time.Second, InputTokens: 40, OutputTokens: 1, Blocks: []uint64{1, 2, 99}} // shares 2 blocks
	s := simulate(t, cfg, []Request{a, b, c, d}, StrategyRoundRobin)
	type got struct {
		Wait, TTFT time.Duration
		Cached     int
	}
	var gots []got
	for _, f := range s.first {
		gots = append(gots, got{f.QueueWait(), f.TTFT(), f.CachedTokens})
	}
	ms := time.Millisecond
	want := []got{
		{0, 100 * ms, 0},
		{100 * ms, 104 * ms, 96},
		{0, 4 * ms, 96},
		{0, 8 * ms, 32},
	}
	if diff := cmp.Diff(want, gots); diff != "" {
		t.Errorf("wait, TTFT, cached (-want +got):\n%s", diff)
	}
}

// TestStrategiesOnSharedPrefixes checks the order the strategies must
// keep on a trace with shared system prompts and caches too small for all
// of them: cache-aware routing beats cache-blind, a shared index beats
// per-gateway ones, and the oracle beats random.
func TestStrategiesOnSharedPrefixes(t *testing.T) {
	reqs := synthTrace(1, 600, 24, 12, 2, 16, 40*time.Millisecond)
	for _, pc := range []struct {
		name   string
		policy radix.Policy
	}{{"cost rule", radix.Policy{}}, {"thresholds", radix.DefaultPolicy()}} {
		t.Run(pc.name, func(t *testing.T) {
			cfg := testConfig(4, 80)
			cfg.Policy = pc.policy
			rep, err := Run(reqs, cfg, Options{Gateways: []int{1, 4}})
			if err != nil {
				t.Fatal(err)
			}
			hit := map[string]float64{}
			for _, r := range rep.Results {
				if r.Gateways == 4 {
					hit[r.Strategy] = r.HitRatio
				}
				if r.Utilisation <= 0 || r.Utilisation > 1 || r.Imbalance < 1 {
					t.Errorf("%s at G = %d: utilisation %v, imbalance %v", r.Strategy, r.Gateways, r.Utilisation, r.Imbalance)
				}
			}
			for _, c := range [][2]string{
				{StrategyOracle, StrategyRandom},
				{StrategyRecorded, StrategyRandom},
				{StrategyRecorded, StrategyLocal},
				{StrategyRecorded, StrategyRoundRobin},
				{StrategyEvents, StrategyRandom},
				{StrategyEvents, StrategyLocal},
			} {
				if !(hit[c[0]] > hit[c[1]]) {
					t.Errorf("hit ratio of %s %.3f not above %s's %.3f", c[0], hit[c[0]], c[1], hit[c[1]])
				}
			}
			if ub := rep.Trace.InfiniteCacheHitRatio; ub < hit[StrategyOracle] || ub < hit[StrategyRecorded] {
				t.Errorf("upper bound %.3f below a strategy: %v", ub, hit)
			}
		})
	}
}

func TestDeterministic(t *testing.T) {
	reqs := synthTrace(2, 300, 8, 6, 2, 16, 30*time.Millisecond)
	cfg := testConfig(4, 40)
	opt := Options{Gateways: []int{1, 3, 20}}
	a, err := Run(reqs, cfg, opt)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Run(reqs, cfg, opt)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(a, b); diff != "" {
		t.Errorf("two runs differ (-first +second):\n%s", diff)
	}
	cfg.Seed++
	c, err := Run(reqs, cfg, opt)
	if err != nil {
		t.Fatal(err)
	}
	if cmp.Equal(a.Results, c.Results) {
		t.Error("another seed gave the same figures")
	}
}

// TestReplicationDelay: with the gateways cut off from each other once
// their mesh has formed, the shared index routes exactly like per-gateway
// ones; with a LAN, a fleet of G routes like one gateway on a trace whose
// requests are far apart.
func TestReplicationDelay(t *testing.T) {
	reqs := synthTrace(3, 200, 6, 6, 2, 16, 50*time.Millisecond)
	cfg := testConfig(4, 40)
	cfg.Gateways = 3
	cut := func(s *sim) {
		if s.mesh == nil {
			t.Fatal("3 gateways of a shared index have no mesh")
		}
		for _, a := range s.gws {
			for _, b := range s.gws {
				if a != b {
					s.net.Cut(a.id, b.id)
				}
			}
		}
	}
	apart := simulateWith(t, cfg, reqs, StrategyRecorded, cut)
	local := simulate(t, cfg, reqs, StrategyLocal)
	if diff := cmp.Diff(local.first, apart.first); diff != "" {
		t.Errorf("recorded with the gateways cut off differs from local indexes (-local +recorded):\n%s", diff)
	}
	if apart.mesh.DeltaBytes == 0 {
		t.Error("the cut-off gateways sent no deltas")
	}
	fleet := simulate(t, cfg, reqs, StrategyRecorded)
	cfg.Gateways = 1
	one := simulate(t, cfg, reqs, StrategyRecorded)
	if diff := cmp.Diff(one.first, fleet.first); diff != "" {
		t.Errorf("3 gateways on a LAN route unlike one (-one +three):\n%s", diff)
	}
}

// TestGossipConverges: above node.DefaultEagerMembers gateways, deltas
// spread by swim's gossip (with anti-entropy behind), and every gateway's
// index ends up the same (no budget pressure).
func TestGossipConverges(t *testing.T) {
	reqs := synthTrace(4, 150, 6, 4, 2, 16, 20*time.Millisecond)
	cfg := testConfig(4, 100_000)
	cfg.Gateways = 24
	s := simulate(t, cfg, reqs, StrategyRecorded)
	s.net.RunFor(time.Minute)
	want := s.gws[0].ix.Digest()
	if len(want) == 0 {
		t.Fatal("empty index")
	}
	for _, gw := range s.gws[1:] {
		if diff := cmp.Diff(want, gw.ix.Digest()); diff != "" {
			t.Fatalf("gateway %d's index differs from gateway 0's (-0 +%d):\n%s", gw.g, gw.g, diff)
		}
	}
	for i, sw := range s.mesh.Swim.Nodes {
		if n := sw.Core.Pending(); n != 0 {
			t.Errorf("gateway %d still gossips %d messages", i, n)
		}
	}
	if s.mesh.DeltaBytes == 0 {
		t.Error("no deltas sent")
	}
}

func TestCacheBlindStrategies(t *testing.T) {
	reqs := synthTrace(5, 64, 5, 2, 1, 16, time.Second)
	cfg := testConfig(4, 40)
	cfg.Gateways = 2
	s := simulate(t, cfg, reqs, StrategyHash)
	byFirst := map[uint64]int{}
	for i := range reqs {
		w := s.strat.route(s, i%2, i, 0)
		if prev, ok := byFirst[reqs[i].Blocks[0]]; ok && prev != w {
			t.Fatalf("hash sent first block %d to engines %d and %d", reqs[i].Blocks[0], prev, w)
		}
		byFirst[reqs[i].Blocks[0]] = w
	}
	s = simulate(t, cfg, reqs, StrategyRoundRobin)
	counts := make([]int, 4)
	for range 8 {
		counts[s.strat.route(s, 1, 0, 0)]++
	}
	if diff := cmp.Diff([]int{2, 2, 2, 2}, counts); diff != "" {
		t.Errorf("round robin of one gateway (-want +got):\n%s", diff)
	}
}

func TestUnknownStrategy(t *testing.T) {
	_, err := Run(synthTrace(1, 2, 1, 1, 1, 16, time.Second), testConfig(2, 10), Options{Strategies: []string{"best"}})
	if err == nil || !strings.Contains(err.Error(), `unknown strategy "best"`) {
		t.Errorf("error %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	c := Config{BlockTokens: 512, PageTokens: 300, CacheTokens: 100, Speedup: -1}.Defaults()
	err := c.Validate()
	for _, want := range []string{"page tokens 300 must divide block tokens 512", "cache tokens 100 hold no block", "speedup -1"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}
}

func TestTableAndSVG(t *testing.T) {
	reqs := synthTrace(6, 100, 4, 4, 1, 16, 50*time.Millisecond)
	rep, err := Run(reqs, testConfig(2, 40), Options{Gateways: []int{1, 2}})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := WriteTable(&b, rep); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"infinite-cache hit ratio", "G = 2 gateways", "hit/oracle", StrategyRecorded} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
	svg := AppendSVG(nil, rep)
	dec := xml.NewDecoder(bytes.NewReader(svg))
	for {
		_, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("SVG is not well-formed XML: %v", err)
		}
	}
	for _, want := range []string{"<svg", StrategyOracle, "infinite cache", "<polyline"} {
		if !bytes.Contains(svg, []byte(want)) {
			t.Errorf("SVG lacks %q", want)
		}
	}
}

func TestSummarise(t *testing.T) {
	var samples []Sample
	for i := 1; i <= 100; i++ {
		samples = append(samples, Sample{InputTokens: 10, CachedTokens: i % 2 * 10, TTFT: time.Duration(i) * time.Millisecond, QueueWait: time.Duration(i) * time.Microsecond})
	}
	got := Summarise("x", 4, samples, []time.Duration{3 * time.Second, time.Second}, 4*time.Second)
	want := Result{Strategy: "x", Gateways: 4, HitRatio: 0.5, CachedTokens: 500,
		TTFTP50Seconds: 0.05, TTFTP90Seconds: 0.09, TTFTP99Seconds: 0.099, QueueWaitP99Seconds: 0.000099,
		Imbalance: 1.5, Utilisation: 0.5}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestCheckTargets(t *testing.T) {
	rep := &Report{Results: []Result{
		{Strategy: StrategyOracle, Gateways: 1, HitRatio: 0.30},
		{Strategy: StrategyRecorded, Gateways: 1, HitRatio: 0.28, WaitP99VsOracle: 1.4, TTFTP99VsOracle: 1.1},
		{Strategy: StrategyHash, Gateways: 1, HitRatio: 0.25},
		{Strategy: StrategyOracle, Gateways: 4, HitRatio: 0.30},
		{Strategy: StrategyRecorded, Gateways: 4, HitRatio: 0.26, WaitP99VsOracle: 1.6, TTFTP99VsOracle: 1.2},
	}}
	got := CheckTargets(rep, StrategyRecorded)
	want := []Target{
		{Name: "meshnode-recorded hit ratio within 3 points of the best at every G", Met: false,
			Detail: "G=1: 0.280 vs 0.300 (oracle); G=4: 0.260 vs 0.300 (oracle)"},
		{Name: "meshnode-recorded p99 queue wait at most 1.5x the oracle's at every G", Met: false, Detail: "G=1: 1.40x; G=4: 1.60x"},
		{Name: "meshnode-recorded p99 TTFT at most 1.2x the oracle's at every G", Met: true, Detail: "G=1: 1.10x; G=4: 1.20x"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if got := CheckTargets(rep, StrategyEvents); got[0].Met || !strings.Contains(got[0].Detail, "G=1: not run") {
		t.Errorf("a strategy not run: %+v", got)
	}
	// With G = 16 in the run, the p99 targets are judged there only.
	rep.Results = append(rep.Results,
		Result{Strategy: StrategyOracle, Gateways: 16, HitRatio: 0.30},
		Result{Strategy: StrategyRecorded, Gateways: 16, HitRatio: 0.29, WaitP99VsOracle: 1.3, TTFTP99VsOracle: 1.3})
	got = CheckTargets(rep, StrategyRecorded)
	want = []Target{
		want[0],
		{Name: "meshnode-recorded p99 queue wait at most 1.5x the oracle's at G=16", Met: true,
			Detail: "G=1: 1.40x (not judged); G=4: 1.60x (not judged); G=16: 1.30x"},
		{Name: "meshnode-recorded p99 TTFT at most 1.2x the oracle's at G=16", Met: false,
			Detail: "G=1: 1.10x (not judged); G=4: 1.20x (not judged); G=16: 1.30x"},
	}
	want[0].Detail += "; G=16: 0.290 vs 0.300 (oracle)"
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("with G = 16 (-want +got):\n%s", diff)
	}
}

// TestEventsMirrorEngineCaches: with the engines' KV events, once pending
// pages have expired, every gateway's index holds for each engine exactly
// what its cache holds: the matched depth of every prompt is the engine's
// cache hit, on every gateway (eager and gossip fleets).
func TestEventsMirrorEngineCaches(t *testing.T) {
	reqs := synthTrace(8, 300, 10, 6, 3, 16, 30*time.Millisecond)
	for _, tc := range []struct{ g, pageTokens int }{{3, 16}, {20, 16}, {3, 8}} {
		g := tc.g
		cfg := testConfig(3, 60)
		cfg.Gateways = g
		cfg.PageTokens = tc.pageTokens
		ppb := cfg.BlockTokens / cfg.PageTokens
		s := simulate(t, cfg, reqs, StrategyEvents)
		s.net.RunFor(cfg.PendingTimeout + 35*time.Second)
		if s.mesh != nil {
			c := s.mesh
			t.Logf("G = %d: gossiped %d (%d dropped), packets %d, pushes %d, exchanges %d", g, c.Gossiped, c.GossipDropped, c.Packets, c.Pushes, c.Exchanges)
		}
		if n := s.strat.(*eventsStrategy).errs; n != 0 {
			t.Fatalf("G = %d: node's applier refused or could not place %d batches", g, n)
		}
		for _, gw := range s.gws {
			for i := range reqs {
				got := map[string]int{}
				for _, h := range gw.ix.MatchPages(nil, s.pages[i]) {
					got[h.Worker] = h.Pages
				}
				want := map[string]int{}
				for w, e := range s.engines {
					if n := e.m.Cache().Match(s.hashes[i]); n > 0 {
						want[s.workers[w]] = n * ppb
					}
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Fatalf("G = %d, pages of %d, gateway %d, request %d: matched pages (-engines +index):\n%s", g, tc.pageTokens, gw.g, i, diff)
				}
			}
		}
	}
}

// TestLoadInterval: with loads seen as a snapshot that is never renewed
// (taken at the first arrival, all engines idle), least loaded sees only
// ties and draws like random; with fresh snapshots it does not.
func TestLoadInterval(t *testing.T) {
	reqs := synthTrace(9, 200, 6, 4, 2, 16, 20*time.Millisecond)
	cfg := testConfig(4, 40)
	random := simulate(t, cfg, reqs, StrategyRandom)
	cfg.LoadInterval = time.Hour
	stale := simulate(t, cfg, reqs, StrategyLeastLoad)
	if diff := cmp.Diff(random.first, stale.first); diff != "" {
		t.Errorf("least loaded on a never renewed snapshot differs from random (-random +stale):\n%s", diff)
	}
	cfg.LoadInterval = time.Millisecond
	fresh := simulate(t, cfg, reqs, StrategyLeastLoad)
	if cmp.Equal(random.first, fresh.first) {
		t.Error("least loaded on fresh snapshots routes like random")
	}
	// One gateway that adds its own routes to a never renewed snapshot
	// knows every route: it spreads them, unlike random.
	cfg.LoadInterval, cfg.LoadOwnRoutes = time.Hour, true
	own := simulate(t, cfg, reqs, StrategyLeastLoad)
	if cmp.Equal(random.first, own.first) {
		t.Error("least loaded with its own routes routes like random")
	}
}

// TestLoadsThroughTheMesh: with a proxy's loads (an interval and own
// routes), gateways publish their counts into their stores and read the
// others' from there: mid-trace a gateway sees counts it did not route,
// and once every request is done every gateway holds every gateway's
// counts, all zero.
func TestLoadsThroughTheMesh(t *testing.T) {
	reqs := synthTrace(10, 300, 6, 6, 2, 16, 5*time.Millisecond)
	cfg := testConfig(4, 40)
	cfg.Gateways = 4
	cfg.LoadInterval = 50 * time.Millisecond
	cfg.LoadOwnRoutes = true
	others := 0
	s := simulateWith(t, cfg, reqs, StrategyRecorded, func(s *sim) {
		if s.mloads == nil {
			t.Fatal("no loads through the mesh")
		}
		for k := 1; k < 10; k++ {
			s.net.At(s.vtime(s.at(len(reqs)*k/10)), func() {
				s.meshLoadsAt(0)
				for w := range cfg.Workers {
					others += s.seenQueued[w] - s.mloads[0].queued[w]
				}
			})
		}
	})
	if others <= 0 {
		t.Errorf("gateway 0 never saw another gateway's queued tokens (sum %d)", others)
	}
	s.net.RunFor(time.Second)
	for g, gw := range s.gws {
		kvs := gw.member.Eng.Store().List(loadNS, "")
		if len(kvs) != cfg.Gateways {
			t.Fatalf("gateway %d holds %d gateways' loads, want %d", g, len(kvs), cfg.Gateways)
		}
		s.meshLoadsAt(g)
		for w := range cfg.Workers {
			if s.seenQueued[w] != 0 || s.seenInFlight[w] != 0 {
				t.Errorf("gateway %d sees engine %d at %d tokens, %d requests after the trace", g, w, s.seenQueued[w], s.seenInFlight[w])
			}
		}
	}
}

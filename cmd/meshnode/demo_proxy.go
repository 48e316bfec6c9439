package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/meshnode/meshnode/engine"
	"github.com/meshnode/meshnode/engine/server"
	"github.com/meshnode/meshnode/node"
)

// The proxy show (meshnode demo --proxy): every node runs the routing
// proxy, in-process emulated engines (engine/server, real HTTP on
// loopback) serve one model, and clients hold multi-turn conversations,
// each turn streamed through the proxy of a node picked at random. Each
// line shows a turn as it ends: the node it entered, the engine that
// answered (X-Meshnode-Worker), how much of its prompt the engine had
// cached and its time to first token. A turn that lands on the engine
// holding its conversation's previous turns is a cache hit whatever node
// it entered: the nodes share the index and each other's in-flight load.
// The engines publish their KV events, one node subscribes to each, and
// the proxies route text as the engines tokenize it (ProxyTokenizer
// "bytes"), so routing follows what the engines really cache, and the
// prompts routed but not yet prefilled (pending).

const (
	proxyDemoEngines       = 3
	proxyDemoClients       = 4
	proxyDemoConversations = 12
	proxyDemoModel         = "demo-llm"
)

// proxyDemoTurn is what a client saw of one streamed turn.
type proxyDemoTurn struct {
	conv, turn   int
	node, worker string
	prompt       int
	cached       int
	ttft         time.Duration
	err          error
}

func runProxyDemo(ctx context.Context, nNodes int, dur time.Duration, stdout io.Writer, sig <-chan os.Signal) error {
	start := time.Now()
	say := func(format string, a ...any) {
		fmt.Fprintf(stdout, "%7.2fs  %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, a...))
	}
	// Engines: a prefill of 20,000 tokens a second makes an uncached
	// 2,000-token prompt take 100 ms to its first token, a cached one
	// almost nothing.
	var engines []*server.Server
	defer func() {
		for _, e := range engines {
			e.Close()
		}
	}()
	for i := range proxyDemoEngines {
		e, err := server.New(server.Config{Addr: "127.0.0.1:0", Models: []string{proxyDemoModel}, DefaultMaxTokens: 8,
			Engine: engine.Config{PrefillTPS: 20000, DecodeTPS: 400}, Seed: uint64(i),
			KVEvents: "tcp://127.0.0.1:0", KVReplay: "tcp://127.0.0.1:0"})
		if err != nil {
			return err
		}
		if err := e.Start(ctx); err != nil {
			return err
		}
		engines = append(engines, e)
	}
	var nodes []*node.Node
	defer func() {
		for _, n := range nodes {
			sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			_ = n.Shutdown(sctx)
			cancel()
		}
	}()
	for i := range nNodes {
		n, err := node.New(node.Config{Name: fmt.Sprintf("node-%d", i+1), BindAddr: "127.0.0.1:0", APIAddr: "off", Profile: "local",
			ProxyAddr: "127.0.0.1:0", ProxyTokenizer: "bytes", AntiEntropyInterval: node.Duration(500 * time.Millisecond), Version: version})
		if err != nil {
			return err
		}
		if err := n.Start(); err != nil {
			return err
		}
		nodes = append(nodes, n)
		if i > 0 {
			if err := n.Join(nodes[0].Addr().String()); err != nil {
				return err
			}
		}
	}
	first := &demoNode{name: "node-1", n: nodes[0]}
	for i, e := range engines {
		body := map[string]any{"url": "http://" + e.Addr(), "model": proxyDemoModel,
			"kv_events": map[string]string{"endpoint": e.KVEventsAddr(), "replay_endpoint": e.KVReplayAddr()}}
		if _, err := first.call(http.MethodPut, fmt.Sprintf("/v1/workers/engine-%d", i+1), body, nil); err != nil {
			return fmt.Errorf("register engine: %w", err)
		}
	}
	say("%d nodes with proxies, %d emulated engines for %s registered on node-1; each engine's KV events feed the index through one node", nNodes, proxyDemoEngines, proxyDemoModel)
	d := &demo{}
	deadline := time.Now().Add(demoSetupTimeout)
	if err := d.waitFor(deadline, sig, "the engines to reach every node and their KV events a subscriber", func() error {
		for _, e := range engines {
			if !e.KVSubscribed() {
				return fmt.Errorf("%s: no subscriber yet", e.Addr())
			}
		}
		for _, n := range nodes {
			code, _ := (&demoNode{n: n}).call(http.MethodGet, "/v1/workers/engine-"+fmt.Sprint(proxyDemoEngines), nil, nil)
			if code != 200 {
				return fmt.Errorf("%s: not yet", n.Name())
			}
		}
		return nil
	}); err != nil {
		return err
	}
	say("conversations start: each turn streams through a random node's proxy")

	// Conversations: a long system prompt of their own, then turns.
	rng := rand.New(rand.NewPCG(7, 9))
	type conv struct {
		mu    sync.Mutex
		msgs  []map[string]string
		turns int
	}
	convs := make([]*conv, proxyDemoConversations)
	for i := range convs {
		sys := fmt.Sprintf("You are assistant %d of the support team. ", i) + strings.Repeat(fmt.Sprintf("Rule %d: answer briefly and politely. ", i), 45)
		convs[i] = &conv{msgs: []map[string]string{{"role": "system", "content": sys}}}
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}, Timeout: 30 * time.Second}
	defer client.CloseIdleConnections()
	results := make(chan proxyDemoTurn, 64)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var rngMu sync.Mutex
	for c := range proxyDemoClients {
		wg.Go(func() {
			for k := 0; ; k++ {
				select {
				case <-stop:
					return
				default:
				}
				rngMu.Lock()
				ci, ni := rng.IntN(len(convs)), rng.IntN(len(nodes))
				rngMu.Unlock()
				cv := convs[ci]
				cv.mu.Lock()
				cv.msgs = append(cv.msgs, map[string]string{"role": "user", "content": fmt.Sprintf("Question %d from client %d.", cv.turns+1, c)})
				cv.turns++
				msgs := slices.Clone(cv.msgs)
				turn := cv.turns
				cv.mu.Unlock()
				r := proxyDemoStream(client, nodes[ni], msgs)
				r.conv, r.turn = ci, turn
				cv.mu.Lock()
				cv.msgs = append(cv.msgs, map[string]string{"role": "assistant", "content": "Noted."})
				cv.mu.Unlock()
				select {
				case results <- r:
				case <-stop:
					return
				}
			}
		})
	}
	var done []proxyDemoTurn
	timer := time.NewTimer(dur)
	defer timer.Stop()
loop:
	for {
		select {
		case r := <-results:
			done = append(done, r)
			if r.err != nil {
				say("conv %2d turn %d via %s: %v", r.conv, r.turn, r.node, r.err)
				continue
			}
			say("conv %2d turn %d via %s -> %-8s cached %4d/%4d tokens  TTFT %6.1f ms", r.conv, r.turn, r.node, r.worker, r.cached, r.prompt, float64(r.ttft.Microseconds())/1000)
		case <-timer.C:
			break loop
		case <-sig:
			say("interrupted")
			break loop
		}
	}
	close(stop)
	go func() { wg.Wait(); close(results) }()
	for r := range results {
		done = append(done, r)
	}
	proxyDemoSummary(stdout, done)
	return nil
}

// proxyDemoStream sends one streamed turn through n's proxy and reads the
// stream to its end.
func proxyDemoStream(client *http.Client, n *node.Node, msgs []map[string]string) proxyDemoTurn {
	r := proxyDemoTurn{node: n.Name()}
	body, _ := json.Marshal(map[string]any{"model": proxyDemoModel, "stream": true, "stream_options": map[string]bool{"include_usage": true}, "messages": msgs})
	start := time.Now()
	resp, err := client.Post("http://"+n.ProxyAddr()+"/v1/chat/completions", "application/json", strings.NewReader(string(body)))
	if err != nil {
		r.err = err
		return r
	}
	defer resp.Body.Close()
	r.worker = resp.Header.Get("X-Meshnode-Worker")
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		r.err = fmt.Errorf("status %d: %s", resp.StatusCode, strings.TrimSpace(string(b)))
		return r
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok || line == "[DONE]" {
			continue
		}
		if r.ttft == 0 {
			r.ttft = time.Since(start)
		}
		var ev struct {
			Usage *struct {
				Prompt  int `json:"prompt_tokens"`
				Details struct {
					Cached int `json:"cached_tokens"`
				} `json:"prompt_tokens_details"`
			} `json:"usage"`
		}
		if json.Unmarshal([]byte(line), &ev) == nil && ev.Usage != nil {
			r.prompt, r.cached = ev.Usage.Prompt, ev.Usage.Details.Cached
		}
	}
	r.err = sc.Err()
	return r
}

// proxyDemoSummary prints the show's totals: turns, the share of prompt
// tokens served from cache, and the time to first token of later turns
// (whose conversation has a cached prefix somewhere) against first turns.
func proxyDemoSummary(w io.Writer, turns []proxyDemoTurn) {
	var ok, failed, prompt, cached int
	var firsts, laters []time.Duration
	byWorker := map[string]int{}
	for _, r := range turns {
		if r.err != nil {
			failed++
			continue
		}
		ok++
		prompt += r.prompt
		cached += r.cached
		byWorker[r.worker]++
		if r.turn == 1 {
			firsts = append(firsts, r.ttft)
		} else {
			laters = append(laters, r.ttft)
		}
	}
	p50 := func(ds []time.Duration) string {
		if len(ds) == 0 {
			return "-"
		}
		slices.Sort(ds)
		return fmt.Sprintf("%.1f ms", float64(ds[len(ds)/2].Microseconds())/1000)
	}
	fmt.Fprintln(w, "summary")
	fmt.Fprintf(w, "  turns: %d streamed, %d failed\n", ok, failed)
	if prompt > 0 {
		fmt.Fprintf(w, "  prompt tokens cached: %d of %d (%.0f%%)\n", cached, prompt, 100*float64(cached)/float64(prompt))
	}
	fmt.Fprintf(w, "  TTFT p50: first turns %s, later turns %s\n", p50(firsts), p50(laters))
	var names []string
	for k := range byWorker {
		names = append(names, k)
	}
	slices.Sort(names)
	var parts []string
	for _, k := range names {
		parts = append(parts, fmt.Sprintf("%s %d", k, byWorker[k]))
	}
	fmt.Fprintf(w, "  turns by engine: %s\n", strings.Join(parts, ", "))
}

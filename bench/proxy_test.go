package bench

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/meshnode/meshnode/engine"
	"github.com/meshnode/meshnode/engine/server"
	"github.com/meshnode/meshnode/node"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/semaphore"
)

// The routing proxy's costs (issue 14 item 7): the latency it adds to a
// request against calling the engine directly, at fixed request rates, and
// the memory one in-flight stream holds. The engine is a trivial loopback
// upstream, so that what is measured is the proxy (plus one more loopback
// hop), not an engine.

// benchPrompt is a chat prompt of about 1 KB, routed by its text.
var benchPrompt = strings.Repeat("You are a helpful assistant; answer briefly. ", 22)

func benchBody(stream bool) string {
	return fmt.Sprintf(`{"model":"m","stream":%t,"max_tokens":4,"messages":[{"role":"user","content":%q}]}`, stream, benchPrompt)
}

// fastUpstream answers a completion at once: a small JSON object, or four
// server-sent events and [DONE]. With hold, a stream waits after its first
// event until hold is closed.
func fastUpstream(hold <-chan struct{}) *httptest.Server {
	return httptest.NewServer(fastUpstreamHandler(hold))
}

// fastUpstreamHandler is fastUpstream's handler.
func fastUpstreamHandler(hold <-chan struct{}) http.Handler {
	answer := []byte(`{"id":"x","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"a b c d"},"finish_reason":"length"}]}`)
	event := []byte("data: {\"id\":\"x\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a \"}}]}\n\n")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if !strings.Contains(string(body), `"stream":true`) {
			w.Header().Set("Content-Type", "application/json")
			w.Write(answer)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		fl := w.(http.Flusher)
		for i := range 4 {
			w.Write(event)
			fl.Flush()
			if i == 0 && hold != nil {
				select {
				case <-hold:
				case <-r.Context().Done():
					return
				}
			}
		}
		io.WriteString(w, "data: [DONE]\n\n")
	})
}

// proxyFor returns a node (not started: its proxy works on local state)
// whose proxy, served on loopback, routes model m to upstream.
func proxyFor(tb testing.TB, upstream string) *httptest.Server {
	tb.Helper()
	n, err := newProxyNode(upstream)
	if err != nil {
		tb.Fatal(err)
	}
	srv := httptest.NewServer(n.ProxyHandler())
	tb.Cleanup(srv.Close)
	return srv
}

// newProxyNode returns a node (not started) whose proxy routes model m to
// the worker w at upstream.
func newProxyNode(upstream string) (*node.Node, error) {
	n, err := node.New(node.Config{Name: "bench", BindAddr: "127.0.0.1:0", APIAddr: "off", ProxyAddr: "127.0.0.1:0", Registerer: prometheus.NewRegistry()})
	if err != nil {
		return nil, err
	}
	rec := httptest.NewRecorder()
	n.Handler().ServeHTTP(rec, httptest.NewRequest("PUT", "/v1/workers/w", strings.NewReader(`{"url":"`+upstream+`","model":"m"}`)))
	if rec.Code != 200 {
		return nil, fmt.Errorf("register: %d %s", rec.Code, rec.Body)
	}
	return n, nil
}

// roundTrip sends one request and reads the whole answer.
func roundTrip(client *http.Client, url, body string) (time.Duration, error) {
	start := time.Now()
	resp, err := client.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		return 0, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err == nil && resp.StatusCode != 200 {
		err = fmt.Errorf("status %d", resp.StatusCode)
	}
	return time.Since(start), err
}

func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	return ds[min(len(ds)-1, int(q*float64(len(ds))))]
}

// latencyRig is the latency benchmarks' setup: a fast upstream, a proxy
// in front of it, and a client (rawClient) with warm connections to each;
// raw[0] is the direct path, raw[1] the proxied one. With procs 1, the upstream and
// the proxy are servers in the benchmark's process; with procs 3, each is
// a process of its own (startChild), and the benchmark's process, the
// load generator, runs with the agent's heap floor like them.
type latencyRig struct {
	client *http.Client // for the children's CPU times
	raw    [2]*rawClient

	mu   sync.Mutex
	lat  [2][]time.Duration // per path, as measured
	errs int
	bare bool // the proxy is the bare ReverseProxy (proxyRoleEnv): its failures are counted, not fatal

	// With the proxy in a process of its own: its URL, and its CPU time
	// once warm.
	proxyProc  string
	proxyCPU0  time.Duration
	proxyGC0   [2]uint64 // bytes allocated, collections
	engineProc string
	engineCPU0 time.Duration
}

// measure sends one request on path k and records its latency.
func (l *latencyRig) measure(k int) {
	start := time.Now()
	_, err := l.raw[k].do()
	d := time.Since(start)
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		l.errs++
		return
	}
	l.lat[k] = append(l.lat[k], d)
}

// report fails on any failed request and reports both paths' p50 and p99
// and their differences, the added latency.
func (l *latencyRig) report(b *testing.B) {
	if l.bare {
		b.ReportMetric(float64(l.errs), "failed")
	} else if l.errs > 0 {
		b.Fatalf("%d requests failed", l.errs)
	}
	d50, d99 := quantile(l.lat[0], 0.5), quantile(l.lat[0], 0.99)
	p50, p99 := quantile(l.lat[1], 0.5), quantile(l.lat[1], 0.99)
	b.ReportMetric(float64(d50.Microseconds()), "direct-p50-µs")
	b.ReportMetric(float64(d99.Microseconds()), "direct-p99-µs")
	b.ReportMetric(float64(p50.Microseconds()), "proxy-p50-µs")
	b.ReportMetric(float64(p99.Microseconds()), "proxy-p99-µs")
	b.ReportMetric(float64((p50 - d50).Microseconds()), "added-p50-µs")
	b.ReportMetric(float64((p99 - d99).Microseconds()), "added-p99-µs")
	if l.proxyProc != "" && len(l.lat[1]) > 0 {
		cpu, err := childCPU(l.client, l.proxyProc)
		if err != nil {
			b.Fatal(err)
		}
		// All of the proxy process's CPU (its collector's too) over the
		// proxied requests: a figure waiting for a core does not inflate.
		b.ReportMetric(float64((cpu-l.proxyCPU0).Microseconds())/float64(len(l.lat[1])), "proxy-cpu-µs/req")
		alloc, cycles, err := childGC(l.client, l.proxyProc)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(alloc-l.proxyGC0[0])/float64(len(l.lat[1])), "proxy-B/req")
		b.ReportMetric(float64(cycles-l.proxyGC0[1]), "proxy-GCs")
		if cpu, err = childCPU(l.client, l.engineProc); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64((cpu-l.engineCPU0).Microseconds())/float64(len(l.lat[0])+len(l.lat[1])), "engine-cpu-µs/req")
	}
}

// warmConns is how many requests at once warm each path.
const warmConns = 64

func newLatencyRig(b *testing.B, stream bool, procs int) *latencyRig {
	b.Helper()
	var upURL, pxURL string
	bare := false
	switch procs {
	case 1:
		up := fastUpstream(nil)
		b.Cleanup(up.Close)
		upURL, pxURL = up.URL, proxyFor(b, up.URL).URL
	case 3:
		upURL = startChild(b, "engine")
		role := cmp.Or(os.Getenv(proxyRoleEnv), "proxy")
		pxURL = startChild(b, role, childUpstreamEnv+"="+upURL)
		bare = role == "bareproxy"
		b.Cleanup(node.StartHeapFloor(node.DefaultHeapFloor))
	default:
		b.Fatalf("procs %d: want 1 or 3", procs)
	}
	tr := &http.Transport{MaxIdleConnsPerHost: 1024}
	b.Cleanup(tr.CloseIdleConnections)
	l := &latencyRig{
		client: &http.Client{Transport: tr, Timeout: 10 * time.Second},
		bare:   bare,
	}
	for k, u := range []string{upURL, pxURL} {
		rc, err := newRawClient(u+"/v1/chat/completions", benchBody(stream))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(rc.close)
		l.raw[k] = rc
	}
	// Warm both paths alike: open the connections a burst needs (client to
	// engine, client to proxy, proxy to engine), so that what is measured
	// is requests, not dials.
	for _, rc := range l.raw {
		var g errgroup.Group
		for range warmConns {
			g.Go(func() error { _, err := rc.do(); return err })
		}
		if err := g.Wait(); err != nil {
			b.Fatal(err)
		}
	}
	if procs == 3 {
		l.proxyProc, l.engineProc = pxURL, upURL
		var err error
		if l.proxyCPU0, err = childCPU(l.client, pxURL); err != nil {
			b.Fatal(err)
		}
		if l.proxyGC0[0], l.proxyGC0[1], err = childGC(l.client, pxURL); err != nil {
			b.Fatal(err)
		}
		if l.engineCPU0, err = childCPU(l.client, l.engineProc); err != nil {
			b.Fatal(err)
		}
	}
	return l
}

// BenchmarkProxyAddedLatency sends requests at a fixed rate through the
// proxy and, interleaved at the same rate, directly to the engine, and
// reports the p50 and p99 of both and the difference (the added latency).
// Each iteration is one tick; run it with -benchtime Nx, N ticks taking
// N/rate seconds on a machine that keeps up. procs=3 runs the engine and
// the proxy in processes of their own, so that one's collections and
// scheduling do not stop the others' goroutines, as in production;
// procs=1 runs everything in the benchmark's process (the first version
// of the benchmark, kept to show what sharing a process costs).
func BenchmarkProxyAddedLatency(b *testing.B) {
	for _, procs := range []int{3, 1} {
		for _, rate := range []int{1000, 5000} {
			for _, stream := range []bool{false, true} {
				b.Run(fmt.Sprintf("procs=%d/rate=%d/stream=%t", procs, rate, stream), func(b *testing.B) {
					l := newLatencyRig(b, stream, procs)
					var wg sync.WaitGroup
					// Open loop: a pair (direct, proxied) at every tick of 1/rate,
					// each request on its own goroutine however long the
					// previous ones take, at most maxInFlight at once (a pair
					// that finds no room is dropped and counted). A ticker drops
					// the ticks a busy machine misses: the rate reached is
					// reported.
					const maxInFlight = 512
					sem := semaphore.NewWeighted(maxInFlight)
					dropped := 0
					tick := time.NewTicker(time.Second / time.Duration(rate))
					defer tick.Stop()
					start := time.Now()
					i := 0
					for b.Loop() {
						<-tick.C
						if !sem.TryAcquire(2) {
							dropped++
							continue
						}
						for k := range 2 {
							wg.Go(func() {
								defer sem.Release(1)
								l.measure(k)
							})
						}
						i++
					}
					elapsed := time.Since(start)
					wg.Wait()
					l.report(b)
					b.ReportMetric(float64(i)/elapsed.Seconds(), "proxied-req/s")
					b.ReportMetric(float64(dropped), "dropped-pairs")
				})
			}
		}
	}
}

// BenchmarkProxyAddedLatencyAlone is BenchmarkProxyAddedLatency with each
// path alone at the full rate: blocks of 250 ms of direct calls alternate
// with blocks of proxied calls, so that the machine carries one path's
// load at a time (a pair at every tick doubles it, and on two cores the
// pairs at 5,000/s saturate the machine before the proxy). Each 1 ms tick
// sends rate/1000 requests at once, so the rate holds where a ticker of
// 1/rate would drop ticks: arrivals come in bursts (BenchmarkProxyAddedLatencyPaced
// spaces them evenly). The b.N loop counts ticks (10,000x: 10 s).
func BenchmarkProxyAddedLatencyAlone(b *testing.B) {
	for _, procs := range []int{3, 1} {
		for _, rate := range []int{1000, 5000} {
			for _, stream := range []bool{false, true} {
				b.Run(fmt.Sprintf("procs=%d/rate=%d/stream=%t", procs, rate, stream), func(b *testing.B) {
					l := newLatencyRig(b, stream, procs)
					tick := time.NewTicker(time.Millisecond)
					defer tick.Stop()
					l.alone(b, time.Millisecond, rate/1000, func() { <-tick.C })
				})
			}
		}
	}
}

// BenchmarkProxyAddedLatencyPaced is BenchmarkProxyAddedLatencyAlone with
// the requests evenly spaced, one every 1/rate, as a constant-rate load
// generator sends them (wrk2's -R): the b.N loop counts requests (50,000x
// at 5,000/s: 10 s). The schedule, not the answers, sets each instant, and
// a request due while the loop was late goes at once. The loop sleeps on
// a thread of its own with nanosleep: the runtime's timers wake an idle
// process at a granularity of a millisecond, which would turn the even
// schedule back into bursts.
func BenchmarkProxyAddedLatencyPaced(b *testing.B) {
	for _, rate := range []int{1000, 5000} {
		for _, stream := range []bool{false, true} {
			b.Run(fmt.Sprintf("procs=3/rate=%d/stream=%t", rate, stream), func(b *testing.B) {
				l := newLatencyRig(b, stream, 3)
				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
				every := time.Second / time.Duration(rate)
				next := time.Now()
				l.alone(b, every, 1, func() {
					next = next.Add(every)
					if d := time.Until(next); d > 0 {
						ts := syscall.NsecToTimespec(int64(d))
						for syscall.Nanosleep(&ts, &ts) == syscall.EINTR {
						}
					}
				})
			})
		}
	}
}

// alone runs the rig's two paths each alone at the full rate: blocks of
// 250 ms of direct calls alternate with blocks of proxied calls. Each
// iteration of the b.N loop waits for the next slot of the schedule (wait)
// and sends perSlot requests, slot apart, each on its own goroutine
// however long the previous ones take (at most 512 in flight; a request
// that finds no room is dropped and counted).
func (l *latencyRig) alone(b *testing.B, slot time.Duration, perSlot int, wait func()) {
	const maxInFlight = 512
	blockSlots := int(250 * time.Millisecond / slot)
	var sent [2]int
	var busy [2]time.Duration
	var dropped int
	var wg sync.WaitGroup
	sem := semaphore.NewWeighted(maxInFlight)
	i := 0
	blockStart := time.Now()
	for b.Loop() {
		wait()
		k := (i / blockSlots) % 2
		if i%blockSlots == 0 && i > 0 {
			now := time.Now()
			busy[1-k] += now.Sub(blockStart)
			blockStart = now
		}
		for range perSlot {
			if !sem.TryAcquire(1) {
				dropped++
				continue
			}
			sent[k]++
			wg.Go(func() {
				defer sem.Release(1)
				l.measure(k)
			})
		}
		i++
	}
	busy[((i-1)/blockSlots)%2] += time.Since(blockStart)
	wg.Wait()
	if i < 2*blockSlots {
		b.Fatalf("%d iterations: each path needs a block of %d; raise -benchtime", i, blockSlots)
	}
	l.report(b)
	if busy[0] > 0 && busy[1] > 0 {
		b.ReportMetric(float64(sent[0])/busy[0].Seconds(), "direct-req/s")
		b.ReportMetric(float64(sent[1])/busy[1].Seconds(), "proxied-req/s")
	}
	b.ReportMetric(float64(dropped), "dropped")
}

// BenchmarkProxyRoundTrip is one client sending requests back to back,
// directly and through the proxy: the difference of the two ns/op is the
// proxy's cost per request with no queueing (routing, parsing, the second
// loopback hop, both processes' work on one machine).
func BenchmarkProxyRoundTrip(b *testing.B) {
	for _, stream := range []bool{false, true} {
		up := fastUpstream(nil)
		px := proxyFor(b, up.URL)
		tr := &http.Transport{MaxIdleConnsPerHost: 16}
		client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
		body := benchBody(stream)
		for _, tc := range []struct{ name, url string }{{"direct", up.URL}, {"proxy", px.URL}} {
			b.Run(fmt.Sprintf("stream=%t/%s", stream, tc.name), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if _, err := roundTrip(client, tc.url+"/v1/chat/completions", body); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
		tr.CloseIdleConnections()
		up.Close()
	}
}

// BenchmarkProxyStreamMemory holds streams open (each after its first
// event) directly and through the proxy, and reports the memory (heap and
// goroutine stacks, after a GC) each proxied stream adds: the proxy's
// connections, goroutines, buffers and lease.
func BenchmarkProxyStreamMemory(b *testing.B) {
	const streams = 500
	inUse := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapInuse + ms.StackInuse
	}
	// hold opens streams to url and returns once each has delivered its
	// first event; release ends them.
	hold := func(b *testing.B, client *http.Client, url string) (release func()) {
		var bodies []io.ReadCloser
		for range streams {
			resp, err := client.Post(url, "application/json", strings.NewReader(benchBody(true)))
			if err != nil {
				b.Fatal(err)
			}
			if _, err := bufio.NewReader(resp.Body).ReadString('\n'); err != nil {
				b.Fatal(err)
			}
			bodies = append(bodies, resp.Body)
		}
		return func() {
			for _, body := range bodies {
				body.Close()
			}
		}
	}
	var perStream float64
	for b.Loop() {
		gate := make(chan struct{})
		up := fastUpstream(gate)
		px := proxyFor(b, up.URL)
		tr := &http.Transport{MaxIdleConnsPerHost: 2 * streams}
		client := &http.Client{Transport: tr}
		base := inUse()
		rel := hold(b, client, up.URL+"/v1/chat/completions")
		direct := inUse() - base
		rel2 := hold(b, client, px.URL+"/v1/chat/completions")
		proxied := inUse() - base - direct
		perStream = (float64(proxied) - float64(direct)) / streams
		rel()
		rel2()
		close(gate)
		tr.CloseIdleConnections()
		px.Close()
		up.Close()
	}
	b.ReportMetric(perStream, "proxy-bytes/stream")
}

// TestProxyBytesTokensMatchEngine: with --proxy-tokenizer bytes, the pages
// the proxy records for a chat are those of the token ids meshnode engine
// gives the same chat (engine.AppendChatText, engine.AppendTokens), the
// pages its KV events report: /v1/route with those tokens matches every
// page the proxy recorded.
func TestProxyBytesTokensMatchEngine(t *testing.T) {
	up := fastUpstream(nil)
	defer up.Close()
	n, err := node.New(node.Config{Name: "bench", BindAddr: "127.0.0.1:0", APIAddr: "off", ProxyAddr: "127.0.0.1:0", ProxyTokenizer: "bytes"})
	if err != nil {
		t.Fatal(err)
	}
	api := func(method, path, body string) (int, string) {
		rec := httptest.NewRecorder()
		n.Handler().ServeHTTP(rec, httptest.NewRequest(method, path, strings.NewReader(body)))
		return rec.Code, rec.Body.String()
	}
	if code, body := api("PUT", "/v1/workers/w", `{"url":"`+up.URL+`","model":"m"}`); code != 200 {
		t.Fatal(code, body)
	}
	rec := httptest.NewRecorder()
	n.ProxyHandler().ServeHTTP(rec, httptest.NewRequest("POST", "/v1/chat/completions", strings.NewReader(benchBody(false))))
	if rec.Code != 200 {
		t.Fatalf("proxy: %d %s", rec.Code, rec.Body)
	}
	var text []byte
	text = engine.AppendChatText(text, "user", benchPrompt)
	tokens := engine.AppendTokens(nil, string(text))
	b, _ := json.Marshal(map[string]any{"model": "m", "tokens": tokens})
	code, body := api("POST", "/v1/route", string(b))
	var res node.RouteResult
	if err := json.Unmarshal([]byte(body), &res); code != 200 || err != nil {
		t.Fatalf("route: %d %s", code, body)
	}
	pages := len(tokens) / 16
	if res.Worker != "w" || res.MatchedPages != pages || pages == 0 {
		t.Fatalf("route %+v: want all %d pages of the engine's tokens matched on w", res, pages)
	}
}

// TestProxyPreciseRoutingEndToEnd: two nodes with proxies in front of two
// emulated engines that publish their KV events (real sockets, loopback).
// A chat turn through one node's proxy is prefilled by an engine; its
// events reach the index, so /v1/route on the other node finds that engine
// by events, and the next turn, through the other node's proxy, goes to
// the same engine and finds its prefix cached.
func TestProxyPreciseRoutingEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("real sockets; -short skips it")
	}
	var engines []*server.Server
	for i := range 2 {
		e, err := server.New(server.Config{Addr: "127.0.0.1:0", Models: []string{"m"}, DefaultMaxTokens: 4, Seed: uint64(i),
			KVEvents: "tcp://127.0.0.1:0", KVReplay: "tcp://127.0.0.1:0"})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { e.Close() })
		engines = append(engines, e)
	}
	var nodes []*node.Node
	for i := range 2 {
		n, err := node.New(node.Config{Name: fmt.Sprintf("n%d", i), BindAddr: "127.0.0.1:0", APIAddr: "off", Profile: "local",
			ProxyAddr: "127.0.0.1:0", ProxyTokenizer: "bytes", Registerer: prometheus.NewRegistry()})
		if err != nil {
			t.Fatal(err)
		}
		if err := n.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = n.Shutdown(context.Background()) })
		if i > 0 {
			if err := n.Join(nodes[0].Addr().String()); err != nil {
				t.Fatal(err)
			}
		}
		nodes = append(nodes, n)
	}
	api := func(n *node.Node, method, path, body string) (int, string) {
		rec := httptest.NewRecorder()
		n.Handler().ServeHTTP(rec, httptest.NewRequest(method, path, strings.NewReader(body)))
		return rec.Code, rec.Body.String()
	}
	for i, e := range engines {
		body := fmt.Sprintf(`{"url":"http://%s","model":"m","kv_events":{"endpoint":%q,"replay_endpoint":%q}}`, e.Addr(), e.KVEventsAddr(), e.KVReplayAddr())
		if code, b := api(nodes[0], "PUT", fmt.Sprintf("/v1/workers/e%d", i), body); code != 200 {
			t.Fatal(code, b)
		}
	}
	poll(t, "both engines known everywhere and subscribed", func() error {
		for _, e := range engines {
			if !e.KVSubscribed() {
				return fmt.Errorf("%s not subscribed", e.Addr())
			}
		}
		for _, n := range nodes {
			if code, _ := api(n, "GET", "/v1/workers/e1", ""); code != 200 {
				return fmt.Errorf("%s: no e1", n.Name())
			}
		}
		return nil
	})
	client := &http.Client{Transport: &http.Transport{}, Timeout: 30 * time.Second}
	defer client.CloseIdleConnections()
	turn := func(n *node.Node, msgs ...string) (worker string, cached int) {
		t.Helper()
		var parts []string
		for i, m := range msgs {
			role := "user"
			if i%2 == 1 {
				role = "assistant"
			}
			parts = append(parts, fmt.Sprintf(`{"role":%q,"content":%q}`, role, m))
		}
		resp, err := client.Post("http://"+n.ProxyAddr()+"/v1/chat/completions", "application/json",
			strings.NewReader(`{"model":"m","messages":[`+strings.Join(parts, ",")+`]}`))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out struct {
			Usage struct {
				Details struct {
					Cached int `json:"cached_tokens"`
				} `json:"prompt_tokens_details"`
			} `json:"usage"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != 200 {
			t.Fatalf("turn: %d %v", resp.StatusCode, err)
		}
		return resp.Header.Get("X-Meshnode-Worker"), out.Usage.Details.Cached
	}
	first := strings.Repeat("Tell me about the sea and the ships that sail on it. ", 8)
	w, _ := turn(nodes[1], first)
	if w == "" {
		t.Fatal("no X-Meshnode-Worker")
	}
	// The engine's events (not only the recorded pending pages) reach the
	// other node's index.
	text := engine.AppendChatText(nil, "user", first)
	b, _ := json.Marshal(map[string]any{"model": "m", "tokens": engine.AppendTokens(nil, string(text))})
	poll(t, "the other node routes by the engine's events", func() error {
		code, body := api(nodes[0], "POST", "/v1/route", string(b))
		var res node.RouteResult
		_ = json.Unmarshal([]byte(body), &res)
		if code != 200 || res.Worker != w || !slices.Contains(res.Sources, "events") {
			return fmt.Errorf("route %d %s", code, body)
		}
		return nil
	})
	w2, cached := turn(nodes[0], first, "The sea is wide.", "And the ships?")
	if w2 != w || cached < len(text)/16*16-16 {
		t.Fatalf("next turn through the other node: worker %s (want %s), %d tokens cached (the first turn had %d)", w2, w, cached, len(text))
	}
}

// poll checks cond until it holds, failing after 60 s (real sockets).
func poll(t *testing.T, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(20 * time.Millisecond) // a poll interval, not a wait for the event
	}
}

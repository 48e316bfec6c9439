package node

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// reportLatency reports p50 and p99 of lat in milliseconds.
func reportLatency(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2])/1e6, "p50-ms")
	b.ReportMetric(float64(lat[min(len(lat)-1, len(lat)*99/100)])/1e6, "p99-ms")
}

// waitKey waits until nd holds ns/key or the deadline passes.
func waitKey(nd *Node, ns, key string, deadline time.Time) bool {
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	for {
		ch := nd.st.wait()
		if _, ok := nd.st.get(ns, key); ok {
			return true
		}
		select {
		case <-ch:
		case <-t.C:
			return false
		}
	}
}

// BenchmarkKVVisibility measures the time from a key-value write on one node
// (through the node's write path, without HTTP) until every node of a real
// loopback cluster holds it. Writers rotate over the nodes.
func BenchmarkKVVisibility(b *testing.B) {
	for _, n := range []int{3, 8, 16} {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			c := newCluster(b, n, false)
			var lat []time.Duration
			i := 0
			for b.Loop() {
				key := fmt.Sprintf("k%d", i)
				origin := c.nodes[i%n]
				i++
				t0 := time.Now()
				if err := origin.st.put("bench", key, []byte("value"), t0); err != nil {
					b.Fatal(err)
				}
				for _, nd := range c.nodes {
					if !waitKey(nd, "bench", key, t0.Add(30*time.Second)) {
						b.Fatalf("%s never saw %s", nd.name, key)
					}
				}
				lat = append(lat, time.Since(t0))
			}
			reportLatency(b, lat)
		})
	}
}

// apiNode starts a single node with an API listener, 16 workers of model
// "m" with loads, and an index holding 64 prompts of 32 pages per worker.
func apiNode(b *testing.B) (*Node, *http.Client, string) {
	cfg := localConfig("api", "")
	cfg.Registerer = nil
	nd, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	if err := nd.Start(); err != nil {
		b.Fatal(err)
	}
	// The client's own collections add to what it measures; it keeps the
	// server's heap floor, so that a floor's figure is the server's.
	if floor, err := strconv.ParseUint(os.Getenv(loadClientFloorEnv), 10, 64); err == nil {
		defer StartHeapFloor(floor)()
	}
	tr := &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256}
	b.Cleanup(func() {
		tr.CloseIdleConnections()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = nd.Shutdown(ctx)
	})
	rng := rand.New(rand.NewPCG(1, 2))
	for w := range 16 {
		wk, err := nd.st.putWorker(Worker{ID: fmt.Sprintf("w%02d", w), URL: "http://w:1", Model: "m", Health: "healthy", Load: rng.IntN(8)}, time.Now())
		if err != nil {
			b.Fatal(err)
		}
		for range 64 {
			toks := make([]uint32, 32*16)
			for i := range toks {
				toks[i] = rng.Uint32()
			}
			if _, err := nd.st.ix.Insert(wk.ID, wk.Epoch, 1, nd.st.ix.AppendPages(nil, "m", toks)); err != nil {
				b.Fatal(err)
			}
		}
	}
	return nd, &http.Client{Transport: tr}, "http://" + nd.APIAddr()
}

// routeBody is a route request for a 1024-token prompt.
func routeBody(record bool) []byte {
	rng := rand.New(rand.NewPCG(3, 4))
	var buf bytes.Buffer
	buf.WriteString(`{"model":"m","tokens":[`)
	for i := range 1024 {
		if i > 0 {
			buf.WriteByte(',')
		}
		fmt.Fprint(&buf, rng.Uint32N(50000))
	}
	fmt.Fprintf(&buf, `],"record":%v}`, record)
	return buf.Bytes()
}

func post(client *http.Client, url string, body []byte) error {
	resp, err := client.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

// benchThroughput runs closed-loop parallel requests and reports the
// latency percentiles and the request rate.
func benchThroughput(b *testing.B, client *http.Client, url string, body []byte) {
	var mu sync.Mutex
	var lat []time.Duration
	b.SetParallelism(4)
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		var mine []time.Duration
		for pb.Next() {
			t0 := time.Now()
			if err := post(client, url, body); err != nil {
				b.Error(err)
				return
			}
			mine = append(mine, time.Since(t0))
		}
		mu.Lock()
		lat = append(lat, mine...)
		mu.Unlock()
	})
	b.ReportMetric(float64(len(lat))/time.Since(start).Seconds(), "req/s")
	reportLatency(b, lat)
}

// benchPaced sends requests open-loop at rate per second for d, from a pool
// of workers, and reports the latency of each request from when it was sent
// (p50-ms, p99-ms) and from when it was scheduled (sched-p99-ms: adds the
// client's timer jitter and any wait for a free worker), and the achieved
// rate.
func benchPaced(b *testing.B, client *http.Client, url string, body []byte, rate int, d time.Duration) {
	var lat, sched []time.Duration
	for b.Loop() {
		total := int(d.Seconds() * float64(rate))
		l, s, achieved := pacedLoad(client, url, body, rate, total, func(err error) { b.Error(err) })
		lat, sched = append(lat, l...), append(sched, s...)
		b.ReportMetric(achieved, "req/s")
	}
	reportLatency(b, lat)
	slices.Sort(sched)
	b.ReportMetric(float64(sched[len(sched)*99/100])/1e6, "sched-p99-ms")
}

// pacedLoad sends total requests open-loop at rate per second from a pool
// of 64 workers and returns each request's latency from when it was sent and
// from when it was scheduled, and the achieved rate. fail is called (from
// the workers) for every request that did not succeed.
func pacedLoad(client *http.Client, url string, body []byte, rate, total int, fail func(error)) (lat, sched []time.Duration, achieved float64) {
	interval := time.Second / time.Duration(rate)
	jobs := make(chan time.Time, total)
	results := make(chan [2]time.Duration, total)
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			for at := range jobs {
				time.Sleep(time.Until(at))
				t0 := time.Now()
				if err := post(client, url, body); err != nil {
					fail(err)
				}
				results <- [2]time.Duration{time.Since(t0), time.Since(at)}
			}
		})
	}
	t0 := time.Now().Add(10 * time.Millisecond)
	for i := range total {
		jobs <- t0.Add(time.Duration(i) * interval)
	}
	close(jobs)
	wg.Wait()
	close(results)
	for r := range results {
		lat = append(lat, r[0])
		sched = append(sched, r[1])
	}
	return lat, sched, float64(total) / time.Since(t0).Seconds()
}

// BenchmarkAPIRoute measures POST /v1/route for a 1024-token prompt among 16
// workers over a local HTTP connection: closed-loop throughput, and latency
// at a fixed 5,000 requests per second.
func BenchmarkAPIRoute(b *testing.B) {
	_, client, base := apiNode(b)
	for _, record := range []bool{false, true} {
		body := routeBody(record)
		b.Run(fmt.Sprintf("record=%v/max", record), func(b *testing.B) { benchThroughput(b, client, base+"/v1/route", body) })
		for _, floor := range heapFloors {
			b.Run(fmt.Sprintf("record=%v/rate=5000/heapfloor=%dMiB", record, floor>>20), func(b *testing.B) {
				defer StartHeapFloor(floor)()
				benchPaced(b, client, base+"/v1/route", body, 5000, 2*time.Second)
			})
		}
	}
}

// heapFloors are the paced runs' heap floors: none (a program embedding a
// node with the collector's defaults) and the daemon's default.
var heapFloors = []uint64{0, DefaultHeapFloor}

// BenchmarkAPITake measures POST /v1/limits/{name}/take likewise.
func BenchmarkAPITake(b *testing.B) {
	nd, client, base := apiNode(b)
	if err := nd.st.setLimit("bench", Limit{Limit: 1 << 62, Window: Duration(time.Minute)}, time.Now()); err != nil {
		b.Fatal(err)
	}
	body := []byte(`{"n":1}`)
	b.Run("max", func(b *testing.B) { benchThroughput(b, client, base+"/v1/limits/bench/take", body) })
	for _, floor := range heapFloors {
		b.Run(fmt.Sprintf("rate=5000/heapfloor=%dMiB", floor>>20), func(b *testing.B) {
			defer StartHeapFloor(floor)()
			benchPaced(b, client, base+"/v1/limits/bench/take", body, 5000, 2*time.Second)
		})
	}
}

// rssBytes returns the resident set size of the process (Linux), or 0.
func rssBytes() uint64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	var size, rss uint64
	if _, err := fmt.Sscan(string(b), &size, &rss); err != nil {
		return 0
	}
	return rss * uint64(os.Getpagesize())
}

// heapBytes returns the live heap after a collection.
func heapBytes() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// BenchmarkJoinLarge measures a node joining a cluster whose state is 1M keys
// (32-byte values) and 1M index holder-pages (64 workers): the time until the
// newcomer is ready (joined and first anti-entropy round done, holding
// everything) and the bytes it received. It also reports the heap the
// seeded node's state takes (live heap, and resident memory grown while
// filling it).
func BenchmarkJoinLarge(b *testing.B) {
	const keys, workers, pagesPerWorker, chain = 1 << 20, 64, 1 << 14, 256
	before, rssBefore := heapBytes(), rssBytes()
	cfg := localConfig("seed", "")
	cfg.Registerer = nil
	cfg.APIAddr = "off"
	seed, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	val := bytes.Repeat([]byte("v"), 32)
	seed.st.mu.Lock()
	for i := range keys {
		if err := seed.st.store.Put("kv", fmt.Sprintf("key-%08d", i), val, now); err != nil {
			b.Fatal(err)
		}
	}
	// The seed's own deltas are not wanted: nobody is there to get them.
	for {
		_, _, more := seed.st.store.AppendDeltas(nil, 1<<20)
		if !more {
			break
		}
	}
	seed.st.mu.Unlock()
	rng := rand.New(rand.NewPCG(5, 6))
	pages := make([]uint64, chain)
	for w := range workers {
		for range pagesPerWorker / chain {
			for i := range pages {
				pages[i] = rng.Uint64()
			}
			if _, err := seed.st.ix.Insert(fmt.Sprintf("w%02d", w), 1, 1, pages); err != nil {
				b.Fatal(err)
			}
		}
	}
	seedHeap := float64(heapBytes()-before) / (1 << 20)
	seedRSS := float64(int64(rssBytes())-int64(rssBefore)) / (1 << 20)
	if err := seed.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = seed.Shutdown(ctx)
	}()
	var recv uint64
	var took []time.Duration
	i := 0
	for b.Loop() {
		cfg := localConfig(fmt.Sprintf("joiner-%d", i), "")
		i++
		cfg.Registerer = nil
		cfg.APIAddr = "off"
		cfg.StreamTimeout = Duration(5 * time.Minute)
		nd, err := New(cfg)
		if err != nil {
			b.Fatal(err)
		}
		if err := nd.Start(); err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		if err := nd.Join(seed.Addr().String()); err != nil {
			b.Fatal(err)
		}
		for ok := false; !ok; ok, _ = nd.Ready() {
			time.Sleep(5 * time.Millisecond)
			if time.Since(t0) > 5*time.Minute {
				b.Fatal("joiner not ready in 5 minutes")
			}
		}
		took = append(took, time.Since(t0))
		if got := nd.storeStats().Keys; got != keys {
			b.Fatalf("joiner holds %d keys, want %d", got, keys)
		}
		if got := nd.st.ix.Stats().HolderPages; got != workers*pagesPerWorker {
			b.Fatalf("joiner holds %d holder-pages, want %d", got, workers*pagesPerWorker)
		}
		recv = nd.tr.tcpRecv.Load() + nd.tr.udpRecv.Load()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_ = nd.Shutdown(ctx)
		cancel()
	}
	slices.Sort(took)
	b.ReportMetric(took[len(took)/2].Seconds(), "s-to-ready")
	b.ReportMetric(float64(recv)/(1<<20), "MiB-received")
	b.ReportMetric(seedHeap, "seed-heap-MiB")
	b.ReportMetric(seedRSS, "seed-rss-MiB")
}

// BenchmarkSteadyState measures the bandwidth of an idle converged cluster
// of 8 real loopback nodes (LAN profile timings: probes every second,
// anti-entropy every 2 s), per node, UDP and TCP together, sent bytes.
func BenchmarkSteadyState(b *testing.B) {
	const n = 8
	c := newCluster(b, n, false, func(c *Config) { c.Profile = "lan"; c.AntiEntropyInterval = 0 })
	sent := func() uint64 {
		var s uint64
		for _, nd := range c.nodes {
			s += nd.tr.udpSent.Load() + nd.tr.tcpSent.Load()
		}
		return s
	}
	var rate float64
	for b.Loop() {
		s0, t0 := sent(), time.Now()
		time.Sleep(10 * time.Second)
		rate = float64(sent()-s0) / time.Since(t0).Seconds() / n
	}
	b.ReportMetric(rate, "B/node/s")
}

// BenchmarkRouteHandler measures the route handler alone (no network, no
// HTTP client): the server's CPU cost per route call.
func BenchmarkRouteHandler(b *testing.B) {
	nd, _, _ := apiNode(b)
	h := nd.Handler()
	for _, record := range []bool{false, true} {
		body := routeBody(record)
		b.Run(fmt.Sprintf("record=%v", record), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				w := httptest.NewRecorder()
				h.ServeHTTP(w, httptest.NewRequest("POST", "/v1/route", bytes.NewReader(body)))
				if w.Code != 200 {
					b.Fatalf("status %d: %s", w.Code, w.Body)
				}
			}
		})
	}
}

// The load client of BenchmarkAPIRouteExternal runs in a child process (this
// test binary, running TestLoadClient), so that the server's heap, garbage
// collector and scheduler carry only the server's work.
const (
	loadClientEnv      = "MESHNODE_LOAD_CLIENT_URL"
	loadClientFloorEnv = "MESHNODE_LOAD_CLIENT_HEAP_FLOOR"
)

// TestLoadClient is the child process's body; as a plain test it does
// nothing.
func TestLoadClient(t *testing.T) {
	url := os.Getenv(loadClientEnv)
	if url == "" {
		t.Skip("runs only as the child process of BenchmarkAPIRouteExternal")
	}
	// The client's own collections add to what it measures; it keeps the
	// server's heap floor, so that a floor's figure is the server's.
	if floor, err := strconv.ParseUint(os.Getenv(loadClientFloorEnv), 10, 64); err == nil {
		defer StartHeapFloor(floor)()
	}
	tr := &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	const rate, total = 5000, 10000
	lat, sched, achieved := pacedLoad(client, url, routeBody(false), rate, total, func(err error) { t.Error(err) })
	slices.Sort(lat)
	slices.Sort(sched)
	fmt.Printf("LOAD %d %d %d %f\n", lat[len(lat)/2], lat[len(lat)*99/100], sched[len(sched)*99/100], achieved)
}

// BenchmarkAPIRouteExternal is the 5,000 requests/s route figure with the
// client in another process, without and with the daemon's heap floor.
func BenchmarkAPIRouteExternal(b *testing.B) {
	_, _, base := apiNode(b)
	for _, floor := range heapFloors {
		b.Run(fmt.Sprintf("heapfloor=%dMiB", floor>>20), func(b *testing.B) {
			defer StartHeapFloor(floor)()
			var p50, p99, sp99, rate float64
			for b.Loop() {
				cmd := exec.Command(os.Args[0], "-test.run=^TestLoadClient$", "-test.v")
				cmd.Env = append(os.Environ(), loadClientEnv+"="+base+"/v1/route", fmt.Sprintf("%s=%d", loadClientFloorEnv, floor))
				out, err := cmd.CombinedOutput()
				if err != nil {
					b.Fatalf("load client: %v\n%s", err, out)
				}
				for _, line := range strings.Split(string(out), "\n") {
					if rest, ok := strings.CutPrefix(line, "LOAD "); ok {
						var a, c, d int64
						if _, err := fmt.Sscan(rest, &a, &c, &d, &rate); err != nil {
							b.Fatal(err)
						}
						p50, p99, sp99 = float64(a)/1e6, float64(c)/1e6, float64(d)/1e6
					}
				}
				if rate == 0 {
					b.Fatalf("no figures from the load client:\n%s", out)
				}
			}
			b.ReportMetric(p50, "p50-ms")
			b.ReportMetric(p99, "p99-ms")
			b.ReportMetric(sp99, "sched-p99-ms")
			b.ReportMetric(rate, "req/s")
			// The server's resident size so far (it does not shrink at once,
			// so the run without a floor comes first).
			b.ReportMetric(float64(rssBytes())/(1<<20), "rss-MiB")
		})
	}
}

// BenchmarkAPILoaded repeats the paced route and take runs on a node that
// holds a production-sized store (1M keys of 100-byte values). Its live heap
// is about 150 MB instead of a few, so the collector runs far less often:
// the case of a real gateway's node rather than an empty one.
func BenchmarkAPILoaded(b *testing.B) {
	nd, client, base := apiNode(b)
	val := make([]byte, 100)
	now := time.Now()
	for i := range 1 << 20 {
		if err := nd.st.put("bench", fmt.Sprintf("key-%08d", i), val, now); err != nil {
			b.Fatal(err)
		}
	}
	nd.st.mu.Lock()
	nd.st.store.AppendDeltas(nil, 1<<40) // drain the writes' deltas: no peers
	nd.st.mu.Unlock()
	if err := nd.st.setLimit("bench", Limit{Limit: 1 << 62, Window: Duration(time.Minute)}, time.Now()); err != nil {
		b.Fatal(err)
	}
	// Each run lasts long enough (50,000 requests, about 500 MB allocated)
	// to span several collections of the larger heap.
	b.Run("route/rate=5000", func(b *testing.B) {
		benchPaced(b, client, base+"/v1/route", routeBody(false), 5000, 10*time.Second)
	})
	b.Run("take/rate=5000", func(b *testing.B) {
		benchPaced(b, client, base+"/v1/limits/bench/take", []byte(`{"n":1}`), 5000, 10*time.Second)
	})
}

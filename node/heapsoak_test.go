package node

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	rtmetrics "runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var heapSoakDuration = flag.Duration("heap-soak", time.Minute, "how long each case of BenchmarkHeapSoak loads the node")

const (
	soakFloorEnv = "MESHNODE_SOAK_HEAP_FLOOR"
	soakMiB      = 1 << 20
)

// TestHeapSoakServer is the child process of BenchmarkHeapSoak; as a plain
// test it does nothing. It starts the heap floor before anything else, as
// the agent does, then a node with an API, prints the API's URL, samples
// its heap (bytes in objects) and resident size every 10 ms until its
// standard input closes, and prints the largest of each.
func TestHeapSoakServer(t *testing.T) {
	floorEnv := os.Getenv(soakFloorEnv)
	if floorEnv == "" {
		t.Skip("runs only as the child process of BenchmarkHeapSoak")
	}
	floor, err := strconv.ParseUint(floorEnv, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	defer StartHeapFloor(floor)()
	cfg := localConfig("soak", "")
	cfg.Registerer = nil
	nd, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := nd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = nd.Shutdown(ctx)
	}()
	fmt.Printf("SOAKURL http://%s\n", nd.APIAddr())
	done := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		close(done)
	}()
	var maxHeap, maxRSS uint64
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		maxHeap = max(maxHeap, readUint("/memory/classes/heap/objects:bytes"))
		maxRSS = max(maxRSS, rssBytes())
		select {
		case <-done:
			fmt.Printf("SOAKMAX %d %d %d\n", maxHeap, maxRSS, readUint("/gc/cycles/total:gc-cycles"))
			return
		case <-tick.C:
		}
	}
}

// readUint reads one uint64 runtime metric.
func readUint(name string) uint64 {
	s := []rtmetrics.Sample{{Name: name}}
	rtmetrics.Read(s)
	return s[0].Value.Uint64()
}

// lazyBody yields n bytes of a JSON string value without holding them.
type lazyBody struct{ n, sent int64 }

func (b *lazyBody) Read(p []byte) (int, error) {
	if b.sent == b.n {
		return 0, io.EOF
	}
	k := min(int64(len(p)), b.n-b.sent)
	for i := range p[:k] {
		p[i] = 'a'
	}
	if b.sent == 0 && k >= 10 {
		copy(p, `{"value":"`)
	}
	b.sent += k
	return int(k), nil
}

// BenchmarkHeapSoak is issue 10's item 4 as a figure: a node in its own
// process (the floor started before its first collection, as in the agent)
// under minutes of mixed API load: PUTs of 20 KB values to 16 keys (one of
// them hot), GETs, worker updates, and rejected bodies, both declared at
// 50 MB and sent chunked past the limit. It reports the largest heap and
// resident size sampled, without a floor and with the agent's default.
// Run it once per case: -benchtime=1x; -heap-soak sets each case's length.
func BenchmarkHeapSoak(b *testing.B) {
	for _, floor := range heapFloors {
		b.Run(fmt.Sprintf("heapfloor=%dMiB", floor>>20), func(b *testing.B) {
			for b.Loop() {
				heap, rss, cycles, reqs := heapSoak(b, floor, *heapSoakDuration)
				b.ReportMetric(float64(heap)/soakMiB, "max-heap-MiB")
				b.ReportMetric(float64(rss)/soakMiB, "max-rss-MiB")
				b.ReportMetric(float64(cycles), "gc-cycles")
				b.ReportMetric(float64(reqs), "requests")
			}
		})
	}
}

// heapSoak runs one soak against a child process keeping floor.
func heapSoak(b *testing.B, floor uint64, d time.Duration) (heap, rss, cycles, reqs uint64) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestHeapSoakServer$", "-test.v")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%d", soakFloorEnv, floor))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = cmd.Wait() }()
	defer stdin.Close()
	lines := bufio.NewScanner(stdout)
	var base string
	for lines.Scan() {
		if u, ok := strings.CutPrefix(lines.Text(), "SOAKURL "); ok {
			base = u
			break
		}
	}
	if base == "" {
		b.Fatal("the soak server printed no URL")
	}

	tr := &http.Transport{MaxIdleConnsPerHost: 16}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	value := `{"value":"` + strings.Repeat("v", 20<<10) + `"}`
	var count, failures atomic.Uint64
	stop := time.Now().Add(d)
	const maxRequests = 10_000_000 // a bound in count as well as time
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 7))
			for time.Now().Before(stop) && count.Add(1) < maxRequests {
				key := "k0"
				if rng.IntN(2) == 0 {
					key = "k" + strconv.Itoa(rng.IntN(16))
				}
				var req *http.Request
				want := 200
				switch p := rng.IntN(1000); {
				case p < 600:
					req, _ = http.NewRequest("PUT", base+"/v1/kv/soak/"+key, strings.NewReader(value))
				case p < 850:
					req, _ = http.NewRequest("GET", base+"/v1/kv/soak/"+key, nil)
					want = 0 // 200, or 404 before the first write
				case p < 990:
					body := fmt.Sprintf(`{"url":"http://w:1","model":"m","health":"healthy","load":%d}`, rng.IntN(8))
					req, _ = http.NewRequest("PUT", base+"/v1/workers/w"+strconv.Itoa(rng.IntN(8)), strings.NewReader(body))
				case p < 995:
					req, _ = http.NewRequest("PUT", base+"/v1/kv/soak/big", &lazyBody{n: 50 << 20})
					req.ContentLength = 50 << 20
					want = 413
				default:
					req, _ = http.NewRequest("PUT", base+"/v1/kv/soak/big", io.MultiReader(&lazyBody{n: 5 << 20}))
					req.ContentLength = -1 // chunked: read up to the limit
					want = 413
				}
				resp, err := client.Do(req)
				if err != nil {
					if want == 413 {
						continue // the server may close before the client has sent everything
					}
					failures.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if want != 0 && resp.StatusCode != want {
					failures.Add(1)
				}
			}
		})
	}
	wg.Wait()
	stdin.Close()
	for lines.Scan() {
		if rest, ok := strings.CutPrefix(lines.Text(), "SOAKMAX "); ok {
			if _, err := fmt.Sscan(rest, &heap, &rss, &cycles); err != nil {
				b.Fatal(err)
			}
		}
	}
	if heap == 0 {
		b.Fatal("the soak server printed no figures")
	}
	if f := failures.Load(); f > 0 {
		b.Errorf("%d requests failed or answered an unexpected status", f)
	}
	return heap, rss, cycles, count.Load()
}

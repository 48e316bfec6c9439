package bench

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/meshnode/meshnode/node"
)

// The latency benchmarks can run the emulated engine and the proxy in
// processes of their own (procs=3): the test binary re-executes itself
// with childRoleEnv set, and TestMain serves that role instead of running
// tests. Each child serves on a loopback port it prints on its first line
// of output, runs with the agent's default heap floor (as `meshnode agent`
// does), and exits when its standard input closes: when the benchmark
// ends, or dies.
const (
	childRoleEnv     = "MESHNODE_BENCH_CHILD"          // "engine" or "proxy"
	childUpstreamEnv = "MESHNODE_BENCH_CHILD_UPSTREAM" // the proxy's engine URL
	// proxyRoleEnv set to "bareproxy" makes the latency benchmarks' proxy
	// a bare httputil.ReverseProxy, for comparison.
	proxyRoleEnv = "MESHNODE_BENCH_PROXY_ROLE"
	// childProfileEnv, suffixed with a role (MESHNODE_BENCH_CPUPROFILE_proxy),
	// names a file for that child's CPU profile.
	childProfileEnv = "MESHNODE_BENCH_CPUPROFILE_"
	// childProcsEnv, suffixed with a role, sets that child's GOMAXPROCS
	// (by default, as for any Go program, the number of cores).
	childProcsEnv = "MESHNODE_BENCH_GOMAXPROCS_"
	// childFloorEnv, suffixed with a role, sets that child's heap floor in
	// bytes (the agent's --heap-floor-bytes; node.DefaultHeapFloor unless set).
	childFloorEnv = "MESHNODE_BENCH_HEAPFLOOR_"
)

// childCPUPath answers, on a child, its CPU time so far in nanoseconds.
const (
	childCPUPath = "/bench/cpu"
	childGCPath  = "/bench/gc" // bytes allocated and collections, since the start
)

// childGC returns the bytes the child at base has allocated and the
// collections it has run.
func childGC(client *http.Client, base string) (alloc, cycles uint64, err error) {
	resp, err := client.Get(base + childGCPath)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	_, err = fmt.Fscan(resp.Body, &alloc, &cycles)
	return alloc, cycles, err
}

// childCPU returns the CPU time of the child serving base.
func childCPU(client *http.Client, base string) (time.Duration, error) {
	resp, err := client.Get(base + childCPUPath)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	ns, err := strconv.ParseInt(string(b), 10, 64)
	return time.Duration(ns), err
}

func TestMain(m *testing.M) {
	if role := os.Getenv(childRoleEnv); role != "" {
		if err := runChild(role, os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "bench child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runChild serves role on loopback, prints "addr=URL" to out, and returns
// once in ends.
func runChild(role string, in io.Reader, out io.Writer) error {
	floor := uint64(node.DefaultHeapFloor)
	if v := os.Getenv(childFloorEnv + role); v != "" {
		f, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return fmt.Errorf("%s%s=%q: want a number of bytes", childFloorEnv, role, v)
		}
		floor = f
	}
	defer node.StartHeapFloor(floor)()
	if v := os.Getenv(childProcsEnv + role); v != "" {
		procs, err := strconv.Atoi(v)
		if err != nil || procs < 1 {
			return fmt.Errorf("%s%s=%q: want a number of at least 1", childProcsEnv, role, v)
		}
		runtime.GOMAXPROCS(procs)
	}
	if path := os.Getenv(childProfileEnv + role); path != "" {
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	var h http.Handler
	switch role {
	case "engine":
		h = fastUpstreamHandler(nil)
	case "proxy":
		n, err := newProxyNode(os.Getenv(childUpstreamEnv))
		if err != nil {
			return err
		}
		h = n.ProxyHandler()
	case "bareproxy":
		// The floor the proxy stands on: net/http's server, ReverseProxy and
		// transport, nothing read, routed or counted.
		u, err := url.Parse(os.Getenv(childUpstreamEnv))
		if err != nil {
			return err
		}
		rp := httputil.NewSingleHostReverseProxy(u)
		rp.Transport = &http.Transport{MaxIdleConns: 4096, MaxIdleConnsPerHost: 1024, DisableCompression: true}
		h = rp
	default:
		return fmt.Errorf("unknown role %q", role)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/", h)
	mux.HandleFunc("GET "+childCPUPath, func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, cpuTime().Nanoseconds())
	})
	mux.HandleFunc("GET "+childGCPath, func(w http.ResponseWriter, r *http.Request) {
		ms := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}, {Name: "/gc/cycles/total:gc-cycles"}}
		metrics.Read(ms)
		fmt.Fprint(w, ms[0].Value.Uint64(), ms[1].Value.Uint64())
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()
	if _, err := fmt.Fprintf(out, "addr=http://%s\n", ln.Addr()); err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, in)
	return err
}

// startChild starts the test binary as a child serving role and returns
// its URL; the child stops when the benchmark ends.
func startChild(tb testing.TB, role string, env ...string) string {
	tb.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(append(os.Environ(), childRoleEnv+"="+role), env...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	tb.Cleanup(func() {
		stdin.Close()
		select {
		case err := <-done:
			if err != nil {
				tb.Errorf("%s child: %v", role, err)
			}
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			tb.Errorf("%s child did not stop within 10 s of its input closing", role)
		}
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "addr=")
	if err != nil || !ok {
		tb.Fatalf("%s child: first line %q: %v", role, line, err)
	}
	return addr
}

// TestBenchChildren: the children the latency benchmarks start serve
// their roles (a proxied chat completion reaches the engine child through
// the proxy child) and stop when told.
func TestBenchChildren(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes; -short skips it")
	}
	up := startChild(t, "engine")
	px := startChild(t, "proxy", childUpstreamEnv+"="+up)
	client := &http.Client{Transport: &http.Transport{}, Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	for _, stream := range []bool{false, true} {
		resp, err := client.Post(px+"/v1/chat/completions", "application/json", strings.NewReader(benchBody(stream)))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("X-Meshnode-Worker") != "w" {
			t.Fatalf("stream=%t: %d, worker %q: %s", stream, resp.StatusCode, resp.Header.Get("X-Meshnode-Worker"), body)
		}
		if stream != strings.Contains(string(body), "data: [DONE]") {
			t.Fatalf("stream=%t: answer %s", stream, body)
		}
	}
	for _, u := range []string{up, px} {
		if d, err := childCPU(client, u); err != nil || d <= 0 {
			t.Fatalf("%s: CPU time %v, %v", u, d, err)
		}
	}
}

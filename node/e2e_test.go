package node

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/meshnode/meshnode/swim"
	"github.com/meshnode/meshnode/swim/swimnet"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// waitFor is how long the end-to-end tests wait for convergence: generous,
// because the tests must pass under -race on a busy two-core machine.
const waitFor = 90 * time.Second

// eventually polls cond until it holds or waitFor passes.
func eventually(t testing.TB, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var err error
	for range tick.C {
		if err = cond(); err == nil {
			return
		}
		if time.Now().After(deadline) {
			break
		}
	}
	t.Fatalf("%s: not within %v: %v", what, waitFor, err)
}

// testCluster is a set of real nodes on loopback.
type testCluster struct {
	t      testing.TB
	nodes  []*Node
	cfgs   []Config
	client *http.Client
	// mem, if not nil, carries the gossip ports of the nodes started
	// afterwards, and api calls their handlers directly (e2e_virtual_test.go).
	mem *swimnet.MemNetwork
}

func localConfig(name, dataDir string) Config {
	return Config{
		Name: name, BindAddr: "127.0.0.1:0", APIAddr: "127.0.0.1:0", Profile: "local",
		AntiEntropyInterval: Duration(300 * time.Millisecond), DataDir: dataDir,
		Registerer: prometheus.NewRegistry(),
	}
}

func newCluster(t testing.TB, n int, withData bool, mods ...func(*Config)) *testCluster {
	t.Helper()
	return fillCluster(emptyCluster(t), n, withData, mods...)
}

// fillCluster starts n nodes in c, joins them and waits until they converge.
func fillCluster(c *testCluster, n int, withData bool, mods ...func(*Config)) *testCluster {
	t := c.t
	t.Helper()
	for i := range n {
		dir := ""
		if withData {
			dir = t.TempDir()
		}
		cfg := localConfig(fmt.Sprintf("n%d", i), dir)
		for _, m := range mods {
			m(&cfg)
		}
		c.cfgs = append(c.cfgs, cfg)
		c.nodes = append(c.nodes, nil)
		c.start(i)
	}
	for i := 1; i < n; i++ {
		c.join(i)
	}
	c.converged()
	return c
}

// emptyCluster returns a cluster without nodes whose nodes, once started,
// are shut down when the test ends.
func emptyCluster(t testing.TB) *testCluster {
	c := &testCluster{t: t, client: &http.Client{Transport: &http.Transport{}, Timeout: 30 * time.Second}}
	t.Cleanup(func() {
		for _, nd := range c.nodes {
			if nd != nil {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				_ = nd.Shutdown(ctx)
				cancel()
			}
		}
		c.client.CloseIdleConnections()
	})
	return c
}

func (c *testCluster) start(i int) {
	c.t.Helper()
	cfg := c.cfgs[i]
	if c.mem != nil {
		cfg.APIAddr = "off" // the tests call the handler
	}
	nd, err := New(cfg)
	if err != nil {
		c.t.Fatal(err)
	}
	nd.memNet = c.mem
	if err := nd.Start(); err != nil {
		c.t.Fatal(err)
	}
	c.nodes[i] = nd
}

func (c *testCluster) join(i int) {
	c.t.Helper()
	seed := 0
	if i == 0 {
		seed = 1
	}
	if err := c.nodes[i].Join(c.nodes[seed].Addr().String()); err != nil {
		c.t.Fatal(err)
	}
}

// converged waits until every running node sees every running node alive
// and is ready.
func (c *testCluster) converged() {
	c.t.Helper()
	eventually(c.t, "membership converges", func() error {
		for _, nd := range c.nodes {
			if nd == nil {
				continue
			}
			if ok, why := nd.Ready(); !ok {
				return fmt.Errorf("%s not ready: %s", nd.name, why)
			}
			alive := map[string]bool{}
			for _, m := range nd.members() {
				if m.State == swim.StateAlive {
					alive[m.Name] = true
				}
			}
			for _, o := range c.nodes {
				if o != nil && !alive[o.name] {
					return fmt.Errorf("%s does not see %s alive", nd.name, o.name)
				}
			}
		}
		return nil
	})
}

// api calls node i's HTTP API and decodes the answer.
func (c *testCluster) api(i int, method, path, body string) (int, map[string]any) {
	c.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	if c.mem != nil {
		return c.callHandler(i, method, path, rd)
	}
	req, err := http.NewRequest(method, "http://"+c.nodes[i].APIAddr()+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	resp, err := c.client.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

func (c *testCluster) must(i int, method, path, body string) map[string]any {
	c.t.Helper()
	code, m := c.api(i, method, path, body)
	if code/100 != 2 {
		c.t.Fatalf("node %d: %s %s: %d %v", i, method, path, code, m)
	}
	return m
}

// everywhere waits until f holds on every running node.
func (c *testCluster) everywhere(what string, f func(i int) error) {
	c.t.Helper()
	eventually(c.t, what, func() error {
		for i, nd := range c.nodes {
			if nd == nil {
				continue
			}
			if err := f(i); err != nil {
				return fmt.Errorf("node %d: %w", i, err)
			}
		}
		return nil
	})
}

func (c *testCluster) hasKey(ns, key, want string) func(int) error {
	return func(i int) error {
		code, m := c.api(i, "GET", "/v1/kv/"+ns+"/"+key, "")
		if code != 200 || m["value"] != want {
			return fmt.Errorf("%s/%s: %d %v", ns, key, code, m)
		}
		return nil
	}
}

// TestClusterEndToEnd is the one end-to-end test over loopback, kept on real
// sockets on purpose: real UDP and TCP (a delta stream too large for a
// packet), the HTTP server on a real port, the ring, workers, the index and
// the rate limits across three nodes. The cluster behaviours themselves
// (replication, partitions, readiness, join, leave, restart from a data
// directory) are tested in virtual time in e2e_virtual_test.go.
func TestClusterEndToEnd(t *testing.T) {
	c := newCluster(t, 3, false)

	// Cluster endpoints.
	if st := c.must(0, "GET", "/v1/status", ""); st["cluster_size"] != float64(3) || st["majority"] != true {
		t.Fatalf("status: %v", st)
	}
	if ms := c.must(2, "GET", "/v1/members", ""); len(ms["members"].([]any)) != 3 {
		t.Fatalf("members: %v", ms)
	}
	var owner any
	for i := range c.nodes {
		r := c.must(i, "GET", "/v1/ring?key=tenant-7&n=2", "")
		o := r["owners"].([]any)[0].(map[string]any)["name"]
		if i > 0 && o != owner {
			t.Fatalf("ring owner differs: node %d says %v, node 0 %v", i, o, owner)
		}
		owner = o
	}

	// KV (TestVirtualClusterReplicates has the put and the delete): a value
	// too large for a packet travels on a delta stream, over TCP here.
	big := strings.Repeat("x", 200<<10)
	c.must(0, "PUT", "/v1/kv/app/big", `{"value":"`+big+`"}`)
	c.everywhere("large value replicates", c.hasKey("app", "big", big))

	// Workers, index and routing: registered on node 0, routed on node 2
	// with node 0's recorded prefix.
	c.must(0, "PUT", "/v1/workers/gpu-1", `{"url":"http://gpu-1:8000","model":"llama","load":5}`)
	c.must(0, "PUT", "/v1/workers/gpu-2", `{"url":"http://gpu-2:8000","model":"llama","load":4}`)
	prompt := strings.Repeat("the quick brown fox ", 20)
	c.must(0, "POST", "/v1/index/insert", `{"worker":"gpu-1","text":"`+prompt+`"}`)
	c.everywhere("route follows the replicated index", func(i int) error {
		r := c.must(i, "POST", "/v1/route", `{"model":"llama","text":"`+prompt+`"}`)
		if r["worker"] != "gpu-1" || r["rule"] != "cache-hit" {
			return fmt.Errorf("route: %v", r)
		}
		return nil
	})
	// Deleting a worker anywhere drops it from every replica's index.
	c.must(2, "DELETE", "/v1/workers/gpu-1", "")
	c.everywhere("worker removal replicates to the index", func(i int) error {
		for _, s := range c.nodes[i].st.ix.Digest() {
			if s.Worker == "gpu-1" && !s.Removed {
				return fmt.Errorf("gpu-1 still indexed: %+v", s)
			}
		}
		if r := c.must(i, "POST", "/v1/route", `{"model":"llama","text":"`+prompt+`"}`); r["worker"] != "gpu-2" {
			return fmt.Errorf("route: %v", r)
		}
		return nil
	})

	// Rate limits: defined once, counted everywhere.
	c.must(0, "PUT", "/v1/limits/tenant", `{"limit":100,"window":"1h"}`)
	c.everywhere("limit replicates", func(i int) error {
		if code, m := c.api(i, "GET", "/v1/limits/tenant", ""); code != 200 {
			return fmt.Errorf("%d %v", code, m)
		}
		return nil
	})
	for i := range c.nodes {
		c.must(i, "POST", "/v1/limits/tenant/take", `{"n":10}`)
	}
	c.everywhere("usage sums all nodes", func(i int) error {
		if m := c.must(i, "GET", "/v1/limits/tenant", ""); m["used"] != float64(30) {
			return fmt.Errorf("used %v", m["used"])
		}
		return nil
	})

}

// TestHostileStreams sends what a broken or hostile peer might on the
// gossip port's TCP side: the node drops the connection, counts it, and
// keeps serving. It stays on real sockets on purpose: the bytes come from
// a raw TCP client, and a reset by the kernel is part of what it checks.
func TestHostileStreams(t *testing.T) {
	c := newCluster(t, 2, false)
	nd := c.nodes[0]
	before := testutilCounter(nd.met.streamErrors)
	cases := map[string][]byte{
		"unknown channel":          []byte("Z"),
		"sync garbage":             append([]byte("A"), bytes.Repeat([]byte{0xff}, 64)...),
		"deltas with a huge frame": append([]byte("D"), 0xff, 0xff, 0xff, 0xff, 11, 0),
		"swim garbage":             append([]byte("S"), 200),
	}
	for name, payload := range cases {
		t.Run(name, func(t *testing.T) {
			conn, err := net.Dial("tcp", nd.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if _, err := conn.Write(payload); err != nil {
				t.Fatal(err)
			}
			conn.SetReadDeadline(time.Now().Add(waitFor))
			// A reset is a close too: the node stops reading at the
			// first bad frame header, leaving the rest unread.
			if _, err := io.ReadAll(conn); err != nil && !errors.Is(err, syscall.ECONNRESET) {
				t.Fatalf("connection not closed by the node: %v", err)
			}
		})
	}
	if got := testutilCounter(nd.met.streamErrors); got < before+3 {
		t.Fatalf("stream errors %v -> %v, want at least 3 more", before, got)
	}
	// The node still replicates.
	c.must(1, "PUT", "/v1/kv/h/k", `{"value":"v"}`)
	c.everywhere("still replicating", c.hasKey("h", "k", "v"))
}

// testutilCounter reads a counter's value.
func testutilCounter(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return -1
	}
	return m.GetCounter().GetValue()
}

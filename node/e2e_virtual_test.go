package node

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/meshnode/meshnode/swim"
	"github.com/meshnode/meshnode/swim/swimnet"
)

// The end-to-end tests below run whole nodes (swim, replication, the HTTP
// handlers) over a swimnet.MemNetwork in a synctest bubble: time is virtual,
// so the waits for membership and replication take no wall time and depend
// on no scheduling luck. e2e_test.go keeps one end-to-end run and the
// hostile streams on real sockets (node/doc.go lists the real-socket tests
// and why).

// newVirtualCluster starts n nodes on an in-memory network; call it inside
// a synctest bubble.
func newVirtualCluster(t *testing.T, n int, withData bool, mods ...func(*Config)) *testCluster {
	t.Helper()
	c := emptyCluster(t)
	c.mem = swimnet.NewMemNetwork(0)
	return fillCluster(c, n, withData, mods...)
}

// callHandler serves one API request on node i's handler, in process.
func (c *testCluster) callHandler(i int, method, path string, body io.Reader) (int, map[string]any) {
	c.t.Helper()
	rec := httptest.NewRecorder()
	c.nodes[i].handler.ServeHTTP(rec, httptest.NewRequest(method, path, body))
	var m map[string]any
	_ = json.Unmarshal(rec.Body.Bytes(), &m)
	return rec.Code, m
}

// TestVirtualClusterReplicates: three nodes join; a write, a value too large
// for a packet (a delta stream) and a delete on one node reach the others.
func TestVirtualClusterReplicates(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newVirtualCluster(t, 3, false)
		if st := c.must(0, "GET", "/v1/status", ""); st["cluster_size"] != float64(3) || st["majority"] != true {
			t.Fatalf("status: %v", st)
		}
		c.must(1, "PUT", "/v1/kv/app/greeting", `{"value":"hello"}`)
		c.everywhere("put replicates", c.hasKey("app", "greeting", "hello"))
		big := strings.Repeat("x", 200<<10)
		c.must(0, "PUT", "/v1/kv/app/big", `{"value":"`+big+`"}`)
		c.everywhere("large value replicates", c.hasKey("app", "big", big))
		c.must(2, "DELETE", "/v1/kv/app/greeting", "")
		c.everywhere("delete replicates", func(i int) error {
			if code, _ := c.api(i, "GET", "/v1/kv/app/greeting", ""); code != 404 {
				return fmt.Errorf("still there: %d", code)
			}
			return nil
		})
	})
}

// TestVirtualClusterCrashAndRejoin: a node that stops without leaving is
// declared dead by the others, and a node joining later catches up on
// what was written before it came.
func TestVirtualClusterCrashAndRejoin(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newVirtualCluster(t, 3, false)
		c.must(0, "PUT", "/v1/kv/app/early", `{"value":"1"}`)
		c.everywhere("put replicates", c.hasKey("app", "early", "1"))
		if err := c.nodes[2].Shutdown(t.Context()); err != nil {
			t.Fatal(err)
		}
		c.nodes[2] = nil
		eventually(t, "n2 declared dead", func() error {
			for i := range 2 {
				for _, m := range c.nodes[i].members() {
					if m.Name == "n2" && m.State != swim.StateDead {
						return fmt.Errorf("node %d sees n2 %v", i, m.State)
					}
				}
			}
			return nil
		})
		c.cfgs = append(c.cfgs, localConfig("n3", ""))
		c.nodes = append(c.nodes, nil)
		c.start(3)
		c.join(3)
		c.everywhere("the newcomer catches up", c.hasKey("app", "early", "1"))
	})
}

// TestVirtualClusterLeave: a node that leaves snapshots and flushes its last
// write, and the others see it left, not dead, and shrink the cluster.
func TestVirtualClusterLeave(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newVirtualCluster(t, 3, true)
		c.must(2, "PUT", "/v1/kv/app/last-words", `{"value":"bye"}`)
		c.must(2, "POST", "/v1/leave", `{"timeout":"20s"}`)
		if code, m := c.api(2, "GET", "/readyz", ""); code != 503 || m["reason"] != "leaving" {
			t.Fatalf("readyz after leave: %d %v", code, m)
		}
		if _, err := os.Stat(filepath.Join(c.cfgs[2].DataDir, fileStore)); err != nil {
			t.Fatalf("no snapshot on leave: %v", err)
		}
		eventually(t, "others see the departure", func() error {
			for i := range 2 {
				if err := c.hasKey("app", "last-words", "bye")(i); err != nil {
					return err
				}
				for _, m := range c.nodes[i].members() {
					if m.Name == "n2" && m.State != swim.StateLeft {
						return fmt.Errorf("node %d sees n2 %v", i, m.State)
					}
				}
				if st := c.nodes[i].Status(); st.KnownSize != 2 || !st.Majority {
					return fmt.Errorf("node %d status: %+v", i, st)
				}
			}
			return nil
		})
	})
}

// cutOff drops every packet and every stream dial to and from node i on the
// in-memory network until heal: a partition of node i from the rest.
// Streams already open finish, as they would on a real network.
func (c *testCluster) cutOff(i int) {
	c.t.Helper()
	addr := c.nodes[i].Addr()
	c.mem.SetDrop(func(from, to netip.AddrPort, _ bool) bool { return from == addr || to == addr })
}

// heal removes the partition of cutOff.
func (c *testCluster) heal() { c.mem.SetDrop(nil) }

// TestVirtualClusterRestartFromDataDir: a node killed without leaving,
// after a snapshot, comes back from its data directory with its state and
// a higher generation before any sync, and then catches up on what was
// written while it was down.
func TestVirtualClusterRestartFromDataDir(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newVirtualCluster(t, 3, true)
		c.must(0, "PUT", "/v1/workers/gpu-1", `{"url":"http://gpu-1:8000","model":"llama","load":5}`)
		prompt := strings.Repeat("the quick brown fox ", 20)
		c.must(0, "POST", "/v1/index/insert", `{"worker":"gpu-1","text":"`+prompt+`"}`)
		c.must(2, "PUT", "/v1/kv/app/before-crash", `{"value":"saved"}`)
		c.everywhere("pre-crash write replicates", c.hasKey("app", "before-crash", "saved"))
		c.everywhere("the index replicates", func(i int) error {
			if r := c.must(i, "POST", "/v1/route", `{"model":"llama","text":"`+prompt+`"}`); r["worker"] != "gpu-1" || r["rule"] != "cache-hit" {
				return fmt.Errorf("route: %v", r)
			}
			return nil
		})
		if err := c.nodes[2].snapshot(); err != nil {
			t.Fatal(err)
		}
		oldGen := c.nodes[2].Generation()
		if err := c.nodes[2].Shutdown(t.Context()); err != nil {
			t.Fatal(err)
		}
		c.nodes[2] = nil
		c.must(0, "PUT", "/v1/kv/app/while-down", `{"value":"missed"}`)
		c.start(2)
		if g := c.nodes[2].Generation(); g <= oldGen {
			t.Fatalf("restart generation %d, want above %d", g, oldGen)
		}
		// The snapshot is back before any sync: the restarted node has a
		// new address and has joined no one yet.
		if err := c.hasKey("app", "before-crash", "saved")(2); err != nil {
			t.Fatalf("state not restored from the data directory: %v", err)
		}
		if r := c.must(2, "POST", "/v1/route", `{"model":"llama","text":"`+prompt+`"}`); r["worker"] != "gpu-1" || r["rule"] != "cache-hit" {
			t.Fatalf("index not restored from the data directory: route %v", r)
		}
		c.join(2)
		c.converged()
		c.everywhere("restarted node catches up", c.hasKey("app", "while-down", "missed"))
	})
}

// TestVirtualClusterPartitionHeals: a node cut off from the other two loses
// its majority while they keep theirs; on the minority side the rate limit
// admits only its share; writes on both sides meet after the heal.
func TestVirtualClusterPartitionHeals(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newVirtualCluster(t, 3, false)
		c.must(0, "PUT", "/v1/limits/shared", `{"limit":90,"window":"1h"}`)
		c.everywhere("limit replicates", func(i int) error {
			if code, m := c.api(i, "GET", "/v1/limits/shared", ""); code != 200 {
				return fmt.Errorf("%d %v", code, m)
			}
			return nil
		})
		cut := c.nodes[2]
		cut.cfg.MinorityShare = true // read only by the API handlers, which the test calls
		c.cutOff(2)
		eventually(t, "partition detected", func() error {
			if _, _, maj := cut.quorum(); maj {
				return fmt.Errorf("cut node still sees a majority")
			}
			if _, _, maj := c.nodes[0].quorum(); !maj {
				return fmt.Errorf("node 0 lost its majority")
			}
			return nil
		})
		if code, m := c.api(2, "GET", "/v1/status", ""); code != 200 || m["majority"] != false {
			t.Fatalf("status of the cut node: %v", m)
		}
		// The minority side admits only its share: a third of 90.
		if r := c.must(2, "POST", "/v1/limits/shared/take", `{"n":31}`); r["allowed"] != false {
			t.Fatalf("minority admitted beyond its share: %v", r)
		}
		if r := c.must(2, "POST", "/v1/limits/shared/take", `{"n":30}`); r["allowed"] != true {
			t.Fatalf("minority refused its share: %v", r)
		}
		// Writes on both sides during the partition.
		c.must(2, "PUT", "/v1/kv/p/minority", `{"value":"m"}`)
		c.must(0, "PUT", "/v1/kv/p/majority", `{"value":"M"}`)
		// A minute of virtual time: the write must not cross.
		time.Sleep(time.Minute)
		if code, _ := c.api(1, "GET", "/v1/kv/p/minority", ""); code != 404 {
			t.Fatalf("write crossed the partition")
		}
		c.heal()
		c.everywhere("minority write appears after healing", c.hasKey("p", "minority", "m"))
		c.everywhere("majority write appears after healing", c.hasKey("p", "majority", "M"))
		c.converged()
	})
}

// TestVirtualClusterTombstoneGC checks the GC pipeline end to end: digests
// that anti-entropy carries feed each store's view of its peers, and the
// maintenance loop's collection with the live members' actors removes a
// replicated tombstone everywhere.
func TestVirtualClusterTombstoneGC(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newVirtualCluster(t, 3, false)
		c.must(0, "PUT", "/v1/kv/gc/k", `{"value":"v"}`)
		c.everywhere("put replicates", c.hasKey("gc", "k", "v"))
		c.must(1, "DELETE", "/v1/kv/gc/k", "")
		// The maintenance loop collects every 10 s of virtual time.
		c.everywhere("tombstone is collected", func(i int) error {
			if st := c.nodes[i].storeStats(); st.Tombstones != 0 || st.Keys != 0 {
				return fmt.Errorf("%d tombstones, %d keys", st.Tombstones, st.Keys)
			}
			return nil
		})
		// The key stays deleted: no replica resurrects it.
		time.Sleep(time.Minute)
		for i := range c.nodes {
			if code, _ := c.api(i, "GET", "/v1/kv/gc/k", ""); code != 404 {
				t.Fatalf("node %d resurrected the key", i)
			}
		}
	})
}

// TestVirtualJoinOnlySelfIsReady: the first member of a cluster, whose
// seeds (a headless service, say) list only itself, is joined and ready,
// and a second node joining through it gets its state.
func TestVirtualJoinOnlySelfIsReady(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newVirtualCluster(t, 0, false)
		c.cfgs = []Config{localConfig("first", ""), localConfig("second", "")}
		c.nodes = make([]*Node, 2)
		c.start(0)
		if err := c.nodes[0].Join(c.nodes[0].Addr().String()); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the lone first member is ready", func() error {
			if ok, why := c.nodes[0].Ready(); !ok {
				return fmt.Errorf("%s", why)
			}
			return nil
		})
		c.must(0, "PUT", "/v1/kv/ns/k", `{"value":"v"}`)
		c.start(1)
		c.join(1)
		c.converged()
		c.everywhere("the first member's write reaches the second", c.hasKey("ns", "k", "v"))
	})
}

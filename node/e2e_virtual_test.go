package node

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/meshnode/meshnode/swim"
	"github.com/meshnode/meshnode/swim/swimnet"
)

// The end-to-end tests below run whole nodes (swim, replication, the HTTP
// handlers) over a swimnet.MemNetwork in a synctest bubble: time is virtual,
// so the waits for membership and replication take no wall time and depend
// on no scheduling luck. e2e_test.go keeps the same scenarios on real
// sockets.

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

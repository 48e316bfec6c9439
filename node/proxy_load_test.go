package node

import (
	"fmt"
	"testing"
	"testing/synctest"
	"time"
)

// TestProxyLoadIsClusterWide: the requests each node's proxy has in flight
// on a worker reach every node's routing, leave it when released, and
// vanish with a node that crashes (once it is found dead) or leaves (at
// once). Virtual time: the nodes run on a MemNetwork in a synctest bubble.
func TestProxyLoadIsClusterWide(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newVirtualCluster(t, 3, false, func(cfg *Config) { cfg.ProxyAddr = "127.0.0.1:0" })
		c.must(0, "PUT", "/v1/workers/w", `{"url":"http://127.0.0.1:1","model":"m"}`)
		c.everywhere("the worker replicates", func(i int) error {
			if _, ok := c.nodes[i].st.worker("w"); !ok {
				return fmt.Errorf("no worker")
			}
			return nil
		})
		loadIs := func(want int) func(int) error {
			return func(i int) error {
				if got := c.nodes[i].proxyLoad("w"); got != want {
					return fmt.Errorf("load %d, want %d", got, want)
				}
				return nil
			}
		}
		l0a := c.nodes[0].proxy.load.acquire("w", 0)
		c.nodes[0].proxy.load.acquire("w", 2*tokensPerLoad) // two units of queued tokens
		c.nodes[1].proxy.load.acquire("w", 0)
		c.everywhere("every node sees all four units", loadIs(5))
		l0a.release()
		c.everywhere("a release reaches every node", loadIs(4))

		if err := c.nodes[1].Shutdown(t.Context()); err != nil {
			t.Fatal(err)
		}
		c.nodes[1] = nil
		c.everywhere("a crashed node's count vanishes", loadIs(3))

		start := time.Now()
		if err := c.nodes[0].Leave(5 * time.Second); err != nil {
			t.Fatal(err)
		}
		eventually(t, "a departed node's count vanishes, its key deleted", func() error {
			if _, ok := c.nodes[2].st.get(nsLoad, "n0"); ok {
				return fmt.Errorf("n0's counts still published")
			}
			return loadIs(0)(2)
		})
		if d := time.Since(start); d > 10*time.Second {
			t.Fatalf("took %v", d)
		}
		// A key of the proxy's namespace is not the KV API's to write.
		if code, _ := c.api(2, "PUT", "/v1/kv/load/n2", `{"value":"{}"}`); code != 403 {
			t.Fatalf("KV write to the load namespace: %d", code)
		}
	})
}

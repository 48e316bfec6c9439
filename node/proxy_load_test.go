package node

import (
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/meshnode/meshnode/swim"
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

// TestProxyLoadKeysOfGoneMembersAreDeleted: the load key of a crashed node
// and that of a name no member bears are deleted everywhere once their
// owner has been gone for loadKeyGrace, not before; a node that returns
// under the name publishes again, and a live node whose key was deleted
// (taken for dead) writes it again.
func TestProxyLoadKeysOfGoneMembersAreDeleted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newVirtualCluster(t, 3, false, func(cfg *Config) { cfg.ProxyAddr = "127.0.0.1:0" })
		has := func(want bool, keys ...string) func(int) error {
			return func(i int) error {
				for _, k := range keys {
					if _, ok := c.nodes[i].st.get(nsLoad, k); ok != want {
						return fmt.Errorf("key %s present: %t, want %t", k, ok, want)
					}
				}
				return nil
			}
		}
		c.everywhere("every node publishes its counts", has(true, "n0", "n1", "n2"))
		// An autoscaled fleet's node, long reaped: a name swim does not know.
		if err := c.nodes[2].st.write(func() error { return c.nodes[2].st.store.Put(nsLoad, "ghost", []byte("{}"), time.Now()) }); err != nil {
			t.Fatal(err)
		}
		c.everywhere("the stray key replicates", has(true, "ghost"))
		ghostAt := time.Now()

		if err := c.nodes[1].Shutdown(t.Context()); err != nil {
			t.Fatal(err)
		}
		c.nodes[1] = nil
		var deadSince time.Time
		eventually(t, "n0 finds n1 dead", func() error {
			for _, m := range c.nodes[0].members() {
				if m.Name == "n1" && m.State == swim.StateDead {
					deadSince = m.Since
					return nil
				}
			}
			return fmt.Errorf("n1 not dead")
		})
		c.everywhere("the keys of the dead and the unknown are deleted", has(false, "n1", "ghost"))
		if d := time.Since(deadSince); d < loadKeyGrace {
			t.Errorf("n1's key deleted %v after its death, before the grace %v", d, loadKeyGrace)
		}
		if d := time.Since(ghostAt); d < loadKeyGrace {
			t.Errorf("the stray key deleted after %v, before the grace %v", d, loadKeyGrace)
		}
		c.everywhere("the live keep theirs", has(true, "n0", "n2"))

		c.start(1)
		c.join(1)
		c.everywhere("n1 returns and publishes again", has(true, "n0", "n1", "n2"))

		// n2 taken for dead by the sweeper: its key comes back.
		if err := c.nodes[0].st.write(func() error { return c.nodes[0].st.store.Delete(nsLoad, "n2", time.Now()) }); err != nil {
			t.Fatal(err)
		}
		c.everywhere("a live node writes its deleted key again", has(true, "n0", "n1", "n2"))
	})
}

package node

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"testing/synctest"

	"github.com/google/go-cmp/cmp"
)

// holds checks that worker's event-sourced holdings on node i match the
// engine's cache for each prompt: as many leading pages as the engine
// caches leading blocks.
func (c *testCluster) holds(worker string, e *memEngine, prompts ...[]uint32) func(int) error {
	return func(i int) error {
		ix := c.nodes[i].st.ix
		for pi, p := range prompts {
			pages := ix.AppendPages(nil, "m", p)
			want := e.cachedBlocks(p) * e.blockSize / ix.PageTokens("m")
			got := 0
			for _, h := range ix.MatchPages(nil, pages) {
				if h.Worker == worker {
					got = h.Pages
				}
			}
			if got != want {
				return fmt.Errorf("%s holds %d pages of prompt %d, the engine caches %d", worker, got, pi, want)
			}
		}
		return nil
	}
}

// TestVirtualKVEvents runs three nodes and two in-memory engines in virtual
// time: one node subscribes per engine, every node routes on the engines'
// caches (stores, evictions, a clear), and when the subscriber of an
// engine crashes the next owner takes over and replays what it missed.
func TestVirtualKVEvents(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e1, e2 := newMemEngine(32, 12), newMemEngine(32, 64)
		es := memEngines{"tcp://127.0.0.1:5557": e1, "tcp://127.0.0.1:5558": e1, "tcp://127.0.0.1:5567": e2}
		c := newVirtualCluster(t, 3, false, es.config)
		c.must(0, "PUT", "/v1/workers/e1", `{"url":"http://127.0.0.1:8001","model":"m","kv_events":{"endpoint":"tcp://127.0.0.1:5557","replay_endpoint":"tcp://127.0.0.1:5558","topic":"kv"}}`)
		c.must(0, "PUT", "/v1/workers/e2", `{"url":"http://127.0.0.1:8002","model":"m","kv_events":{"endpoint":"tcp://127.0.0.1:5567"}}`)
		names := []string{"n0", "n1", "n2"}
		owner := func(w string) string { return Owners(w, names, 1)[0] }
		eventually(t, "one subscriber per engine, its owner", func() error {
			if got, want := e1.subscribers(), []string{owner("e1")}; !slices.Equal(got, want) {
				return fmt.Errorf("e1 subscribers %v, want %v", got, want)
			}
			if got, want := e2.subscribers(), []string{owner("e2")}; !slices.Equal(got, want) {
				return fmt.Errorf("e2 subscribers %v, want %v", got, want)
			}
			return nil
		})

		a, b := prompt(1, 96), prompt(2, 64)
		e1.prefill(a)
		e2.prefill(b)
		c.everywhere("stores reach every index", func(i int) error {
			if err := c.holds("e1", e1, a)(i); err != nil {
				return err
			}
			return c.holds("e2", e2, b)(i)
		})
		// A route on a node that subscribes to neither engine.
		other := slices.IndexFunc(names, func(n string) bool { return n != owner("e1") && n != owner("e2") })
		if other < 0 {
			other = slices.Index(names, owner("e2"))
		}
		res := c.must(other, "POST", "/v1/route", fmt.Sprintf(`{"model":"m","tokens":%s}`, tokensJSON(a)))
		if res["worker"] != "e1" || res["matched_pages"] != float64(6) {
			t.Fatalf("route on n%d: %v", other, res)
		}
		if diff := cmp.Diff([]any{"events"}, res["sources"]); diff != "" {
			t.Errorf("route sources (-want +got):\n%s", diff)
		}

		// Eviction: e1 keeps 12 blocks; three more prompts push a out.
		more := [][]uint32{prompt(3, 128), prompt(4, 128), prompt(5, 64)}
		for _, p := range more {
			e1.prefill(p)
		}
		if e1.cachedBlocks(a) != 0 {
			t.Fatalf("the engine still caches %d blocks of a", e1.cachedBlocks(a))
		}
		c.everywhere("evictions reach every index", c.holds("e1", e1, append([][]uint32{a}, more...)...))
		// A clear.
		e2.reset()
		c.everywhere("a clear reaches every index", c.holds("e2", e2, b))

		// The subscriber of e1 crashes; the engine goes on storing.
		crashed := slices.Index(names, owner("e1"))
		if err := c.nodes[crashed].Shutdown(t.Context()); err != nil {
			t.Fatal(err)
		}
		c.nodes[crashed] = nil
		d := prompt(6, 64)
		e1.prefill(d)
		e1.prefill(a)
		live := slices.Delete(slices.Clone(names), crashed, crashed+1)
		eventually(t, "the next owner subscribes", func() error {
			if got, want := e1.subscribers(), []string{Owners("e1", live, 1)[0]}; !slices.Equal(got, want) {
				return fmt.Errorf("e1 subscribers %v, want %v", got, want)
			}
			return nil
		})
		c.everywhere("what the engine published meanwhile is replayed", c.holds("e1", e1, append([][]uint32{a, d}, more...)...))
	})
}

// tokensJSON formats tokens as a JSON array.
func tokensJSON(ts []uint32) string {
	b, err := json.Marshal(ts)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// TestVirtualKVEventsTwoSubscribers: with kv_subscribers 2 the worker's two
// owners both follow its engine, and their identical deltas leave every
// index as one subscriber would.
func TestVirtualKVEventsTwoSubscribers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e1 := newMemEngine(32, 12)
		es := memEngines{"tcp://127.0.0.1:5557": e1, "tcp://127.0.0.1:5558": e1}
		c := newVirtualCluster(t, 3, false, es.config, func(cfg *Config) { cfg.KVSubscribers = 2 })
		c.must(1, "PUT", "/v1/workers/e1", `{"url":"http://127.0.0.1:8001","model":"m","kv_events":{"endpoint":"tcp://127.0.0.1:5557","replay_endpoint":"tcp://127.0.0.1:5558"}}`)
		want := Owners("e1", []string{"n0", "n1", "n2"}, 2)
		slices.Sort(want)
		eventually(t, "both owners subscribe", func() error {
			if got := e1.subscribers(); !slices.Equal(got, want) {
				return fmt.Errorf("subscribers %v, want %v", got, want)
			}
			return nil
		})
		ps := [][]uint32{prompt(1, 96), prompt(2, 128), prompt(3, 160)}
		for _, p := range ps {
			e1.prefill(p)
		}
		c.everywhere("every index follows the engine", c.holds("e1", e1, ps...))
	})
}

package node

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/meshnode/meshnode/engine"
	"github.com/meshnode/meshnode/engine/server"
)

// e2eEngine is an emulated engine on loopback, with real ZMQ sockets.
type e2eEngine struct {
	s      *server.Server
	worker string
	seen   map[uint64]bool // every block hash the engine ever cached
}

func startE2EEngine(t *testing.T, worker string, blocks int) *e2eEngine {
	t.Helper()
	s, err := server.New(server.Config{Addr: "127.0.0.1:0", Models: []string{"m"},
		Engine:   engine.Config{Blocks: blocks, BlockTokens: 16, PrefillTPS: 1e6, DecodeTPS: 1e4},
		KVEvents: "tcp://127.0.0.1:0", KVReplay: "tcp://127.0.0.1:0", KVTopic: "kv"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return &e2eEngine{s: s, worker: worker, seen: map[uint64]bool{}}
}

// complete runs a prompt on the engine (one output token) and notes the
// blocks it caches.
func (e *e2eEngine) complete(t *testing.T, text string) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"model": "m", "prompt": text, "max_tokens": 1})
	resp, err := http.Post("http://"+e.s.Addr()+"/v1/completions", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("completion: %d %s", resp.StatusCode, b)
	}
	for _, h := range e.s.CachedBlocks() {
		e.seen[h] = true
	}
}

// indexMatches checks that node i's index knows exactly the blocks the
// engine caches: every cached block's hash maps to its pages, and no
// evicted block's does.
func (c *testCluster) indexMatches(e *e2eEngine) func(int) error {
	return func(i int) error {
		cached := map[uint64]bool{}
		for _, h := range e.s.CachedBlocks() {
			cached[h] = true
			e.seen[h] = true
		}
		for h := range e.seen {
			_, known := c.nodes[i].evIx.EngineLineage(e.worker, h)
			if known != cached[h] {
				return fmt.Errorf("%s block %x: cached %v, in the index %v", e.worker, h, cached[h], known)
			}
		}
		return nil
	}
}

// byteTokens is the emulator's tokenizer as a JSON array.
func byteTokens(text string) string {
	ts := engine.AppendTokens(nil, text)
	b, _ := json.Marshal(ts)
	return string(b)
}

// subscribers returns the nodes that follow worker's stream.
func (c *testCluster) subscribers(worker string) []string {
	var out []string
	for _, nd := range c.nodes {
		if nd == nil {
			continue
		}
		for _, s := range nd.KVSubscriptions() {
			if s.Worker == worker && s.Subscribed {
				out = append(out, nd.name)
			}
		}
	}
	return out
}

// TestKVEventsEndToEnd runs three nodes on loopback and two emulated engines
// publishing KV events over real ZMQ sockets: exactly one node subscribes
// per engine; a route on another node finds the engine that holds a prefix,
// from its events; evictions and a clear reach every node; and when the
// subscribing node crashes, the subscription moves and nothing the engine
// can replay is lost. It stays on real sockets on purpose: it is the one
// test of the ZMQ client against a publisher, under the node's lifecycle.
func TestKVEventsEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: real sockets, seconds of failure detection")
	}
	e1 := startE2EEngine(t, "e1", 40)
	e2 := startE2EEngine(t, "e2", 1000)
	c := newCluster(t, 3, false)
	c.converged()
	for _, e := range []*e2eEngine{e1, e2} {
		c.must(0, "PUT", "/v1/workers/"+e.worker, fmt.Sprintf(`{"url":"http://%s","model":"m","kv_events":{"endpoint":%q,"replay_endpoint":%q,"topic":"kv"}}`,
			e.s.Addr(), e.s.KVEventsAddr(), e.s.KVReplayAddr()))
	}
	eventually(t, "one subscriber per engine", func() error {
		for _, w := range []string{"e1", "e2"} {
			if got := c.subscribers(w); len(got) != 1 {
				return fmt.Errorf("%s subscribers %v", w, got)
			}
		}
		return nil
	})

	system := strings.Repeat("You are the support assistant of a large shop; answer briefly. ", 3)
	e1.complete(t, system+"User: where is my parcel?")
	e2.complete(t, "Another system prompt entirely, for the second engine's tenants. User: hello")
	c.everywhere("stores reach every index", func(i int) error {
		if err := c.indexMatches(e1)(i); err != nil {
			return err
		}
		return c.indexMatches(e2)(i)
	})
	sub := c.subscribers("e1")[0]
	other := slices.IndexFunc(c.nodes, func(nd *Node) bool { return nd.name != sub })
	res := c.must(other, "POST", "/v1/route", `{"model":"m","tokens":`+byteTokens(system+"User: a new question")+`}`)
	if res["worker"] != "e1" || res["rule"] != "cache-hit" {
		t.Fatalf("route on %s: %v", c.nodes[other].name, res)
	}
	if diff := cmp.Diff([]any{"events"}, res["sources"]); diff != "" {
		t.Errorf("route sources (-want +got):\n%s", diff)
	}

	// e1 caches 40 blocks: a few more long prompts evict the first.
	for k := range 4 {
		e1.complete(t, strings.Repeat(fmt.Sprintf("filler %d for eviction. ", k), 12))
	}
	c.everywhere("evictions reach every index", c.indexMatches(e1))
	if cached := len(e1.s.CachedBlocks()); cached >= len(e1.seen) {
		t.Fatalf("no eviction: %d blocks cached of %d stored", cached, len(e1.seen))
	}
	e2.s.ResetPrefixCache()
	if cached := len(e2.s.CachedBlocks()); cached != 0 || len(e2.seen) == 0 {
		t.Fatalf("after a reset e2 caches %d blocks (%d stored before)", cached, len(e2.seen))
	}
	c.everywhere("a clear reaches every index", c.indexMatches(e2))

	// The subscriber of e1 crashes; e1 serves prompts meanwhile.
	crashed := slices.IndexFunc(c.nodes, func(nd *Node) bool { return nd != nil && nd.name == c.subscribers("e1")[0] })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	if err := c.nodes[crashed].Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	cancel()
	c.nodes[crashed] = nil
	e1.complete(t, system+"User: and my refund?")
	e1.complete(t, strings.Repeat("while nobody listens. ", 10))
	eventually(t, "the subscription moves", func() error {
		if got := c.subscribers("e1"); len(got) != 1 {
			return fmt.Errorf("e1 subscribers %v", got)
		}
		return nil
	})
	c.everywhere("what the engine published meanwhile is replayed", c.indexMatches(e1))
	res = c.must(slices.IndexFunc(c.nodes, func(nd *Node) bool { return nd != nil }), "POST", "/v1/route",
		`{"model":"m","tokens":`+byteTokens(strings.Repeat("while nobody listens. ", 10))+`}`)
	if res["worker"] != "e1" || res["rule"] != "cache-hit" {
		t.Fatalf("route of a prompt stored while no node listened: %v", res)
	}
}

package node

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/meshnode/meshnode/radix"
)

// TestProxyRetryRecordsOnlyTheServer: when a request is retried away from
// a worker (connect error or 5xx before the first byte), only the worker
// that serves it holds the prompt's pages as recorded, and the replicated
// batch names no other worker. On workers that stream KV events the
// prompt is pending wherever it was sent (in flight), and the pages of the
// worker retried away from go when pending pages expire. Load counts follow the request across the retry:
// nothing stays on the failed worker, the serving one counts the request
// while it streams and nothing once it ends.
func TestProxyRetryRecordsOnlyTheServer(t *testing.T) {
	for _, broken := range []struct {
		name string
		url  func(t *testing.T) string
	}{
		{"connect error", deadURL},
		{"503", func(t *testing.T) string {
			e := newFakeEngine(t, "broken")
			e.status.Store(503)
			return e.srv.URL
		}},
	} {
		for _, events := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/events=%t", broken.name, events), func(t *testing.T) {
				n, srv := newProxyNode(t, nil)
				good := newFakeEngine(t, "good")
				good.hold, good.started = make(chan struct{}), make(chan struct{}, 1)
				var kv *KVEvents
				if events {
					kv = &KVEvents{Endpoint: "tcp://127.0.0.1:1"}
				}
				// No worker holds the prompt: the least loaded ("a",
				// broken) is tried first.
				for _, wk := range []Worker{
					{ID: "a", URL: broken.url(t), Model: "m", Health: "healthy", KVEvents: kv},
					{ID: "b", URL: good.srv.URL, Model: "m", Health: "healthy", KVEvents: kv, Load: 1},
				} {
					if _, err := n.st.putWorker(wk, time.Now()); err != nil {
						t.Fatal(err)
					}
				}
				n.st.mu.Lock()
				n.st.batch.Reset()
				n.st.mu.Unlock()

				tokens := make([]uint32, 4*n.st.ix.PageTokens("m"))
				for i := range tokens {
					tokens[i] = uint32(i + 1)
				}
				body, _ := json.Marshal(map[string]any{"model": "m", "prompt": tokens, "stream": true})
				resp, err := srv.Client().Post(srv.URL+"/v1/completions", "application/json", strings.NewReader(string(body)))
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				<-good.started
				rd := bufio.NewReader(resp.Body)
				first, err := rd.ReadString('\n')
				if err != nil || resp.StatusCode != 200 || workerOf(t, first) != "good" {
					t.Fatalf("got %d %q %v", resp.StatusCode, first, err)
				}

				if r := testutilCounter(n.met.proxyRetries.WithLabelValues("connect")) + testutilCounter(n.met.proxyRetries.WithLabelValues("status_5xx")); r != 1 {
					t.Fatalf("retries: %v, want 1", r)
				}
				pages := n.st.ix.AppendPages(nil, "m", tokens)
				want := []radix.Hit{{Worker: "b", Pages: len(pages)}}
				wantNamed := []string{"b"}
				if events {
					want = []radix.Hit{{Worker: "a", Pages: len(pages)}, {Worker: "b", Pages: len(pages)}}
					wantNamed = []string{"a", "b"}
				}
				hits := n.st.ix.MatchPages(nil, pages)
				slices.SortFunc(hits, func(x, y radix.Hit) int { return strings.Compare(x.Worker, y.Worker) })
				if diff := cmp.Diff(want, hits); diff != "" {
					t.Errorf("index holders of the prompt (-want +got):\n%s", diff)
				}
				n.st.mu.Lock()
				var named []string
				for _, d := range n.st.batch.Deltas {
					named = append(named, d.Worker)
				}
				n.st.mu.Unlock()
				if diff := cmp.Diff(wantNamed, named); diff != "" {
					t.Errorf("workers of the replicated deltas (-want +got):\n%s", diff)
				}
				if events {
					// Pending pages expire (here: all of them at once).
					n.st.ix.ExpirePending(indexStamp(time.Now()) + 1)
					if hits := n.st.ix.MatchPages(nil, pages); len(hits) != 0 {
						t.Errorf("pending pages after expiry: %v", hits)
					}
				}
				// The answer has started: the request counts on b, its
				// tokens no longer; a holds nothing.
				n.proxy.load.mu.Lock()
				local := maps.Clone(n.proxy.load.local)
				n.proxy.load.mu.Unlock()
				if diff := cmp.Diff(map[string]workerLoad{"b": {Requests: 1}}, local); diff != "" {
					t.Errorf("load while streaming (-want +got):\n%s", diff)
				}
				if got := n.proxy.load.inFlight.Load(); got != 1 {
					t.Errorf("in flight while streaming: %d", got)
				}

				close(good.hold)
				if _, err := io.Copy(io.Discard, rd); err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				eventually(t, "the lease is released", func() error {
					if l := n.proxy.load.inFlight.Load(); l != 0 {
						return fmt.Errorf("leases left: %d", l)
					}
					return nil
				})
				if got := n.proxy.load.get("a"); got != (workerLoad{}) {
					t.Errorf("load left on a: %+v", got)
				}
				if got := n.proxy.load.get("b"); got != (workerLoad{}) {
					t.Errorf("load left on b: %+v", got)
				}
			})
		}
	}
}

// TestProxyRecordsNoRouteOnRefusal: an engine's 4xx or a 5xx with no one
// left to try records no route: the worker did not take the prompt.
func TestProxyRecordsNoRouteOnRefusal(t *testing.T) {
	for _, status := range []int{http.StatusBadRequest, http.StatusInternalServerError} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			n, srv := newProxyNode(t, nil)
			e := newFakeEngine(t, "e")
			e.status.Store(int32(status))
			register(t, n, "e", e.srv.URL, "m")
			tokens := make([]uint32, 2*n.st.ix.PageTokens("m"))
			body, _ := json.Marshal(map[string]any{"model": "m", "prompt": tokens})
			if code, _, got := proxyPost(t, srv, "/v1/completions", string(body)); code != status {
				t.Fatalf("got %d %q", code, got)
			}
			if hits := n.st.ix.MatchPages(nil, n.st.ix.AppendPages(nil, "m", tokens)); len(hits) != 0 {
				t.Fatalf("route recorded: %v", hits)
			}
		})
	}
}

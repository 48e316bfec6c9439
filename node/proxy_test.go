package node

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// The proxy's tests run engines and the proxy on loopback (httptest): the
// streaming, cancellation and retry behaviours are those of real HTTP
// connections. They wait on channels, never on time.

// fakeEngine is an OpenAI-compatible upstream that answers with its name.
// A streamed answer is three events and [DONE]; with hold set, it waits
// after the first event (flushed) until hold is closed or the request ends,
// and tells started.
type fakeEngine struct {
	name     string
	srv      *httptest.Server
	status   atomic.Int32 // when set, every completion gets this status
	health   atomic.Int32 // status of GET /health (200 when unset)
	requests atomic.Int64
	hold     chan struct{}
	started  chan struct{}
	ended    chan error // when not nil, receives how each held stream ended
}

func newFakeEngine(t *testing.T, name string) *fakeEngine {
	t.Helper()
	e := &fakeEngine{name: name}
	mux := http.NewServeMux()
	complete := func(w http.ResponseWriter, r *http.Request) {
		e.requests.Add(1)
		var req struct {
			Stream bool `json:"stream"`
		}
		_ = json.NewDecoder(r.Body).Decode(&req)
		if s := e.status.Load(); s != 0 {
			http.Error(w, `{"error":{"message":"failing on purpose"}}`, int(s))
			return
		}
		if !req.Stream {
			writeJSON(w, 200, map[string]any{"object": "chat.completion", "worker": e.name,
				"choices": []map[string]any{{"message": map[string]string{"role": "assistant", "content": "hi"}}}})
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		fl := w.(http.Flusher)
		fmt.Fprintf(w, "data: {\"worker\":%q,\"n\":0}\n\n", e.name)
		fl.Flush()
		if e.hold != nil {
			if e.started != nil {
				e.started <- struct{}{}
			}
			select {
			case <-e.hold:
			case <-r.Context().Done():
				if e.ended != nil {
					e.ended <- r.Context().Err()
				}
				return
			}
		}
		for i := 1; i < 3; i++ {
			fmt.Fprintf(w, "data: {\"worker\":%q,\"n\":%d}\n\n", e.name, i)
			fl.Flush()
		}
		fmt.Fprint(w, "data: [DONE]\n\n")
		if e.ended != nil {
			e.ended <- nil
		}
	}
	mux.HandleFunc("POST /v1/chat/completions", complete)
	mux.HandleFunc("POST /v1/completions", complete)
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		if s := e.health.Load(); s != 0 {
			w.WriteHeader(int(s))
			return
		}
		w.WriteHeader(200)
	})
	e.srv = httptest.NewServer(mux)
	t.Cleanup(e.srv.Close)
	return e
}

// deadURL returns the URL of a loopback port nothing listens on.
func deadURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr
}

// newProxyNode returns a node that is not started, with its proxy served
// on a loopback test server.
func newProxyNode(t *testing.T, mod func(*Config)) (*Node, *httptest.Server) {
	t.Helper()
	cfg := Config{Name: "p1", BindAddr: "127.0.0.1:0", APIAddr: "off", ProxyAddr: "127.0.0.1:0", Registerer: prometheus.NewRegistry()}
	if mod != nil {
		mod(&cfg)
	}
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(n.proxy.handler)
	t.Cleanup(func() {
		srv.Close()
		n.proxy.up.CloseIdleConnections()
	})
	return n, srv
}

func register(t *testing.T, n *Node, id, url, model string) {
	t.Helper()
	if _, err := n.st.putWorker(Worker{ID: id, URL: url, Model: model, Health: "healthy"}, time.Now()); err != nil {
		t.Fatal(err)
	}
}

// postStreamed posts a streamed chat completion of model m through the
// proxy at srv; the answer's body is closed when the test ends.
func postStreamed(t *testing.T, srv *httptest.Server) *http.Response {
	t.Helper()
	resp, err := srv.Client().Post(srv.URL+"/v1/chat/completions", "application/json", strings.NewReader(chatBody("m", "hi", true)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func chatBody(model, text string, stream bool) string {
	b, _ := json.Marshal(map[string]any{"model": model, "stream": stream,
		"messages": []map[string]string{{"role": "user", "content": text}}})
	return string(b)
}

// post sends a request to the proxy and returns the status, headers and
// body.
func proxyPost(t *testing.T, srv *httptest.Server, path, body string, hdr ...string) (int, http.Header, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", srv.URL+path, strings.NewReader(body))
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// workerOf returns the worker named in an answer (JSON or the first event).
func workerOf(t *testing.T, body string) string {
	t.Helper()
	body = strings.TrimPrefix(body, "data: ")
	if i := strings.Index(body, "\n"); i >= 0 {
		body = body[:i]
	}
	var m struct {
		Worker string `json:"worker"`
	}
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatalf("answer %q: %v", body, err)
	}
	return m.Worker
}

func proxyCount(n *Node, model, outcome, rule string) float64 {
	return testutilCounter(n.met.proxyRequests.WithLabelValues(model, outcome, rule))
}

// TestProxyStreamsWithoutBuffering: a streamed chat completion reaches the
// client event by event (the first before the engine writes the second),
// and the next turn of the conversation goes to the same worker because
// the route was recorded.
func TestProxyStreamsWithoutBuffering(t *testing.T) {
	n, srv := newProxyNode(t, nil)
	a, b := newFakeEngine(t, "a"), newFakeEngine(t, "b")
	a.hold, a.started = make(chan struct{}), make(chan struct{}, 1)
	b.hold, b.started = a.hold, a.started
	register(t, n, "a", a.srv.URL, "m")
	register(t, n, "b", b.srv.URL, "m")

	prompt := strings.Repeat("You are a helpful assistant. ", 20)
	req, _ := http.NewRequest("POST", srv.URL+"/v1/chat/completions", strings.NewReader(chatBody("m", prompt, true)))
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("status %d, content type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	<-a.started
	rd := bufio.NewReader(resp.Body)
	first, err := rd.ReadString('\n') // the engine holds the rest until we read this
	if err != nil {
		t.Fatal(err)
	}
	w := workerOf(t, first)
	close(a.hold)
	restB, _ := io.ReadAll(rd)
	rest := string(restB)
	if got := strings.Count(rest, "data: "); got != 3 || !strings.HasSuffix(rest, "data: [DONE]\n\n") {
		t.Fatalf("rest of the stream: %q", rest)
	}

	// The next turn extends the conversation: the same worker, by cache.
	a.hold, b.hold = nil, nil
	body := `{"model":"m","messages":[{"role":"user","content":` + jsonString(prompt) + `},{"role":"assistant","content":"hi"},{"role":"user","content":"more"}]}`
	code, _, got := proxyPost(t, srv, "/v1/chat/completions", body)
	if code != 200 || workerOf(t, got) != w {
		t.Fatalf("second turn: %d %q, want worker %s", code, got, w)
	}
	if h := resp.Header.Get("X-Meshnode-Worker"); h != w {
		t.Fatalf("X-Meshnode-Worker %q, want %s", h, w)
	}
	// The handler counts after the client has read the answer.
	eventually(t, "the second turn is counted a cache hit, both timed", func() error {
		if c := proxyCount(n, "m", "ok", "cache-hit"); c != 1 {
			return fmt.Errorf("cache-hit ok requests: %v", c)
		}
		for name, h := range map[string]*prometheus.HistogramVec{"ttfb": n.met.proxyTTFB, "duration": n.met.proxyDuration} {
			var m dto.Metric
			if err := h.WithLabelValues("m").(prometheus.Histogram).Write(&m); err != nil || m.GetHistogram().GetSampleCount() != 2 {
				return fmt.Errorf("%s: %d samples, %v", name, m.GetHistogram().GetSampleCount(), err)
			}
		}
		return nil
	})
}

func jsonString(s string) string { b, _ := json.Marshal(s); return string(b) }

// TestProxyCompletionsAndModels: /v1/completions with text and with token
// prompts, and /v1/models listing the registered models.
func TestProxyCompletionsAndModels(t *testing.T) {
	n, srv := newProxyNode(t, nil)
	a := newFakeEngine(t, "a")
	register(t, n, "a", a.srv.URL, "m1")
	register(t, n, "b", a.srv.URL, "m2")
	for _, body := range []string{`{"model":"m1","prompt":"hello"}`, `{"model":"m2","prompt":[1,2,3]}`, `{"model":"m2","prompt":[[1,2],[3]]}`} {
		if code, _, got := proxyPost(t, srv, "/v1/completions", body); code != 200 || workerOf(t, got) != "a" {
			t.Fatalf("%s: %d %q", body, code, got)
		}
	}
	resp, err := srv.Client().Get(srv.URL + "/v1/models")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var list struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&list)
	var ids []string
	for _, d := range list.Data {
		ids = append(ids, d.ID)
	}
	if diff := cmp.Diff([]string{"m1", "m2"}, ids); diff != "" {
		t.Fatalf("models (-want +got):\n%s", diff)
	}
}

// TestProxyRefuses: the proxy's own answers, each in OpenAI's error shape.
func TestProxyRefuses(t *testing.T) {
	n, srv := newProxyNode(t, func(c *Config) { c.ProxyMaxBodyBytes = 2048 })
	a := newFakeEngine(t, "a")
	register(t, n, "a", a.srv.URL, "m")
	for _, tc := range []struct {
		name, path, body string
		code             int
		typ              string
	}{
		{"malformed", "/v1/chat/completions", `{"model":`, 400, "invalid_request_error"},
		{"no model", "/v1/completions", `{"prompt":"x"}`, 400, "invalid_request_error"},
		{"no messages", "/v1/chat/completions", `{"model":"m"}`, 400, "invalid_request_error"},
		{"bad prompt", "/v1/completions", `{"model":"m","prompt":{}}`, 400, "invalid_request_error"},
		{"unknown model", "/v1/completions", `{"model":"nope","prompt":"x"}`, 404, "model_not_found"},
		{"too large", "/v1/completions", `{"model":"m","prompt":"` + strings.Repeat("x", 4096) + `"}`, 413, "invalid_request_error"},
		{"unknown path", "/v1/embeddings", `{}`, 404, "not_found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, body := proxyPost(t, srv, tc.path, tc.body)
			var e struct {
				Error struct {
					Type string `json:"type"`
				} `json:"error"`
			}
			_ = json.Unmarshal([]byte(body), &e)
			if code != tc.code || e.Error.Type != tc.typ {
				t.Fatalf("got %d %s, want %d %s", code, body, tc.code, tc.typ)
			}
		})
	}
	if got := a.requests.Load(); got != 0 {
		t.Fatalf("the engine saw %d requests", got)
	}
}

// TestProxyRetriesBeforeFirstByte: a worker that refuses connections or
// answers 5xx is skipped for the next-best one; the client sees one
// success and the retry is counted.
func TestProxyRetriesBeforeFirstByte(t *testing.T) {
	for _, tc := range []struct {
		name   string
		reason string
		broken func(t *testing.T) string
	}{
		{"connect error", "connect", deadURL},
		{"503", "status_5xx", func(t *testing.T) string {
			e := newFakeEngine(t, "broken")
			e.status.Store(503)
			return e.srv.URL
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, srv := newProxyNode(t, nil)
			good := newFakeEngine(t, "good")
			// Candidates tie on load and match: the first registered ("a")
			// is tried first.
			register(t, n, "a", tc.broken(t), "m")
			register(t, n, "b", good.srv.URL, "m")
			code, _, body := proxyPost(t, srv, "/v1/chat/completions", chatBody("m", "hello", true))
			if code != 200 || workerOf(t, body) != "good" {
				t.Fatalf("got %d %q", code, body)
			}
			if r := testutilCounter(n.met.proxyRetries.WithLabelValues(tc.reason)); r != 1 {
				t.Fatalf("retries(%s) = %v", tc.reason, r)
			}
			eventually(t, "the lease is released", func() error {
				if l := n.proxy.load.inFlight.Load(); l != 0 {
					return fmt.Errorf("leases left: %d", l)
				}
				return nil
			})
		})
	}
}

// TestProxyAllFail: with every worker failing, the client gets the last
// engine's own 5xx (or 502 when none could be reached), after one try per
// worker.
func TestProxyAllFail(t *testing.T) {
	n, srv := newProxyNode(t, nil)
	e := newFakeEngine(t, "e")
	e.status.Store(500)
	register(t, n, "a", deadURL(t), "m")
	register(t, n, "b", e.srv.URL, "m")
	if code, _, body := proxyPost(t, srv, "/v1/completions", `{"model":"m","prompt":"x"}`); code != 500 {
		t.Fatalf("got %d %q, want the engine's 500", code, body)
	}
	n2, srv2 := newProxyNode(t, nil)
	register(t, n2, "a", deadURL(t), "m")
	if code, _, body := proxyPost(t, srv2, "/v1/completions", `{"model":"m","prompt":"x"}`); code != 502 {
		t.Fatalf("got %d %q, want 502", code, body)
	}
	eventually(t, "the failure is counted", func() error {
		if c := proxyCount(n2, "m", "unreachable", "least-loaded"); c != 1 {
			return fmt.Errorf("unreachable count %v", c)
		}
		return nil
	})
}

// TestProxyReleasesLoad: a request's count on its worker is released when
// the answer completes, when the engine fails, and when the client goes
// away in the middle of a stream (which also cancels the engine's request).
func TestProxyReleasesLoad(t *testing.T) {
	n, _ := newProxyNode(t, func(c *Config) { c.ProxyAttempts = 1 })
	e := newFakeEngine(t, "e")
	register(t, n, "e", e.srv.URL, "m")
	serve := func(ctx context.Context, body string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		req := httptest.NewRequestWithContext(ctx, "POST", "/v1/chat/completions", strings.NewReader(body))
		n.proxy.handler.ServeHTTP(rec, req)
		return rec
	}
	idle := func(what string) {
		t.Helper()
		if got := n.proxy.load.get("e"); got != (workerLoad{}) || n.proxy.load.inFlight.Load() != 0 {
			t.Fatalf("%s: load left %+v, in flight %d", what, got, n.proxy.load.inFlight.Load())
		}
	}

	if rec := serve(t.Context(), chatBody("m", "hi", true)); rec.Code != 200 {
		t.Fatalf("completion: %d", rec.Code)
	}
	idle("completion")

	e.status.Store(500)
	if rec := serve(t.Context(), chatBody("m", "hi", false)); rec.Code != 500 {
		t.Fatalf("error: %d", rec.Code)
	}
	idle("engine error")
	e.status.Store(0)

	e.hold, e.started, e.ended = make(chan struct{}), make(chan struct{}), make(chan error, 1)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { serve(ctx, chatBody("m", strings.Repeat("x", 8192), true)); close(done) }()
	<-e.started
	if got := n.proxy.load.get("e"); got.Requests != 1 {
		t.Fatalf("in flight while streaming: %+v", got)
	}
	cancel()
	<-done
	idle("client cancel")
	if err := <-e.ended; err == nil {
		t.Fatal("the engine's request was not canceled")
	}
	if c := proxyCount(n, "m", "canceled", "least-loaded"); c != 1 {
		t.Fatalf("canceled count %v", c)
	}
}

// TestProxyQueuedTokens: a request's prompt tokens count until the first
// byte of its answer, its request until the end.
func TestProxyQueuedTokens(t *testing.T) {
	n, _ := newProxyNode(t, nil)
	b := n.proxy.load
	if v, _, changed := b.snapshot(); !changed || string(v) != "{}" {
		t.Fatalf("a new book publishes its zero counts first: %q %v", v, changed)
	}
	l := b.acquire("w", 4096)
	if got, want := b.get("w"), (workerLoad{Requests: 1, Tokens: 4096}); got != want {
		t.Fatalf("acquired: %+v, want %+v", got, want)
	}
	if got := n.proxyLoad("w"); got != 1+4096/tokensPerLoad {
		t.Fatalf("load units %d", got)
	}
	l.prefilled()
	l.prefilled()
	if got, want := b.get("w"), (workerLoad{Requests: 1}); got != want {
		t.Fatalf("prefilled: %+v, want %+v", got, want)
	}
	l.release()
	l.release()
	if got := b.get("w"); got != (workerLoad{}) || len(b.local) != 0 {
		t.Fatalf("released: %+v, %v", got, b.local)
	}
}

// TestProxyRateLimits: the model's cluster-wide limit and each API key's
// limit answer 429 with Retry-After.
func TestProxyRateLimits(t *testing.T) {
	n, srv := newProxyNode(t, func(c *Config) { c.ProxyKeyHeader = "X-Api-Key" })
	e := newFakeEngine(t, "e")
	register(t, n, "e", e.srv.URL, "m")
	now := time.Now()
	if err := n.st.setLimit("model:m", Limit{Limit: 3, Window: Duration(time.Hour)}, now); err != nil {
		t.Fatal(err)
	}
	if err := n.st.setLimit("api-key", Limit{Limit: 1, Window: Duration(time.Hour)}, now); err != nil {
		t.Fatal(err)
	}
	body := `{"model":"m","prompt":"x"}`
	var codes []int
	for _, key := range []string{"k1", "k1", "k2", "", "k3"} {
		code, hdr, _ := proxyPost(t, srv, "/v1/completions", body, "X-Api-Key", key)
		codes = append(codes, code)
		if code == 429 && hdr.Get("Retry-After") == "" {
			t.Fatal("429 without Retry-After")
		}
	}
	// k1 twice: its key limit; k2 and no key: model requests 2 and 3; k3:
	// the model's limit.
	if diff := cmp.Diff([]int{200, 429, 200, 200, 429}, codes); diff != "" {
		t.Fatalf("codes (-want +got):\n%s", diff)
	}
	eventually(t, "the refusals are counted", func() error {
		if c := proxyCount(n, "m", "rate_limited", "none"); c != 2 {
			return fmt.Errorf("rate_limited count %v", c)
		}
		return nil
	})
	// No key is kept in the clear.
	n.st.mu.Lock()
	defer n.st.mu.Unlock()
	if n.st.store.Count("api-key:k1", time.Hour, now) != 0 || n.st.store.Count(keyCounter("k1"), time.Hour, now) != 1 {
		t.Fatal("key counted under the wrong name")
	}
}

// TestProxyToken: with a proxy token, requests need it and it does not
// travel to the engine; /health needs none.
func TestProxyToken(t *testing.T) {
	n, srv := newProxyNode(t, func(c *Config) { c.ProxyToken = "s3cret" })
	var sawAuth atomic.Value
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sawAuth.Store(r.Header.Get("Authorization"))
		writeJSON(w, 200, map[string]string{"worker": "e"})
	}))
	defer up.Close()
	register(t, n, "e", up.URL, "m")
	body := `{"model":"m","prompt":"x"}`
	if code, _, _ := proxyPost(t, srv, "/v1/completions", body); code != 401 {
		t.Fatalf("without token: %d", code)
	}
	if code, _, _ := proxyPost(t, srv, "/v1/completions", body, "Authorization", "Bearer wrong"); code != 401 {
		t.Fatalf("wrong token: %d", code)
	}
	if code, _, _ := proxyPost(t, srv, "/v1/completions", body, "Authorization", "Bearer s3cret"); code != 200 {
		t.Fatalf("token: %d", code)
	}
	if a := sawAuth.Load(); a != "" {
		t.Fatalf("the engine saw Authorization %q", a)
	}
	resp, err := srv.Client().Get(srv.URL + "/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("/health: %d", resp.StatusCode)
	}
}

// TestProxyTimeouts: an engine silent past the first-byte timeout is
// retried elsewhere; one that goes silent in the middle of a stream is cut
// at the idle timeout.
func TestProxyTimeouts(t *testing.T) {
	n, srv := newProxyNode(t, func(c *Config) {
		c.ProxyFirstByteTimeout = Duration(50 * time.Millisecond)
		c.ProxyIdleTimeout = Duration(50 * time.Millisecond)
	})
	release := make(chan struct{})
	silent := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer silent.Close()
	defer close(release)
	good := newFakeEngine(t, "good")
	register(t, n, "a", silent.URL, "m")
	register(t, n, "b", good.srv.URL, "m")
	if code, _, body := proxyPost(t, srv, "/v1/completions", `{"model":"m","prompt":"x"}`); code != 200 || workerOf(t, body) != "good" {
		t.Fatalf("first byte timeout: %d %q", code, body)
	}
	if r := testutilCounter(n.met.proxyRetries.WithLabelValues("timeout")); r != 1 {
		t.Fatalf("timeout retries %v", r)
	}

	n2, srv2 := newProxyNode(t, func(c *Config) { c.ProxyIdleTimeout = Duration(50 * time.Millisecond) })
	stalls := newFakeEngine(t, "stalls")
	stalls.hold = make(chan struct{}) // never closed: the stream stalls after its first event
	defer close(stalls.hold)
	register(t, n2, "s", stalls.srv.URL, "m")
	code, _, body := proxyPost(t, srv2, "/v1/chat/completions", chatBody("m", "x", true))
	if code != 200 || strings.Count(body, "data: ") != 1 {
		t.Fatalf("idle timeout: %d %q", code, body)
	}
	eventually(t, "the stalled stream is counted", func() error {
		if c := proxyCount(n2, "m", "timeout", "least-loaded"); c != 1 {
			return fmt.Errorf("timeout count %v", c)
		}
		return nil
	})
}

// TestHealthBook: consecutive failures take a worker out for a backoff that
// doubles at each failure after it came back, up to the cap; a success
// clears the slate; a failed active check takes it out at once.
func TestHealthBook(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	type step struct {
		op   string // fail, ok, trip, out?
		at   time.Duration
		want bool // fail/trip: took it out; out?: is out
	}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"below the threshold stays in", []step{{"fail", 0, false}, {"fail", 0, false}, {"out?", 0, false}}},
		{"a success resets the count", []step{{"fail", 0, false}, {"fail", 0, false}, {"ok", 0, false}, {"fail", 0, false}, {"out?", 0, false}}},
		{"the threshold takes it out for the base", []step{{"fail", 0, false}, {"fail", 0, false}, {"fail", 0, true},
			{"out?", 999 * time.Millisecond, true}, {"out?", time.Second, false}}},
		{"failures while out do not extend", []step{{"fail", 0, false}, {"fail", 0, false}, {"fail", 0, true}, {"fail", 500 * time.Millisecond, false},
			{"out?", time.Second, false}}},
		{"back on probation: one failure, twice as long", []step{{"fail", 0, false}, {"fail", 0, false}, {"fail", 0, true},
			{"fail", time.Second, true}, {"out?", 2999 * time.Millisecond, true}, {"out?", 3 * time.Second, false},
			{"fail", 3 * time.Second, true}, {"out?", 6999 * time.Millisecond, true}, {"out?", 7 * time.Second, false}}},
		{"the backoff is capped", []step{{"trip", 0, true}, {"trip", time.Second, true}, {"trip", 3 * time.Second, true},
			{"trip", 7 * time.Second, true}, {"out?", 11 * time.Second, false}}},
		{"a success after the backoff starts over", []step{{"trip", 0, true}, {"ok", time.Second, false}, {"fail", time.Second, false}, {"out?", time.Second, false}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHealthBook(3, time.Second, 4*time.Second)
			for i, s := range tc.steps {
				var got bool
				switch s.op {
				case "fail":
					got = h.fail("w", at(s.at))
				case "trip":
					got = h.trip("w", at(s.at))
				case "ok":
					h.ok("w")
				case "out?":
					got = h.out("w", at(s.at))
				}
				if got != s.want {
					t.Fatalf("step %d %s at %v: got %v, want %v", i, s.op, s.at, got, s.want)
				}
			}
		})
	}
}

// TestProxyPassiveAndActiveHealth: a worker that keeps failing leaves the
// proxy's routing (no more tries on it) until its backoff ends; a failed
// active check takes a worker out, a passed one brings it back.
func TestProxyPassiveAndActiveHealth(t *testing.T) {
	n, srv := newProxyNode(t, func(c *Config) {
		c.ProxyFailures = 2
		c.ProxyBackoff, c.ProxyMaxBackoff = Duration(time.Minute), Duration(time.Hour)
	})
	now := time.Unix(5000, 0)
	n.proxy.now = func() time.Time { return now }
	bad, good := newFakeEngine(t, "bad"), newFakeEngine(t, "good")
	bad.status.Store(502)
	register(t, n, "a", bad.srv.URL, "m")
	register(t, n, "b", good.srv.URL, "m")
	for range 4 {
		if code, _, _ := proxyPost(t, srv, "/v1/completions", `{"model":"m","prompt":"x"}`); code != 200 {
			t.Fatalf("code %d", code)
		}
	}
	if got := bad.requests.Load(); got != 2 {
		t.Fatalf("the failing worker got %d requests, want 2 (then out)", got)
	}
	now = now.Add(time.Minute)
	proxyPost(t, srv, "/v1/completions", `{"model":"m","prompt":"x"}`)
	if got := bad.requests.Load(); got != 3 {
		t.Fatalf("after the backoff: %d requests, want 3", got)
	}

	// Active checks.
	n.proxy.health.ok("a")
	bad.status.Store(0)
	good.health.Store(500)
	n.proxy.checkHealth(t.Context(), 5*time.Second)
	if !n.proxy.health.out("b", now) || n.proxy.health.out("a", now) {
		t.Fatal("the failed check did not take b out, or a passed check did not keep a in")
	}
	before := good.requests.Load()
	for range 3 {
		if code, _, body := proxyPost(t, srv, "/v1/completions", `{"model":"m","prompt":"x"}`); code != 200 || workerOf(t, body) != "bad" {
			t.Fatalf("%d %q", code, body)
		}
	}
	if good.requests.Load() != before {
		t.Fatal("a worker out of routing got requests")
	}
	good.health.Store(0)
	n.proxy.checkHealth(t.Context(), 5*time.Second)
	if n.proxy.health.out("b", now) {
		t.Fatal("a passed check did not bring b back")
	}
}

// TestProxyAllOutStillTries: when the health book has taken out every
// worker, the proxy tries them anyway rather than refuse.
func TestProxyAllOutStillTries(t *testing.T) {
	n, srv := newProxyNode(t, nil)
	e := newFakeEngine(t, "e")
	register(t, n, "e", e.srv.URL, "m")
	n.proxy.health.trip("e", time.Now())
	if code, _, body := proxyPost(t, srv, "/v1/completions", `{"model":"m","prompt":"x"}`); code != 200 {
		t.Fatalf("%d %q", code, body)
	}
}

// TestParseCompletionBytesTokens: with the bytes tokenizer, text prompts
// route as the token ids meshnode engine gives them (one per byte; a chat
// as "role: content\n" per message), so that they match the pages of its
// KV events; token prompts stay as they are.
func TestParseCompletionBytesTokens(t *testing.T) {
	toks := func(s string) []uint32 {
		var out []uint32
		for i := 0; i < len(s); i++ {
			out = append(out, uint32(s[i]))
		}
		return out
	}
	for _, tc := range []struct {
		name string
		chat bool
		body string
		want []uint32
	}{
		{"text", false, `{"model":"m","prompt":"héllo"}`, toks("héllo")},
		{"tokens", false, `{"model":"m","prompt":[300,1]}`, []uint32{300, 1}},
		{"chat", true, `{"model":"m","messages":[{"role":"system","content":"be brief"},{"role":"user","content":[{"type":"text","text":"hi"}]}]}`,
			toks("system: be brief\nuser: hi\n")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, in, err := parseCompletion([]byte(tc.body), tc.chat, true)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, in.tokens); diff != "" || in.text != nil {
				t.Fatalf("tokens (-want +got):\n%s\ntext %q", diff, in.text)
			}
		})
	}
}

func TestParseCompletion(t *testing.T) {
	for _, tc := range []struct {
		name   string
		chat   bool
		body   string
		tokens []uint32
		text   string
		err    string
	}{
		{"text prompt", false, `{"model":"m","prompt":"hello"}`, nil, "hello", ""},
		{"token prompt", false, `{"model":"m","prompt":[1, 2,3]}`, []uint32{1, 2, 3}, "", ""},
		{"empty tokens", false, `{"model":"m","prompt":[]}`, []uint32{}, "", ""},
		{"batch of text", false, `{"model":"m","prompt":["a","b"]}`, nil, "a", ""},
		{"batch of tokens", false, `{"model":"m","prompt":[[7,8],[9]]}`, []uint32{7, 8}, "", ""},
		{"nested too deep", false, `{"model":"m","prompt":[[[1]]]}`, nil, "", "want a string, tokens"},
		{"negative token", false, `{"model":"m","prompt":[-1]}`, nil, "", "prompt"},
		{"missing prompt", false, `{"model":"m"}`, nil, "", "prompt: missing"},
		{"object prompt", false, `{"model":"m","prompt":{"a":1}}`, nil, "", "want a string"},
		{"no model", false, `{"prompt":"x"}`, nil, "", "model"},
		{"chat text", true, `{"model":"m","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hi"}]}`, nil, "system\nbe brief\x1euser\nhi\x1e", ""},
		{"chat parts", true, `{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"image_url","image_url":{"url":"x"}},{"type":"text","text":"b"}]}]}`, nil, "user\nab\x1e", ""},
		{"chat null content", true, `{"model":"m","messages":[{"role":"assistant","content":null}]}`, nil, "assistant\n\x1e", ""},
		{"chat bad content", true, `{"model":"m","messages":[{"role":"user","content":5}]}`, nil, "", "content"},
		{"chat without messages", true, `{"model":"m","messages":[]}`, nil, "", "messages"},
		{"unknown fields pass", false, `{"model":"m","prompt":"x","max_tokens":5,"extra":{"k":[1]}}`, nil, "x", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, in, err := parseCompletion([]byte(tc.body), tc.chat, false)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.tokens, in.tokens); diff != "" {
				t.Fatalf("tokens (-want +got):\n%s", diff)
			}
			if string(in.text) != tc.text {
				t.Fatalf("text %q, want %q", in.text, tc.text)
			}
		})
	}
}

// TestProxyCostRuleWeighsQueuedTokens: under the cost rule a worker's load
// is the prompt tokens proxies have queued on it, so a worker holding the
// prompt but with a deep prefill queue loses to an idle one; under the
// threshold rules the same queue counts in load units.
func TestProxyCostRuleWeighsQueuedTokens(t *testing.T) {
	n, _ := newProxyNode(t, func(c *Config) { c.RouteCostWeight = 3 })
	if got := n.proxyLoadWith(nil, "w", true); got != 0 {
		t.Fatalf("idle: %d", got)
	}
	l := n.proxy.load.acquire("w", 5000)
	if got := n.proxyLoadWith(nil, "w", true); got != 5000 {
		t.Errorf("cost-rule load %d, want the 5000 queued tokens", got)
	}
	if got := n.proxyLoadWith(nil, "w", false); got != 1+5000/tokensPerLoad {
		t.Errorf("threshold load %d", got)
	}
	remote := map[string]workerLoad{"w": {Requests: 2, Tokens: 700}}
	if got := n.proxyLoadWith(remote, "w", true); got != 5700 {
		t.Errorf("with another node's tokens: %d, want 5700", got)
	}
	l.prefilled()
	if got := n.proxyLoadWith(nil, "w", true); got != 0 {
		t.Errorf("after the first byte: %d, want 0", got)
	}
}

// TestProxyStreamsChunkedWithoutBuffering: an answer of unknown length
// that is not server-sent events (an engine streaming JSON lines) also
// reaches the client chunk by chunk, and an answer of declared length
// arrives whole.
func TestProxyStreamsChunkedWithoutBuffering(t *testing.T) {
	n, srv := newProxyNode(t, nil)
	hold := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if strings.Contains(r.URL.Path, "/v1/completions") {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Content-Length", "11")
			io.WriteString(w, `{"done":1}`+"\n")
			return
		}
		w.Header().Set("Content-Type", "application/x-ndjson")
		io.WriteString(w, `{"n":0}`+"\n")
		w.(http.Flusher).Flush()
		select {
		case <-hold:
		case <-r.Context().Done():
			return
		}
		io.WriteString(w, `{"n":1}`+"\n")
	}))
	defer up.Close()
	register(t, n, "a", up.URL, "m")

	resp := postStreamed(t, srv)
	rd := bufio.NewReader(resp.Body)
	first, err := rd.ReadString('\n') // the engine holds the rest until this arrives
	if err != nil || first != `{"n":0}`+"\n" {
		t.Fatalf("first line %q, %v", first, err)
	}
	close(hold)
	rest, _ := io.ReadAll(rd)
	if string(rest) != `{"n":1}`+"\n" {
		t.Fatalf("rest %q", rest)
	}

	code, hdr, body := proxyPost(t, srv, "/v1/completions", `{"model":"m","prompt":"hi"}`)
	if code != 200 || body != `{"done":1}`+"\n" || hdr.Get("Content-Length") != "11" {
		t.Fatalf("declared length: %d %q, Content-Length %q", code, body, hdr.Get("Content-Length"))
	}
}

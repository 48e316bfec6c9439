package node

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
)

// newTestNode returns a node that is not started: its API works on local
// state alone.
func newTestNode(t *testing.T, mod func(*Config)) (*Node, *httptest.Server) {
	t.Helper()
	cfg := Config{Name: "t1", BindAddr: "127.0.0.1:0", APIAddr: "off", Registerer: prometheus.NewRegistry(), MaxListItems: 50, MaxRequestBytes: 8 << 10}
	if mod != nil {
		mod(&cfg)
	}
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(n.Handler())
	t.Cleanup(srv.Close)
	return n, srv
}

// call does one request and decodes the JSON answer into a map.
func call(t *testing.T, srv *httptest.Server, method, path, body string) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if len(b) > 0 && json.Unmarshal(b, &m) != nil && strings.HasPrefix(path, "/v1/") {
		t.Fatalf("%s %s: body is not a JSON object: %q", method, path, b)
	}
	return resp.StatusCode, m
}

func TestAPIErrors(t *testing.T) {
	_, srv := newTestNode(t, nil)
	// Fixtures for the cases that need existing state.
	mustCall(t, srv, "PUT", "/v1/workers/w1", `{"url":"http://w1:8000","model":"m"}`, 200)
	mustCall(t, srv, "PUT", "/v1/limits/l1", `{"limit":10,"window":"1s"}`, 200)
	big := `{"value":"` + strings.Repeat("x", 9<<10) + `"}`
	tests := []struct {
		name, method, path, body string
		code                     int
		errHas                   string
	}{
		{"kv malformed json", "PUT", "/v1/kv/ns/k", `{"value":`, 400, "malformed"},
		{"kv unknown field", "PUT", "/v1/kv/ns/k", `{"value":"v","extra":1}`, 400, "unknown field"},
		{"kv missing value", "PUT", "/v1/kv/ns/k", `{}`, 400, "value"},
		{"kv trailing data", "PUT", "/v1/kv/ns/k", `{"value":"v"} {}`, 400, "trailing"},
		{"kv empty body", "PUT", "/v1/kv/ns/k", ``, 400, "empty"},
		{"kv oversized body", "PUT", "/v1/kv/ns/k", big, 413, "over"},
		{"kv wrong type", "PUT", "/v1/kv/ns/k", `{"value":5}`, 400, "malformed"},
		{"kv reserved namespace", "PUT", "/v1/kv/workers/x", `{"value":"v"}`, 403, "reserved"},
		{"kv key too long", "PUT", "/v1/kv/ns/" + strings.Repeat("k", 1025), `{"value":"v"}`, 400, "key"},
		{"kv get missing", "GET", "/v1/kv/ns/nokey", ``, 404, "no key"},
		{"kv delete missing", "DELETE", "/v1/kv/ns/nokey", ``, 404, "not found"},
		{"kv list bad limit", "GET", "/v1/kv/ns?limit=0", ``, 400, "limit"},
		{"kv list limit over max", "GET", "/v1/kv/ns?limit=51", ``, 400, "limit"},
		{"watch bad timeout", "GET", "/v1/watch/ns?timeout=forever", ``, 400, "timeout"},
		{"worker missing", "GET", "/v1/workers/nope", ``, 404, "no worker"},
		{"worker delete missing", "DELETE", "/v1/workers/nope", ``, 404, "not found"},
		{"worker bad url", "PUT", "/v1/workers/w2", `{"url":"not a url","model":"m"}`, 400, "url"},
		{"worker no model", "PUT", "/v1/workers/w2", `{"url":"http://x"}`, 400, "model"},
		{"worker bad health", "PUT", "/v1/workers/w2", `{"url":"http://x","model":"m","health":"meh"}`, 400, "health"},
		{"worker negative load", "PUT", "/v1/workers/w2", `{"url":"http://x","model":"m","load":-1}`, 400, "load"},
		{"worker unknown field", "PUT", "/v1/workers/w2", `{"url":"http://x","model":"m","epoch":3}`, 400, "unknown field"},
		{"worker id too long", "PUT", "/v1/workers/" + strings.Repeat("w", 256), `{"url":"http://x","model":"m"}`, 400, "worker id"},
		{"workers bad limit", "GET", "/v1/workers?limit=x", ``, 400, "limit"},
		{"limit zero", "PUT", "/v1/limits/l2", `{"limit":0,"window":"1s"}`, 400, "limit"},
		{"limit bad window", "PUT", "/v1/limits/l2", `{"limit":5,"window":"soon"}`, 400, "malformed"},
		{"limit window too short", "PUT", "/v1/limits/l2", `{"limit":5,"window":"10us"}`, 400, "window"},
		{"limit window too long", "PUT", "/v1/limits/l2", `{"limit":5,"window":"48h"}`, 400, "window"},
		{"limit negative", "PUT", "/v1/limits/l2", `{"limit":-5,"window":"1s"}`, 400, "malformed"},
		{"limit get missing", "GET", "/v1/limits/nope", ``, 404, "no limit"},
		{"limit delete missing", "DELETE", "/v1/limits/nope", ``, 404, "not found"},
		{"take undefined limit", "POST", "/v1/limits/nope/take", `{"n":1}`, 404, "no limit"},
		{"take zero", "POST", "/v1/limits/l1/take", `{"n":0}`, 400, "n 0"},
		{"take over limit", "POST", "/v1/limits/l1/take", `{"n":11}`, 400, "n 11"},
		{"take unknown field", "POST", "/v1/limits/l1/take", `{"count":1}`, 400, "unknown field"},
		{"route no model", "POST", "/v1/route", `{"tokens":[1,2]}`, 400, "model"},
		{"route no prompt", "POST", "/v1/route", `{"model":"m"}`, 400, "missing prompt"},
		{"route both prompts", "POST", "/v1/route", `{"model":"m","tokens":[1],"text":"x"}`, 400, "not both"},
		{"route no workers", "POST", "/v1/route", `{"model":"other","text":"hello"}`, 409, "no healthy worker"},
		{"route bad tokens", "POST", "/v1/route", `{"model":"m","tokens":[-1]}`, 400, "malformed"},
		{"insert missing worker", "POST", "/v1/index/insert", `{"worker":"nope","text":"` + strings.Repeat("a", 64) + `"}`, 404, "no worker"},
		{"insert short prompt", "POST", "/v1/index/insert", `{"worker":"w1","text":"short"}`, 400, "shorter than one page"},
		{"insert with model", "POST", "/v1/index/insert", `{"worker":"w1","model":"m","text":"x"}`, 400, "model"},
		{"touch missing worker", "POST", "/v1/index/touch", `{"worker":"nope","tokens":[1]}`, 404, "no worker"},
		{"index remove missing", "DELETE", "/v1/index/workers/nope", ``, 404, "not found"},
		{"ring no key", "GET", "/v1/ring", ``, 400, "key"},
		{"ring bad n", "GET", "/v1/ring?key=a&n=99", ``, 400, "n"},
		{"join no seeds", "POST", "/v1/join", `{"seeds":[]}`, 400, "seeds"},
		{"join malformed", "POST", "/v1/join", `{"seeds":"a"}`, 400, "malformed"},
		{"leave bad timeout", "POST", "/v1/leave", `{"timeout":"1h"}`, 400, "timeout"},
		{"members bad limit", "GET", "/v1/members?limit=-1", ``, 400, "limit"},
		{"unknown endpoint", "GET", "/v1/nope", ``, 404, "no endpoint"},
		{"wrong method", "PATCH", "/v1/kv/ns/k", `{}`, 405, "not allowed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, body := call(t, srv, tc.method, tc.path, tc.body)
			if code != tc.code {
				t.Fatalf("status %d, want %d (body %v)", code, tc.code, body)
			}
			msg, _ := body["error"].(string)
			if !strings.Contains(msg, tc.errHas) {
				t.Fatalf("error %q does not mention %q", msg, tc.errHas)
			}
		})
	}
}

func mustCall(t *testing.T, srv *httptest.Server, method, path, body string, want int) map[string]any {
	t.Helper()
	code, m := call(t, srv, method, path, body)
	if code != want {
		t.Fatalf("%s %s: status %d, want %d: %v", method, path, code, want, m)
	}
	return m
}

func TestAPIKV(t *testing.T) {
	_, srv := newTestNode(t, nil)
	for _, k := range []string{"a/1", "a/2", "a/3", "b/1"} {
		mustCall(t, srv, "PUT", "/v1/kv/ns/"+k, `{"value":"v-`+k+`"}`, 200)
	}
	got := mustCall(t, srv, "GET", "/v1/kv/ns/a/2", "", 200)
	if got["value"] != "v-a/2" {
		t.Fatalf("get: %v", got)
	}
	// Paging by prefix with a cursor.
	var keys []string
	cursor := ""
	for range 5 {
		page := mustCall(t, srv, "GET", "/v1/kv/ns?prefix=a/&limit=2&cursor="+cursor, "", 200)
		for _, it := range page["items"].([]any) {
			keys = append(keys, it.(map[string]any)["key"].(string))
		}
		cursor = page["next_cursor"].(string)
		if cursor == "" {
			break
		}
	}
	if diff := cmp.Diff([]string{"a/1", "a/2", "a/3"}, keys); diff != "" {
		t.Fatalf("list (-want +got):\n%s", diff)
	}
	mustCall(t, srv, "DELETE", "/v1/kv/ns/a/2", "", 200)
	mustCall(t, srv, "GET", "/v1/kv/ns/a/2", "", 404)
}

func TestAPIWatchLongPoll(t *testing.T) {
	n, srv := newTestNode(t, nil)
	done := make(chan map[string]any, 1)
	go func() {
		resp, err := srv.Client().Get(srv.URL + "/v1/watch/ns?prefix=x&timeout=1m")
		if err != nil {
			done <- nil
			return
		}
		defer resp.Body.Close()
		var m map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&m)
		done <- m
	}()
	for n.subscribed.Load() == 0 {
		runtime.Gosched()
	}
	if err := n.st.put("ns", "y-ignored", []byte("v"), time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := n.st.put("ns", "x1", []byte("v"), time.Now()); err != nil {
		t.Fatal(err)
	}
	m := <-done
	evs, _ := m["events"].([]any)
	if len(evs) == 0 {
		t.Fatalf("no events: %v", m)
	}
	for _, e := range evs {
		if k := e.(map[string]any)["key"]; k != "x1" {
			t.Fatalf("event for key %v outside the prefix", k)
		}
	}
}

func TestAPIWatchSSE(t *testing.T) {
	n, srv := newTestNode(t, nil)
	req, _ := http.NewRequest("GET", srv.URL+"/v1/watch/ns?timeout=1m", nil)
	req.Header.Set("Accept", "text/event-stream")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	resp, err := srv.Client().Do(req.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	// The subscription exists once the headers are flushed.
	if err := n.st.put("ns", "k", []byte("v1"), time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := n.st.del("ns", "k", time.Now()); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(resp.Body)
	var evs []WatchEvent
	for len(evs) < 2 && sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		var ev WatchEvent
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatal(err)
		}
		ev.StampMs, ev.Index = 0, 0
		evs = append(evs, ev)
	}
	want := []WatchEvent{{Key: "k", Value: "v1"}, {Key: "k", Deleted: true}}
	if diff := cmp.Diff(want, evs); diff != "" {
		t.Fatalf("events (-want +got):\n%s", diff)
	}
}

func TestAPIWorkersAndRouting(t *testing.T) {
	n, srv := newTestNode(t, nil)
	mustCall(t, srv, "PUT", "/v1/workers/w1", `{"url":"http://w1:8000","model":"m","load":1}`, 200)
	w2 := mustCall(t, srv, "PUT", "/v1/workers/w2", `{"url":"http://w2:8000","model":"m","load":2,"labels":{"zone":"a"}}`, 200)
	mustCall(t, srv, "PUT", "/v1/workers/w3", `{"url":"http://w3:8000","model":"other"}`, 200)
	mustCall(t, srv, "PUT", "/v1/workers/w4", `{"url":"http://w4:8000","model":"m","health":"unhealthy"}`, 200)
	// An update keeps the epoch.
	again := mustCall(t, srv, "PUT", "/v1/workers/w2", `{"url":"http://w2:8000","model":"m","load":3}`, 200)
	if again["epoch"] != w2["epoch"] {
		t.Fatalf("epoch changed on update: %v -> %v", w2["epoch"], again["epoch"])
	}
	list := mustCall(t, srv, "GET", "/v1/workers?model=m", "", 200)
	var ids []string
	for _, w := range list["workers"].([]any) {
		ids = append(ids, w.(map[string]any)["id"].(string))
	}
	if diff := cmp.Diff([]string{"w1", "w2", "w4"}, ids); diff != "" {
		t.Fatalf("workers of m (-want +got):\n%s", diff)
	}
	prompt := strings.Repeat("p", 64*4)
	// Record w1 as holding the prompt; routing then prefers it on a cache hit.
	mustCall(t, srv, "POST", "/v1/index/insert", `{"worker":"w2","text":"`+prompt+`"}`, 200)
	r := mustCall(t, srv, "POST", "/v1/route", `{"model":"m","text":"`+prompt+`"}`, 200)
	if r["worker"] != "w2" || r["rule"] != "cache-hit" && r["matched_pages"] != float64(4) {
		t.Fatalf("route: %v", r)
	}
	// Unhealthy workers are never chosen; recording inserts into the index.
	r = mustCall(t, srv, "POST", "/v1/route", `{"model":"m","tokens":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17],"record":true}`, 200)
	if r["worker"] == "w4" || r["recorded"] != true {
		t.Fatalf("route: %v", r)
	}
	mustCall(t, srv, "POST", "/v1/index/touch", `{"worker":"w2","text":"`+prompt+`"}`, 200)
	// Removing w2 removes it from the index too.
	mustCall(t, srv, "DELETE", "/v1/workers/w2", "", 200)
	for _, s := range n.st.ix.Digest() {
		if s.Worker == "w2" && !s.Removed {
			t.Fatalf("w2 still in the index: %+v", s)
		}
	}
	r = mustCall(t, srv, "POST", "/v1/route", `{"model":"m","text":"`+prompt+`"}`, 200)
	if r["worker"] != "w1" {
		t.Fatalf("after removal: %v", r)
	}
	mustCall(t, srv, "DELETE", "/v1/index/workers/w1", "", 200)
	mustCall(t, srv, "GET", "/v1/workers/w1", "", 200)
}

func TestAPIRateLimits(t *testing.T) {
	_, srv := newTestNode(t, nil)
	mustCall(t, srv, "PUT", "/v1/limits/api", `{"limit":3,"window":"1h"}`, 200)
	var allowed []bool
	for range 4 {
		r := mustCall(t, srv, "POST", "/v1/limits/api/take", `{"n":1}`, 200)
		allowed = append(allowed, r["allowed"].(bool))
	}
	if diff := cmp.Diff([]bool{true, true, true, false}, allowed); diff != "" {
		t.Fatalf("takes (-want +got):\n%s", diff)
	}
	u := mustCall(t, srv, "GET", "/v1/limits/api", "", 200)
	if u["used"] != float64(3) || u["remaining"] != float64(0) {
		t.Fatalf("usage: %v", u)
	}
	// Raising the limit admits more in the same window; an empty body takes 1.
	mustCall(t, srv, "PUT", "/v1/limits/api", `{"limit":5,"window":"1h"}`, 200)
	if r := mustCall(t, srv, "POST", "/v1/limits/api/take", ``, 200); r["allowed"] != true || r["remaining"] != float64(1) {
		t.Fatalf("take after raise: %v", r)
	}
	l := mustCall(t, srv, "GET", "/v1/limits", "", 200)
	if diff := cmp.Diff([]any{"api"}, l["limits"]); diff != "" {
		t.Fatalf("limits (-want +got):\n%s", diff)
	}
	mustCall(t, srv, "DELETE", "/v1/limits/api", "", 200)
	mustCall(t, srv, "POST", "/v1/limits/api/take", `{"n":1}`, 404)
}

func TestAPIClusterEndpoints(t *testing.T) {
	_, srv := newTestNode(t, nil)
	self := mustCall(t, srv, "GET", "/v1/self", "", 200)
	if self["name"] != "t1" || self["state"] != "alive" {
		t.Fatalf("self: %v", self)
	}
	ms := mustCall(t, srv, "GET", "/v1/members", "", 200)
	if len(ms["members"].([]any)) != 1 {
		t.Fatalf("members: %v", ms)
	}
	st := mustCall(t, srv, "GET", "/v1/status", "", 200)
	if st["cluster_size"] != float64(1) || st["majority"] != true {
		t.Fatalf("status: %v", st)
	}
	mustCall(t, srv, "PUT", "/v1/kv/app/k", `{"value":"v"}`, 200)
	st = mustCall(t, srv, "GET", "/v1/status", "", 200)
	if keys := st["store"].(map[string]any)["keys"]; keys != float64(1) {
		t.Fatalf("status store.keys = %v, want 1: %v", keys, st)
	}
	if _, ok := st["index"].(map[string]any)["holder_pages"]; !ok {
		t.Fatalf("status index has no holder_pages: %v", st)
	}
	ring := mustCall(t, srv, "GET", "/v1/ring?key=abc&n=3", "", 200)
	if owners := ring["owners"].([]any); len(owners) != 1 || owners[0].(map[string]any)["name"] != "t1" {
		t.Fatalf("ring: %v", ring)
	}
	// Not started: not ready, but live.
	mustCall(t, srv, "GET", "/readyz", "", 503)
	mustCall(t, srv, "GET", "/livez", "", 200)
	mustCall(t, srv, "GET", "/healthz", "", 200)
}

func TestAPIToken(t *testing.T) {
	_, srv := newTestNode(t, func(c *Config) { c.APIToken = "s3cret" })
	tests := []struct {
		name, path, auth string
		code             int
	}{
		{"no token", "/v1/self", "", 401},
		{"wrong token", "/v1/self", "Bearer nope", 401},
		{"wrong scheme", "/v1/self", "Basic s3cret", 401},
		{"right token", "/v1/self", "Bearer s3cret", 200},
		{"metrics need it", "/metrics", "", 401},
		{"pprof needs it", "/debug/pprof/", "", 401},
		{"probes do not", "/livez", "", 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", srv.URL+tc.path, nil)
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.code {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.code)
			}
		})
	}
}

func TestTokenList(t *testing.T) {
	tests := []struct {
		in   string
		want []uint32
		err  string
	}{
		{`[]`, []uint32{}, ""},
		{`[1,2, 3 ]`, []uint32{1, 2, 3}, ""},
		{" [ 4294967295\n]", []uint32{4294967295}, ""},
		{`null`, nil, ""},
		{`[4294967296]`, nil, "above"},
		{`[-1]`, nil, "non-negative"},
		{`[1.5]`, nil, "','"},
		{`[1,]`, nil, "non-negative"},
		{`[1 2]`, nil, "','"},
		{`["1"]`, nil, "non-negative"},
		{`{}`, nil, "array"},
		{`[00000000000000000001]`, nil, "above"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			var got tokenList
			err := got.UnmarshalJSON([]byte(tc.in))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want one mentioning %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, []uint32(got)); diff != "" {
				t.Fatalf("(-want +got):\n%s", diff)
			}
		})
	}
}

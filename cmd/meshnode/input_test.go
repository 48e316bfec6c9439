package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestKVRefusesPathsThatEscape(t *testing.T) {
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"dot-dot segment", []string{"kv", "put", "app", "../other/k", "v"}, `a segment is ".."`},
		{"dot segment", []string{"kv", "get", "app", "a/./b"}, `a segment is "."`},
		{"empty segment", []string{"kv", "del", "app", "a//b"}, "empty segment"},
		{"leading slash", []string{"kv", "put", "app", "/k", "v"}, "empty segment"},
		{"control character", []string{"kv", "put", "app", "k\x00", "v"}, "control character"},
		{"bad namespace", []string{"kv", "watch", "a\nb"}, "namespace"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeAPI{}
			_, errOut, code := runAgainst(t, f, nil, tt.args...)
			if code != 1 || !strings.Contains(errOut, tt.want) {
				t.Fatalf("exit %d, stderr %q; want 1 and %q", code, errOut, tt.want)
			}
			if len(f.got) != 0 {
				t.Fatalf("requests sent: %v", f.got)
			}
		})
	}
}

func TestClientDoesNotFollowRedirects(t *testing.T) {
	f := &fakeAPI{answers: map[string]func(http.ResponseWriter, *http.Request){
		"PUT /v1/kv/app/k": func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "/v1/kv/other/k", http.StatusTemporaryRedirect)
		},
		"PUT /v1/kv/other/k": answer(200, `{"namespace": "other", "key": "k"}`),
	}}
	_, errOut, code := runAgainst(t, f, nil, "kv", "put", "app", "k", "v")
	if code != 1 || !strings.Contains(errOut, "redirect") {
		t.Fatalf("exit %d, stderr %q; want 1 and a word on the redirect", code, errOut)
	}
	if d := cmp.Diff([]string{"PUT /v1/kv/app/k"}, f.got); d != "" {
		t.Fatalf("requests (-want +got):\n%s", d)
	}
}

func TestClientRefusesWhiteSpaceToken(t *testing.T) {
	f := &fakeAPI{}
	_, errOut, code := runAgainst(t, f, map[string]string{"MESHNODE_API_TOKEN": " \t "}, "status")
	if code != 1 || !strings.Contains(errOut, "white space") || len(f.got) != 0 {
		t.Fatalf("exit %d, stderr %q, requests %v; want 1, a word on white space and no request", code, errOut, f.got)
	}
	_, _, err := loadConfig(nil, envOf(map[string]string{"MESHNODE_API_TOKEN": "  \n"}), fixedHost, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "white space") {
		t.Fatalf("agent config with a white-space token: %v", err)
	}
}

func TestKVWatchResumesFromTheLastIndex(t *testing.T) {
	var mu sync.Mutex
	var lastIDs []string
	calls := 0
	f := &fakeAPI{answers: map[string]func(http.ResponseWriter, *http.Request){
		"GET /v1/watch/app?timeout=5m0s": func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			calls++
			call := calls
			lastIDs = append(lastIDs, r.Header.Get("Last-Event-ID"))
			mu.Unlock()
			event := func(id int, key string) {
				fmt.Fprintf(w, "id: %d\ndata: {\"key\":%q,\"value\":\"v\",\"index\":%d}\n\n", id, key, id)
			}
			switch call {
			case 1: // a stream that ends (the API's timeout) after one change
				w.Header().Set("X-Meshnode-Index", "10")
				w.Header().Set("Content-Type", "text/event-stream")
				event(11, "a")
			case 2:
				w.Header().Set("Content-Type", "text/event-stream")
				event(12, "b")
			case 3: // the changes after 12 are gone
				w.WriteHeader(http.StatusGone)
				fmt.Fprint(w, `{"error": "index 12: list the namespace again", "index": 20}`)
			default:
				w.Header().Set("Content-Type", "text/event-stream")
				event(21, "c")
			}
		},
	}}
	out, errOut, code := runAgainst(t, f, nil, "kv", "watch", "app", "--count", "3")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	want := "put a \"v\"\nput b \"v\"\nlagged: changes were missed; list the namespace again\nput c \"v\"\n"
	if d := cmp.Diff(want, out); d != "" {
		t.Fatalf("output (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{"", "11", "12", "20"}, lastIDs); d != "" {
		t.Fatalf("Last-Event-ID of each request (-want +got):\n%s", d)
	}
}

// checkAgentInputAndIndexes drives a real agent: paths that would escape a
// namespace, wrong methods and a wrong leave body are refused, and a long
// poll from a list's index answers the changes made in between.
func checkAgentInputAndIndexes(t *testing.T, c cli) {
	base := c.api
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	raw := func(method, path, body string) (*http.Response, string) {
		t.Helper()
		req, err := http.NewRequest(method, base+"/", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.URL.Opaque = path
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	c.fails(1, `a segment is ".."`, "kv", "put", "app", "../other/k", "v")
	for _, tc := range []struct {
		method, path, body string
		code               int
	}{
		{"PUT", "/v1/kv/app/../other/k", `{"value":"v"}`, 400},
		{"PUT", "/v1/kv/app/k%00", `{"value":"v"}`, 400},
		{"POST", "/livez", "", 405},
		{"POST", "/debug/pprof/", "", 405},
		{"POST", "/v1/join", `{"seeds":["10.0.0.1:99999"]}`, 400},
		{"POST", "/v1/leave", `{"timeout":5}`, 400},
	} {
		resp, body := raw(tc.method, tc.path, tc.body)
		if resp.StatusCode != tc.code || !strings.HasPrefix(body, `{"error":`) {
			t.Errorf("%s %s: %d %q, want %d with a JSON error", tc.method, tc.path, resp.StatusCode, body, tc.code)
		}
	}
	if out := c.ok("kv", "list", "other", "--json"); strings.TrimSpace(out) != "[]" {
		t.Errorf("namespace other holds %s", out)
	}

	resp, _ := raw("GET", "/v1/kv/indexed", "")
	idx, err := strconv.ParseUint(resp.Header.Get("X-Meshnode-Index"), 10, 64)
	if err != nil {
		t.Fatalf("list without an index: %v", err)
	}
	c.ok("kv", "put", "indexed", "k1", "one")
	c.ok("kv", "put", "indexed", "k2", "two")
	c.ok("kv", "del", "indexed", "k1")
	resp, body := raw("GET", fmt.Sprintf("/v1/watch/indexed?index=%d&timeout=5m", idx), "")
	var ans struct {
		Events []struct {
			Key     string `json:"key"`
			Deleted bool   `json:"deleted"`
		} `json:"events"`
		Index uint64 `json:"index"`
	}
	if err := json.Unmarshal([]byte(body), &ans); err != nil || resp.StatusCode != 200 {
		t.Fatalf("watch from index %d: %d %q", idx, resp.StatusCode, body)
	}
	// The index counts the node's changes of every namespace: the
	// namespace's is that of its latest change, which a new list reports.
	resp, _ = raw("GET", "/v1/kv/indexed", "")
	now := resp.Header.Get("X-Meshnode-Index")
	got := fmt.Sprint(ans.Events)
	if want := "[{k1 false} {k2 false} {k1 true}]"; got != want || fmt.Sprint(ans.Index) != now || ans.Index < idx+3 {
		t.Fatalf("watch from index %d: events %s index %d; want %s and the list's index %s", idx, got, ans.Index, want, now)
	}
}

func TestWatchHistoryOptions(t *testing.T) {
	cfg, _, err := loadConfig([]string{"--watch-history", "16", "--watch-history-bytes", "65536"}, envOf(nil), fixedHost, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if nc := cfg.nodeConfig(); nc.WatchHistory != 16 || nc.WatchHistoryBytes != 65536 {
		t.Fatalf("node config: watch history %d, %d bytes; want 16, 65536", nc.WatchHistory, nc.WatchHistoryBytes)
	}
	for _, args := range [][]string{{"--watch-history", "-1"}, {"--watch-history", "9999999999"}, {"--watch-history-bytes", "10"}} {
		if _, _, err := loadConfig(args, envOf(nil), fixedHost, io.Discard); err == nil || !strings.HasPrefix(err.Error(), args[0]+" ") {
			t.Errorf("%v: %v, want an error naming %s", args, err, args[0])
		}
	}
}

package main

import (
	"fmt"
	"io"
	"net/http"
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

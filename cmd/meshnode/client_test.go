package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// fakeAPI serves canned answers by "METHOD path?query" and records the
// requests it got.
type fakeAPI struct {
	mu      sync.Mutex
	answers map[string]func(w http.ResponseWriter, r *http.Request)
	got     []string
	auth    []string
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	key := r.Method + " " + r.URL.RequestURI()
	f.mu.Lock()
	f.got = append(f.got, key)
	f.auth = append(f.auth, r.Header.Get("Authorization"))
	h, ok := f.answers[key]
	f.mu.Unlock()
	if !ok {
		w.WriteHeader(http.StatusNotFound)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": "no endpoint " + key})
		return
	}
	h(w, r)
}

func answer(code int, body string) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(code)
		_, _ = w.Write([]byte(body))
	}
}

// runAgainst runs a client command against a fake API.
func runAgainst(t *testing.T, f *fakeAPI, env map[string]string, args ...string) (string, string, int) {
	t.Helper()
	srv := httptest.NewServer(f)
	defer srv.Close()
	e := map[string]string{"MESHNODE_API_ADDR": srv.URL}
	for k, v := range env {
		e[k] = v
	}
	var out, errb bytes.Buffer
	code := run(args, envOf(e), strings.NewReader(""), &out, &errb)
	return out.String(), errb.String(), code
}

func TestClientFollowsPages(t *testing.T) {
	f := &fakeAPI{answers: map[string]func(http.ResponseWriter, *http.Request){
		"GET /v1/members":          answer(200, `{"members": [{"name": "a", "addr": "10.0.0.1:7946", "state": "alive"}], "next_cursor": "a"}`),
		"GET /v1/members?cursor=a": answer(200, `{"members": [{"name": "b", "addr": "10.0.0.2:7946", "state": "suspect"}], "next_cursor": ""}`),
	}}
	out, errOut, code := runAgainst(t, f, map[string]string{"MESHNODE_API_TOKEN": "tok"}, "members", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var ms []struct{ Name, State string }
	if err := json.Unmarshal([]byte(out), &ms); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]struct{ Name, State string }{{"a", "alive"}, {"b", "suspect"}}, ms); diff != "" {
		t.Errorf("members (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"Bearer tok", "Bearer tok"}, f.auth); diff != "" {
		t.Errorf("Authorization headers (-want +got):\n%s", diff)
	}
}

func TestClientEmptyListIsAnArray(t *testing.T) {
	f := &fakeAPI{answers: map[string]func(http.ResponseWriter, *http.Request){
		"GET /v1/kv/app": answer(200, `{"items": [], "next_cursor": ""}`),
	}}
	out, errOut, code := runAgainst(t, f, nil, "kv", "list", "app", "--json")
	if code != 0 || strings.TrimSpace(out) != "[]" {
		t.Fatalf("exit %d, stdout %q, stderr %q: want 0 and []", code, out, errOut)
	}
}

func TestClientErrors(t *testing.T) {
	tests := []struct {
		name    string
		answers map[string]func(http.ResponseWriter, *http.Request)
		args    []string
		code    int
		want    string
	}{
		{name: "API error message", answers: map[string]func(http.ResponseWriter, *http.Request){
			"GET /v1/kv/app/k": answer(404, `{"error": "no key \"k\" in namespace \"app\""}`)},
			args: []string{"kv", "get", "app", "k"}, code: 1, want: `meshnode kv get: no key "k" in namespace "app" (HTTP 404)`},
		{name: "missing token", answers: map[string]func(http.ResponseWriter, *http.Request){
			"GET /v1/status": answer(401, `{"error": "missing or wrong bearer token"}`)},
			args: []string{"status"}, code: 1, want: "give the token with MESHNODE_API_TOKEN or --api-token-file"},
		{name: "HTTP to an HTTPS API", answers: map[string]func(http.ResponseWriter, *http.Request){
			"GET /v1/members": answer(400, "Client sent an HTTP request to an HTTPS server.\n")},
			args: []string{"members"}, code: 1, want: "Give --tls-ca-file"},
		{name: "answer that is not JSON", answers: map[string]func(http.ResponseWriter, *http.Request){
			"GET /v1/ring?key=k&n=1": answer(200, "<html>")},
			args: []string{"ring", "k"}, code: 1, want: "unexpected answer"},
		{name: "list page without its items", answers: map[string]func(http.ResponseWriter, *http.Request){
			"GET /v1/members": answer(200, `{"items": [], "next_cursor": ""}`)},
			args: []string{"members"}, code: 1, want: `unexpected answer: "members"`},
		{name: "agent without keyring endpoints", args: []string{"keyring", "list"}, code: 1, want: "no keyring endpoints"},
		{name: "key on the command line", args: []string{"keyring", "install", "a2V5"}, code: 2, want: "not as an argument"},
		{name: "wrong arguments", args: []string{"ring"}, code: 2, want: "want a key"},
		{name: "both prompt forms", args: []string{"route", "--model", "m", "--text", "t", "--tokens", "1"}, code: 2, want: "not both"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, errOut, code := runAgainst(t, &fakeAPI{answers: tt.answers}, nil, tt.args...)
			if code != tt.code {
				t.Errorf("exit %d, want %d", code, tt.code)
			}
			if !strings.Contains(errOut, tt.want) || strings.Count(errOut, "\n") != 1 {
				t.Errorf("stderr %q: want one line containing %q", errOut, tt.want)
			}
		})
	}
}

func TestKVPathKeepsSlashesAndEscapes(t *testing.T) {
	for _, tt := range []struct{ ns, key, want string }{
		{"app", "a/b/c", "/v1/kv/app/a/b/c"},
		{"app", "sp ace?", "/v1/kv/app/sp%20ace%3F"},
		{"n s", "k", "/v1/kv/n%20s/k"},
	} {
		if got := kvPath(tt.ns, tt.key); got != tt.want {
			t.Errorf("kvPath(%q, %q) = %q, want %q", tt.ns, tt.key, got, tt.want)
		}
	}
}

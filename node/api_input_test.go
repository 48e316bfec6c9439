package node

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
)

// rawCall sends a request whose path goes on the wire exactly as given, and
// never follows a redirect.
func rawCall(t *testing.T, base, method, path, body string) (*http.Response, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, base+"/", rd)
	if err != nil {
		t.Fatal(err)
	}
	req.URL.Opaque = path // sent as is: no cleaning, no escaping
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestAPIRefusesBadNames(t *testing.T) {
	n, srv := newTestNode(t, nil)
	tests := []struct {
		name, method, path, body string
		code                     int
		errHas                   string
	}{
		{"dot-dot segment", "PUT", "/v1/kv/app/../other/k", `{"value":"v"}`, 400, "segment"},
		{"dot-dot key", "PUT", "/v1/kv/app/..", `{"value":"v"}`, 400, "segment"},
		{"dot segment", "GET", "/v1/kv/app/./k", ``, 400, "segment"},
		{"empty segment", "PUT", "/v1/kv/app//k", `{"value":"v"}`, 400, "empty"},
		{"empty namespace", "GET", "/v1/kv//k", ``, 400, "empty"},
		{"escaped dot-dot", "PUT", "/v1/kv/app/%2E%2E/k", `{"value":"v"}`, 400, "segment"},
		{"escaped empty segment", "PUT", "/v1/kv/app/a%2F%2Fb", `{"value":"v"}`, 400, "empty segment"},
		{"escaped leading slash", "PUT", "/v1/kv/app/%2Fk", `{"value":"v"}`, 400, "empty segment"},
		{"dot-dot in a worker path", "GET", "/v1/workers/../kv/app/k", ``, 400, "segment"},
		{"NUL in a key", "PUT", "/v1/kv/app/k%00", `{"value":"v"}`, 400, "control character"},
		{"control character in a namespace", "PUT", "/v1/kv/a%01b/k", `{"value":"v"}`, 400, "namespace: control character"},
		{"DEL in a key", "GET", "/v1/kv/app/k%7F", ``, 400, "control character"},
		{"C1 control in a key", "GET", "/v1/kv/app/k%C2%85", ``, 400, "control character"},
		{"invalid UTF-8 in a key", "PUT", "/v1/kv/app/k%C3%28", `{"value":"v"}`, 400, "invalid UTF-8"},
		{"invalid UTF-8 in a list namespace", "GET", "/v1/kv/%FF", ``, 400, "invalid UTF-8"},
		{"control character in a prefix", "GET", "/v1/kv/app?prefix=%00", ``, 400, "prefix"},
		{"control character in a watch namespace", "GET", "/v1/watch/a%0Ab", ``, 400, "namespace"},
		{"NUL in a worker id", "PUT", "/v1/workers/w%00", `{"url":"http://x","model":"m"}`, 400, "worker id"},
		{"control character in a model", "PUT", "/v1/workers/w", `{"url":"http://x","model":"m\u0007"}`, 400, "model"},
		{"control character in a label", "PUT", "/v1/workers/w", `{"url":"http://x","model":"m","labels":{"zone":"a\u0000"}}`, 400, "control character"},
		{"invalid UTF-8 in a limit name", "PUT", "/v1/limits/l%FE", `{"limit":1,"window":"1s"}`, 400, "limit name"},
		{"control character in a take", "POST", "/v1/limits/l%1B/take", `{"n":1}`, 400, "limit name"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := rawCall(t, srv.URL, tc.method, tc.path, tc.body)
			if resp.StatusCode != tc.code || !strings.Contains(body, tc.errHas) || !strings.HasPrefix(body, `{"error":`) {
				t.Fatalf("status %d, body %q; want %d with a JSON error mentioning %q", resp.StatusCode, body, tc.code, tc.errHas)
			}
		})
	}
	// Nothing was written anywhere, in particular not to namespace other.
	for _, ns := range []string{"other", "app"} {
		if items, _ := n.st.list(ns, "", "", 10); len(items) != 0 {
			t.Fatalf("namespace %s holds %v", ns, items)
		}
	}
	// What stays valid: a trailing slash, dots inside a segment, any
	// printable Unicode.
	for _, p := range []string{"/v1/kv/app/dir/", "/v1/kv/app/a..b/.c", "/v1/kv/app/%C3%A9t%C3%A9", "/v1/kv/%E2%9C%93/k"} {
		if resp, body := rawCall(t, srv.URL, "PUT", p, `{"value":"v"}`); resp.StatusCode != 200 {
			t.Fatalf("PUT %s: %d %s", p, resp.StatusCode, body)
		}
	}
}

func TestAPIMethodNotAllowed(t *testing.T) {
	_, srv := newTestNode(t, nil)
	tests := []struct {
		method, path, allow string
	}{
		{"POST", "/livez", "GET, HEAD"},
		{"DELETE", "/readyz", "GET, HEAD"},
		{"PUT", "/healthz", "GET, HEAD"},
		{"POST", "/metrics", "GET, HEAD"},
		{"POST", "/debug/pprof/", "GET, HEAD"},
		{"DELETE", "/debug/pprof/heap", "GET, HEAD"},
		{"PUT", "/debug/pprof/profile", "GET, HEAD"},
		{"PUT", "/debug/pprof/symbol", "GET, HEAD, POST"},
		{"POST", "/v1/self", "GET, HEAD"},
		{"PATCH", "/v1/kv/ns/k", "GET, HEAD, PUT, DELETE"},
	}
	for _, tc := range tests {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			resp, body := rawCall(t, srv.URL, tc.method, tc.path, "")
			if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != tc.allow ||
				resp.Header.Get("Content-Type") != "application/json" || !strings.Contains(body, `"error":"method `+tc.method+` not allowed`) {
				t.Fatalf("status %d, Allow %q, type %q, body %q; want 405, Allow %q and a JSON error",
					resp.StatusCode, resp.Header.Get("Allow"), resp.Header.Get("Content-Type"), body, tc.allow)
			}
		})
	}
	// The right methods still work.
	for _, p := range []string{"/livez", "/metrics", "/debug/pprof/", "/debug/pprof/cmdline"} {
		if resp, _ := rawCall(t, srv.URL, "GET", p, ""); resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d", p, resp.StatusCode)
		}
	}
	if resp, _ := rawCall(t, srv.URL, "GET", "/v1/nope", ""); resp.StatusCode != 404 {
		t.Fatalf("unknown path: %d, want 404", resp.StatusCode)
	}
}

// syncBuffer is a bytes.Buffer safe for the logger's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestAPIJoinAndLeaveInput(t *testing.T) {
	var logs syncBuffer
	c := emptyCluster(t)
	cfg := localConfig("n0", "")
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	c.cfgs = append(c.cfgs, cfg)
	c.nodes = append(c.nodes, nil)
	c.start(0)
	n := c.nodes[0]
	tests := []struct {
		name, path, body string
		errHas           string
	}{
		{"seed without port", "/v1/join", `{"seeds":["10.0.0.1"]}`, "host:port"},
		{"seed port 0", "/v1/join", `{"seeds":["10.0.0.1:0"]}`, "port"},
		{"seed port out of range", "/v1/join", `{"seeds":["10.0.0.1:70000"]}`, "port"},
		{"seed port not a number", "/v1/join", `{"seeds":["10.0.0.1:http"]}`, "port"},
		{"seed without host", "/v1/join", `{"seeds":[":7946"]}`, "host"},
		{"seed host with a space", "/v1/join", `{"seeds":["a b:7946"]}`, "not an IP address or a DNS name"},
		{"seed with a control character", "/v1/join", `{"seeds":["a\u0000b:7946"]}`, "not an IP address or a DNS name"},
		{"one bad seed of two", "/v1/join", `{"seeds":["127.0.0.1:7946","x:"]}`, "port"},
		{"leave timeout as a number", "/v1/leave", `{"timeout":5}`, "duration string"},
		{"leave timeout null", "/v1/leave", `{"timeout":null}`, "duration string"},
		{"leave body null", "/v1/leave", `null`, "JSON object"},
		{"leave body a string", "/v1/leave", `"5s"`, "JSON object"},
		{"leave body an array", "/v1/leave", `[]`, "JSON object"},
		{"leave negative timeout", "/v1/leave", `{"timeout":"-1s"}`, "duration string"},
		{"leave unknown field", "/v1/leave", `{"timeout":"1s","force":true}`, "unknown field"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, m := c.api(0, "POST", tc.path, tc.body)
			if msg, _ := m["error"].(string); code != 400 || !strings.Contains(msg, tc.errHas) {
				t.Fatalf("status %d, body %v; want 400 mentioning %q", code, m, tc.errHas)
			}
			if n.leaving.Load() {
				t.Fatal("the node is leaving after a refused request")
			}
		})
	}
	if strings.Contains(logs.String(), "join requested") {
		t.Fatalf("a refused join was logged as accepted: %s", logs.String())
	}
	// A valid join is accepted and logged.
	c.must(0, "POST", "/v1/join", `{"seeds":["127.0.0.1:9","localhost:9"]}`)
	if !strings.Contains(logs.String(), "join requested through the API") || !strings.Contains(logs.String(), "localhost:9") {
		t.Fatalf("accepted join not logged: %s", logs.String())
	}
	// An empty body leaves with the configured timeout.
	code, m := c.api(0, "POST", "/v1/leave", "")
	if code != 200 || m["left"] != true || !n.leaving.Load() {
		t.Fatalf("leave with an empty body: %d %v", code, m)
	}
}

func TestConfigRefusesBadNamesAndTokens(t *testing.T) {
	tests := []struct {
		name   string
		mod    func(*Config)
		errHas string
	}{
		{"white-space token", func(c *Config) { c.APIToken = " \t\n" }, "white space"},
		{"control character in the name", func(c *Config) { c.Name = "n\x001" }, "control character"},
		{"invalid UTF-8 in the name", func(c *Config) { c.Name = "n\xff" }, "invalid UTF-8"},
		{"seed port out of range", func(c *Config) { c.Seeds = []string{"10.0.0.1:99999"} }, "port"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{Name: "n1", BindAddr: "127.0.0.1:0", APIAddr: "off"}
			tc.mod(&cfg)
			err := cfg.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.errHas) {
				t.Fatalf("Validate: %v; want an error mentioning %q", err, tc.errHas)
			}
		})
	}
	// A token with white space around it is trimmed, like a token file.
	n, srv := newTestNode(t, func(c *Config) { c.APIToken = " secret\n" })
	if n.token != "secret" {
		t.Fatalf("token %q, want it trimmed", n.token)
	}
	req, _ := http.NewRequest("GET", srv.URL+"/v1/self", nil)
	req.Header.Set("Authorization", "Bearer secret")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("trimmed token refused: %d", resp.StatusCode)
	}
}

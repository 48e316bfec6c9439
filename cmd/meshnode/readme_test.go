package main

import (
	"encoding/json"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/meshnode/meshnode/node"
	"github.com/prometheus/client_golang/prometheus"
)

// curlRE reads a README curl example: the method, the path and the body.
var curlRE = regexp.MustCompile(`^curl -s(?: -N)?(?: -H '[^']*')?(?: -X (\w+))? '?localhost:7947(/[^' ]*)'?(?: -d '([^']*)')?`)

// otherServerRE reads the port of a README curl example on loopback.
var otherServerRE = regexp.MustCompile(`^curl -s '?(?:http://)?(?:localhost|127\.0\.0\.1):(\d+)/`)

// TestReadmeCurlExamplesHitRoutes sends every curl example of the README
// to a node's handler: each must reach an endpoint (not the API's "no
// endpoint" answer), so that the README cannot drift from the API.
func TestReadmeCurlExamplesHitRoutes(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	n, err := node.New(node.Config{Name: "readme", BindAddr: "127.0.0.1:0", APIAddr: "off"})
	if err != nil {
		t.Fatal(err)
	}
	h := n.Handler() // not started: the routes exist without sockets
	count := 0
	for line := range strings.SplitSeq(string(b), "\n") {
		if !strings.HasPrefix(line, "curl ") || strings.Contains(line, "localhost:8000") || proxyCurlRE.MatchString(line) {
			continue // localhost:8000 is meshnode engine's (TestReadmeEngineCurlExamples), 808x a proxy's (TestReadmeProxyCurlExamples)
		}
		if m := otherServerRE.FindStringSubmatch(line); m != nil && m[1] != "7947" {
			continue // another server's API (an engine's), not the node's
		}
		m := curlRE.FindStringSubmatch(line)
		if m == nil {
			t.Errorf("README curl example not understood: %s", line)
			continue
		}
		method, path, body := m[1], m[2], m[3]
		if method == "" {
			method = "GET"
			if body != "" {
				method = "POST" // what curl -d does
			}
		}
		if strings.HasPrefix(path, "/v1/watch/") {
			// A watch waits for changes: make it return at once.
			u, err := url.Parse(path)
			if err != nil {
				t.Fatal(err)
			}
			q := u.Query()
			q.Set("timeout", "1ms")
			u.RawQuery = q.Encode()
			path = u.String()
		}
		count++
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code == 404 && strings.Contains(rec.Body.String(), "no endpoint") || rec.Code == 405 {
			t.Errorf("%s %s: %d %s", method, path, rec.Code, rec.Body.String())
		}
	}
	if count < 20 {
		t.Errorf("found %d curl examples in README.md, want every API group (20 or more)", count)
	}
}

// proxyCurlRE reads a README curl example sent to a routing proxy.
var proxyCurlRE = regexp.MustCompile(`^curl -s(?: -N)? '?localhost:808\d(/[^' ]*)'?(?: -d '([^']*)')?`)

// TestReadmeProxyCurlExamples sends the README's curl examples of the
// routing proxy to a proxy's handler: each must reach an endpoint.
func TestReadmeProxyCurlExamples(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	n, err := node.New(node.Config{Name: "readme", BindAddr: "127.0.0.1:0", APIAddr: "off", ProxyAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	h := n.ProxyHandler()
	count := 0
	for line := range strings.SplitSeq(string(b), "\n") {
		m := proxyCurlRE.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		method, path, body := "GET", m[1], m[2]
		if body != "" {
			method = "POST"
			var v map[string]any
			if err := json.Unmarshal([]byte(body), &v); err != nil {
				t.Errorf("%s: body is not JSON: %v", line, err)
			}
		}
		count++
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(method, path, strings.NewReader(body)))
		// No worker is registered: a completion gets 404 model_not_found,
		// an unknown path "no endpoint".
		if strings.Contains(rec.Body.String(), "no endpoint") || rec.Code == 400 {
			t.Errorf("%s %s: %d %s", method, path, rec.Code, rec.Body.String())
		}
	}
	if count == 0 {
		t.Error("README has no curl example of the routing proxy")
	}
}

// describer records the names of the metrics registered through it.
type describer struct {
	prometheus.Registerer
	names map[string]bool
}

var fqNameRE = regexp.MustCompile(`fqName: "([^"]+)"`)

func (d *describer) Register(c prometheus.Collector) error {
	ch := make(chan *prometheus.Desc, 64)
	go func() { c.Describe(ch); close(ch) }()
	for desc := range ch {
		if m := fqNameRE.FindStringSubmatch(desc.String()); m != nil {
			d.names[m[1]] = true
		}
	}
	return d.Registerer.Register(c)
}

// TestReadmeMetricsExist checks every metric the README names against
// those a node registers.
func TestReadmeMetricsExist(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	reg := &describer{Registerer: prometheus.NewRegistry(), names: map[string]bool{}}
	if _, err := node.New(node.Config{Name: "readme", BindAddr: "127.0.0.1:0", APIAddr: "off", Registerer: reg}); err != nil {
		t.Fatal(err)
	}
	if len(reg.names) < 10 {
		t.Fatalf("recorded only %d metric names: %v", len(reg.names), reg.names)
	}
	mentioned := regexp.MustCompile(`meshnode_[a-z0-9_]+`).FindAllString(string(b), -1)
	if len(mentioned) == 0 {
		t.Fatal("README names no metric")
	}
	for _, m := range mentioned {
		if !reg.names[m] && !strings.HasSuffix(m, "_") { // "meshnode_swim_*" is a family
			t.Errorf("README names %s, which a node does not register", m)
		}
	}
}

//go:build linux

package faults

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshnode/meshnode/engine"
	"github.com/meshnode/meshnode/engine/server"
)

var proxyRE = regexp.MustCompile(` proxy=(\S+)`)

// TestProxyKillUnderLoad: three agents with routing proxies in front of two
// emulated engines (in this process, on loopback); clients stream chat
// completions through every proxy; one agent is killed with SIGKILL. Every
// request through the other proxies completes, and through the killed one
// only the requests in flight at the kill are lost (issue 14 item 7); those
// sent after it fail without being lost (counted as refused: connection
// refused, or reset on a kept-alive connection).
func TestProxyKillUnderLoad(t *testing.T) {
	bin := need(t, modeShort)
	var engines []*server.Server
	for i := range 2 {
		// 32 tokens at 200 a second: each stream lasts about 160 ms, so
		// that many are in flight at the kill.
		e, err := server.New(server.Config{Addr: "127.0.0.1:0", Models: []string{"m"}, DefaultMaxTokens: 32,
			Engine: engine.Config{PrefillTPS: 1e6, DecodeTPS: 200}, Seed: uint64(i)})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { e.Close() })
		engines = append(engines, e)
	}
	c := newCluster(t, bin, clusterOpts{n: 3, profile: "local", extra: []string{"--proxy-addr", "127.0.0.1:0"}})
	proxies := make([]string, len(c.agents))
	for i, a := range c.agents {
		m := proxyRE.FindStringSubmatch(a.ready)
		if m == nil {
			t.Fatalf("%s: no proxy in the ready line %q", a.name, a.ready)
		}
		proxies[i] = m[1]
	}
	for i, e := range engines {
		code, err := c.agents[0].do("PUT", fmt.Sprintf("/v1/workers/e%d", i), strings.NewReader(`{"url":"http://`+e.Addr()+`","model":"m"}`))
		if err != nil || code != 200 {
			t.Fatalf("register: %d %v", code, err)
		}
	}
	if _, err := poll(30*time.Second, func() error {
		for _, a := range c.agents {
			var ws struct {
				Workers []any `json:"workers"`
			}
			if err := a.getJSON("/v1/workers", &ws); err != nil || len(ws.Workers) != 2 {
				return fmt.Errorf("%s: %d workers, %v", a.name, len(ws.Workers), err)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	const clientsPerProxy = 4
	type tally struct{ ok, lost, refused atomic.Int64 }
	tallies := make([]tally, len(proxies))
	var killed atomic.Bool
	var lostBeforeKill atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2 * clientsPerProxy}, Timeout: 30 * time.Second}
	defer client.CloseIdleConnections()
	for p := range proxies {
		for k := range clientsPerProxy {
			wg.Go(func() {
				for j := range 2000 { // bounded in count, and by stop in time
					select {
					case <-stop:
						return
					default:
					}
					before := killed.Load() // sent after the kill
					body := fmt.Sprintf(`{"model":"m","stream":true,"messages":[{"role":"user","content":"client %d/%d request %d"}]}`, p, k, j)
					done, connected := streamChat(client, proxies[p], body)
					switch {
					case done:
						tallies[p].ok.Add(1)
					case !connected || before:
						// Sent after the kill (refused, or on a kept-alive
						// connection to the dead process): not in flight at
						// the kill, so not lost to it.
						tallies[p].refused.Add(1)
						return // its proxy is gone: a client goes elsewhere
					default:
						tallies[p].lost.Add(1)
						if !killed.Load() {
							lostBeforeKill.Add(1)
						}
					}
				}
			})
		}
	}
	hold(3 * time.Second) // steady load
	victim := c.agents[0]
	inFlight := -1.0
	if m, err := victim.metrics(); err == nil {
		inFlight = sum(m, "meshnode_proxy_in_flight_requests")
	}
	killed.Store(true)
	victim.kill9()
	okAtKill := make([]int64, len(proxies))
	for p := range proxies {
		okAtKill[p] = tallies[p].ok.Load()
	}
	hold(3 * time.Second) // the survivors keep serving while the victim is found dead
	close(stop)
	wg.Wait()

	for p := range proxies {
		figure(t, "proxy of %s%s: %d completed (%d after the kill), %d lost, %d refused", c.agents[p].name,
			map[bool]string{true: " (killed)", false: ""}[p == 0], tallies[p].ok.Load(), tallies[p].ok.Load()-okAtKill[p], tallies[p].lost.Load(), tallies[p].refused.Load())
	}
	figure(t, "the killed proxy had %.0f requests in flight just before the kill; %d clients on it", inFlight, clientsPerProxy)
	if n := lostBeforeKill.Load(); n != 0 {
		t.Errorf("%d requests failed before the kill", n)
	}
	if n := tallies[0].lost.Load(); n > clientsPerProxy {
		t.Errorf("%d requests lost through the killed proxy, more than its %d clients had in flight", n, clientsPerProxy)
	}
	for p := 1; p < len(proxies); p++ {
		if n := tallies[p].lost.Load() + tallies[p].refused.Load(); n != 0 {
			t.Errorf("%d requests through the surviving proxy of %s failed", n, c.agents[p].name)
		}
		if tallies[p].ok.Load() <= okAtKill[p] {
			t.Errorf("the proxy of %s completed nothing after the kill", c.agents[p].name)
		}
	}
}

// streamChat sends one streamed chat completion and reports whether it
// completed ([DONE] read) and whether the proxy accepted the connection.
func streamChat(client *http.Client, proxy, body string) (completed, connected bool) {
	resp, err := client.Post("http://"+proxy+"/v1/chat/completions", "application/json", strings.NewReader(body))
	if err != nil {
		return false, !strings.Contains(err.Error(), "connection refused")
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return false, true
	}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if sc.Text() == "data: [DONE]" {
			return true, true
		}
	}
	return false, true
}

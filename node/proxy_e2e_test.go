package node

import (
	"bufio"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// pacedEngine streams count events, one per interval: a load generator's
// engine, whose answers stay in flight long enough to be cut.
func pacedEngine(t *testing.T, name string, count int, interval time.Duration) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fl := w.(http.Flusher)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for i := range count {
			fmt.Fprintf(w, "data: {\"worker\":%q,\"n\":%d}\n\n", name, i)
			fl.Flush()
			select {
			case <-tick.C:
			case <-r.Context().Done():
				return
			}
		}
		fmt.Fprint(w, "data: [DONE]\n\n")
	}))
	t.Cleanup(srv.Close)
	return srv
}

// streamOnce sends one streamed chat completion to a proxy and reports
// whether it completed ([DONE] read), and whether the proxy accepted the
// connection at all.
func streamOnce(client *http.Client, proxyAddr, prompt string) (completed, connected bool) {
	resp, err := client.Post("http://"+proxyAddr+"/v1/chat/completions", "application/json", strings.NewReader(chatBody("m", prompt, true)))
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

// TestProxyNodeKillUnderLoad: two nodes proxy streamed completions to two
// engines under steady load; one node is killed (its proxy's connections
// cut at once, no leave). Every request through the other node completes;
// through the killed one, only requests in flight at the kill are lost
// (those sent later are refused, not lost); and the survivor's routing
// stops counting the dead node's in-flight requests once it is found dead.
// Real loopback sockets: the load and the cut are real connections.
func TestProxyNodeKillUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("a real-socket load test; -short skips it")
	}
	c := newCluster(t, 2, false, func(cfg *Config) { cfg.ProxyAddr = "127.0.0.1:0" })
	e1 := pacedEngine(t, "e1", 10, 2*time.Millisecond)
	e2 := pacedEngine(t, "e2", 10, 2*time.Millisecond)
	c.must(0, "PUT", "/v1/workers/e1", `{"url":"`+e1.URL+`","model":"m"}`)
	c.must(0, "PUT", "/v1/workers/e2", `{"url":"`+e2.URL+`","model":"m"}`)
	c.everywhere("workers replicate", func(i int) error {
		if len(c.nodes[i].st.modelWorkers("m")) != 2 {
			return fmt.Errorf("workers not there yet")
		}
		return nil
	})
	victim, survivor := c.nodes[0], c.nodes[1]
	victimAddr, survivorAddr := victim.ProxyAddr(), survivor.ProxyAddr()

	const clientsPerNode, maxRequests = 4, 400 // per client: bounded in count
	type tally struct{ ok, lost, refused atomic.Int64 }
	var viaVictim, viaSurvivor tally
	var killed atomic.Bool
	var lostBeforeKill atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	tr := &http.Transport{MaxIdleConnsPerHost: 2 * clientsPerNode}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	for i := range 2 * clientsPerNode {
		addr, tl := victimAddr, &viaVictim
		if i%2 == 1 {
			addr, tl = survivorAddr, &viaSurvivor
		}
		wg.Go(func() {
			for j := range maxRequests {
				select {
				case <-stop:
					return
				default:
				}
				sentAfterKill := killed.Load()
				completed, connected := streamOnce(client, addr, fmt.Sprintf("client %d request %d", i, j))
				switch {
				case completed:
					tl.ok.Add(1)
				case !connected || sentAfterKill:
					// Refused, or reset on a kept-alive connection to the
					// dead node: not in flight at the kill, so not lost.
					tl.refused.Add(1)
					return // its node is gone: a client would go elsewhere
				default:
					tl.lost.Add(1)
					if !killed.Load() {
						lostBeforeKill.Add(1)
					}
				}
			}
		})
	}
	eventually(t, "load runs through both nodes", func() error {
		if viaVictim.ok.Load() < 20 || viaSurvivor.ok.Load() < 20 {
			return fmt.Errorf("completed %d and %d", viaVictim.ok.Load(), viaSurvivor.ok.Load())
		}
		return nil
	})
	// kill -9, as far as one process can: the proxy's connections are cut
	// at once, then the node stops without a leave.
	killed.Store(true)
	victim.proxy.srv.Close()
	if err := victim.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	c.nodes[0] = nil
	okAtKill := viaSurvivor.ok.Load()
	eventually(t, "the survivor keeps serving", func() error {
		if viaSurvivor.ok.Load() < okAtKill+40 {
			return fmt.Errorf("completed %d since the kill", viaSurvivor.ok.Load()-okAtKill)
		}
		return nil
	})
	close(stop)
	wg.Wait()

	t.Logf("through the killed node: %d completed, %d lost, %d refused; through the survivor: %d completed, %d lost",
		viaVictim.ok.Load(), viaVictim.lost.Load(), viaVictim.refused.Load(), viaSurvivor.ok.Load(), viaSurvivor.lost.Load())
	if n := viaSurvivor.lost.Load() + viaSurvivor.refused.Load(); n != 0 {
		t.Errorf("%d requests through the surviving node failed", n)
	}
	if n := lostBeforeKill.Load(); n != 0 {
		t.Errorf("%d requests failed before the kill", n)
	}
	// Each client has one request in flight at a time: at most that many
	// are lost to the kill.
	if n := viaVictim.lost.Load(); n > clientsPerNode {
		t.Errorf("%d requests through the killed node lost, more than the %d in flight", n, clientsPerNode)
	}
	eventually(t, "the dead node's in-flight counts stop counting", func() error {
		for _, w := range []string{"e1", "e2"} {
			if got := survivor.proxyLoad(w); got != 0 {
				return fmt.Errorf("%s: load %d", w, got)
			}
		}
		return nil
	})
}

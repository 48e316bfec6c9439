//go:build linux

package faults

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// attackCluster is the cluster of the resource attacks: N = 5, lan, on
// loopback (the attacks need no partition), with extra flags.
func attackCluster(t *testing.T, extra ...string) *cluster {
	bin := need(t, modeShort)
	return newCluster(t, bin, clusterOpts{n: 5, profile: "lan", extra: extra})
}

// TestOversizedFrameHeaders: 300 connections that each send a channel
// byte and a frame header claiming 16 MiB - 1 bytes, then fall silent, must
// cost the node memory in proportion to the bytes sent, not to the
// claims (issue 10, item 2: 2.16 GB of heap).
func TestOversizedFrameHeaders(t *testing.T) {
	channels := []byte("D")
	if suite.mode == modeFull {
		channels = []byte("DSA")
	}
	for _, ch := range channels {
		t.Run(string(ch), func(t *testing.T) {
			// Without the heap floor, so that the heap measures what the
			// node holds rather than garbage the floor lets pile up to
			// 64 MiB (item 4 is tested apart, with the defaults).
			c := attackCluster(t, "--heap-floor-bytes", "0")
			target := c.agents[0]
			base, err := target.heapBytes()
			if err != nil {
				t.Fatal(err)
			}
			baseRSS, _ := rssBytes(target.pid)
			// The bound: what 300 strangers who sent 7 bytes each may cost,
			// generously (a goroutine and a small buffer each, doubled by
			// GOGC=100). The attack stops early past twice the bound, to
			// spare the machine the 2 GB of the bug.
			const conns = 300
			const bound = 32 << 20
			header := maxFrameHeader(ch)
			stop := make(chan struct{})
			peak := sampleMem(target, 100*time.Millisecond, stop)
			opened, stopped := 0, false
			for opened < conns && !stopped {
				cs, err := holdConns(t, target.dial(), target.gossip, 25, header)
				opened += len(cs)
				if err != nil {
					t.Logf("connection %d: %v (the node may refuse)", opened, err)
				}
				if h, err := target.heapBytes(); err == nil && h-base > 2*bound {
					stopped = true
				}
			}
			// Give the node time to read the headers it accepted; the
			// sampler records the peak meanwhile.
			hold(2 * time.Second)
			close(stop)
			p := <-peak
			if p.err != nil && p.samples == 0 {
				t.Fatal(p.err)
			}
			sent := opened * len(header)
			figure(t, "%d connections with a %q frame header of 16 MiB - 1 (%d bytes sent): heap %s -> peak %s, RSS %s -> peak %s",
				opened, ch, sent, mib(base), mib(p.heap), mib(baseRSS), mib(p.rss))
			if stopped {
				t.Errorf("item 2: heap grew past %s after %d connections (%d bytes sent); attack stopped early", mib(2*bound), opened, sent)
			} else if p.heap-base > bound {
				t.Errorf("item 2: heap grew by %s for %d bytes sent by strangers, want at most %s", mib(p.heap-base), sent, mib(bound))
			}
			// The node keeps serving its members.
			if _, err := c.waitWhole(c.agents, 30*time.Second); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestIdleConnections: 200 connections that send nothing must not lock
// members out: a delta too large for a packet still reaches the node
// (over a D stream or anti-entropy) and a join through it succeeds within
// 8 s (issue 10, item 3).
func TestIdleConnections(t *testing.T) {
	bin := need(t, modeShort)
	c := attackCluster(t)
	target := c.agents[0]
	cs, err := holdConns(t, target.dial(), target.gossip, 200, nil)
	if err != nil {
		t.Logf("opened %d idle connections: %v (the node may refuse)", len(cs), err)
	}
	// Let the idle connections take whatever slots they take.
	hold(500 * time.Millisecond)

	// A value over the packet budget travels over a stream.
	big := strings.Repeat("x", 8<<10)
	if err := c.agents[1].put("idle", "big", big); err != nil {
		t.Fatal(err)
	}
	took, err := poll(10*time.Second, func() error {
		got, err := target.list("idle")
		if err != nil {
			return err
		}
		if got["big"] != big {
			return fmt.Errorf("%s lacks the 8 KB value written on %s", target.name, c.agents[1].name)
		}
		return nil
	})
	if err != nil {
		t.Errorf("item 3: with %d idle connections open: %v", len(cs), err)
	} else {
		figure(t, "with %d idle connections: an 8 KB write reached the node in %.2f s", len(cs), took.Seconds())
	}

	joiner := &agent{t: t, bin: bin, name: "joiner", profile: "lan", bind: "127.0.0.1:0"}
	start := time.Now()
	if err := joiner.tryStart(8*time.Second, target.gossip); err != nil {
		t.Errorf("item 3: join through a node holding %d idle connections: %v; the joiner said: %s",
			len(cs), firstLine(err), lastLine(joiner.stderr.String()))
	} else {
		figure(t, "with %d idle connections: joined through the node in %.2f s", len(cs), time.Since(start).Seconds())
	}
}

// lastLine returns the last non-empty line of s.
func lastLine(s string) string {
	s = strings.TrimRight(s, "\n")
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return s
}

// firstLine returns the first line of err.
func firstLine(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}

// TestHeapUnderPuts: with default settings, many PUTs of a 20 KB value to
// one key and rejected 50 MB bodies must leave the heap and the resident
// size near the heap floor plus the state, as README promises (issue 10,
// item 4: 2.58 GB of heap after 20,000 PUTs).
func TestHeapUnderPuts(t *testing.T) {
	bin := need(t, modeShort)
	puts, bodies := 20000, 5
	if suite.mode == modeFull {
		bodies = 20
	}
	c := newCluster(t, bin, clusterOpts{n: 1, profile: "lan"})
	a := c.agents[0]
	// README: "a resident size of roughly the floor plus the state"; the
	// floor is 64 MiB by default and the state here is one 20 KB value.
	const floor = 64 << 20
	const heapBound, rssBound = 2 * floor, 3 * floor
	stop := make(chan struct{})
	peak := sampleMem(a, 250*time.Millisecond, stop)
	value := strings.Repeat("v", 20<<10)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	const workers = 4
	for w := range workers {
		wg.Go(func() {
			for i := w; i < puts; i += workers {
				if err := a.put("soak", "one", value[:len(value)-i%7]); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("PUTs: %v", errs[0])
	}
	refused := 0
	for range bodies {
		code, err := hugeBody(a, 50<<20)
		if err != nil {
			t.Fatal(err)
		}
		if code == http.StatusRequestEntityTooLarge || code == 0 {
			refused++
		} else {
			t.Errorf("a 50 MB body got status %d, want 413", code)
		}
	}
	close(stop)
	p := <-peak
	if p.samples == 0 {
		t.Fatal(p.err)
	}
	figure(t, "%d PUTs of 20 KB to one key and %d refused 50 MB bodies: peak heap %s, peak RSS %s (%d samples)",
		puts, refused, mib(p.heap), mib(p.rss), p.samples)
	if p.heap > heapBound {
		t.Errorf("item 4: peak heap %s, want at most %s (the default floor of 64 MiB plus slack)", mib(p.heap), mib(heapBound))
	}
	if p.rss > rssBound {
		t.Errorf("item 4: peak RSS %s, want at most %s", mib(p.rss), mib(rssBound))
	}
}

// TestHostileConnections: UDP garbage to the gossip port, TCP garbage to
// the gossip and API ports, idle connections to the API and half-open
// ones (a first byte or a request head, then FIN) to both, while the
// cluster must stay whole with no suspicion, and count the garbage (issue
// 10, "What held": 10 s of garbage UDP).
func TestHostileConnections(t *testing.T) {
	c := attackCluster(t)
	target := c.agents[0]
	rng := rand.New(rand.NewPCG(1, 2))
	d := 5 * time.Second
	if suite.mode == modeFull {
		d = 10 * time.Second
	}
	before, err := target.metrics()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := holdConns(t, target.dial(), target.api, 50, nil); err != nil {
		t.Logf("idle API connections: %v", err)
	}
	if err := halfOpen(t, target.dial(), target.gossip, 20, []byte("S")); err != nil {
		t.Logf("half-open gossip connections: %v", err)
	}
	if err := halfOpen(t, target.dial(), target.api, 20, []byte("PUT /v1/kv/x/y HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n{")); err != nil {
		t.Logf("half-open API connections: %v", err)
	}
	var wg sync.WaitGroup
	var udpSent int
	var udpErr error
	wg.Go(func() {
		udpSent, udpErr = udpGarbage(target.dial(), target.gossip, 1000, d, rand.New(rand.NewPCG(3, 4)))
	})
	tcpBytes, err := tcpGarbage(target.dial(), target.gossip, 200, rng)
	if err != nil {
		t.Errorf("TCP garbage to gossip: %v", err)
	}
	apiBytes, err := tcpGarbage(target.dial(), target.api, 100, rng)
	if err != nil {
		t.Errorf("TCP garbage to the API: %v", err)
	}
	// Watch for suspicion while the UDP garbage flows.
	var suspected []string
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		for _, o := range c.agents {
			ms, err := o.members()
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range ms {
				if m.State != "alive" {
					suspected = append(suspected, fmt.Sprintf("%s sees %s %s", o.name, m.Name, m.State))
				}
			}
		}
		hold(200 * time.Millisecond)
	}
	wg.Wait()
	if udpErr != nil {
		t.Errorf("UDP garbage: %v", udpErr)
	}
	after, err := target.metrics()
	if err != nil {
		t.Fatal(err)
	}
	bad := sum(after, "meshnode_swim_packets_bad_total") - sum(before, "meshnode_swim_packets_bad_total")
	figure(t, "%d garbage datagrams, %d bytes of TCP garbage to gossip, %d to the API: %.0f counted bad, %d suspicions",
		udpSent, tcpBytes, apiBytes, bad, len(suspected))
	if len(suspected) > 0 {
		t.Errorf("false suspicion under garbage: %s", strings.Join(suspected, "; "))
	}
	if bad == 0 {
		t.Errorf("%d garbage datagrams, meshnode_swim_packets_bad_total did not move", udpSent)
	}
	if _, err := c.waitWhole(c.agents, 30*time.Second); err != nil {
		t.Error(err)
	}
}

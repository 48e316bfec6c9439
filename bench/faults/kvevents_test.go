//go:build linux

package faults

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The engine KV event scenarios (issue 12's claims on real processes):
// `meshnode engine` processes publish their prefix caches' events, agents
// subscribe (one per engine), and the index every agent holds is compared
// with what the engines cache: the test keeps a replica of each engine's
// LRU cache (package engine's Cache, fed the same prompts in the same
// order, checked against the engine's GET /stats), and asks every agent to
// route every prompt sent.

// kvVariants runs f for each fleet shape of the mode: 4 agents with the
// local profile in short mode (fast failure detection keeps scenarios 1-3
// within about a minute); 3 and 5 agents with the lan and local profiles,
// suite.runs times each, in full mode.
func kvVariants(t *testing.T, m mode, f func(t *testing.T, bin string, v variant)) {
	bin := need(t, m)
	profiles, ns := []string{"local"}, []int{4}
	if suite.mode == modeFull {
		profiles, ns = []string{"lan", "local"}, []int{3, 5}
	}
	for _, p := range profiles {
		for _, n := range ns {
			for r := range suite.runs {
				v := variant{profile: p, n: n, run: r + 1}
				t.Run(v.String(), func(t *testing.T) { f(t, bin, v) })
			}
		}
	}
}

// sendPrompts sends prompts from..to-1 (kvPrompt) to engine e, in order.
func sendPrompts(t *testing.T, e *engineProc, i, from, to int) {
	t.Helper()
	for j := from; j < to; j++ {
		if err := e.complete(kvPrompt(i, j)); err != nil {
			t.Fatal(err)
		}
	}
}

// TestKVEventsRouting: exactly one agent subscribes per engine, and
// prompts the engines ran become routable on every agent, to the engine
// that caches them, with sources ["events"] (issue 12, item 1 and the
// done-when).
func TestKVEventsRouting(t *testing.T) {
	kvVariants(t, modeShort, func(t *testing.T, bin string, v variant) {
		f := newKVFleet(t, bin, kvFleetOpts{agents: v.n, profile: v.profile, engines: 3, blocks: 256})
		subs, _, err := f.waitSubscribed(f.c.agents, 30*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		for i, e := range f.engines {
			sendPrompts(t, e, i, 0, 6)
		}
		f.checkReplicas()
		took, checked, err := f.waitView(f.c.agents, nil, 30*time.Second)
		if err != nil {
			t.Fatalf("item 1: engines' caches routable on every agent: %v", err)
		}
		others := 0
		for _, e := range f.engines {
			others += len(f.c.except(subs[e.name]))
		}
		figure(t, "3 engines, %d agents (%s): every prompt routable on every agent %.2f s after the last completion; %d blocks checked, %d routes on agents not subscribed to the engine",
			v.n, v.profile, took.Seconds(), checked, others*6)
	})
}

// TestKVEventsEvictClear: an engine's evictions and a reset of its prefix
// cache are reflected on every agent (issue 12, item 3 and the done-when).
func TestKVEventsEvictClear(t *testing.T) {
	kvVariants(t, modeShort, func(t *testing.T, bin string, v variant) {
		// 32 blocks: eight prompts of four blocks.
		f := newKVFleet(t, bin, kvFleetOpts{agents: v.n, profile: v.profile, engines: 2, blocks: 32})
		for i, e := range f.engines {
			sendPrompts(t, e, i, 0, 6)
		}
		if _, _, err := f.waitView(f.c.agents, nil, 30*time.Second); err != nil {
			t.Fatal(err)
		}
		e0 := f.engines[0]
		sendPrompts(t, e0, 0, 6, 20)
		f.checkReplicas()
		evicted := 0
		for _, p := range e0.prompts {
			if e0.depth(p) < len(p)/kvBlockTokens {
				evicted++
			}
		}
		if evicted == 0 {
			t.Fatalf("20 prompts of 4 blocks into a cache of 32 evicted nothing: the scenario tests nothing")
		}
		took, checked, err := f.waitView(f.c.agents, nil, 30*time.Second)
		if err != nil {
			t.Fatalf("item 3: evictions reflected everywhere: %v", err)
		}
		figure(t, "eviction (%s, %d agents): %d of 20 prompts evicted in part or whole, reflected on every agent in %.2f s, %d blocks checked",
			v.profile, v.n, evicted, took.Seconds(), checked)
		if err := e0.resetCache(); err != nil {
			t.Fatal(err)
		}
		f.checkReplicas()
		took, checked, err = f.waitView(f.c.agents, nil, 30*time.Second)
		if err != nil {
			t.Fatalf("item 3: reset_prefix_cache reflected everywhere: %v", err)
		}
		figure(t, "reset_prefix_cache (%s, %d agents): reflected on every agent in %.2f s, %d blocks checked",
			v.profile, v.n, took.Seconds(), checked)
	})
}

// loadResult is what kvLoad did: prompts sent, and the first error.
type loadResult struct {
	sent int
	err  error
}

// kvLoad sends new prompts to one engine, one at a time, at most one per
// every, until stop is closed or max prompts; it reports on done. It owns
// the engine's replica until then.
func kvLoad(e *engineProc, i, from, max int, every time.Duration, stop <-chan struct{}) <-chan loadResult {
	done := make(chan loadResult, 1)
	go func() {
		tick := time.NewTicker(every)
		defer tick.Stop()
		sent := 0
		for ; sent < max; sent++ {
			select {
			case <-stop:
				done <- loadResult{sent, nil}
				return
			case <-tick.C:
			}
			if err := e.complete(kvPrompt(i, from+sent)); err != nil {
				done <- loadResult{sent, err}
				return
			}
		}
		done <- loadResult{sent, nil}
	}()
	return done
}

// TestKVEventsKillSubscriber: kill -9 of the agent subscribed to an
// engine while the engine keeps publishing: another agent subscribes
// within the failure-detection time, replays what it missed, and every
// survivor ends with exactly what the engine caches (issue 12, item 1 and
// the done-when: no event the engine can replay is lost).
func TestKVEventsKillSubscriber(t *testing.T) {
	kvVariants(t, modeShort, func(t *testing.T, bin string, v variant) {
		// 128 blocks: the load below evicts while no one subscribes, so the
		// replay must carry removals as well as stores.
		f := newKVFleet(t, bin, kvFleetOpts{agents: v.n, profile: v.profile, engines: 2, blocks: 128})
		for i, e := range f.engines {
			sendPrompts(t, e, i, 0, 6)
		}
		if _, _, err := f.waitView(f.c.agents, nil, 30*time.Second); err != nil {
			t.Fatal(err)
		}
		subs, _, err := f.waitSubscribed(f.c.agents, 30*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		e0 := f.engines[0]
		victim := subs[e0.name]
		rest := f.c.except(victim)
		stop := make(chan struct{})
		stopped := false
		defer func() {
			if !stopped {
				close(stop)
			}
		}()
		load := kvLoad(e0, 0, 6, 2000, 25*time.Millisecond, stop)
		// The engine publishes for a moment under the old subscriber first.
		hold(500 * time.Millisecond)
		killed := time.Now()
		stored0, evicted0 := e0.stored.Load(), e0.evicted.Load()
		victim.kill9()
		pt := timesOf(v.profile)
		bound := pt.suspicionMax(v.n) + 5*pt.probe + 2*time.Second
		newSubs, _, err := f.waitSubscribed(rest, bound+20*time.Second)
		handover := time.Since(killed)
		stored, evicted := e0.stored.Load()-stored0, e0.evicted.Load()-evicted0
		close(stop)
		stopped = true
		res := <-load
		if err != nil {
			t.Fatalf("item 1: a survivor streams the engine after the kill: %v", err)
		}
		if res.err != nil {
			t.Fatal(res.err)
		}
		f.checkReplicas()
		_, checked, err := f.waitView(rest, nil, 60*time.Second)
		caughtUp := time.Since(killed)
		if err != nil {
			t.Fatalf("done-when: survivors hold what the engine caches after the handover: %v", err)
		}
		heir := newSubs[e0.name]
		m, err := heir.metrics()
		if err != nil {
			t.Fatal(err)
		}
		replays := m[`meshnode_kvevents_replays_total{result="ok"}`]
		figure(t, "kill -9 of the subscriber (%s, %d agents): %s streams the engine %.2f s after the kill, every survivor holds the engine's cache %.2f s after it; between kill and handover the engine stored %d blocks and evicted %d (%d prompts in the scenario); %d blocks checked, %g replays on the new subscriber",
			v.profile, v.n, heir.name, handover.Seconds(), caughtUp.Seconds(), stored, evicted, res.sent, checked, replays)
		if stored == 0 {
			t.Errorf("the engine stored nothing between the kill and the handover: the scenario tests no replay")
		}
		if replays < 1 {
			t.Errorf("the new subscriber replayed nothing: what the engine published between the kill and the handover was not replayed")
		}
		if overTarget(t, handover, bound, "subscription handover") {
			t.Errorf("item 1: handover after %.2f s, more than the failure-detection time (%v)", handover.Seconds(), bound)
		}
	})
}

// TestKVEventsEngineStop: an engine stopped (SIGSTOP) past --kv-grace has
// its event-sourced pages dropped on every agent; once it continues, they
// come back (issue 12, item 4).
func TestKVEventsEngineStop(t *testing.T) {
	kvVariants(t, modeFull, func(t *testing.T, bin string, v variant) {
		const grace = 2 * time.Second
		f := newKVFleet(t, bin, kvFleetOpts{agents: v.n, profile: v.profile, engines: 2, blocks: 256,
			extra: []string{"--kv-grace", grace.String()}})
		for i, e := range f.engines {
			sendPrompts(t, e, i, 0, 6)
		}
		if _, _, err := f.waitView(f.c.agents, nil, 30*time.Second); err != nil {
			t.Fatal(err)
		}
		e0 := f.engines[0]
		e0.signal(syscall.SIGSTOP)
		stopped := true
		defer func() {
			if stopped {
				e0.signal(syscall.SIGCONT)
			}
		}()
		others := func(e *engineProc) bool { return e != e0 }
		took, checked, err := f.waitView(f.c.agents, others, grace+30*time.Second)
		if err != nil {
			t.Errorf("item 4: the stopped engine's pages dropped everywhere past the grace period (%v): %v", grace, err)
		} else {
			figure(t, "SIGSTOP of an engine (%s, %d agents, --kv-grace %v): its pages dropped on every agent %.2f s after the stop, %d blocks checked",
				v.profile, v.n, grace, took.Seconds(), checked)
		}
		e0.signal(syscall.SIGCONT)
		stopped = false
		took, checked, err = f.waitView(f.c.agents, nil, 30*time.Second)
		if err != nil {
			t.Fatalf("item 4: the engine's pages back everywhere after SIGCONT: %v", err)
		}
		figure(t, "SIGCONT (%s, %d agents): the engine's pages back on every agent %.2f s after it, %d blocks checked",
			v.profile, v.n, took.Seconds(), checked)
	})
}

// TestKVEventsHostileEndpoint: workers whose KV event endpoint is hostile
// (garbage, a ZMTP frame header of 2^62 bytes, one of 16 MiB - 1 bytes
// and then silence) cost their subscriber bounded memory and counted
// errors, never its life, and the real engine's events still route
// (issue 12, item 2; issue 10, "untrusted bytes are bounded").
func TestKVEventsHostileEndpoint(t *testing.T) {
	kvVariants(t, modeFull, func(t *testing.T, bin string, v variant) {
		f := newKVFleet(t, bin, kvFleetOpts{agents: v.n, profile: v.profile, engines: 1, blocks: 256})
		base := map[string]float64{}
		baseHeap := map[string]float64{}
		for _, a := range f.c.agents {
			r, err := rssBytes(a.pid)
			if err != nil {
				t.Fatal(err)
			}
			h, err := a.heapBytes()
			if err != nil {
				t.Fatal(err)
			}
			base[a.name], baseHeap[a.name] = r, h
		}
		stop := make(chan struct{})
		var peaks []<-chan memPeak
		for _, a := range f.c.agents {
			peaks = append(peaks, sampleMem(a, 100*time.Millisecond, stop))
		}
		var hs []*hostileEndpoint
		for _, k := range []hostileKind{hostileGarbage, hostileHugeHeader, hostileCapHeader} {
			h := startHostile(t, k)
			hs = append(hs, h)
			f.putWorker("hostile-"+k.String(), "http://127.0.0.1:9", h.endpoint(), "")
		}
		// Every hostile endpoint is tried, and tried again after it failed
		// (the silent one holds its subscriber's connection: once is all).
		_, err := poll(60*time.Second, func() error {
			for _, h := range hs {
				want := 3
				if h.kind == hostileCapHeader {
					want = 1
				}
				if n := h.accepted(); n < want {
					return fmt.Errorf("%s endpoint: %d connections, want %d or more", h.kind, n, want)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatalf("subscribers retry hostile endpoints: %v", err)
		}
		// The attack lasts a while: a scenario duration, not a wait.
		hold(10 * time.Second)
		e0 := f.engines[0]
		sendPrompts(t, e0, 0, 0, 6)
		f.checkReplicas()
		if _, _, err := f.waitView(f.c.agents, nil, 30*time.Second); err != nil {
			t.Errorf("the real engine's events route beside hostile endpoints: %v", err)
		}
		close(stop)
		// Each hostile worker's subscriber must count what went wrong: one
		// error per connection that ended (the silent one's is still open).
		owner := map[string]string{}
		ss, _, err := f.c.agents[0].kvStatus()
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range ss {
			if len(s.Owners) == 1 {
				owner[s.Worker] = s.Owners[0]
			}
		}
		wantErrs := map[string]int{}
		var conns []string
		for _, h := range hs {
			conns = append(conns, fmt.Sprintf("%s %d (subscriber %s)", h.kind, h.accepted(), owner["hostile-"+h.kind.String()]))
			if h.kind != hostileCapHeader {
				wantErrs[owner["hostile-"+h.kind.String()]] += h.accepted() - 1
			}
		}
		figure(t, "hostile KV event endpoints (%s, %d agents): connections served: %s", v.profile, v.n, strings.Join(conns, ", "))
		for i, a := range f.c.agents {
			p := <-peaks[i]
			if p.err != nil {
				t.Errorf("%s: sampling memory: %v", a.name, p.err)
			}
			select {
			case <-a.done:
				t.Fatalf("%s exited under hostile KV event endpoints; stderr:\n%s", a.name, a.stderr.tail(4000))
			default:
			}
			m, err := a.metrics()
			if err != nil {
				t.Fatal(err)
			}
			ce, de := m["meshnode_kvevents_connect_errors_total"], m["meshnode_kvevents_decode_errors_total"]
			figure(t, "hostile KV event endpoints (%s, %d agents): %s heap %s -> peak %s, RSS %s -> peak %s (%d samples); %g connect errors, %g decode errors",
				v.profile, v.n, a.name, mib(baseHeap[a.name]), mib(p.heap), mib(base[a.name]), mib(p.rss), p.samples, ce, de)
			// An agent's heap grows by about 22 MiB in its first seconds
			// whatever it does; a subscriber may allocate one frame up to
			// kvevents.MaxFrameBytes (16 MiB) per connection it reads.
			const heapBound, rssBound = 64 << 20, 96 << 20
			if p.heap-baseHeap[a.name] > heapBound {
				t.Errorf("%s: heap grew by %s under hostile endpoints, want at most %s", a.name, mib(p.heap-baseHeap[a.name]), mib(heapBound))
			}
			if p.rss-base[a.name] > rssBound {
				t.Errorf("%s: RSS grew by %s under hostile endpoints, want at most %s", a.name, mib(p.rss-base[a.name]), mib(rssBound))
			}
			if w := wantErrs[a.name]; ce+de < float64(w) {
				t.Errorf("%s: %g connect and decode errors counted, want at least %d: one per failed connection to the hostile endpoints it subscribes to", a.name, ce+de, w)
			}
		}
	})
}

// TestKVEventsSilentEndpoint: a KV event endpoint that accepts the
// connection and never answers (a stopped engine, whose kernel completes
// the TCP handshake) must not hold its subscriber forever: the attempt is
// given up and retried, and counted, and the subscriber still shuts down
// promptly on SIGTERM (issue 12, items 1 and 4).
func TestKVEventsSilentEndpoint(t *testing.T) {
	kvVariants(t, modeFull, func(t *testing.T, bin string, v variant) {
		f := newKVFleet(t, bin, kvFleetOpts{agents: v.n, profile: v.profile, engines: 1, blocks: 256,
			extra: []string{"--kv-grace", "2s"}})
		h := startHostile(t, hostileSilent)
		const id = "hostile-silent"
		f.putWorker(id, "http://127.0.0.1:9", h.endpoint(), "")
		if _, err := poll(30*time.Second, func() error {
			if h.accepted() == 0 {
				return fmt.Errorf("no connection to the silent endpoint")
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		var sub *agent
		ss, _, err := f.c.agents[0].kvStatus()
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range ss {
			if s.Worker == id && len(s.Owners) == 1 {
				for _, a := range f.c.agents {
					if a.name == s.Owners[0] {
						sub = a
					}
				}
			}
		}
		if sub == nil {
			t.Fatalf("no single subscriber of %s in %+v", id, ss)
		}
		// A handshake that never completes is given up within the grace
		// period plus the longest backoff, and the endpoint tried again.
		const within = 2*time.Second + 5*time.Second + 10*time.Second
		took, err := poll(within, func() error {
			if n := h.accepted(); n < 2 {
				return fmt.Errorf("the silent endpoint has had %d connection", n)
			}
			return nil
		})
		if err != nil {
			t.Errorf("items 1 and 4: a subscription attempt to an endpoint that never answers is never given up: %v", err)
		} else {
			figure(t, "silent KV event endpoint (%s, %d agents): tried again %.2f s after the first connection", v.profile, v.n, took.Seconds())
		}
		m, err := sub.metrics()
		if err != nil {
			t.Fatal(err)
		}
		if ce := m["meshnode_kvevents_connect_errors_total"]; ce < 1 {
			t.Errorf("%s: %g connect errors counted for an endpoint that never answered", sub.name, ce)
		}
		// The control: an agent not stuck on the silent endpoint.
		ctl := f.c.except(sub)[0]
		start := time.Now()
		ctl.signal(syscall.SIGTERM)
		ctl.reap(60 * time.Second)
		figure(t, "silent KV event endpoint (%s, %d agents): an agent not subscribed to it exits %.2f s after SIGTERM", v.profile, v.n, time.Since(start).Seconds())
		start = time.Now()
		sub.signal(syscall.SIGTERM)
		select {
		case <-sub.done:
			sub.exited = true
			figure(t, "silent KV event endpoint (%s, %d agents): its subscriber exits %.2f s after SIGTERM", v.profile, v.n, time.Since(start).Seconds())
		case <-time.After(60 * time.Second):
			t.Errorf("%s: still running 60 s after SIGTERM while subscribed to a silent endpoint", sub.name)
		}
		// A leave takes a fraction of a second (TestLeave, and the control
		// above); the agent then waits up to 10 s for its goroutines.
		if d := time.Since(start); d > 5*time.Second && sub.exited {
			t.Errorf("%s: exited %.1f s after SIGTERM, want within 5 s: a subscription stuck on a silent endpoint holds up the shutdown", sub.name, d.Seconds())
		}
	})
}

// TestKVEventsEngineCut: an engine unreachable past --kv-grace (its event
// and replay endpoints cut: connections closed, new ones reset) has its
// event-sourced pages dropped on every agent; once reachable again, with
// its cache intact, its pages come back from replay (issue 12, item 4).
func TestKVEventsEngineCut(t *testing.T) {
	kvVariants(t, modeFull, func(t *testing.T, bin string, v variant) {
		const grace = 2 * time.Second
		f := newKVFleet(t, bin, kvFleetOpts{agents: v.n, profile: v.profile, engines: 2, blocks: 256, proxied: 1,
			extra: []string{"--kv-grace", grace.String()}})
		for i, e := range f.engines {
			sendPrompts(t, e, i, 0, 6)
		}
		if _, _, err := f.waitView(f.c.agents, nil, 30*time.Second); err != nil {
			t.Fatal(err)
		}
		e0 := f.engines[0]
		for _, p := range f.proxies[0] {
			p.setCut(true)
		}
		others := func(e *engineProc) bool { return e != e0 }
		took, checked, err := f.waitView(f.c.agents, others, grace+30*time.Second)
		if err != nil {
			t.Fatalf("item 4: the unreachable engine's pages dropped everywhere past the grace period (%v): %v", grace, err)
		}
		figure(t, "engine unreachable (%s, %d agents, --kv-grace %v): its pages dropped on every agent %.2f s after the cut, %d blocks checked",
			v.profile, v.n, grace, took.Seconds(), checked)
		// The drop comes with the first failed dial past the grace period;
		// dials are at most 5 s apart (the subscription's longest backoff).
		if bound := grace + 5*time.Second; took > bound {
			t.Errorf("item 4: pages dropped %.2f s after the cut, want within the grace period plus the longest backoff (%v)", took.Seconds(), bound)
		}
		for _, p := range f.proxies[0] {
			p.setCut(false)
		}
		took, checked, err = f.waitView(f.c.agents, nil, 30*time.Second)
		if err != nil {
			t.Fatalf("item 4: the engine's pages back everywhere once it is reachable again: %v", err)
		}
		figure(t, "engine reachable again (%s, %d agents): its pages back on every agent %.2f s after the heal, %d blocks checked",
			v.profile, v.n, took.Seconds(), checked)
	})
}

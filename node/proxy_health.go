package node

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
)

// healthBook is the proxy's view of which workers answer: passive (the
// outcome of proxied requests) and, optionally, active (GET /health). It
// is local to the node: every proxy judges the workers it reaches, and a
// worker one node cannot reach may serve another. Time is an argument, so
// that tests step it. Safe for concurrent use.
type healthBook struct {
	mu sync.Mutex
	m  map[string]*workerHealth
	// failures consecutive failures take a worker out for base, doubled
	// at each failure after it came back (trips), capped at maxOut.
	failures     int
	base, maxOut time.Duration
}

type workerHealth struct {
	fails int       // consecutive failures since the last success
	trips int       // times taken out since the last success
	until time.Time // out of routing until then
}

func newHealthBook(failures int, base, maxOut time.Duration) *healthBook {
	return &healthBook{m: map[string]*workerHealth{}, failures: failures, base: base, maxOut: maxOut}
}

// out reports whether worker is out of routing at now.
func (h *healthBook) out(worker string, now time.Time) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	wh := h.m[worker]
	return wh != nil && now.Before(wh.until)
}

// fail records a failed request on worker and reports whether it took the
// worker out. A worker that came back from a backoff goes out again at its
// first failure, for twice as long.
func (h *healthBook) fail(worker string, now time.Time) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	wh := h.m[worker]
	if wh == nil {
		wh = &workerHealth{}
		h.m[worker] = wh
	}
	if now.Before(wh.until) {
		return false // already out: a request that was in flight
	}
	wh.fails++
	if wh.fails < h.failures && wh.trips == 0 {
		return false
	}
	h.tripLocked(wh, now)
	return true
}

// trip takes worker out at once (a failed active check).
func (h *healthBook) trip(worker string, now time.Time) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	wh := h.m[worker]
	if wh == nil {
		wh = &workerHealth{}
		h.m[worker] = wh
	}
	if now.Before(wh.until) {
		return false
	}
	h.tripLocked(wh, now)
	return true
}

func (h *healthBook) tripLocked(wh *workerHealth, now time.Time) {
	d := h.base << min(wh.trips, 30)
	if d > h.maxOut || d <= 0 {
		d = h.maxOut
	}
	wh.trips++
	wh.fails = 0
	wh.until = now.Add(d)
}

// ok records a success: the worker is in routing again with a clean slate.
func (h *healthBook) ok(worker string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.m[worker]; ok {
		delete(h.m, worker)
	}
}

// healthLoop runs the active checks every interval until the node stops.
func (p *proxy) healthLoop(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			p.checkHealth(ctx, interval)
		}
	}
}

// maxHealthChecks bounds the checks in flight at once.
const maxHealthChecks = 16

// checkHealth runs one round of active checks: GET {url}/health of every
// worker whose record says healthy, each within timeout. A failed check
// takes the worker out; a passed one brings it back.
func (p *proxy) checkHealth(ctx context.Context, timeout time.Duration) {
	ws, _ := p.n.st.workers("", "", 1<<20)
	var g errgroup.Group
	g.SetLimit(maxHealthChecks)
	for _, wk := range ws {
		if wk.Health != "healthy" {
			continue
		}
		g.Go(func() error {
			cctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			req, err := http.NewRequestWithContext(cctx, http.MethodGet, strings.TrimSuffix(wk.URL, "/")+"/health", nil)
			ok := false
			if err == nil {
				if resp, err := p.client.Do(req); err == nil {
					ok = resp.StatusCode/100 == 2
					resp.Body.Close()
				}
			}
			if ctx.Err() != nil {
				return nil // the node stops: judge no one
			}
			if ok {
				p.health.ok(wk.ID)
				p.n.met.proxyHealthChecks.WithLabelValues("passed").Inc()
				return nil
			}
			p.n.met.proxyHealthChecks.WithLabelValues("failed").Inc()
			if p.health.trip(wk.ID, p.now()) {
				p.n.met.proxyEjections.Inc()
				p.n.log.Warn("proxy: worker failed its health check; out of routing", "worker", wk.ID)
			}
			return nil
		})
	}
	_ = g.Wait()
}

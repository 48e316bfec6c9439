package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"time"

	"github.com/meshnode/meshnode/node"
	"github.com/meshnode/meshnode/radix"
)

// Demo bounds and pacing.
const (
	demoMaxNodes = 32
	// demoSetupTimeout bounds the start, the convergence and the first
	// replication of the setup; generous for a busy machine.
	demoSetupTimeout = 60 * time.Second
	demoTick         = 20 * time.Millisecond
	demoModel        = "demo-llm"
	demoLimit        = "demo-requests"
	demoLimitN       = 60
	demoLimitWindow  = 2 * time.Second
	demoWorkers      = 4
	// demoWriteTimeout gives up on a write that has not reached every node.
	demoWriteTimeout = 10 * time.Second
)

// errInterrupted reports a signal during the setup.
var errInterrupted = errors.New("interrupted")

// demoNode is one node of the demo cluster, called in-process through its
// HTTP handler (its API listener is off).
type demoNode struct {
	name    string
	n       *node.Node
	up      bool
	prevGen uint64
	allowed int
	denied  int
	view    string // last membership summary shown
}

// call sends one API request to the node's handler.
func (d *demoNode) call(method, path string, body, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		rd = bytes.NewReader(b)
	}
	req := httptest.NewRequest(method, path, rd)
	rec := httptest.NewRecorder()
	d.n.Handler().ServeHTTP(rec, req)
	if rec.Code/100 != 2 {
		return rec.Code, responseError(rec.Code, rec.Body.Bytes())
	}
	if out != nil {
		if err := json.Unmarshal(rec.Body.Bytes(), out); err != nil {
			return rec.Code, err
		}
	}
	return rec.Code, nil
}

// demo is the state of a running demo; one goroutine drives it.
type demo struct {
	nodes    []*demoNode
	start    time.Time // of the show, after the setup
	duration time.Duration
	rng      *rand.Rand
	view     *demoView

	// a write under measurement
	writeKey   string
	writeFrom  string
	writeStart time.Time
	writeSeq   int
	writes     []time.Duration
	writeLost  int

	prompts   *promptGen
	routes    int
	hits      int // routes decided by the cache-hit rule
	pagesAll  float64
	pagesHit  float64
	rules     map[string]int
	recent    []string
	noWorker  int
	windows   map[time.Time]int // allowed takes by window reset time
	lastReset time.Time

	inflight   []inflight // simulated requests on the workers
	loads      []int      // last published load of each worker
	lastLoads  time.Time
	setupStart time.Time

	killedAt, backAt time.Time
	events           []string
}

// inflight is a routed request a worker is still serving (simulated).
type inflight struct {
	worker int
	done   time.Time
}

func runDemo(args []string, stdout, stderr io.Writer, sig <-chan os.Signal) int {
	fs := newFlagSet("demo", stderr)
	n := fs.Int("nodes", 5, fmt.Sprintf("nodes in the cluster (2 to %d)", demoMaxNodes))
	dur := fs.Duration("duration", 20*time.Second, "how long the show runs after the cluster is up")
	plain := fs.Bool("plain", false, "print plain lines even on a terminal")
	proxy := fs.Bool("proxy", false, "the routing tier instead: conversations streamed through every node's proxy to emulated engines")
	pos, err := parseInterleaved(fs, args)
	switch {
	case err != nil:
	case len(pos) > 0:
		err = badUsage("takes flags only")
	case *n < 2 || *n > demoMaxNodes:
		err = badUsage("--nodes %d: want 2 to %d", *n, demoMaxNodes)
	case *dur < time.Second:
		err = badUsage("--duration %v: at least 1s", *dur)
	}
	if err != nil {
		return usageError(stderr, "demo", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if *proxy {
		if err := runProxyDemo(ctx, *n, *dur, stdout, sig); err != nil {
			fmt.Fprintf(stderr, "meshnode demo: %v\n", err)
			return 1
		}
		return 0
	}
	d := &demo{duration: *dur, rng: rand.New(rand.NewPCG(1, 2)), rules: map[string]int{}, windows: map[time.Time]int{},
		view: newDemoView(stdout, isTerminal(stdout) && !*plain)}
	d.prompts = newPromptGen(d.rng)
	defer d.stopAll()
	err = d.run(ctx, *n, sig)
	if errors.Is(err, errInterrupted) {
		fmt.Fprintln(stderr, "meshnode demo: interrupted before the show started")
		return 0
	}
	if err != nil {
		d.view.flush()
		fmt.Fprintf(stderr, "meshnode demo: %v\n", err)
		return 1
	}
	return 0
}

// run starts the cluster and runs the show.
func (d *demo) run(ctx context.Context, n int, sig <-chan os.Signal) error {
	d.setupStart = time.Now()
	d.view.line(0, fmt.Sprintf("starting %d nodes on 127.0.0.1 (local profile, free ports)", n))
	for i := range n {
		dn := &demoNode{name: fmt.Sprintf("node-%d", i+1)}
		d.nodes = append(d.nodes, dn)
		if err := d.startNode(ctx, dn); err != nil {
			return err
		}
	}
	deadline := time.Now().Add(demoSetupTimeout)
	if err := d.waitFor(deadline, sig, "every node to see every node alive", d.converged); err != nil {
		return err
	}
	d.view.line(time.Since(d.setupStart), fmt.Sprintf("cluster converged: every node sees %d alive", n))

	// Workers and the rate limit are written on node-1 and must reach the
	// others before they can route or take through them.
	first := d.nodes[0]
	for w := range demoWorkers {
		if err := d.putWorker(w, 0); err != nil {
			return fmt.Errorf("register worker: %w", err)
		}
	}
	if _, err := first.call(http.MethodPut, "/v1/limits/"+demoLimit, map[string]any{"limit": demoLimitN, "window": demoLimitWindow.String()}, nil); err != nil {
		return fmt.Errorf("define rate limit: %w", err)
	}
	if err := d.waitFor(deadline, sig, "workers and the limit to reach every node", d.setupReplicated); err != nil {
		return err
	}
	d.view.line(time.Since(d.setupStart), fmt.Sprintf("registered %d workers for model %s and limit %s (%d per %v) on node-1; replicated to all",
		demoWorkers, demoModel, demoLimit, demoLimitN, demoLimitWindow))

	d.view.line(time.Since(d.setupStart), "show starts: the time below counts from here")
	d.start = time.Now()
	kill, back := d.start.Add(d.duration*4/10), d.start.Add(d.duration*7/10)
	victim := d.nodes[len(d.nodes)-1]
	tick := time.NewTicker(demoTick)
	defer tick.Stop()
	lastWrite := time.Time{}
	for now := range tick.C {
		select {
		case <-sig:
			d.view.line(now.Sub(d.start), "interrupted")
			d.view.summary(d)
			return nil
		default:
		}
		el := now.Sub(d.start)
		// The show ends after the restart even when a slow machine has
		// delayed the kill and the restart past the duration.
		if el >= d.duration && !d.backAt.IsZero() {
			break
		}
		switch {
		case d.killedAt.IsZero() && !now.Before(kill):
			d.killNode(ctx, victim)
			d.killedAt = now
			d.event(el, fmt.Sprintf("%s killed without leaving (a crash): the others suspect it, then find it dead", victim.name))
		case !d.killedAt.IsZero() && d.backAt.IsZero() && !now.Before(back):
			if err := d.startNode(ctx, victim); err != nil {
				return err
			}
			d.backAt = now
			d.event(el, fmt.Sprintf("%s restarted: generation %d replaces %d", victim.name, victim.n.Generation(), victim.prevGen))
		}
		if d.writeKey == "" && now.Sub(lastWrite) >= d.duration/10 {
			d.beginWrite(now)
			lastWrite = now
		}
		d.checkWrite(now)
		d.publishLoads(now)
		d.route(now)
		d.take()
		d.watchMembership(el)
		d.view.update(d, el)
	}
	d.view.summary(d)
	return nil
}

// startNode creates, starts and (but for node-1) joins a node.
func (d *demo) startNode(ctx context.Context, dn *demoNode) error {
	nd, err := node.New(node.Config{Name: dn.name, BindAddr: "127.0.0.1:0", APIAddr: "off", Profile: "local",
		AntiEntropyInterval: node.Duration(500 * time.Millisecond), Version: version})
	if err != nil {
		return fmt.Errorf("%s: %w", dn.name, err)
	}
	if err := nd.Start(); err != nil {
		return fmt.Errorf("%s: %w", dn.name, err)
	}
	dn.n, dn.up = nd, true
	if dn != d.nodes[0] {
		if err := nd.Join(d.nodes[0].n.Addr().String()); err != nil {
			return fmt.Errorf("%s: %w", dn.name, err)
		}
	}
	return nil
}

// killNode stops a node without a leave.
func (d *demo) killNode(ctx context.Context, dn *demoNode) {
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_ = dn.n.Shutdown(sctx)
	dn.up, dn.prevGen, dn.view = false, dn.n.Generation(), ""
}

// stopAll shuts every running node down.
func (d *demo) stopAll() {
	for _, dn := range d.nodes {
		if dn.n != nil && dn.up {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			_ = dn.n.Shutdown(ctx)
			cancel()
			dn.up = false
		}
	}
}

// waitFor polls cond every tick until it holds, the deadline passes or a
// signal arrives.
func (d *demo) waitFor(deadline time.Time, sig <-chan os.Signal, what string, cond func() error) error {
	tick := time.NewTicker(demoTick)
	defer tick.Stop()
	for {
		err := cond()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("waiting for %s: %w", what, err)
		}
		select {
		case <-tick.C:
		case <-sig:
			return errInterrupted
		}
	}
}

// members returns a node's member list.
func (dn *demoNode) members() ([]node.MemberInfo, error) {
	var page struct {
		Members []node.MemberInfo `json:"members"`
	}
	_, err := dn.call(http.MethodGet, "/v1/members", nil, &page)
	return page.Members, err
}

// aliveMembers returns how many members a node sees alive.
func (dn *demoNode) aliveMembers() (int, error) {
	ms, err := dn.members()
	alive := 0
	for _, m := range ms {
		if m.State == "alive" {
			alive++
		}
	}
	return alive, err
}

func (d *demo) converged() error {
	for _, dn := range d.nodes {
		alive, err := dn.aliveMembers()
		if err != nil {
			return err
		}
		if alive != len(d.nodes) {
			return fmt.Errorf("%s sees %d of %d alive", dn.name, alive, len(d.nodes))
		}
	}
	return nil
}

func (d *demo) setupReplicated() error {
	for _, dn := range d.nodes {
		var ws struct {
			Workers []node.Worker `json:"workers"`
		}
		if _, err := dn.call(http.MethodGet, "/v1/workers?model="+demoModel, nil, &ws); err != nil {
			return err
		}
		if len(ws.Workers) != demoWorkers {
			return fmt.Errorf("%s has %d of %d workers", dn.name, len(ws.Workers), demoWorkers)
		}
		if _, err := dn.call(http.MethodGet, "/v1/limits/"+demoLimit, nil, nil); err != nil {
			return fmt.Errorf("%s: %w", dn.name, err)
		}
	}
	return nil
}

// up returns the running nodes.
func (d *demo) up() []*demoNode {
	var out []*demoNode
	for _, dn := range d.nodes {
		if dn.up {
			out = append(out, dn)
		}
	}
	return out
}

// putWorker registers worker w (0-based) with a load, through node-1 (the
// gateway replica that reports the workers' loads).
func (d *demo) putWorker(w, load int) error {
	body := map[string]any{"url": fmt.Sprintf("http://10.0.0.%d:8000", w+1), "model": demoModel, "load": load}
	_, err := d.nodes[0].call(http.MethodPut, fmt.Sprintf("/v1/workers/worker-%d", w+1), body, nil)
	return err
}

// publishLoads reports the workers' simulated loads (requests in flight)
// every 250ms, as a gateway would.
func (d *demo) publishLoads(now time.Time) {
	if now.Sub(d.lastLoads) < 250*time.Millisecond || !d.nodes[0].up {
		return
	}
	d.lastLoads = now
	loads := make([]int, demoWorkers)
	kept := d.inflight[:0]
	for _, r := range d.inflight {
		if r.done.After(now) {
			kept = append(kept, r)
			loads[r.worker]++
		}
	}
	d.inflight = kept
	d.loads = loads
	for w, l := range loads {
		_ = d.putWorker(w, l)
	}
}

// load returns the last published load of a worker.
func (d *demo) load(worker string) int {
	var w int
	if _, err := fmt.Sscanf(worker, "worker-%d", &w); err == nil && w >= 1 && w <= len(d.loads) {
		return d.loads[w-1]
	}
	return 0
}

// pollWrite is how often a write under measurement is looked for on every
// node during its first second.
const pollWrite = time.Millisecond

// beginWrite writes a key on a random running node and times it until
// every running node has it: closely for a second, then at each tick.
func (d *demo) beginWrite(now time.Time) {
	up := d.up()
	from := up[d.rng.IntN(len(up))]
	d.writeSeq++
	key := fmt.Sprintf("write-%d", d.writeSeq)
	if _, err := from.call(http.MethodPut, "/v1/kv/demo/"+key, map[string]string{"value": now.Format(time.RFC3339Nano)}, nil); err != nil {
		return
	}
	d.writeKey, d.writeFrom, d.writeStart = key, from.name, time.Now()
	t := time.NewTicker(pollWrite)
	defer t.Stop()
	for d.writeKey != "" && time.Since(d.writeStart) < time.Second {
		<-t.C
		d.checkWrite(time.Now())
	}
}

// checkWrite ends the measurement once every running node has the key.
func (d *demo) checkWrite(now time.Time) {
	if d.writeKey == "" {
		return
	}
	for _, dn := range d.up() {
		if code, _ := dn.call(http.MethodGet, "/v1/kv/demo/"+d.writeKey, nil, nil); code != http.StatusOK {
			if now.Sub(d.writeStart) > demoWriteTimeout {
				d.writeLost++
				d.writeKey = ""
			}
			return
		}
	}
	took := time.Since(d.writeStart)
	d.writes = append(d.writes, took)
	d.view.line(now.Sub(d.start), fmt.Sprintf("%s written on %s reached all %d running nodes in %v", d.writeKey, d.writeFrom, len(d.up()), took.Round(100*time.Microsecond)))
	d.writeKey = ""
}

// route routes the next prompt through a random running node, recording
// the choice so that the conversation's next turn finds its prefix.
func (d *demo) route(now time.Time) {
	up := d.up()
	via := up[d.rng.IntN(len(up))]
	p := d.prompts.next()
	var r node.RouteResult
	if _, err := via.call(http.MethodPost, "/v1/route", map[string]any{"model": demoModel, "text": p, "record": true}, &r); err != nil {
		d.noWorker++
		return
	}
	d.routes++
	d.rules[r.Rule]++
	total := float64(len(p) / 64)
	d.pagesAll += total
	d.pagesHit += float64(r.MatchedPages)
	if r.Rule == radix.RuleCacheHit.String() {
		d.hits++
	}
	var w int
	if _, err := fmt.Sscanf(r.Worker, "worker-%d", &w); err == nil && w >= 1 && w <= demoWorkers {
		// The simulated request takes 0.5 to 3 seconds.
		d.inflight = append(d.inflight, inflight{w - 1, now.Add(500*time.Millisecond + time.Duration(d.rng.Int64N(int64(2500*time.Millisecond))))})
	}
	d.recent = append(d.recent, fmt.Sprintf("via %s -> %s  %-12s %2d of %2.0f pages matched, load %d", via.name, r.Worker, r.Rule, r.MatchedPages, total, d.load(r.Worker)))
	if len(d.recent) > 4 {
		d.recent = d.recent[1:]
	}
}

// take takes one token of the limit on a random running node.
func (d *demo) take() {
	up := d.up()
	on := up[d.rng.IntN(len(up))]
	var r node.TakeResult
	if _, err := on.call(http.MethodPost, "/v1/limits/"+demoLimit+"/take", map[string]int{"n": 1}, &r); err != nil {
		return
	}
	if r.Allowed {
		on.allowed++
		d.windows[r.Reset]++
	} else {
		on.denied++
	}
	if r.Reset.After(d.lastReset) {
		d.lastReset = r.Reset
	}
}

// watchMembership reports each change of a node's view of the others.
func (d *demo) watchMembership(el time.Duration) {
	for _, dn := range d.up() {
		v := dn.viewSummary()
		if v != dn.view {
			if dn.view != "" {
				d.view.line(el, fmt.Sprintf("%s now sees %s", dn.name, v))
			}
			dn.view = v
		}
	}
}

// viewSummary says which members a node sees in which state.
func (dn *demoNode) viewSummary() string {
	ms, err := dn.members()
	if err != nil {
		return "error: " + err.Error()
	}
	alive := 0
	var other []string
	for _, m := range ms {
		if m.State == "alive" {
			alive++
			continue
		}
		other = append(other, m.Name+" "+m.State)
	}
	s := fmt.Sprintf("%d alive", alive)
	if len(other) > 0 {
		s += ", " + strings.Join(other, ", ")
	}
	return s
}

func (d *demo) event(el time.Duration, s string) {
	d.events = append(d.events, fmt.Sprintf("%7.2fs  %s", el.Seconds(), s))
	d.view.line(el, s)
}

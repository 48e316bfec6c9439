//go:build linux

package faults

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

// kvSub is one entry of /v1/status's kv_events.
type kvSub struct {
	Worker     string   `json:"worker"`
	Owners     []string `json:"owners"`
	Subscribed bool     `json:"subscribed"`
	State      string   `json:"state"`
	LastSeq    int64    `json:"last_seq"`
	Error      string   `json:"error"`
}

// indexStats is the part of /v1/status's index the scenarios compare.
type indexStats struct {
	HolderPages   int64 `json:"holder_pages"`
	EngineEntries int64 `json:"engine_entries"`
	EventWorkers  int   `json:"event_workers"`
}

// kvStatus returns the agent's kv_events and index statistics.
func (a *agent) kvStatus() ([]kvSub, indexStats, error) {
	var s struct {
		Index    indexStats `json:"index"`
		KVEvents []kvSub    `json:"kv_events"`
	}
	err := a.getJSON("/v1/status", &s)
	return s.KVEvents, s.Index, err
}

// routeAnswer is the part of /v1/route's answer the scenarios check.
type routeAnswer struct {
	Worker       string   `json:"worker"`
	MatchedPages int      `json:"matched_pages"`
	Sources      []string `json:"sources"`
}

// route asks the agent to route a token prompt of kvModel.
func (a *agent) route(prompt []uint32) (routeAnswer, error) {
	b, _ := json.Marshal(map[string]any{"model": kvModel, "tokens": prompt})
	resp, err := a.client.Post(a.base()+"/v1/route", "application/json", strings.NewReader(string(b)))
	if err != nil {
		return routeAnswer{}, fmt.Errorf("%s: %w", a.name, err)
	}
	defer resp.Body.Close()
	var r routeAnswer
	if resp.StatusCode != 200 {
		return r, fmt.Errorf("%s: POST /v1/route: %s", a.name, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return r, fmt.Errorf("%s: POST /v1/route: %w", a.name, err)
	}
	return r, nil
}

// kvFleet is emulated engines, each registered as a worker with its KV
// event endpoints, and a cluster of agents that subscribe to them.
type kvFleet struct {
	t       *testing.T
	bin     string
	c       *cluster
	engines []*engineProc
	// proxies are the cut-able proxies of the first engines' event and
	// replay endpoints (kvFleetOpts.proxied), two per engine.
	proxies [][2]*cutProxy
}

// kvFleetOpts describes a fleet.
type kvFleetOpts struct {
	agents  int
	profile string
	engines int
	blocks  int      // each engine's cache, in blocks
	extra   []string // more agent flags
	// proxied engines (the first ones) are registered through proxies of
	// their event and replay endpoints that the test can cut.
	proxied int
}

// newKVFleet starts the engines and the agents, registers every engine
// through the CLI (`meshnode workers put ... --kv-events ... --kv-replay
// ...`) on the first agent, and waits until every agent sees every worker
// and exactly one agent streams each engine's events.
func newKVFleet(t *testing.T, bin string, o kvFleetOpts) *kvFleet {
	t.Helper()
	f := &kvFleet{t: t, bin: bin}
	for i := range o.engines {
		f.engines = append(f.engines, startEngine(t, bin, fmt.Sprintf("e%d", i), o.blocks))
	}
	f.c = newCluster(t, bin, clusterOpts{n: o.agents, profile: o.profile, extra: o.extra})
	for i, e := range f.engines {
		events, replay := e.events, e.replay
		if i < o.proxied {
			pe := startCutProxy(t, strings.TrimPrefix(e.events, "tcp://"))
			pr := startCutProxy(t, strings.TrimPrefix(e.replay, "tcp://"))
			f.proxies = append(f.proxies, [2]*cutProxy{pe, pr})
			events, replay = pe.endpoint(), pr.endpoint()
		}
		f.putWorker(e.name, "http://"+e.http, events, replay)
	}
	if _, _, err := f.waitSubscribed(f.c.agents, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	return f
}

// putWorker registers a worker of kvModel with its KV event endpoints
// through the CLI, on the first live agent.
func (f *kvFleet) putWorker(id, url, events, replay string) {
	f.t.Helper()
	args := []string{"workers", "put", id, "--url", url, "--model", kvModel, "--kv-events", events}
	if replay != "" {
		args = append(args, "--kv-replay", replay)
	}
	var a *agent
	for _, x := range f.c.agents {
		if !x.exited {
			a = x
			break
		}
	}
	cmd := exec.Command(f.bin, args...)
	cmd.Env = append(cmd.Environ(), "MESHNODE_API_ADDR="+a.api)
	if out, err := cmd.CombinedOutput(); err != nil {
		f.t.Fatalf("meshnode %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// subscribers returns, per worker, the agents of view that follow its
// stream, after checking that every agent of view names the same single
// owner and that the owner's stream is streaming. It fails while that is
// not so.
func subscribers(view []*agent, workers []string) (map[string]*agent, error) {
	subs := map[string]*agent{}
	owners := map[string][]string{}
	for _, a := range view {
		ss, _, err := a.kvStatus()
		if err != nil {
			return nil, err
		}
		for _, w := range workers {
			i := slices.IndexFunc(ss, func(s kvSub) bool { return s.Worker == w })
			if i < 0 {
				return nil, fmt.Errorf("%s does not list worker %s under kv_events", a.name, w)
			}
			s := ss[i]
			if len(s.Owners) != 1 {
				return nil, fmt.Errorf("%s: worker %s has owners %v, want one", a.name, w, s.Owners)
			}
			if prev, ok := owners[w]; ok && !slices.Equal(prev, s.Owners) {
				return nil, fmt.Errorf("worker %s: owners %v on one agent, %v on %s", w, prev, s.Owners, a.name)
			}
			owners[w] = s.Owners
			if s.Subscribed != (s.Owners[0] == a.name) {
				return nil, fmt.Errorf("%s: worker %s owned by %s, subscribed %t", a.name, w, s.Owners[0], s.Subscribed)
			}
			if s.Subscribed {
				if s.State != "streaming" {
					return nil, fmt.Errorf("%s: worker %s: state %q (%s), want streaming", a.name, w, s.State, s.Error)
				}
				subs[w] = a
			}
		}
	}
	for _, w := range workers {
		if subs[w] == nil {
			return nil, fmt.Errorf("worker %s: owner %v is not among the agents asked", w, owners[w])
		}
	}
	return subs, nil
}

// engineNames returns the worker IDs of the engines.
func (f *kvFleet) engineNames() []string {
	var s []string
	for _, e := range f.engines {
		s = append(s, e.name)
	}
	return s
}

// waitSubscribed polls until exactly one agent of view streams each
// engine (see subscribers).
func (f *kvFleet) waitSubscribed(view []*agent, within time.Duration) (map[string]*agent, time.Duration, error) {
	var subs map[string]*agent
	took, err := poll(within, func() error {
		var err error
		subs, err = subscribers(view, f.engineNames())
		return err
	})
	if err != nil {
		return nil, took, fmt.Errorf("one streaming subscriber per engine: %w", err)
	}
	return subs, took, nil
}

// want is what a route for prompt must answer when the index holds
// exactly what the engines cache: the engine whose cache holds at least
// half the prompt's pages, with that many pages from events; otherwise
// (least loaded) any worker, with the pages that one caches.
type want struct {
	engine string // "" when no engine holds half the prompt
	depth  map[string]int
	pages  int
}

// wantFor computes the route answer expected for prompt from the test's
// replicas of the engines' caches (holding may leave engines out: their
// pages are expected to be dropped).
func (f *kvFleet) wantFor(prompt []uint32, holding func(*engineProc) bool) want {
	w := want{depth: map[string]int{}, pages: len(prompt) / kvBlockTokens}
	for _, e := range f.engines {
		d := 0
		if holding == nil || holding(e) {
			d = e.depth(prompt)
		}
		w.depth[e.name] = d
		if 2*d >= w.pages && d > 0 {
			w.engine = e.name
		}
	}
	return w
}

// check compares one route answer with w.
func (w want) check(r routeAnswer) error {
	if w.engine != "" && r.Worker != w.engine {
		return fmt.Errorf("routed to %s (%d pages), want %s which caches %d of %d", r.Worker, r.MatchedPages, w.engine, w.depth[w.engine], w.pages)
	}
	if d := w.depth[r.Worker]; r.MatchedPages != d {
		return fmt.Errorf("routed to %s with %d pages matched, the engine caches %d of %d", r.Worker, r.MatchedPages, d, w.pages)
	}
	wantSrc := []string(nil)
	if r.MatchedPages > 0 {
		wantSrc = []string{"events"}
	}
	if !slices.Equal(r.Sources, wantSrc) {
		return fmt.Errorf("routed to %s with %d pages from %v, want from %v", r.Worker, r.MatchedPages, r.Sources, wantSrc)
	}
	return nil
}

// viewErr checks that every agent of view holds what the engines cache
// (holding may leave engines out: their pages must be gone): the index's
// engine entries and holder pages equal the engines' cached blocks, and
// every prompt sent to any engine routes as the caches say. It returns
// the first difference and the number of blocks checked.
func (f *kvFleet) viewErr(view []*agent, holding func(*engineProc) bool) (int, error) {
	blocks := 0
	for _, e := range f.engines {
		if holding == nil || holding(e) {
			blocks += e.cache.Len()
		}
	}
	checked := 0
	for _, a := range view {
		_, ix, err := a.kvStatus()
		if err != nil {
			return checked, err
		}
		if ix.EngineEntries != int64(blocks) || ix.HolderPages != int64(blocks) {
			return checked, fmt.Errorf("%s: index holds %d engine entries and %d holder pages, the engines cache %d blocks",
				a.name, ix.EngineEntries, ix.HolderPages, blocks)
		}
		checked += blocks
		for _, e := range f.engines {
			for j, p := range e.prompts {
				r, err := a.route(p)
				if err != nil {
					return checked, err
				}
				if err := f.wantFor(p, holding).check(r); err != nil {
					return checked, fmt.Errorf("%s: prompt %d of %s: %w", a.name, j, e.name, err)
				}
			}
		}
	}
	return checked, nil
}

// waitView polls until viewErr finds no difference, and returns the time
// it took and the blocks checked.
func (f *kvFleet) waitView(view []*agent, holding func(*engineProc) bool, within time.Duration) (time.Duration, int, error) {
	checked := 0
	took, err := poll(within, func() error {
		var err error
		checked, err = f.viewErr(view, holding)
		return err
	})
	return took, checked, err
}

// checkReplicas checks every engine's cached block count against the
// test's replica.
func (f *kvFleet) checkReplicas() {
	f.t.Helper()
	for _, e := range f.engines {
		if err := e.checkReplica(); err != nil {
			f.t.Fatal(err)
		}
	}
}

package node

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/meshnode/meshnode/radix"
	"github.com/meshnode/meshnode/swim"
)

// Bounds of worker records and prompts.
const (
	maxLabels       = 64
	maxLabelBytes   = 256
	maxURLBytes     = 2048
	maxPromptTokens = 1 << 18
	maxRingOwners   = 16
)

// validID checks a worker ID or limit name (ValidName).
func validID(w http.ResponseWriter, what, id string) bool {
	return validNameHTTP(w, what, id, radix.MaxNameBytes)
}

// workerRequest is the body of PUT /v1/workers/{id}.
type workerRequest struct {
	URL    string            `json:"url"`
	Model  string            `json:"model"`
	Health string            `json:"health"`
	Load   int               `json:"load"`
	Labels map[string]string `json:"labels"`
	// KVEvents is the engine's KV event stream; absent when the worker
	// publishes none.
	KVEvents *KVEvents `json:"kv_events"`
}

func (req workerRequest) validate() string {
	if u, err := url.Parse(req.URL); req.URL == "" || len(req.URL) > maxURLBytes || err != nil || u.Scheme == "" || u.Host == "" {
		return fmt.Sprintf("url %q: want an absolute URL of at most %d bytes", req.URL, maxURLBytes)
	}
	if err := ValidName("model", req.Model, radix.MaxNameBytes); err != nil {
		return err.Error()
	}
	switch req.Health {
	case "", "healthy", "unhealthy", "draining":
	default:
		return fmt.Sprintf("health %q: want healthy, unhealthy or draining", req.Health)
	}
	if req.Load < 0 {
		return fmt.Sprintf("load %d: must not be negative", req.Load)
	}
	if len(req.Labels) > maxLabels {
		return fmt.Sprintf("labels: %d, at most %d", len(req.Labels), maxLabels)
	}
	for k, v := range req.Labels {
		if k == "" || len(k) > maxLabelBytes || len(v) > maxLabelBytes {
			return fmt.Sprintf("label %q: keys 1 to %d bytes, values at most %d", k, maxLabelBytes, maxLabelBytes)
		}
		if err := validText("label key", k); err != nil {
			return strings.TrimPrefix(err.Error(), ErrBadRequest.Error()+": ")
		}
		if err := validText(fmt.Sprintf("label %q", k), v); err != nil {
			return strings.TrimPrefix(err.Error(), ErrBadRequest.Error()+": ")
		}
	}
	if req.KVEvents != nil {
		if err := req.KVEvents.Validate(); err != nil {
			return strings.TrimPrefix(err.Error(), ErrBadRequest.Error()+": ")
		}
	}
	return ""
}

func (n *Node) handlePutWorker(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !validID(w, "worker id", id) {
		return
	}
	var req workerRequest
	if !n.decode(w, r, &req, false) {
		return
	}
	if msg := req.validate(); msg != "" {
		writeError(w, http.StatusBadRequest, msg)
		return
	}
	if req.Health == "" {
		req.Health = "healthy"
	}
	wk, err := n.st.putWorker(Worker{ID: id, URL: req.URL, Model: req.Model, Health: req.Health, Load: req.Load, Labels: req.Labels, KVEvents: req.KVEvents}, time.Now())
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, 200, wk)
}

func (n *Node) handleGetWorker(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !validID(w, "worker id", id) {
		return
	}
	setIndex(w, n.st.index(nsWorkers))
	wk, ok := n.st.worker(id)
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no worker %q", id))
		return
	}
	writeJSON(w, 200, wk)
}

func (n *Node) handleDeleteWorker(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !validID(w, "worker id", id) {
		return
	}
	if err := n.st.removeWorker(id, time.Now()); err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, 200, map[string]bool{"removed": true})
}

func (n *Node) handleListWorkers(w http.ResponseWriter, r *http.Request) {
	limit, cursor, ok := n.pageParams(w, r)
	if !ok {
		return
	}
	setIndex(w, n.st.index(nsWorkers))
	ws, next := n.st.workers(r.URL.Query().Get("model"), cursor, limit)
	if ws == nil {
		ws = []Worker{}
	}
	writeJSON(w, 200, map[string]any{"workers": ws, "next_cursor": next})
}

// limitRequest is the body of PUT /v1/limits/{name}.
type limitRequest struct {
	Limit  uint64   `json:"limit"`
	Window Duration `json:"window"`
}

func (n *Node) handlePutLimit(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if !validID(w, "limit name", name) {
		return
	}
	var req limitRequest
	if !n.decode(w, r, &req, false) {
		return
	}
	if req.Limit == 0 {
		writeError(w, http.StatusBadRequest, "limit: must be at least 1")
		return
	}
	if req.Window.D() < time.Millisecond || req.Window.D() > 24*time.Hour {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("window %v: want 1ms to 24h", req.Window.D()))
		return
	}
	if err := n.st.setLimit(name, Limit(req), time.Now()); err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, 200, map[string]any{"name": name, "limit": req.Limit, "window": req.Window})
}

// share is the fraction of a limit this node admits: all of it, unless
// MinorityShare is set and this node is on the minority side.
func (n *Node) share() float64 {
	_, known, maj := n.quorum()
	if !n.cfg.MinorityShare || maj {
		return 1
	}
	alive := 0
	for _, m := range n.members() {
		if m.State == swim.StateAlive {
			alive++
		}
	}
	return float64(alive) / float64(known)
}

func (n *Node) handleGetLimit(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if !validID(w, "limit name", name) {
		return
	}
	l, ok := n.st.limit(name)
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no limit %q", name))
		return
	}
	now := time.Now()
	_, rem, reset, _ := n.st.take(name, 0, l, n.share(), now)
	writeJSON(w, 200, map[string]any{"name": name, "limit": l.Limit, "window": l.Window,
		"used": n.st.usage(name, l, now), "remaining": rem, "reset": reset.UTC(), "share": n.share()})
}

func (n *Node) handleDeleteLimit(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if !validID(w, "limit name", name) {
		return
	}
	if err := n.st.deleteLimit(name, time.Now()); err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, 200, map[string]bool{"deleted": true})
}

func (n *Node) handleListLimits(w http.ResponseWriter, r *http.Request) {
	limit, cursor, ok := n.pageParams(w, r)
	if !ok {
		return
	}
	names, next := n.st.limits(cursor, limit)
	writeJSON(w, 200, map[string]any{"limits": names, "next_cursor": next})
}

// TakeResult is the answer of a rate-limit take.
type TakeResult struct {
	Allowed   bool      `json:"allowed"`
	Remaining uint64    `json:"remaining"`
	Reset     time.Time `json:"reset"`
}

func (n *Node) handleTake(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if !validID(w, "limit name", name) {
		return
	}
	req := struct {
		N uint64 `json:"n"`
	}{N: 1}
	if !n.decode(w, r, &req, true) {
		return
	}
	l, ok := n.st.limit(name)
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no limit %q: define it with PUT /v1/limits/%s", name, name))
		return
	}
	if req.N == 0 || req.N > l.Limit {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("n %d: want 1 to the limit, %d", req.N, l.Limit))
		return
	}
	ok, rem, reset, _ := n.st.take(name, req.N, l, n.share(), time.Now())
	outcome := "denied"
	if ok {
		outcome = "allowed"
	}
	n.met.rateTakes.WithLabelValues(outcome).Inc()
	writeJSON(w, 200, TakeResult{Allowed: ok, Remaining: rem, Reset: reset.UTC()})
}

package node

import (
	"bytes"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/meshnode/meshnode/radix"
)

// promptRequest carries a prompt as tokens or text.
type promptRequest struct {
	Model  string    `json:"model"`
	Worker string    `json:"worker"`
	Tokens tokenList `json:"tokens"`
	Text   *string   `json:"text"`
	Record bool      `json:"record"`
	// LoRA names the LoRA adapter the prompt runs with, as the engine
	// names it in its KV events (lora_name, or "id:<lora_id>" when it
	// gives no name): an adapter's cached blocks are not the base
	// model's, so its prompts hash apart (LoRASeed). Token prompts only.
	LoRA string `json:"lora"`
}

// tokenList is a JSON array of token IDs, parsed without reflection: a
// route request's prompt is most of its bytes.
type tokenList []uint32

// UnmarshalJSON parses an array of integers in [0, 2^32).
func (t *tokenList) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*t = nil
		return nil
	}
	i := skipSpace(b, 0)
	if i == len(b) || b[i] != '[' {
		return fmt.Errorf("tokens: want an array of integers")
	}
	need := min(bytes.Count(b, []byte{','})+1, maxPromptTokens)
	out := (*t)[:0] // reuse the caller's buffer when it is large enough
	if cap(out) < need {
		out = make([]uint32, 0, need)
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == ']' {
		*t = out
		return nil
	}
	for {
		start := i
		var v uint64
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			v = v*10 + uint64(b[i]-'0')
			if v > 1<<32-1 || i-start > 10 {
				return fmt.Errorf("tokens[%d]: above 2^32-1", len(out))
			}
			i++
		}
		if i == start {
			return fmt.Errorf("tokens[%d]: want a non-negative integer", len(out))
		}
		if b[start] == '0' && i-start > 1 {
			// JSON numbers have no leading zeros.
			return fmt.Errorf("tokens[%d]: leading zero", len(out))
		}
		if len(out) == maxPromptTokens {
			return fmt.Errorf("tokens: more than %d", maxPromptTokens)
		}
		out = append(out, uint32(v))
		i = skipSpace(b, i)
		if i == len(b) {
			return fmt.Errorf("tokens: unterminated array")
		}
		if b[i] == ']' {
			break
		}
		if b[i] != ',' {
			return fmt.Errorf("tokens[%d]: want ',' or ']'", len(out))
		}
		i = skipSpace(b, i+1)
	}
	*t = out
	return nil
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// promptScratch holds the buffers of one prompt request, recycled through
// scratchPool: prompts arrive at thousands per second and their tokens and
// pages are garbage once the answer is written.
type promptScratch struct {
	tokens tokenList
	pages  []uint64
	cands  []radix.Candidate
	text   []byte // the proxy's routing text (scanCompletion)
}

var scratchPool = sync.Pool{New: func() any { return new(promptScratch) }}

// pages cuts the prompt into lineage hashes, appending to dst; it writes the
// error itself.
func (n *Node) pages(w http.ResponseWriter, model string, req *promptRequest, dst []uint64) ([]uint64, bool) {
	switch {
	case req.Tokens != nil && req.Text != nil:
		writeError(w, http.StatusBadRequest, `give the prompt as "tokens" or "text", not both`)
	case req.Tokens == nil && req.Text == nil:
		writeError(w, http.StatusBadRequest, `missing prompt: "tokens" or "text"`)
	case len(req.Tokens) > maxPromptTokens:
		writeError(w, http.StatusBadRequest, fmt.Sprintf("tokens: %d, at most %d", len(req.Tokens), maxPromptTokens))
	case req.LoRA != "" && req.Tokens == nil:
		writeError(w, http.StatusBadRequest, `"lora" goes with "tokens": engines report adapters' blocks by token`)
	case req.LoRA != "" && len(req.LoRA) > radix.MaxNameBytes:
		writeError(w, http.StatusBadRequest, fmt.Sprintf("lora: at most %d bytes", radix.MaxNameBytes))
	case req.LoRA != "":
		return radix.AppendTokenPages(dst, LoRASeed(model, req.LoRA), n.st.ix.PageTokens(model), req.Tokens), true
	case req.Tokens != nil:
		return n.st.ix.AppendPages(dst, model, req.Tokens), true
	default:
		return n.st.ix.AppendTextPages(dst, model, []byte(*req.Text)), true
	}
	return nil, false
}

// RouteResult is the answer of POST /v1/route.
type RouteResult struct {
	Worker       string  `json:"worker"`
	URL          string  `json:"url"`
	Rule         string  `json:"rule"`
	MatchedPages int     `json:"matched_pages"`
	MatchRatio   float64 `json:"match_ratio"`
	Recorded     bool    `json:"recorded"`
	// Sources names what the matched pages came from: "events" (the
	// engine's KV events), "pending" (routed here, prefill not yet
	// confirmed by events), "recorded" (routes recorded by gateways).
	// Empty when nothing matched.
	Sources []string `json:"sources"`
	// Pending: the prompt's pages were recorded as pending on the chosen
	// worker (record on a worker that streams KV events), to count until
	// its events confirm them or Config.PendingTimeout passes.
	Pending bool `json:"pending,omitempty"`
}

func (n *Node) handleRoute(w http.ResponseWriter, r *http.Request) {
	sc := scratchPool.Get().(*promptScratch)
	defer scratchPool.Put(sc)
	var req promptRequest
	if !n.decodePrompt(w, r, &req, sc.tokens) {
		return
	}
	if req.Tokens != nil {
		sc.tokens = req.Tokens[:0]
	}
	if req.Model == "" || len(req.Model) > radix.MaxNameBytes || req.Worker != "" {
		writeError(w, http.StatusBadRequest, `want "model" (1 to 255 bytes) and no "worker"`)
		return
	}
	pages, ok := n.pages(w, req.Model, &req, sc.pages[:0])
	if !ok {
		return
	}
	sc.pages = pages[:0]
	res, _, err := n.route(sc, req.Model, pages, req.Record, nil)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, 200, res)
}

// route picks a worker of model for a prompt cut into pages, with the
// cache-aware policy and each worker's load: what it reports plus what
// the proxies of the live members have in flight on it (proxy_load.go).
// /v1/route and the proxy both route through it, so that they stay one policy. skip, when not nil,
// leaves workers out (the proxy's retries and passive health). With
// record, the pages are inserted for the chosen worker: as pending on a
// worker whose engine streams KV events (its events confirm them), as
// recorded otherwise. sc lends the candidates' buffer.
func (n *Node) route(sc *promptScratch, model string, pages []uint64, record bool, skip func(id string) bool) (RouteResult, Worker, error) {
	ws := n.st.modelWorkers(model)
	remote := n.remoteLoads()
	policy := n.routePolicy(model)
	cands := sc.cands[:0]
	for _, wk := range ws {
		if wk.Health == "healthy" && (skip == nil || !skip(wk.ID)) {
			cands = append(cands, radix.Candidate{Worker: wk.ID, Load: wk.Load + n.proxyLoadWith(remote, wk.ID, policy.CostWeight > 0)})
		}
	}
	sc.cands = cands[:0]
	if len(cands) == 0 {
		return RouteResult{}, Worker{}, fmt.Errorf("%w for model %q", ErrNoWorker, model)
	}
	d, err := n.st.ix.RoutePages(pages, cands, policy)
	if err != nil {
		return RouteResult{}, Worker{}, err
	}
	n.met.routes.WithLabelValues(d.Rule.String()).Inc()
	var chosen Worker
	for _, wk := range ws {
		if wk.ID == d.Worker {
			chosen = wk
			break
		}
	}
	res := RouteResult{Worker: d.Worker, URL: chosen.URL, Rule: d.Rule.String(), MatchedPages: d.MatchedPages, MatchRatio: d.MatchRatio,
		Sources: decisionSources(d)}
	if record && len(pages) > 0 {
		pending, err := n.recordRoute(chosen, pages)
		if err != nil {
			return RouteResult{}, Worker{}, err
		}
		res.Pending, res.Recorded = pending, true
	}
	return res, chosen, nil
}

// recordRoute inserts a routed prompt's pages for wk and replicates the
// change: as pending (the result) on a worker whose engine streams KV
// events (its events confirm them), as recorded otherwise. The proxy
// calls it once the worker has answered, never for a worker it retried
// away from: the index has no removal of pages (an insert is a stamped,
// grow-only claim that replicas merge), so a route is recorded only where
// the prompt is served.
func (n *Node) recordRoute(wk Worker, pages []uint64) (pending bool, err error) {
	var delta radix.Delta
	if wk.KVEvents != nil {
		delta, err = n.st.ix.InsertPending(wk.ID, wk.Epoch, indexStamp(time.Now()), pages)
		pending = true
	} else {
		delta, err = n.st.ix.Insert(wk.ID, wk.Epoch, indexStamp(time.Now()), pages)
	}
	if err != nil {
		return false, err
	}
	n.st.addDelta(delta)
	return pending, nil
}

// indexTarget reads a prompt request naming a registered worker.
func (n *Node) indexTarget(w http.ResponseWriter, r *http.Request) (Worker, []uint64, bool) {
	var req promptRequest
	if !n.decodePrompt(w, r, &req, nil) {
		return Worker{}, nil, false
	}
	if req.Model != "" || req.Record {
		writeError(w, http.StatusBadRequest, `want "worker" and a prompt; the model is the worker's`)
		return Worker{}, nil, false
	}
	if !validID(w, "worker", req.Worker) {
		return Worker{}, nil, false
	}
	wk, ok := n.st.worker(req.Worker)
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no worker %q: register it first", req.Worker))
		return Worker{}, nil, false
	}
	pages, ok := n.pages(w, wk.Model, &req, nil)
	if !ok {
		return Worker{}, nil, false
	}
	if len(pages) == 0 {
		writeError(w, http.StatusBadRequest, "prompt shorter than one page")
		return Worker{}, nil, false
	}
	return wk, pages, true
}

func (n *Node) handleInsert(w http.ResponseWriter, r *http.Request) {
	wk, pages, ok := n.indexTarget(w, r)
	if !ok {
		return
	}
	d, err := n.st.ix.Insert(wk.ID, wk.Epoch, indexStamp(time.Now()), pages)
	if err != nil {
		writeErr(w, err)
		return
	}
	n.st.addDelta(d)
	writeJSON(w, 200, map[string]int{"pages": len(pages)})
}

func (n *Node) handleTouch(w http.ResponseWriter, r *http.Request) {
	wk, pages, ok := n.indexTarget(w, r)
	if !ok {
		return
	}
	d, err := n.st.ix.Touch(wk.ID, wk.Epoch, indexStamp(time.Now()), pages[len(pages)-1])
	if err != nil {
		writeErr(w, err)
		return
	}
	n.st.addDelta(d)
	writeJSON(w, 200, map[string]int{"pages": len(pages)})
}

func (n *Node) handleIndexRemove(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !validID(w, "worker id", id) {
		return
	}
	if err := n.st.removeFromIndex(id); err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, 200, map[string]bool{"removed": true})
}

func (n *Node) handleRing(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	key := q.Get("key")
	if key == "" || len(key) > 1024 {
		writeError(w, http.StatusBadRequest, "key: want 1 to 1024 bytes")
		return
	}
	k := 1
	if s := q.Get("n"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 || v > maxRingOwners {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("n %q: want 1 to %d", s, maxRingOwners))
			return
		}
		k = v
	}
	live := n.liveMembers()
	names := make([]string, len(live))
	byName := make(map[string]MemberInfo, len(live))
	for i, m := range live {
		names[i] = m.Name
		byName[m.Name] = memberInfo(m)
	}
	owners := []MemberInfo{}
	for _, o := range Owners(key, names, k) {
		owners = append(owners, byName[o])
	}
	writeJSON(w, 200, map[string]any{"key": key, "owners": owners})
}

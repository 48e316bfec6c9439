package node

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/meshnode/meshnode/radix"
	"github.com/meshnode/meshnode/store"
	"github.com/meshnode/meshnode/swim"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// routes builds the API: JSON under /v1/, plus operations endpoints. Every
// error is a 4xx or 5xx with {"error": "..."}; bodies are bounded by
// Config.MaxRequestBytes and strict (unknown fields are errors); lists take
// limit (at most Config.MaxListItems) and cursor, and return next_cursor
// ("" on the last page). With a token, everything but the probes needs
// "Authorization: Bearer <token>"; with TLSVerifyClients, everything but the
// probes needs a client certificate that the CA signed.
//
//	GET    /livez /readyz /healthz          probes (readyz: joined, first sync done, not leaving;
//	                                        healthz: neither leaving, left nor shut down)
//	GET    /metrics                         Prometheus text (when the Registerer is a Gatherer)
//	       /debug/pprof/...                 profiles
//	GET    /v1/self  /v1/status  /v1/members
//	POST   /v1/join {"seeds":["host:port"]}     POST /v1/leave {"timeout":"5s"} (empty: LeaveTimeout)
//	PUT    /v1/kv/{ns}/{key...} {"value":"..."} GET, DELETE the same path
//	GET    /v1/kv/{ns}?prefix=&limit=&cursor=
//	GET    /v1/watch/{ns}?prefix=&timeout=&index=  long poll, or SSE with Accept: text/event-stream
//	                                        (X-Meshnode-Index on KV reads and watches; Last-Event-ID resumes SSE)
//	PUT    /v1/workers/{id} {"url","model","health","load","labels"}   GET, DELETE the same path
//	PATCH  /v1/workers/{id} {"health","load"} (either or both; the rest is kept)
//	GET    /v1/workers?model=&limit=&cursor=
//	PUT    /v1/limits/{name} {"limit":100,"window":"1s"}  GET (usage), DELETE the same path
//	GET    /v1/limits                       POST /v1/limits/{name}/take {"n":1}
//	POST   /v1/route {"model","tokens"|"text","record"}
//	POST   /v1/index/insert  /v1/index/touch {"worker","tokens"|"text"}
//	DELETE /v1/index/workers/{id}
//	GET    /v1/ring?key=&n=
func (n *Node) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /livez", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, map[string]string{"status": "ok"}) })
	mux.HandleFunc("GET /readyz", n.handleReady)
	mux.HandleFunc("GET /healthz", n.handleHealth)
	if g, ok := n.cfg.Registerer.(prometheus.Gatherer); ok {
		mux.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	}
	// Profiles are read with GET (and HEAD); go tool pprof also POSTs
	// addresses to symbol.
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("POST /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)

	mux.HandleFunc("GET /v1/self", n.handleSelf)
	mux.HandleFunc("GET /v1/members", n.handleMembers)
	mux.HandleFunc("GET /v1/status", n.handleStatus)
	mux.HandleFunc("POST /v1/join", n.handleJoin)
	mux.HandleFunc("POST /v1/leave", n.handleLeave)

	mux.HandleFunc("PUT /v1/kv/{ns}/{key...}", n.handlePut)
	mux.HandleFunc("GET /v1/kv/{ns}/{key...}", n.handleGet)
	mux.HandleFunc("DELETE /v1/kv/{ns}/{key...}", n.handleDelete)
	mux.HandleFunc("GET /v1/kv/{ns}", n.handleList)
	mux.HandleFunc("GET /v1/watch/{ns}", n.handleWatch)

	mux.HandleFunc("PUT /v1/workers/{id}", n.handlePutWorker)
	mux.HandleFunc("PATCH /v1/workers/{id}", n.handlePatchWorker)
	mux.HandleFunc("GET /v1/workers/{id}", n.handleGetWorker)
	mux.HandleFunc("DELETE /v1/workers/{id}", n.handleDeleteWorker)
	mux.HandleFunc("GET /v1/workers", n.handleListWorkers)

	mux.HandleFunc("PUT /v1/limits/{name}", n.handlePutLimit)
	mux.HandleFunc("GET /v1/limits/{name}", n.handleGetLimit)
	mux.HandleFunc("DELETE /v1/limits/{name}", n.handleDeleteLimit)
	mux.HandleFunc("GET /v1/limits", n.handleListLimits)
	mux.HandleFunc("POST /v1/limits/{name}/take", n.handleTake)

	mux.HandleFunc("POST /v1/route", n.handleRoute)
	mux.HandleFunc("POST /v1/index/insert", n.handleInsert)
	mux.HandleFunc("POST /v1/index/touch", n.handleTouch)
	mux.HandleFunc("DELETE /v1/index/workers/{id}", n.handleIndexRemove)
	mux.HandleFunc("GET /v1/ring", n.handleRing)

	mux.HandleFunc("GET /v1/keyring", n.handleListKeys)
	mux.HandleFunc("POST /v1/keyring", n.handleInstallKey)
	mux.HandleFunc("PUT /v1/keyring/plaintext", n.handlePlaintext)
	mux.HandleFunc("PUT /v1/keyring/{id}/primary", n.handleUseKey)
	mux.HandleFunc("DELETE /v1/keyring/{id}", n.handleRemoveKey)

	// Every path without a pattern for the request's method ends here, so
	// that wrong methods and unknown paths get JSON too.
	fallback := notAllowed(mux)
	for _, p := range []string{"/v1/", "/livez", "/readyz", "/healthz", "/metrics", "/debug/pprof/"} {
		mux.Handle(p, fallback)
	}
	return n.middleware(mux)
}

// notAllowed answers a request no pattern takes with its method: 405 with
// an Allow header when other methods would be served, else 404.
func notAllowed(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var allow []string
		for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
			if m == r.Method {
				continue
			}
			r2 := r.Clone(r.Context())
			r2.Method = m
			if _, pat := mux.Handler(r2); pat != "" && pat != r.Pattern {
				allow = append(allow, m)
			}
		}
		if len(allow) == 0 {
			writeError(w, http.StatusNotFound, fmt.Sprintf("no endpoint %s %s", r.Method, r.URL.Path))
			return
		}
		w.Header().Set("Allow", strings.Join(allow, ", "))
		writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed on %s: use %s", r.Method, r.URL.Path, strings.Join(allow, ", ")))
	})
}

// statusWriter records the status code for metrics.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.code == 0 {
		s.code = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.code == 0 {
		s.code = 200
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusWriter) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// middleware checks the client certificate and the bearer token, and
// counts requests by route pattern (a bounded label set: never the path).
func (n *Node) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		switch {
		case open(r.URL.Path):
			next.ServeHTTP(sw, r)
		case n.apiTLS && n.cfg.TLSVerifyClients && (r.TLS == nil || len(r.TLS.VerifiedChains) == 0):
			// The handshake verifies a certificate when one is given, so
			// that the probes work without one; everything else needs it.
			writeError(sw, http.StatusForbidden, "a client certificate signed by the cluster CA is required")
		case n.token != "" && !n.authorized(r):
			writeError(sw, http.StatusUnauthorized, "missing or wrong bearer token")
		case r.Method != http.MethodConnect && !canonicalPath(r.URL.EscapedPath()):
			// Before ServeMux, which would redirect to the cleaned path:
			// a client that follows it writes where it did not mean to.
			writeError(sw, http.StatusBadRequest, fmt.Sprintf("path %q has empty, \".\" or \"..\" segments", r.URL.EscapedPath()))
		default:
			next.ServeHTTP(sw, r)
		}
		route := r.Pattern
		if route == "" {
			route = "unmatched"
		}
		code := sw.code
		if code == 0 {
			code = 200
		}
		n.met.httpRequests.WithLabelValues(route, strconv.Itoa(code/100)+"xx").Inc()
		n.met.httpDuration.WithLabelValues(route).Observe(time.Since(start).Seconds())
	})
}

// open lists the endpoints that need no token: probes must work without
// secrets.
func open(path string) bool { return path == "/livez" || path == "/readyz" || path == "/healthz" }

func (n *Node) authorized(r *http.Request) bool {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && subtle.ConstantTimeCompare([]byte(tok), []byte(n.token)) == 1
}

// apiError is the body of every error response.
type apiError struct {
	Error string `json:"error"`
}

// jsonContentType is shared by every response; net/http does not modify
// header values it is given.
var jsonContentType = []string{"application/json"}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header()["Content-Type"] = jsonContentType
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, apiError{Error: msg})
}

// writeErr maps an error of the node, store or index to a status code.
func writeErr(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	switch {
	case errors.Is(err, ErrNotFound):
		code = http.StatusNotFound
	case errors.Is(err, ErrReserved):
		code = http.StatusForbidden
	case errors.Is(err, ErrBadRequest), errors.Is(err, store.ErrKeyTooLarge), errors.Is(err, store.ErrBadNamespace),
		errors.Is(err, radix.ErrTooManyWorkers):
		code = http.StatusBadRequest
	case errors.Is(err, store.ErrValueTooLarge):
		code = http.StatusRequestEntityTooLarge
	case errors.Is(err, store.ErrStoreFull):
		code = http.StatusInsufficientStorage
	case errors.Is(err, radix.ErrNoCandidates), errors.Is(err, ErrNoWorker):
		code = http.StatusConflict
	case errors.Is(err, ErrClosed):
		code = http.StatusServiceUnavailable
	}
	writeError(w, code, err.Error())
}

// decode reads a JSON body into v: bounded, strict about unknown fields and
// trailing data. It writes the error response itself and reports false.
// An empty body is allowed when emptyOK is set (v keeps its defaults).
func (n *Node) decode(w http.ResponseWriter, r *http.Request, v any, emptyOK bool) bool {
	if n.refuseDeclaredTooLarge(w, r) {
		return false
	}
	r.Body = http.MaxBytesReader(w, r.Body, n.cfg.MaxRequestBytes)
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == io.EOF && emptyOK {
		return true
	}
	if err == nil {
		if dec.More() {
			err = errors.New("trailing data after the JSON value")
		} else if _, e := dec.Token(); e != io.EOF {
			err = errors.New("trailing data after the JSON value")
		}
	}
	if err == nil {
		return true
	}
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body over %d bytes", mbe.Limit))
	case err == io.EOF:
		writeError(w, http.StatusBadRequest, "empty request body, want a JSON object")
	default:
		writeError(w, http.StatusBadRequest, "malformed request: "+err.Error())
	}
	return false
}

// refuseDeclaredTooLarge answers 413 and reports true when r declares a
// body over MaxRequestBytes. Such a body is refused unread: buffering it up
// to the limit only to refuse it cost megabytes per request. The connection
// closes rather than drain what the client still sends.
func (n *Node) refuseDeclaredTooLarge(w http.ResponseWriter, r *http.Request) bool {
	if r.ContentLength <= n.cfg.MaxRequestBytes {
		return false
	}
	w.Header().Set("Connection", "close")
	writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body over %d bytes", n.cfg.MaxRequestBytes))
	return true
}

// pageParams reads limit (bounded by MaxListItems) and cursor.
func (n *Node) pageParams(w http.ResponseWriter, r *http.Request) (limit int, cursor string, ok bool) {
	limit = n.cfg.MaxListItems
	if s := r.URL.Query().Get("limit"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 || v > n.cfg.MaxListItems {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("limit %q: want an integer in [1, %d]", s, n.cfg.MaxListItems))
			return 0, "", false
		}
		limit = v
	}
	return limit, r.URL.Query().Get("cursor"), true
}

func (n *Node) handleReady(w http.ResponseWriter, r *http.Request) {
	ok, why := n.Ready()
	code := http.StatusOK
	if !ok {
		code = http.StatusServiceUnavailable
	}
	_, _, majority := n.quorum()
	writeJSON(w, code, map[string]any{"ready": ok, "reason": why, "majority": majority})
}

// Health reports whether the node is, or can become, a working member:
// false once it is leaving or has left (Leave), or is shut down. Unlike
// Ready it does not wait for a start, a join or a sync, so a node that
// answers false needs a restart (or is on its way out), not patience.
func (n *Node) Health() (bool, string) {
	switch {
	case n.ctx.Err() != nil:
		return false, "shut down"
	case n.leaving.Load():
		return false, "left"
	}
	return true, "ok"
}

func (n *Node) handleHealth(w http.ResponseWriter, r *http.Request) {
	ok, why := n.Health()
	code := http.StatusOK
	if !ok {
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, code, map[string]string{"status": why})
}

// MemberInfo is a member as the API shows it.
type MemberInfo struct {
	Name        string `json:"name"`
	Generation  uint64 `json:"generation"`
	Incarnation uint64 `json:"incarnation"`
	Addr        string `json:"addr"`
	State       string `json:"state"`
}

func memberInfo(m swim.Member) MemberInfo {
	addr := ""
	if m.Addr.IsValid() {
		addr = m.Addr.String()
	}
	return MemberInfo{Name: m.Name, Generation: m.Gen, Incarnation: m.Incarnation, Addr: addr, State: m.State.String()}
}

func (n *Node) handleSelf(w http.ResponseWriter, r *http.Request) {
	v := n.cfg.Version
	if v == "" {
		v = "dev"
	}
	writeJSON(w, 200, struct {
		MemberInfo
		Version string `json:"version"`
	}{memberInfo(n.self()), v})
}

func (n *Node) handleMembers(w http.ResponseWriter, r *http.Request) {
	limit, cursor, ok := n.pageParams(w, r)
	if !ok {
		return
	}
	out := []MemberInfo{}
	next := ""
	for _, m := range n.members() {
		if cursor != "" && m.Name <= cursor {
			continue
		}
		if len(out) == limit {
			next = out[len(out)-1].Name
			break
		}
		out = append(out, memberInfo(m))
	}
	writeJSON(w, 200, map[string]any{"members": out, "next_cursor": next})
}

// storeStats returns the store's statistics under the lock.
func (n *Node) storeStats() store.Stats {
	n.st.mu.Lock()
	defer n.st.mu.Unlock()
	return n.st.store.Stats()
}

// Status is the body of /v1/status.
type Status struct {
	Name        string     `json:"name"`
	Generation  uint64     `json:"generation"`
	ClusterSize int        `json:"cluster_size"`
	KnownSize   int        `json:"known_size"`
	Majority    bool       `json:"majority"`
	Ready       bool       `json:"ready"`
	Reason      string     `json:"reason"`
	Store       StoreStats `json:"store"`
	Index       IndexStats `json:"index"`
	// KVEvents lists the workers that stream engine KV events: which
	// nodes subscribe, and how the streams this node follows go.
	KVEvents []KVSubscription `json:"kv_events"`
}

// StoreStats is store.Stats with the API's JSON names.
type StoreStats struct {
	Keys       int    `json:"keys"`
	Tombstones int    `json:"tombstones"`
	Bytes      int64  `json:"bytes"`
	Held       uint64 `json:"held"`
	Released   uint64 `json:"released"`
	Rejected   uint64 `json:"rejected"`
	Collected  uint64 `json:"collected"`
	Stale      uint64 `json:"stale"`
	Resyncs    uint64 `json:"resyncs"`
	Lagged     uint64 `json:"lagged"`
	Skipped    uint64 `json:"skipped"`
}

// IndexStats is radix.Stats with the API's JSON names.
type IndexStats struct {
	Pages          int64 `json:"pages"`
	HolderPages    int64 `json:"holder_pages"`
	Chains         int   `json:"chains"`
	Workers        int   `json:"workers"`
	Bytes          int64 `json:"bytes"`
	Pending        int   `json:"pending"`
	PendingDropped int64 `json:"pending_dropped"`
	Evicted        int64 `json:"evicted"`

	EventWorkers      int   `json:"event_workers"`
	EngineEntries     int64 `json:"engine_entries"`
	Tombstones        int64 `json:"tombstones"`
	TombstonesDropped int64 `json:"tombstones_dropped"`
	EventBytes        int64 `json:"event_bytes"`
	PendingPages      int64 `json:"pending_pages"`
}

// Status returns what /v1/status reports.
func (n *Node) Status() Status {
	live, known, maj := n.quorum()
	ok, why := n.Ready()
	return Status{Name: n.name, Generation: n.gen, ClusterSize: live, KnownSize: known, Majority: maj,
		Ready: ok, Reason: why, Store: StoreStats(n.storeStats()), Index: IndexStats(n.st.ix.Stats()), KVEvents: n.KVSubscriptions()}
}

func (n *Node) handleStatus(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, 200, n.Status())
}

func (n *Node) handleJoin(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Seeds []string `json:"seeds"`
	}
	if !n.decode(w, r, &req, false) {
		return
	}
	if len(req.Seeds) == 0 || len(req.Seeds) > 64 {
		writeError(w, http.StatusBadRequest, "seeds: want 1 to 64 host:port addresses")
		return
	}
	for _, s := range req.Seeds {
		if err := ValidSeed(s); err != nil {
			writeErr(w, err)
			return
		}
	}
	if err := n.Join(req.Seeds...); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	n.log.Info("join requested through the API", "seeds", req.Seeds, "remote", r.RemoteAddr)
	writeJSON(w, http.StatusAccepted, map[string]any{"joining": req.Seeds})
}

func (n *Node) handleLeave(w http.ResponseWriter, r *http.Request) {
	var raw json.RawMessage
	if !n.decode(w, r, &raw, true) {
		return
	}
	timeout, err := leaveTimeout(raw)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if err := n.Leave(timeout); err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, 200, map[string]bool{"left": true})
}

// leaveTimeout reads the body of POST /v1/leave. An empty body, {} or
// {"timeout": "0s"} mean Config.LeaveTimeout (0); anything but an object
// whose timeout is a duration string up to 5m is refused: a number would
// read as nanoseconds, and null or [] as no body at all.
func leaveTimeout(raw json.RawMessage) (time.Duration, error) {
	if raw == nil {
		return 0, nil
	}
	if raw[0] != '{' {
		return 0, errors.New(`want a JSON object such as {"timeout": "5s"}, or an empty body`)
	}
	var req struct {
		Timeout json.RawMessage `json:"timeout"`
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return 0, fmt.Errorf("malformed request: %w", err)
	}
	if req.Timeout == nil {
		return 0, nil
	}
	bad := fmt.Errorf(`timeout %s: want a duration string up to "5m", such as "5s" ("0s" or none: the configured leave timeout)`, req.Timeout)
	var s string
	if req.Timeout[0] != '"' || json.Unmarshal(req.Timeout, &s) != nil {
		return 0, bad
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 || d > 5*time.Minute {
		return 0, bad
	}
	return d, nil
}

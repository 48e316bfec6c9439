package node

import (
	"bytes"
	"context"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The routing proxy (Config.ProxyAddr) makes every node an OpenAI-compatible
// front for the registered workers:
//
//	POST /v1/chat/completions, POST /v1/completions   routed, forwarded, streamed
//	GET  /v1/models                                   the models of the registered workers
//	GET  /health                                      the node's health (no token needed)
//
// For each request it reads the model and the prompt (tokens when the
// request carries them, the text of the prompt or the messages otherwise),
// picks a worker with n.route (the policy of /v1/route, with the proxies'
// replicated in-flight counts as load, proxy_load.go), then forwards the
// body as it came with
// httputil.ReverseProxy, flushing every chunk as it arrives. The routing
// and the retries live in the proxy's RoundTrip: a connect error, a 5xx or
// a first-byte timeout is retried on the next-best worker while nothing has
// reached the client (the ReverseProxy writes nothing before RoundTrip
// returns), at most Config.ProxyAttempts tries. A recorded route is
// recorded only when a worker answers below 400, for that worker alone; on
// a worker that streams KV events the prompt is pending from the moment it
// is sent there (its pages expire where it is not served).
// Failures feed the passive health book (proxy_health.go). The client's
// request context is the upstream's: a client that goes away cancels the engine's work.
type proxy struct {
	n       *Node
	token   string
	rp      *httputil.ReverseProxy
	up      *upstreamTransport // to engines (HTTPS ones through client's Transport)
	client  *http.Client       // active health checks
	load    *loadBook
	urls    urlCache
	health  *healthBook
	now     func() time.Time
	handler http.Handler
	ln      net.Listener
	srv     *http.Server
	cert    atomic.Pointer[tls.Certificate] // HTTPS when set (proxy_tls.go)
}

// Errors of a proxied attempt.
var (
	errFirstByteTimeout = errors.New("node: proxy: no first byte within the first-byte timeout")
	errIdleTimeout      = errors.New("node: proxy: stream idle longer than the idle timeout")
	errUpstreamStatus   = errors.New("node: proxy: upstream answered 5xx")
)

func newProxy(n *Node, token string) *proxy {
	c := n.cfg
	dialer := &net.Dialer{Timeout: c.ProxyConnectTimeout.D(), KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		DialContext:         dialer.DialContext,
		MaxIdleConns:        4096,
		MaxIdleConnsPerHost: 1024,
		IdleConnTimeout:     90 * time.Second,
		// The client's Accept-Encoding travels on; the answer comes back as
		// the engine encoded it.
		DisableCompression: true,
	}
	p := &proxy{n: n, token: token, up: newUpstreamTransport(dialer.DialContext, tr.MaxIdleConnsPerHost, tr.IdleConnTimeout, tr),
		client: &http.Client{Transport: tr}, load: newLoadBook(),
		health: newHealthBook(c.ProxyFailures, c.ProxyBackoff.D(), c.ProxyMaxBackoff.D()), now: time.Now}
	// Server-sent events and answers of unknown length (chunked) reach the
	// client chunk by chunk: the ReverseProxy flushes them at once whatever
	// FlushInterval says. An answer of declared length is whole already:
	// written as one, it takes one write to the client, where flushing
	// every chunk (-1) took a timer goroutine flushing the headers on their
	// own, then a flush per read.
	p.rp = &httputil.ReverseProxy{
		Rewrite:       p.rewrite,
		Transport:     p,
		FlushInterval: 0,
		ErrorHandler:  p.upstreamError,
		ErrorLog:      slog.NewLogLogger(n.log.Handler(), slog.LevelDebug),
		BufferPool:    copyBuffers{},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/chat/completions", func(w http.ResponseWriter, r *http.Request) { p.serveCompletion(w, r, true) })
	mux.HandleFunc("POST /v1/completions", func(w http.ResponseWriter, r *http.Request) { p.serveCompletion(w, r, false) })
	mux.HandleFunc("GET /v1/models", p.serveModels)
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		if ok, why := n.Health(); !ok {
			writeError(w, http.StatusServiceUnavailable, why)
			return
		}
		writeJSON(w, 200, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		openAIError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no endpoint %s %s on the meshnode proxy", r.Method, r.URL.Path))
	})
	p.handler = p.authorize(mux)
	return p
}

// copyBuffers recycles the ReverseProxy's copy buffers: one per request
// would be garbage at thousands of requests a second. A stream holds its
// buffer while it lasts, so they are small: 8 KiB (the ReverseProxy's own
// are 32 KiB) holds many server-sent events, and a large answer only
// takes more reads.
type copyBuffers struct{}

var copyBufferPool = sync.Pool{New: func() any { b := make([]byte, 8<<10); return &b }}

func (copyBuffers) Get() []byte  { return *copyBufferPool.Get().(*[]byte) }
func (copyBuffers) Put(b []byte) { copyBufferPool.Put(&b) }

// authorize checks the proxy's bearer token, when it has one.
func (p *proxy) authorize(next http.Handler) http.Handler {
	if p.token == "" {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if r.URL.Path != "/health" && (!ok || subtle.ConstantTimeCompare([]byte(tok), []byte(p.token)) != 1) {
			p.n.met.proxyRequests.WithLabelValues("-", "unauthorized", "none").Inc()
			openAIError(w, http.StatusUnauthorized, "invalid_api_key", "missing or wrong bearer token for the meshnode proxy")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// openAIError writes an error in the shape OpenAI clients parse.
func openAIError(w http.ResponseWriter, code int, typ, msg string) {
	writeJSON(w, code, map[string]any{"error": map[string]any{"message": msg, "type": typ, "code": code}})
}

// proxyCall is one proxied request, shared by the handler, RoundTrip, the
// answer's body and the error handler through the request's context. They
// all run on the handler's goroutine.
type proxyCall struct {
	start     time.Time
	model     string // label: the model if it has workers, else "-"
	rule      string
	outcome   string // set when the proxy decided it; else read from the answer
	pages     []uint64
	tokens    int64
	body      []byte
	tried     []string
	ttfb      time.Duration // 0 until the first byte
	streamErr error         // why the answer's body ended early
	status    int
	bodyEOF   atomic.Bool // the engine's body ended: its last bytes need no flush of their own
}

type callKey struct{}

// workerHeader names, in each answer, the worker that gave it.
const workerHeader = "X-Meshnode-Worker"

// serveCompletion answers a completion (chat when chat is set): it reads
// and checks the body, applies the limits, cuts the prompt into pages and
// hands the request to the ReverseProxy, whose RoundTrip routes it.
func (p *proxy) serveCompletion(w http.ResponseWriter, r *http.Request, chat bool) {
	call := &proxyCall{start: time.Now(), model: "-", rule: "none"}
	sw := &proxyWriter{statusWriter: statusWriter{ResponseWriter: w}, call: call}
	defer p.finish(call, &sw.statusWriter, r) // also when the ReverseProxy aborts a broken stream
	defer sw.end()
	maxBytes := p.n.cfg.ProxyMaxBodyBytes
	if r.ContentLength > maxBytes {
		w.Header().Set("Connection", "close")
		call.outcome = "rejected"
		openAIError(sw, http.StatusRequestEntityTooLarge, "invalid_request_error", fmt.Sprintf("request body over %d bytes", maxBytes))
		return
	}
	body, err := readBody(http.MaxBytesReader(sw, r.Body, maxBytes), r.ContentLength)
	if err != nil {
		call.outcome = "rejected"
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			openAIError(sw, http.StatusRequestEntityTooLarge, "invalid_request_error", fmt.Sprintf("request body over %d bytes", maxBytes))
			return
		}
		if r.Context().Err() != nil {
			call.outcome = "canceled"
		}
		openAIError(sw, http.StatusBadRequest, "invalid_request_error", "reading the request: "+err.Error())
		return
	}
	sc := scratchPool.Get().(*promptScratch)
	defer scratchPool.Put(sc)
	bytesTokens := p.n.cfg.ProxyTokenizer == "bytes"
	req, in, ok := scanCompletion(body, chat, bytesTokens, sc)
	if !ok {
		req, in, err = parseCompletion(body, chat, bytesTokens)
	}
	if err != nil {
		call.outcome = "rejected"
		openAIError(sw, http.StatusBadRequest, "invalid_request_error", strings.TrimPrefix(err.Error(), errPrompt.Error()+": "))
		return
	}
	if len(p.n.st.modelWorkers(req.Model)) == 0 {
		call.outcome = "unknown_model"
		openAIError(sw, http.StatusNotFound, "model_not_found", fmt.Sprintf("no worker serves model %q", req.Model))
		return
	}
	// Registered models are a bounded set; names clients make up are not.
	call.model = req.Model
	if ok, wait := p.admit(req.Model, p.apiKey(r), time.Now()); !ok {
		call.outcome = "rate_limited"
		sw.Header().Set("Retry-After", retryAfter(wait))
		openAIError(sw, http.StatusTooManyRequests, "rate_limit_exceeded", fmt.Sprintf("rate limit reached for model %q; retry after %s s", req.Model, retryAfter(wait)))
		return
	}
	if in.tokens != nil {
		call.pages = p.n.st.ix.AppendPages(sc.pages[:0], req.Model, in.tokens)
	} else {
		call.pages = p.n.st.ix.AppendTextPages(sc.pages[:0], req.Model, in.text)
	}
	sc.pages = call.pages[:0]
	call.tokens = in.estTokens()
	call.body = body
	p.rp.ServeHTTP(sw, r.WithContext(context.WithValue(r.Context(), callKey{}, call)))
}

// apiKey returns the client's API key from Config.ProxyKeyHeader ("" when
// unset); "Bearer " is stripped.
func (p *proxy) apiKey(r *http.Request) string {
	h := p.n.cfg.ProxyKeyHeader
	if h == "" {
		return ""
	}
	v := r.Header.Get(h)
	if after, ok := strings.CutPrefix(v, "Bearer "); ok {
		v = after
	}
	return v
}

// rewrite prepares the outgoing request; RoundTrip picks its worker.
func (p *proxy) rewrite(pr *httputil.ProxyRequest) {
	pr.SetXForwarded()
	if p.token != "" {
		// The proxy's token is the proxy's secret, not the engine's.
		pr.Out.Header.Del("Authorization")
	}
}

// RoundTrip routes the request, forwards it and retries on the next-best
// worker after a connect error, a 5xx or a first-byte timeout, at most
// Config.ProxyAttempts tries; the answer it returns carries the worker's
// lease until its body is closed.
func (p *proxy) RoundTrip(req *http.Request) (*http.Response, error) {
	call, _ := req.Context().Value(callKey{}).(*proxyCall)
	if call == nil {
		return nil, errors.New("node: proxy: request without a call")
	}
	sc := scratchPool.Get().(*promptScratch)
	defer scratchPool.Put(sc)
	cfg := p.n.cfg
	var lastErr error
	for attempt := 0; attempt < cfg.ProxyAttempts; attempt++ {
		if err := req.Context().Err(); err != nil {
			return nil, err
		}
		res, wk, err := p.pick(sc, call)
		if err != nil {
			if lastErr == nil {
				return nil, err
			}
			return nil, lastErr
		}
		if attempt == 0 {
			call.rule = res.Rule
		}
		call.tried = append(call.tried, wk.ID)
		if wk.KVEvents != nil && len(call.pages) > 0 {
			// In flight on an engine that streams KV events: the
			// prompt's pages are pending there from now, so that the
			// requests that share its prefix follow it while it is
			// prefilled; the engine's events confirm them, and on a
			// worker retried away from they expire (PendingTimeout).
			p.record(wk, call.pages)
		}
		base, err := p.urls.parse(wk.URL)
		if err != nil {
			lastErr = err
			continue
		}
		l := p.load.acquire(wk.ID, call.tokens)
		actx, cancel := context.WithCancelCause(req.Context())
		timer := time.AfterFunc(cfg.ProxyFirstByteTimeout.D(), func() { cancel(errFirstByteTimeout) })
		resp, err := p.up.RoundTrip(upstreamRequest(actx, req, base, call.body))
		if err == nil && resp.StatusCode < 500 {
			p.health.ok(wk.ID)
			if resp.StatusCode < 400 && len(call.pages) > 0 && wk.KVEvents == nil {
				// This worker serves the prompt: only now is its route
				// recorded, so a worker retried away from never holds
				// it (recorded routes do not expire).
				p.record(wk, call.pages)
			}
			resp.Header.Set(workerHeader, wk.ID)
			resp.Body = &upstreamBody{rc: resp.Body, call: call, lease: l, cancel: cancel, timer: timer, idle: cfg.ProxyIdleTimeout.D(), ctx: actx}
			return resp, nil
		}
		if cerr := req.Context().Err(); cerr != nil { // the client left: no one's fault
			timer.Stop()
			closeBody(resp)
			cancel(nil)
			l.release()
			return nil, cerr
		}
		reason := "status_5xx"
		switch {
		case err != nil && errors.Is(context.Cause(actx), errFirstByteTimeout):
			err, reason = errFirstByteTimeout, "timeout"
		case err != nil:
			reason = "connect"
		default:
			err = fmt.Errorf("%w: %s", errUpstreamStatus, resp.Status)
		}
		lastErr = err
		if p.health.fail(wk.ID, p.now()) {
			p.n.met.proxyEjections.Inc()
			p.n.log.Warn("proxy: worker failing; out of routing for a backoff", "worker", wk.ID, "err", err)
		}
		if attempt+1 < cfg.ProxyAttempts && p.hasOther(call) {
			timer.Stop()
			closeBody(resp)
			cancel(nil)
			l.release()
			p.n.met.proxyRetries.WithLabelValues(reason).Inc()
			continue
		}
		if resp != nil {
			// No one left to try: the client gets the engine's own answer.
			resp.Header.Set(workerHeader, wk.ID)
			resp.Body = &upstreamBody{rc: resp.Body, call: call, lease: l, cancel: cancel, timer: timer, idle: cfg.ProxyIdleTimeout.D(), ctx: actx}
			return resp, nil
		}
		timer.Stop()
		cancel(nil)
		l.release()
		return nil, err
	}
	return nil, lastErr
}

func closeBody(resp *http.Response) {
	if resp != nil {
		resp.Body.Close()
	}
}

// record records a route, or logs why it could not.
func (p *proxy) record(wk Worker, pages []uint64) {
	if _, err := p.n.recordRoute(wk, pages); err != nil {
		p.n.log.Warn("proxy: route not recorded", "worker", wk.ID, "err", err)
	}
}

// pick routes call among the workers not yet tried and not out of
// routing; when the health book has taken out every worker not yet tried,
// it tries them anyway rather than refuse (a fleet-wide blip would
// otherwise turn into a backoff-long outage).
func (p *proxy) pick(sc *promptScratch, call *proxyCall) (RouteResult, Worker, error) {
	now := p.now()
	res, wk, err := p.n.route(sc, call.model, call.pages, false, func(id string) bool {
		return slices.Contains(call.tried, id) || p.health.out(id, now)
	})
	if errors.Is(err, ErrNoWorker) {
		res, wk, err = p.n.route(sc, call.model, call.pages, false, func(id string) bool { return slices.Contains(call.tried, id) })
	}
	return res, wk, err
}

// hasOther reports whether a healthy worker of call's model is left to try.
func (p *proxy) hasOther(call *proxyCall) bool {
	for _, wk := range p.n.st.modelWorkers(call.model) {
		if wk.Health == "healthy" && !slices.Contains(call.tried, wk.ID) {
			return true
		}
	}
	return false
}

// upstreamRequest is req sent to the worker at base, in ctx: the worker
// URL's path prefixes the request's, and the body is the one the client
// sent.
func upstreamRequest(ctx context.Context, req *http.Request, base *url.URL, body []byte) *http.Request {
	out := req.WithContext(ctx) // a shallow copy: RoundTrippers must not modify their request
	ou := *req.URL
	ou.Scheme, ou.Host, ou.User = base.Scheme, base.Host, nil
	ou.Path = strings.TrimSuffix(base.Path, "/") + req.URL.Path
	ou.RawPath = ""
	out.URL = &ou
	out.Host = ""
	out.Body = io.NopCloser(bytes.NewReader(body))
	out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	out.ContentLength = int64(len(body))
	return out
}

// upstreamBody is an engine's answer on its way to the client. Its first
// byte ends the prompt's prefill (the lease's tokens stop counting) and
// the first-byte timer becomes the idle timer; Close releases the lease.
type upstreamBody struct {
	rc      io.ReadCloser
	call    *proxyCall
	lease   *lease
	ctx     context.Context
	cancel  context.CancelCauseFunc
	timer   *time.Timer
	idle    time.Duration
	started bool
	once    sync.Once
}

func (b *upstreamBody) Read(buf []byte) (int, error) {
	n, err := b.rc.Read(buf)
	if n > 0 {
		if !b.started {
			b.started = true
			b.call.ttfb = time.Since(b.call.start)
			b.lease.prefilled()
			b.timer.Stop()
			b.timer = time.AfterFunc(b.idle, func() { b.cancel(errIdleTimeout) })
		} else {
			b.timer.Reset(b.idle)
		}
	}
	if err == io.EOF {
		b.call.bodyEOF.Store(true)
	}
	if err != nil && err != io.EOF {
		if c := context.Cause(b.ctx); c != nil {
			err = c
		}
		b.call.streamErr = err
	}
	return n, err
}

func (b *upstreamBody) Close() error {
	err := b.rc.Close()
	b.once.Do(func() {
		b.timer.Stop()
		b.cancel(nil)
		b.lease.release()
	})
	return err
}

// upstreamError answers a request no worker answered.
func (p *proxy) upstreamError(w http.ResponseWriter, r *http.Request, err error) {
	call, _ := r.Context().Value(callKey{}).(*proxyCall)
	if call == nil {
		call = &proxyCall{}
	}
	switch {
	case r.Context().Err() != nil:
		call.outcome = "canceled"
		w.WriteHeader(499) // nginx's "client closed request", for the logs: no one reads it
	case errors.Is(err, ErrNoWorker):
		call.outcome = "no_worker"
		openAIError(w, http.StatusServiceUnavailable, "service_unavailable", err.Error())
	case errors.Is(err, errFirstByteTimeout):
		call.outcome = "timeout"
		openAIError(w, http.StatusGatewayTimeout, "timeout", fmt.Sprintf("no worker answered in time (tried %s)", strings.Join(call.tried, ", ")))
	default:
		call.outcome = "unreachable"
		openAIError(w, http.StatusBadGateway, "bad_gateway", fmt.Sprintf("no worker answered (tried %s): %v", strings.Join(call.tried, ", "), err))
	}
}

// finish counts the request in the metrics.
func (p *proxy) finish(call *proxyCall, sw *statusWriter, r *http.Request) {
	outcome := call.outcome
	if outcome == "" {
		switch {
		case r.Context().Err() != nil:
			outcome = "canceled"
		case errors.Is(call.streamErr, errIdleTimeout), errors.Is(call.streamErr, errFirstByteTimeout):
			outcome = "timeout"
		case call.streamErr != nil:
			outcome = "broken"
		case sw.code >= 500:
			outcome = "upstream_5xx"
		case sw.code >= 400:
			outcome = "upstream_4xx"
		default:
			outcome = "ok"
		}
	}
	m := p.n.met
	m.proxyRequests.WithLabelValues(call.model, outcome, call.rule).Inc()
	if call.model != "-" {
		m.proxyDuration.WithLabelValues(call.model).Observe(time.Since(call.start).Seconds())
		if call.ttfb > 0 {
			m.proxyTTFB.WithLabelValues(call.model).Observe(call.ttfb.Seconds())
		}
	}
}

// serveModels lists the models of the registered workers.
func (p *proxy) serveModels(w http.ResponseWriter, r *http.Request) {
	ws, _ := p.n.st.workers("", "", 1<<30)
	var names []string
	for _, wk := range ws {
		names = append(names, wk.Model)
	}
	slices.Sort(names)
	names = slices.Compact(names)
	type model struct {
		ID      string `json:"id"`
		Object  string `json:"object"`
		Created int64  `json:"created"`
		OwnedBy string `json:"owned_by"`
	}
	data := make([]model, 0, len(names))
	for _, m := range names {
		data = append(data, model{ID: m, Object: "model", OwnedBy: "meshnode"})
	}
	writeJSON(w, 200, map[string]any{"object": "list", "data": data})
}

// start binds the proxy's listener and starts its loops in the node's group.
func (p *proxy) start() error {
	n := p.n
	n.g.Go(func() error { n.loadLoop(); return nil })
	if d := n.cfg.ProxyHealthInterval.D(); d > 0 {
		n.g.Go(func() error { p.healthLoop(n.ctx, d); return nil })
	}
	if n.memNet != nil {
		return nil // a virtual-time test: it calls the handler (memnet.go)
	}
	ln, err := net.Listen("tcp", n.cfg.ProxyAddr)
	if err != nil {
		return fmt.Errorf("node: proxy listen %s: %w", n.cfg.ProxyAddr, err)
	}
	ln = p.wrapTLS(ln)
	p.ln = ln
	p.srv = &http.Server{Handler: p.handler, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(n.log.Handler(), slog.LevelDebug)}
	n.g.Go(func() error {
		if err := p.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.log.Error("proxy server stopped", "err", err)
		}
		return nil
	})
	return nil
}

// stop closes the listener and the requests in flight (within a second for
// those that end by themselves), then the idle upstream connections.
func (p *proxy) stop(ctx context.Context) {
	if p.srv != nil {
		sctx, cancel := context.WithTimeout(ctx, time.Second)
		if err := p.srv.Shutdown(sctx); err != nil {
			p.srv.Close()
		}
		cancel()
	}
	p.up.CloseIdleConnections()
}

// ProxyHandler returns the routing proxy's handler (also served on
// Config.ProxyAddr), or nil without a proxy. Serve it after Start, or on a
// node that is never started.
func (n *Node) ProxyHandler() http.Handler {
	if n.proxy == nil {
		return nil
	}
	return n.proxy.handler
}

// ProxyAddr returns the proxy listener's address (valid after Start), or
// "" without a proxy.
func (n *Node) ProxyAddr() string {
	if n.proxy == nil || n.proxy.ln == nil {
		return ""
	}
	return n.proxy.ln.Addr().String()
}

// retryAfter renders a wait as whole seconds, at least 1.
func retryAfter(d time.Duration) string {
	s := int64((d + time.Second - 1) / time.Second)
	return fmt.Sprint(max(s, 1))
}

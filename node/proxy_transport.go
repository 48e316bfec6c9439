package node

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// upstreamTransport carries the proxy's requests to plain-HTTP engines on
// the goroutine that routes them. net/http's Transport hands each request
// to a writing and a reading goroutine of the connection's and back; at
// 5,000 requests/s those hand-offs and the wake-ups they cost were a sixth
// of the proxy's CPU (bench/RESULTS.md). Here a request takes an idle
// connection to its engine (or dials one), writes itself and reads the
// answer's headers with the standard library's own Request.Write and
// ReadResponse; the ReverseProxy reads the body from the same connection,
// which goes back to the pool once the body was read to its end and
// closed. HTTPS engines go through net/http's Transport (fallback).
//
// A connection the engine closed while it was idle (uvicorn closes them
// after 5 s) is found before use when it has been idle a while (idleCheck),
// and otherwise by the request failing on it before any byte of an answer:
// the request is then sent again, once, on a new connection.
type upstreamTransport struct {
	dial        func(ctx context.Context, network, addr string) (net.Conn, error)
	maxIdle     int           // idle connections kept per engine address
	idleTimeout time.Duration // an idle connection older than this is closed, not used
	maxHeader   int64         // bytes of an answer's status line and headers
	fallback    *http.Transport

	mu    sync.Mutex
	idle  map[string][]*upConn // by host:port, the most recently used last
	swept time.Time
}

// idleCheck is how long a connection may have been idle before it is
// checked for an engine's close before use (a system call; a connection in
// steady use is not checked: the retry covers it).
const idleCheck = time.Second

// errHeaderTooLarge: an engine's status line and headers over maxHeader.
var errHeaderTooLarge = errors.New("node: proxy: engine's answer headers too large")

func newUpstreamTransport(dial func(ctx context.Context, network, addr string) (net.Conn, error), maxIdle int, idleTimeout time.Duration, fallback *http.Transport) *upstreamTransport {
	return &upstreamTransport{dial: dial, maxIdle: maxIdle, idleTimeout: idleTimeout, maxHeader: 1 << 20,
		fallback: fallback, idle: make(map[string][]*upConn)}
}

// upConn is a connection to an engine.
type upConn struct {
	t     *upstreamTransport
	key   string
	nc    net.Conn
	lr    headerLimit
	br    *bufio.Reader
	bw    *bufio.Writer
	since time.Time // idle since
}

// headerLimit reads from the connection, at most budget bytes while budget
// is not negative (an answer's headers), and counts what it read.
type headerLimit struct {
	nc     net.Conn
	budget int64
	read   int64
}

func (l *headerLimit) Read(p []byte) (int, error) {
	if l.budget == 0 {
		return 0, errHeaderTooLarge
	}
	if l.budget > 0 && int64(len(p)) > l.budget {
		p = p[:l.budget]
	}
	n, err := l.nc.Read(p)
	l.read += int64(n)
	if l.budget > 0 {
		l.budget -= int64(n)
	}
	return n, err
}

func (t *upstreamTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme != "http" {
		return t.fallback.RoundTrip(req)
	}
	ctx := req.Context()
	key := req.URL.Host
	if req.URL.Port() == "" {
		key = net.JoinHostPort(req.URL.Hostname(), "80")
	}
	fresh := false
	for {
		var c *upConn
		if !fresh {
			c = t.get(key, time.Now())
		}
		reused := c != nil
		if c == nil {
			nc, err := t.dial(ctx, "tcp", key)
			if err != nil {
				return nil, err
			}
			c = &upConn{t: t, key: key, nc: nc, lr: headerLimit{nc: nc}}
			c.br = bufio.NewReaderSize(&c.lr, 4<<10)
			c.bw = bufio.NewWriterSize(nc, 4<<10)
		}
		resp, err := c.roundTrip(req)
		if err == nil {
			return resp, nil
		}
		c.nc.Close()
		if !reused || c.lr.read > 0 || ctx.Err() != nil || req.GetBody == nil {
			return nil, err
		}
		// The engine closed the connection as it was taken: nothing of
		// an answer came, so the request goes again on a new one.
		body, gerr := req.GetBody()
		if gerr != nil {
			return nil, err
		}
		r2 := *req
		r2.Body = body
		req, fresh = &r2, true
	}
}

// roundTrip writes req on c and reads the answer's headers; a context that
// ends meanwhile (or while the body is read) unblocks the connection.
func (c *upConn) roundTrip(req *http.Request) (*http.Response, error) {
	stop := context.AfterFunc(req.Context(), func() { c.nc.SetDeadline(time.Unix(1, 0)) })
	c.lr.read, c.lr.budget = 0, c.t.maxHeader
	err := req.Write(c.bw)
	if err == nil {
		err = c.bw.Flush()
	}
	var resp *http.Response
	for err == nil {
		resp, err = http.ReadResponse(c.br, req)
		if err != nil || resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			break
		}
		// 1xx: informational, without a body; the answer follows.
	}
	if err != nil {
		stop()
		if cerr := context.Cause(req.Context()); cerr != nil {
			err = fmt.Errorf("%w (%v)", cerr, err)
		}
		return nil, err
	}
	c.lr.budget = -1
	resp.Body = &upConnBody{c: c, rc: resp.Body, stop: stop, keep: !resp.Close}
	return resp, nil
}

// upConnBody is an answer's body; read to its end and closed, it gives the
// connection back to the pool.
type upConnBody struct {
	c      *upConn
	rc     io.ReadCloser
	stop   func() bool
	keep   bool // the answer lets the connection be used again
	eof    bool
	closed bool
}

func (b *upConnBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if err == io.EOF {
		b.eof = true
	}
	return n, err
}

func (b *upConnBody) Close() error {
	if b.closed {
		return nil
	}
	b.closed = true
	if !b.eof || !b.keep || b.c.br.Buffered() > 0 {
		// Unread answer (closing first, so that the body's Close does
		// not read it), or bytes no answer accounts for.
		b.c.nc.Close()
		b.rc.Close()
		b.stop()
		return nil
	}
	b.rc.Close()
	if !b.stop() {
		// The context ended: the connection's deadline may be past.
		b.c.nc.Close()
		return nil
	}
	b.c.t.put(b.c, time.Now())
	return nil
}

// get takes an idle connection to key, or nil.
func (t *upstreamTransport) get(key string, now time.Time) *upConn {
	for {
		t.mu.Lock()
		list := t.idle[key]
		if len(list) == 0 {
			t.mu.Unlock()
			return nil
		}
		c := list[len(list)-1]
		t.idle[key] = list[:len(list)-1]
		t.mu.Unlock()
		idle := now.Sub(c.since)
		if idle < t.idleTimeout && (idle < idleCheck || connAlive(c.nc)) {
			return c
		}
		c.nc.Close()
	}
}

// put gives c back to the pool (or closes it when its engine has maxIdle
// idle already), and closes the connections idle longer than idleTimeout
// every idleTimeout.
func (t *upstreamTransport) put(c *upConn, now time.Time) {
	c.since = now
	var expired []*upConn
	t.mu.Lock()
	if list := t.idle[c.key]; len(list) < t.maxIdle {
		t.idle[c.key] = append(list, c)
		c = nil
	}
	if now.Sub(t.swept) >= t.idleTimeout {
		t.swept = now
		for key, list := range t.idle {
			i := 0
			for i < len(list) && now.Sub(list[i].since) >= t.idleTimeout {
				i++
			}
			expired = append(expired, list[:i]...)
			if i == len(list) {
				delete(t.idle, key)
			} else if i > 0 {
				t.idle[key] = append(list[:0], list[i:]...)
			}
		}
	}
	t.mu.Unlock()
	if c != nil {
		c.nc.Close()
	}
	for _, e := range expired {
		e.nc.Close()
	}
}

// CloseIdleConnections closes the idle connections, the fallback's too.
func (t *upstreamTransport) CloseIdleConnections() {
	t.mu.Lock()
	idle := t.idle
	t.idle = make(map[string][]*upConn)
	t.mu.Unlock()
	for _, list := range idle {
		for _, c := range list {
			c.nc.Close()
		}
	}
	t.fallback.CloseIdleConnections()
}

package node

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// countingEngine is a loopback engine that counts the connections it
// accepted; each answer is "ok <path>".
type countingEngine struct {
	srv   *httptest.Server
	conns atomic.Int64
}

func newCountingEngine(t *testing.T, h http.HandlerFunc) *countingEngine {
	t.Helper()
	e := &countingEngine{}
	if h == nil {
		h = func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			io.WriteString(w, "ok "+r.URL.Path)
		}
	}
	e.srv = httptest.NewUnstartedServer(h)
	e.srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			e.conns.Add(1)
		}
	}
	e.srv.Start()
	t.Cleanup(e.srv.Close)
	return e
}

func newTestUpstream(t *testing.T) *upstreamTransport {
	t.Helper()
	d := &net.Dialer{Timeout: 5 * time.Second}
	up := newUpstreamTransport(d.DialContext, 4, 90*time.Second, &http.Transport{})
	t.Cleanup(up.CloseIdleConnections)
	return up
}

// upPost sends a small POST through up and returns the answer's status and
// body, read to its end and closed.
func upPost(t *testing.T, up *upstreamTransport, url string) (int, string, error) {
	t.Helper()
	req, err := http.NewRequest("POST", url, strings.NewReader(`{"x":1}`))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := up.RoundTrip(req)
	if err != nil {
		return 0, "", err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, string(b), err
}

// TestUpstreamTransportReuses: requests one after the other share one
// connection; an answer with Connection: close, or one not read to its
// end, gives its connection up.
func TestUpstreamTransportReuses(t *testing.T) {
	e := newCountingEngine(t, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if r.URL.Path == "/close" {
			w.Header().Set("Connection", "close")
		}
		io.WriteString(w, strings.Repeat("x", 64<<10)) // more than a read
	})
	up := newTestUpstream(t)
	for i := range 5 {
		if code, body, err := upPost(t, up, e.srv.URL+"/a"); err != nil || code != 200 || len(body) != 64<<10 {
			t.Fatalf("request %d: %d, %d bytes, %v", i, code, len(body), err)
		}
	}
	if got := e.conns.Load(); got != 1 {
		t.Fatalf("5 requests in turn took %d connections, want 1", got)
	}
	upPost(t, up, e.srv.URL+"/close")
	upPost(t, up, e.srv.URL+"/a")
	if got := e.conns.Load(); got != 2 {
		t.Fatalf("after Connection: close, %d connections, want 2", got)
	}
	// An answer closed before its end: its connection is not used again.
	req, _ := http.NewRequest("POST", e.srv.URL+"/a", strings.NewReader("{}"))
	resp, err := up.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	upPost(t, up, e.srv.URL+"/a")
	if got := e.conns.Load(); got != 3 {
		t.Fatalf("after an unread answer, %d connections, want 3", got)
	}
}

// TestUpstreamTransportStaleConnection: a connection the engine closed
// while it was idle costs the request nothing: the request fails on it
// before any byte of an answer and goes again on a new connection.
func TestUpstreamTransportStaleConnection(t *testing.T) {
	e := newCountingEngine(t, nil)
	up := newTestUpstream(t)
	if _, _, err := upPost(t, up, e.srv.URL+"/a"); err != nil {
		t.Fatal(err)
	}
	e.srv.CloseClientConnections()
	// Just idle: not checked; the request fails on it and goes again.
	if code, body, err := upPost(t, up, e.srv.URL+"/b"); err != nil || code != 200 || body != "ok /b" {
		t.Fatalf("after the engine closed the idle connection: %d %q %v", code, body, err)
	}
	if got := e.conns.Load(); got != 2 {
		t.Fatalf("%d connections, want 2", got)
	}

}

// TestUpstreamTransportIdleLimits: at most maxIdle idle connections per
// engine, and none kept past idleTimeout.
func TestUpstreamTransportIdleLimits(t *testing.T) {
	e := newCountingEngine(t, nil)
	up := newTestUpstream(t)
	key := strings.TrimPrefix(e.srv.URL, "http://")
	var open []*http.Response
	for range up.maxIdle + 2 {
		req, _ := http.NewRequest("POST", e.srv.URL+"/a", strings.NewReader("{}"))
		resp, err := up.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		open = append(open, resp)
	}
	for _, resp := range open {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	up.mu.Lock()
	n := len(up.idle[key])
	up.mu.Unlock()
	if n != up.maxIdle {
		t.Fatalf("%d idle connections, want maxIdle %d", n, up.maxIdle)
	}
	if got := up.get(key, time.Now().Add(up.idleTimeout)); got != nil {
		t.Fatal("get returned a connection idle for idleTimeout")
	}
	// A put after idleTimeout sweeps the connections that expired.
	if _, _, err := upPost(t, up, e.srv.URL+"/a"); err != nil {
		t.Fatal(err)
	}
	up.mu.Lock()
	c := up.idle[key][len(up.idle[key])-1]
	up.idle[key] = up.idle[key][:len(up.idle[key])-1]
	up.mu.Unlock()
	up.put(c, time.Now().Add(2*up.idleTimeout))
	up.mu.Lock()
	n = len(up.idle[key])
	up.mu.Unlock()
	if n != 1 {
		t.Fatalf("after a sweep, %d idle connections, want only the one put", n)
	}
}

// TestUpstreamTransportAnswers: informational answers are skipped, an
// answer whose headers exceed the limit is an error, and a context that
// ends while the answer is awaited unblocks the request.
func TestUpstreamTransportAnswers(t *testing.T) {
	hold, arrived := make(chan struct{}), make(chan struct{}, 1)
	e := newCountingEngine(t, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		switch r.URL.Path {
		case "/hints":
			w.Header().Set("Link", "</a>; rel=preload")
			w.WriteHeader(http.StatusEarlyHints)
			io.WriteString(w, "after hints")
		case "/big":
			w.Header().Set("X-Big", strings.Repeat("b", 8<<10))
			io.WriteString(w, "big")
		case "/hold":
			arrived <- struct{}{}
			select {
			case <-hold:
			case <-r.Context().Done():
			}
		}
	})
	up := newTestUpstream(t)
	if code, body, err := upPost(t, up, e.srv.URL+"/hints"); err != nil || code != 200 || body != "after hints" {
		t.Fatalf("after 103: %d %q %v", code, body, err)
	}
	up.maxHeader = 4 << 10
	if _, _, err := upPost(t, up, e.srv.URL+"/big"); err == nil || !strings.Contains(err.Error(), "too large") {
		t.Fatalf("headers over the limit: %v, want errHeaderTooLarge", err)
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "POST", e.srv.URL+"/hold", strings.NewReader("{}"))
	done := make(chan error, 1)
	go func() {
		resp, err := up.RoundTrip(req)
		if err == nil {
			resp.Body.Close()
			err = fmt.Errorf("an answer, status %d", resp.StatusCode)
		}
		done <- err
	}()
	<-arrived
	cancel(errFirstByteTimeout)
	if err := <-done; err == nil || !strings.Contains(err.Error(), errFirstByteTimeout.Error()) {
		t.Fatalf("canceled while awaiting the answer: %v", err)
	}
	close(hold)
}

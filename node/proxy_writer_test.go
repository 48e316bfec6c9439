package node

import (
	"bufio"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// flushCounter is a ResponseWriter that counts the flushes that reach it.
type flushCounter struct {
	*httptest.ResponseRecorder
	flushes atomic.Int32 // the held flush comes from a timer's goroutine
}

func (f *flushCounter) Flush() { f.flushes.Add(1) }

// TestProxyWriterFlushes: the proxy's writer holds a headers-only flush
// for headerHold (sent then unless body bytes came to carry it), passes
// every other flush on, skips the flush of the last bytes once the
// engine's body has ended, and never touches the server's writer after
// the handler returned.
func TestProxyWriterFlushes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		newWriter := func() (*proxyWriter, *flushCounter) {
			fc := &flushCounter{ResponseRecorder: httptest.NewRecorder()}
			return &proxyWriter{statusWriter: statusWriter{ResponseWriter: fc}, call: &proxyCall{}}, fc
		}
		check := func(what string, fc *flushCounter, want int) {
			t.Helper()
			if got := fc.flushes.Load(); got != int32(want) {
				t.Fatalf("%s: %d flushes, want %d", what, got, want)
			}
		}

		// Headers alone: held, then sent.
		w, fc := newWriter()
		w.Flush()
		w.Flush() // the hold is armed once
		check("headers, before the hold ends", fc, 0)
		time.Sleep(headerHold)
		synctest.Wait()
		check("headers, after the hold", fc, 1)
		w.Write([]byte("data: 1\n\n"))
		w.Flush()
		check("headers, then an event", fc, 2)
		w.end()

		// Headers, then bytes within the hold: one flush carries both.
		w, fc = newWriter()
		w.Flush()
		time.Sleep(headerHold / 2)
		w.Write([]byte("data: 1\n\n"))
		w.Flush()
		check("headers with the first event", fc, 1)
		time.Sleep(headerHold)
		synctest.Wait()
		check("the held flush, after bytes were sent", fc, 1)

		// The engine's body ended: its last bytes wait for the handler's end.
		w.call.bodyEOF.Store(true)
		w.Write([]byte("data: [DONE]\n\n"))
		w.Flush()
		check("the last bytes", fc, 1)
		w.end()
		if got := fc.Body.String(); got != "data: 1\n\ndata: [DONE]\n\n" {
			t.Fatalf("body %q", got)
		}

		// An answer whole in its first read: flushed once, so that it is
		// chunked as a streamed answer is.
		w, fc = newWriter()
		w.Flush()
		w.call.bodyEOF.Store(true)
		w.Write([]byte("data: [DONE]\n\n"))
		w.Flush()
		w.Flush() // the ReverseProxy's flush for trailers
		check("an answer in one read", fc, 1)
		w.end()

		// The handler returned before the hold ended: nothing more.
		w, fc = newWriter()
		w.Flush()
		w.end()
		time.Sleep(2 * headerHold)
		synctest.Wait()
		w.Flush()
		check("after the handler's end", fc, 0)
	})
}

// TestProxySendsHeadersBeforeFirstEvent: an engine that sends its headers
// and then takes its time over the first event (a long prefill) has its
// headers reach the client before that event.
func TestProxySendsHeadersBeforeFirstEvent(t *testing.T) {
	n, srv := newProxyNode(t, nil)
	hold := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
		select {
		case <-hold:
		case <-r.Context().Done():
			return
		}
		io.WriteString(w, "data: 1\n\ndata: [DONE]\n\n")
	}))
	defer up.Close()
	register(t, n, "a", up.URL, "m")

	resp := postStreamed(t, srv)
	// The headers are here while the engine still holds the first event.
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("status %d, content type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	close(hold)
	body, err := io.ReadAll(bufio.NewReader(resp.Body))
	if err != nil || string(body) != "data: 1\n\ndata: [DONE]\n\n" {
		t.Fatalf("body %q, %v", body, err)
	}
}

// TestProxyPassesTrailers: an engine's trailers, announced or not, reach
// the client when its whole answer comes in one read.
func TestProxyPassesTrailers(t *testing.T) {
	n, srv := newProxyNode(t, nil)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Trailer", "X-Checksum")
		io.WriteString(w, "data: 1\n\ndata: [DONE]\n\n")
		w.Header().Set("X-Checksum", "abc")
		w.Header().Set(http.TrailerPrefix+"X-Late", "def") // not announced

	}))
	defer up.Close()
	register(t, n, "a", up.URL, "m")

	resp := postStreamed(t, srv)
	body, err := io.ReadAll(resp.Body)
	if err != nil || string(body) != "data: 1\n\ndata: [DONE]\n\n" {
		t.Fatalf("body %q, %v", body, err)
	}
	if a, b := resp.Trailer.Get("X-Checksum"), resp.Trailer.Get("X-Late"); a != "abc" || b != "def" {
		t.Fatalf("trailers X-Checksum %q, X-Late %q; want abc, def", a, b)
	}
}

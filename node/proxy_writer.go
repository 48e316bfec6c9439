package node

import (
	"net/http"
	"sync"
	"time"
)

// headerHold is how long the proxy holds a streamed answer's headers for
// its first bytes, so that both leave in one write.
const headerHold = time.Millisecond

// proxyWriter is the proxy's response writer. It sends what the
// ReverseProxy writes as it comes, flush for flush, with two exceptions
// that save the client a packet without delaying a byte:
//
//   - The ReverseProxy flushes a streamed answer's headers on their own,
//     from a goroutine, before it copies the first bytes. Here that flush
//     is held for headerHold: the first bytes, which an engine usually
//     sends with its headers, flush them together, and when none come by
//     then the headers go alone.
//   - Once the engine's body has ended, the last bytes are not flushed on
//     their own: the handler returns at once and the server sends them with
//     the end of the answer. Only once the answer is under way: the first
//     flush is what makes it chunked, which trailers need.
//
// The ReverseProxy calls Write and Flush from two goroutines (its copy
// loop and its header flush); mu orders them, and the held flush, with
// the handler's end.
type proxyWriter struct {
	statusWriter
	mu      sync.Mutex
	wrote   bool        // body bytes were written
	flushed bool        // a flush reached the server's writer
	held    *time.Timer // the held header flush, once armed
	done    bool        // the handler returned: hands off the ResponseWriter
	call    *proxyCall  // its bodyEOF: the engine's body ended
}

func (w *proxyWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(b) > 0 {
		w.wrote = true
	}
	return w.statusWriter.Write(b)
}

func (w *proxyWriter) Flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case w.done:
	case !w.wrote:
		if w.held == nil {
			w.held = time.AfterFunc(headerHold, w.flushHeld)
		}
	case w.flushed && w.call.bodyEOF.Load():
		// The handler's end flushes these bytes with the end of the answer.
	default:
		w.flushed = true
		w.statusWriter.Flush()
	}
}

// flushHeld sends the headers that no body bytes came to carry.
func (w *proxyWriter) flushHeld() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done && !w.wrote {
		w.flushed = true
		w.statusWriter.Flush()
	}
}

// end is called as the handler returns: from then on the ResponseWriter is
// the server's.
func (w *proxyWriter) end() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.done = true
	if w.held != nil {
		w.held.Stop()
	}
}

// Unwrap lets http.ResponseController reach the server's writer.
func (w *proxyWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

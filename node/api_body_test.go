package node

import (
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
)

// countingBody is a request body of n bytes of a JSON string value that
// counts what is read of it.
type countingBody struct {
	n, read int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	if b.read == b.n {
		return 0, io.EOF
	}
	k := min(int64(len(p)), b.n-b.read)
	for i := range p[:k] {
		p[i] = 'a'
	}
	if b.read == 0 && k >= 10 {
		copy(p, `{"value":"`)
	}
	b.read += k
	return int(k), nil
}

func (b *countingBody) Close() error { return nil }

// TestAPIRejectsDeclaredOversizedBodyUnread is issue 10's item 4: each
// rejected 50 MB body left about 12 MB behind, read and buffered up to the
// limit before the refusal. A body whose declared length is over the limit
// is refused before a byte of it is read.
func TestAPIRejectsDeclaredOversizedBodyUnread(t *testing.T) {
	n, _ := newTestNode(t, func(c *Config) { c.MaxRequestBytes = 4 << 20 })
	h := n.Handler()
	for _, path := range []string{"/v1/kv/ns/k", "/v1/workers/w1", "/v1/route"} {
		method := "PUT"
		if path == "/v1/route" {
			method = "POST"
		}
		body := &countingBody{n: 50 << 20}
		req := httptest.NewRequest(method, path, nil)
		req.Body, req.ContentLength = body, body.n
		rec := httptest.NewRecorder()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		h.ServeHTTP(rec, req)
		runtime.ReadMemStats(&after)
		if rec.Code != http.StatusRequestEntityTooLarge || !strings.Contains(rec.Body.String(), "over") {
			t.Errorf("%s %s with 50 MB declared: %d %s, want 413", method, path, rec.Code, rec.Body)
		}
		if body.read != 0 {
			t.Errorf("%s %s: read %d bytes of a body declared over the limit, want none", method, path, body.read)
		}
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 1<<20 {
			t.Errorf("%s %s: refusing the body allocated %d bytes, want under 1 MiB", method, path, alloc)
		}
	}
}

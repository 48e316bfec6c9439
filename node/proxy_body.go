package node

import (
	"bytes"
	"fmt"
	"io"
	"net/url"
	"sync"
	"sync/atomic"
)

// requestBody is a proxied request's body, read once into a pooled buffer
// and sent as it came to each upstream attempt. The handler holds one
// reference and each reader handed to the transport holds one; the buffer
// goes back to the pool when the last is released. The transport may
// still be writing a body after RoundTrip has returned (an engine that
// answers before it has read the request), so the handler's release alone
// must not recycle it. A reader the transport never closes keeps its
// buffer out of the pool: the collector takes it, nothing is overwritten.
type requestBody struct {
	buf     []byte
	refs    atomic.Int32
	getBody func() (io.ReadCloser, error) // b.reader as a func value, made once per pooled body
}

// maxPooledBodyBytes bounds the buffers kept for reuse: a rare large body
// is garbage after its request rather than memory held by the pool.
const maxPooledBodyBytes = 64 << 10

var requestBodyPool = sync.Pool{New: func() any {
	b := new(requestBody)
	b.getBody = func() (io.ReadCloser, error) { return b.reader(), nil }
	return b
}}

// newRequestBody returns an empty body from the pool, held once (by the
// caller, who calls release when done).
func newRequestBody() *requestBody {
	b := requestBodyPool.Get().(*requestBody)
	b.buf = b.buf[:0]
	b.refs.Store(1)
	return b
}

// readFrom reads r to its end into b. sizeHint (the request's declared
// length, already checked against the body cap; -1 when unknown) sizes the
// buffer so that a body with a declared length takes one allocation, or
// none from a recycled buffer.
func (b *requestBody) readFrom(r io.Reader, sizeHint int64) error {
	buf := b.buf[:0]
	if want := int(sizeHint) + 1; sizeHint >= 0 && cap(buf) < want { // +1: the read that sees EOF needs room
		buf = make([]byte, 0, want)
	}
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err != nil {
			b.buf = buf
			if err == io.EOF {
				return nil
			}
			return err
		}
	}
}

// reader returns a reader of the body, holding a reference until it is
// closed.
func (b *requestBody) reader() io.ReadCloser {
	b.refs.Add(1)
	r := &bodyReader{b: b}
	r.Reset(b.buf)
	return r
}

// release drops one reference; the last returns the buffer to the pool.
func (b *requestBody) release() {
	switch n := b.refs.Add(-1); {
	case n > 0:
	case n == 0:
		if cap(b.buf) <= maxPooledBodyBytes {
			requestBodyPool.Put(b)
		}
	default:
		panic("node: proxy: request body released more often than held")
	}
}

// bodyReader is one upstream attempt's copy of the body. The transport
// may close it from another goroutine than the one reading, and more than
// once; only the first close releases.
type bodyReader struct {
	bytes.Reader
	b      *requestBody
	closed atomic.Bool
}

func (r *bodyReader) Close() error {
	if r.closed.CompareAndSwap(false, true) {
		r.b.release()
	}
	return nil
}

// urlCache keeps the parsed URLs of the workers: a request would otherwise
// parse its worker's URL each time. Workers are few; should URLs churn,
// the cache starts over past maxCachedURLs.
type urlCache struct {
	m sync.Map // string → *url.URL
	n atomic.Int32
}

const maxCachedURLs = 4096

// parse returns raw parsed; the caller must not modify it.
func (c *urlCache) parse(raw string) (*url.URL, error) {
	if u, ok := c.m.Load(raw); ok {
		return u.(*url.URL), nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("node: proxy: worker url %q: %w", raw, err)
	}
	if c.n.Add(1) > maxCachedURLs {
		c.m.Clear()
		c.n.Store(1)
	}
	c.m.Store(raw, u)
	return u, nil
}

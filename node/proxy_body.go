package node

import (
	"fmt"
	"io"
	"net/url"
	"sync"
	"sync/atomic"
)

// readBody reads r to its end. sizeHint (the request's declared length,
// already checked against the body cap; -1 when unknown) sizes the buffer,
// so that a body of declared length takes one allocation where io.ReadAll
// grew one from 512 bytes.
//
// The buffer is not recycled: the transport may still be writing it to an
// engine after RoundTrip has returned (an engine that answers before it
// has read the request), and only a Close of the request's body would
// say when it is done; a body of a type of our own, to see that Close,
// is a stream to net/http, which then writes the request's headers and
// its body in two writes, the engine waking twice (io.NopCloser of a
// bytes.Reader, which it knows to be in memory, goes in one).
func readBody(r io.Reader, sizeHint int64) ([]byte, error) {
	var buf []byte
	if sizeHint >= 0 {
		buf = make([]byte, 0, sizeHint+1) // +1: the read that sees EOF needs room
	}
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err != nil {
			if err == io.EOF {
				return buf, nil
			}
			return buf, err
		}
	}
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

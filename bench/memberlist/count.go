package memberlist

import (
	"net"
	"sync/atomic"
)

// counter adds up the payload bytes a cluster sends: UDP datagrams and
// bytes written on TCP streams, whichever side opened them. Headers (IP,
// UDP, TCP) are not counted, and neither is anything received: on loopback
// every byte sent is received once, so the sent bytes are the traffic.
type counter struct {
	udp atomic.Uint64
	tcp atomic.Uint64
}

// bytes is a snapshot of a counter.
type bytes struct {
	UDP, TCP uint64
}

// load returns the bytes counted so far.
func (c *counter) load() bytes {
	return bytes{UDP: c.udp.Load(), TCP: c.tcp.Load()}
}

// sub returns the bytes counted between earlier and b.
func (b bytes) sub(earlier bytes) bytes {
	return bytes{UDP: b.UDP - earlier.UDP, TCP: b.TCP - earlier.TCP}
}

// countedConn counts the bytes written on a stream.
type countedConn struct {
	net.Conn
	c *counter
}

// Write implements net.Conn.
func (cc countedConn) Write(p []byte) (int, error) {
	n, err := cc.Conn.Write(p)
	cc.c.tcp.Add(uint64(n))
	return n, err
}

// CloseWrite half-closes the stream when the wrapped connection can; the
// swim Runner relies on it to end a request.
func (cc countedConn) CloseWrite() error {
	if cw, ok := cc.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return cc.Conn.Close()
}

//go:build linux

package faults

import (
	"encoding/binary"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"
)

// hostileKind is what a hostile KV event endpoint does to a subscriber.
type hostileKind int

const (
	// hostileGarbage answers with random bytes, no ZMTP greeting.
	hostileGarbage hostileKind = iota
	// hostileHugeHeader completes the ZMTP handshake as a PUB socket, then
	// announces a frame of 2^62 bytes.
	hostileHugeHeader
	// hostileCapHeader completes the handshake, announces a frame just
	// under the subscriber's cap (16 MiB - 1) and falls silent.
	hostileCapHeader
	// hostileSilent accepts the connection and sends nothing, as a
	// stopped engine's kernel does (it completes the TCP handshake).
	hostileSilent
)

func (k hostileKind) String() string {
	return [...]string{"garbage", "huge-header", "cap-header-silent", "silent"}[k]
}

// hostileEndpoint is a TCP server on 127.0.0.1 that plays a hostile
// engine's KV event endpoint. It serves at most maxConns connections, each
// for at most connLife, and closes them all when the test ends.
type hostileEndpoint struct {
	kind  hostileKind
	ln    net.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns map[net.Conn]bool
	// served counts connections accepted.
	served int
}

const (
	hostileMaxConns = 500
	hostileConnLife = 60 * time.Second
)

func startHostile(t *testing.T, kind hostileKind) *hostileEndpoint {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &hostileEndpoint{kind: kind, ln: ln, conns: map[net.Conn]bool{}}
	h.wg.Add(1)
	go h.serve()
	t.Cleanup(func() {
		ln.Close()
		h.mu.Lock()
		for c := range h.conns {
			c.Close()
		}
		h.mu.Unlock()
		h.wg.Wait()
	})
	return h
}

// endpoint returns the tcp:// endpoint to register.
func (h *hostileEndpoint) endpoint() string { return "tcp://" + h.ln.Addr().String() }

// accepted returns the number of connections served so far.
func (h *hostileEndpoint) accepted() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.served
}

func (h *hostileEndpoint) serve() {
	defer h.wg.Done()
	for {
		c, err := h.ln.Accept()
		if err != nil {
			return
		}
		h.mu.Lock()
		if h.served >= hostileMaxConns {
			h.mu.Unlock()
			c.Close()
			continue
		}
		h.served++
		h.conns[c] = true
		h.mu.Unlock()
		h.wg.Add(1)
		go func() {
			defer h.wg.Done()
			defer func() {
				h.mu.Lock()
				delete(h.conns, c)
				h.mu.Unlock()
				c.Close()
			}()
			h.play(c)
		}()
	}
}

// play writes what the kind says, then reads and discards what the
// subscriber sends until it closes or connLife passes.
func (h *hostileEndpoint) play(c net.Conn) {
	c.SetDeadline(time.Now().Add(hostileConnLife))
	var out []byte
	switch h.kind {
	case hostileGarbage:
		out = make([]byte, 64<<10)
		rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
		for i := range out {
			out[i] = byte(rng.Uint32())
		}
	case hostileHugeHeader:
		out = zmtpPubPreamble()
		out = append(out, 0x02) // a long message frame
		out = binary.BigEndian.AppendUint64(out, 1<<62)
	case hostileCapHeader:
		out = zmtpPubPreamble()
		out = append(out, 0x02)
		out = binary.BigEndian.AppendUint64(out, 16<<20-1)
	case hostileSilent:
	}
	if _, err := c.Write(out); err != nil {
		return
	}
	_, _ = io.Copy(io.Discard, c)
}

// zmtpPubPreamble is what a ZMTP 3.0 PUB socket with the NULL mechanism
// sends first: its greeting, then its READY command.
func zmtpPubPreamble() []byte {
	g := make([]byte, 64)
	g[0], g[9] = 0xff, 0x7f
	g[10], g[11] = 3, 0 // version 3.0
	copy(g[12:], "NULL")
	// as-server 0 and the filler stay zero.
	body := []byte{5}
	body = append(body, "READY"...)
	body = append(body, byte(len("Socket-Type")))
	body = append(body, "Socket-Type"...)
	body = binary.BigEndian.AppendUint32(body, 3)
	body = append(body, "PUB"...)
	g = append(g, 0x04, byte(len(body))) // a short command frame
	return append(g, body...)
}

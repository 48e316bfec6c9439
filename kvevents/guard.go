package kvevents

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/go-zeromq/zmq4"
	"github.com/go-zeromq/zmq4/transport"
)

// MaxFrameBytes caps a ZMTP frame, and the frames of one message together,
// on every connection of this package's sockets; a peer that announces more
// loses its connection. zmq4 allocates a frame's announced size before it
// reads the frame, so without this cap one 9-byte header from a faulty or
// hostile engine endpoint could make the node allocate up to 2^63 bytes.
// DecodeBatch then applies Limits.MaxPayloadBytes to what passed.
const MaxFrameBytes = 16 << 20

// maxFramesPerMessage caps the frames of one message (the stream uses 3;
// zmq4 keeps them all in memory until the last one).
const maxFramesPerMessage = 16

// guardedScheme is the zmq4 transport name under which this package's
// sockets use TCP with the frame guard; tcp:// endpoints are rewritten to
// it.
const guardedScheme = "meshnode-kv-tcp"

// errFrameTooLarge is returned by a guarded connection's Read.
var errFrameTooLarge = errors.New("kvevents: ZMTP frame or message over the size cap")

var registerOnce sync.Once

// ErrEndpoint is wrapped by the errors for an endpoint this package does
// not speak: only tcp://HOST:PORT, the only transport on which it can cap
// what a peer makes it allocate.
var ErrEndpoint = errors.New("kvevents: unsupported endpoint")

// guarded rewrites a tcp:// endpoint to the guarded transport, registering
// it with zmq4 the first time (zmq4 keeps transports in a process-wide
// table). Other schemes (ipc, inproc, udp) are refused: zmq4 would read
// them unguarded.
func guarded(endpoint string) (string, error) {
	rest, ok := strings.CutPrefix(endpoint, "tcp://")
	if !ok || rest == "" {
		return "", fmt.Errorf("kvevents: endpoint %q, want tcp://HOST:PORT: %w", endpoint, ErrEndpoint)
	}
	registerOnce.Do(func() {
		// The name is ours alone; registration fails only if it was taken.
		if err := zmq4.RegisterTransport(guardedScheme, guardTransport{tcp: transport.New("tcp")}); err != nil {
			panic(fmt.Sprintf("kvevents: registering the guarded transport: %v", err))
		}
	})
	return guardedScheme + "://" + rest, nil
}

// guardTransport is TCP whose connections check the frames they read.
type guardTransport struct{ tcp transport.Transport }

func (g guardTransport) Dial(ctx context.Context, d transport.Dialer, addr string) (net.Conn, error) {
	c, err := g.tcp.Dial(ctx, d, addr)
	if err != nil {
		return nil, err
	}
	// zmq4 v0.17.0 has no deadline of its own for the ZMTP handshake and
	// does not watch ctx while it reads the peer's greeting: an endpoint
	// that accepts and never answers (a stopped engine, a black hole) would
	// hold the dialer forever. The handshake gets HandshakeTimeout, and
	// ctx's end closes the connection at any time.
	_ = c.SetDeadline(time.Now().Add(HandshakeTimeout))
	gc := &guardConn{Conn: c, greeting: zmtpGreetingBytes, handshake: true}
	gc.stop = context.AfterFunc(ctx, func() { _ = c.Close() })
	return gc, nil
}

// HandshakeTimeout bounds the ZMTP handshake of a dialled connection: the
// greeting and the peer's first command (READY) must arrive within it.
// It is a variable for tests.
var HandshakeTimeout = 5 * time.Second

func (g guardTransport) Listen(ctx context.Context, addr string) (net.Listener, error) {
	l, err := g.tcp.Listen(ctx, addr)
	if err != nil {
		return nil, err
	}
	return guardListener{l}, nil
}

func (g guardTransport) Addr(ep string) (string, error) { return g.tcp.Addr(ep) }

type guardListener struct{ net.Listener }

func (l guardListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &guardConn{Conn: c, greeting: zmtpGreetingBytes}, nil
}

// zmtpGreetingBytes is the size of the ZMTP 3 greeting, which precedes the
// frames on a connection.
const zmtpGreetingBytes = 64

// ZMTP 3 frame flags.
const (
	flagMore    = 0x01
	flagLong    = 0x02
	flagCommand = 0x04
)

// guardConn watches the ZMTP stream it reads, without buffering it: past
// the greeting, it parses each frame header and fails the connection when a
// frame, or the frames of one message together, exceed MaxFrameBytes, or a
// message has more than maxFramesPerMessage frames.
type guardConn struct {
	net.Conn
	greeting int     // greeting bytes still to pass
	hdr      [9]byte // the frame header being read
	hn       int     // bytes of hdr read
	body     uint64  // body bytes of the current frame still to pass
	msgBytes uint64  // bytes of the message so far
	frames   int     // frames of the message so far
	ended    bool    // the last frame ended a message
	err      error
	// handshake is set on a dialled connection until the peer's first
	// command has been read, when the handshake deadline is lifted.
	handshake bool
	// stop unregisters a dialled connection's close on its context's end.
	stop func() bool
}

// Close closes the connection and forgets its context: a subscriber that
// reconnects for days on one context must not pile up closures.
func (c *guardConn) Close() error {
	if c.stop != nil {
		c.stop()
	}
	return c.Conn.Close()
}

func (c *guardConn) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.Conn.Read(p)
	if gerr := c.scan(p[:n]); gerr != nil {
		c.err = gerr
		_ = c.Conn.Close()
		return 0, gerr
	}
	if c.handshake && c.greeting == 0 && c.frames > 0 && c.body == 0 && c.hn == 0 {
		// The greeting and the peer's READY command have passed.
		c.handshake = false
		_ = c.Conn.SetDeadline(time.Time{})
	}
	return n, err
}

// scan advances the parser over b, the next bytes of the stream.
func (c *guardConn) scan(b []byte) error {
	if c.greeting > 0 {
		k := min(c.greeting, len(b))
		c.greeting -= k
		b = b[k:]
	}
	for len(b) > 0 {
		if c.body > 0 {
			k := uint64(len(b))
			if k > c.body {
				k = c.body
			}
			c.body -= k
			b = b[k:]
			continue
		}
		c.hdr[c.hn] = b[0]
		c.hn++
		b = b[1:]
		need := 2
		if c.hdr[0]&flagLong != 0 {
			need = 9
		}
		if c.hn < need {
			continue
		}
		var size uint64
		if need == 2 {
			size = uint64(c.hdr[1])
		} else {
			size = binary.BigEndian.Uint64(c.hdr[1:9])
		}
		c.hn = 0
		if c.ended {
			c.msgBytes, c.frames, c.ended = 0, 0, false
		}
		c.frames++
		if size > MaxFrameBytes || c.msgBytes+size > MaxFrameBytes || c.frames > maxFramesPerMessage {
			return errFrameTooLarge
		}
		c.msgBytes += size
		c.body = size
		c.ended = c.hdr[0]&flagMore == 0 || c.hdr[0]&flagCommand != 0
	}
	return nil
}

package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/meshnode/meshnode/wire"
)

// The admission tests here stay on real sockets on purpose: what they
// measure (kernel TCP connections that a stranger opens and leaves idle,
// reads that block on a real socket, the heap a connection costs) has no
// counterpart on the in-memory network.

// hugeHeader is what a stranger sends to make a reader allocate: channel
// ch, a frame header claiming 16 MiB - 1, two body bytes.
func hugeHeader(ch byte) []byte {
	size := wire.DefaultMaxFrameBytes - 1
	return []byte{ch, byte(size >> 24), byte(size >> 16), byte(size >> 8), byte(size), byte(wire.TypeData), 0, 0x92, 0x01}
}

// dialAll opens n connections to addr, writes payload on each and keeps
// them open until the test ends.
func dialAll(t testing.TB, addr string, n int, payload func(i int) []byte) []net.Conn {
	t.Helper()
	conns := make([]net.Conn, 0, n)
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	for i := range n {
		c, err := net.DialTimeout("tcp", addr, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		if p := payload(i); len(p) > 0 {
			if _, err := c.Write(p); err != nil {
				t.Fatal(err)
			}
		}
	}
	return conns
}

// liveHeap returns the bytes of live heap objects, after a collection.
func liveHeap() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// TestOversizedHeadersCostWhatWasSent: connections on channels D, A and S
// that send a header claiming 16 MiB and two bytes, then stay silent, make
// the node hold about what they sent (a read step each), not the claim.
func TestOversizedHeadersCostWhatWasSent(t *testing.T) {
	const conns = 24
	c := newCluster(t, 1, false, func(cfg *Config) { cfg.FirstFrameTimeout = Duration(30 * time.Second) })
	nd := c.nodes[0]
	before := liveHeap()
	recv0 := nd.tr.tcpRecv.Load()
	channels := []byte{chanDeltas, chanAntiEntropy, chanSwim}
	dialAll(t, nd.Addr().String(), conns, func(i int) []byte { return hugeHeader(channels[i%len(channels)]) })
	// Once the node has read every byte sent, every reader has sized its
	// buffer for the frame.
	sent := uint64(conns * len(hugeHeader(0)))
	eventually(t, "the node reads the headers", func() error {
		if got := nd.tr.tcpRecv.Load() - recv0; got < sent {
			return fmt.Errorf("read %d of %d bytes", got, sent)
		}
		return nil
	})
	after := liveHeap()
	held := after - min(before, after) // one reading: two could wrap below zero
	// One claimed frame is 16 MiB; the readers may hold a read step each
	// and some connection state.
	if limit := uint64(conns * 64 << 10); held > limit {
		t.Errorf("%d connections that sent %d bytes each hold %d bytes of heap, want at most %d", conns, len(hugeHeader(0)), held, limit)
	}
	if got, limit := nd.streamBuf.used.Load(), int64(conns*wire.MinReadStepBytes); got > limit {
		t.Errorf("stream buffer gauge %d, want at most %d", got, limit)
	}
	if got := nd.pending.len(); got != conns {
		t.Errorf("%d connections pending, want %d", got, conns)
	}
}

// TestStrangersBufferBudget: strangers that really send large frames may
// hold only their share of the stream buffer budget; beyond it they are
// closed and counted, and their bytes are given back.
func TestStrangersBufferBudget(t *testing.T) {
	const budget = minStreamBufferBytes // strangers: 2 MiB
	c := newCluster(t, 1, false, func(cfg *Config) {
		cfg.MaxStreamBufferBytes = budget
		cfg.FirstFrameTimeout = Duration(30 * time.Second)
	})
	nd := c.nodes[0]
	// Twelve strangers each send 300 KiB of a frame claiming 16 MiB: 3.6 MB
	// sent, more than the strangers' share.
	body := bytes.Repeat([]byte{0x55}, 300<<10)
	conns := dialAll(t, nd.Addr().String(), 12, func(int) []byte { return append(hugeHeader(chanDeltas), body...) })
	eventually(t, "strangers over budget closed", func() error {
		if got := testutilCounter(nd.met.connsClosed.WithLabelValues(closedBufferBudget)); got < 1 {
			return fmt.Errorf("%v closed for the budget", got)
		}
		return nil
	})
	if got := nd.streamBuf.used.Load(); got > budget/4 {
		t.Errorf("strangers hold %d bytes, their share is %d", got, budget/4)
	}
	for _, cn := range conns {
		cn.Close()
	}
	eventually(t, "budget given back", func() error {
		if got := nd.streamBuf.used.Load(); got != 0 {
			return fmt.Errorf("%d bytes still charged", got)
		}
		return nil
	})
}

// TestIdleConnsDoNotLockOutMembers: 200 connections that send nothing do
// not keep members out: anti-entropy with the node succeeds at once, a new
// node joins through it well within the stream deadline, and the idle
// connections are closed after FirstFrameTimeout.
func TestIdleConnsDoNotLockOutMembers(t *testing.T) {
	const idle = 200
	c := newCluster(t, 2, false, func(cfg *Config) {
		cfg.FirstFrameTimeout = Duration(2 * time.Second)
		cfg.StreamTimeout = Duration(60 * time.Second) // idle connections must not simply time out
	})
	nd := c.nodes[0]
	c.must(0, "PUT", "/v1/kv/h/k", `{"value":"v"}`)
	dialAll(t, nd.Addr().String(), idle, func(int) []byte { return nil })
	eventually(t, "idle connections accepted", func() error {
		if got := testutilCounter(nd.met.connsClosed.WithLabelValues(closedPendingFull)) + float64(nd.pending.len()); got < idle {
			return fmt.Errorf("%v of %d accepted", got, idle)
		}
		return nil
	})
	if err := c.nodes[1].antiEntropyWith(nd.Addr()); err != nil {
		t.Fatalf("anti-entropy behind %d idle connections: %v", idle, err)
	}
	// A new node joins through the node the idle connections target.
	c.cfgs = append(c.cfgs, localConfig("n2", ""))
	c.nodes = append(c.nodes, nil)
	c.start(2)
	start := time.Now()
	if err := c.nodes[2].Join(nd.Addr().String()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for !c.nodes[2].mem.Joined() || !c.nodes[2].synced.Load() {
		if ctx.Err() != nil {
			t.Fatalf("not joined and synced within %v behind %d idle connections", time.Since(start), idle)
		}
		select {
		case <-ctx.Done():
		case <-time.After(20 * time.Millisecond):
		}
	}
	c.everywhere("replicated", c.hasKey("h", "k", "v"))
	eventually(t, "idle connections closed", func() error {
		if got := nd.pending.len(); got != 0 {
			return fmt.Errorf("%d still pending", got)
		}
		if got := testutilCounter(nd.met.connsClosed.WithLabelValues(closedFirstTimeout)); got < 1 {
			return errors.New("none counted as timed out")
		}
		return nil
	})
}

// TestFirstFrameProves: a connection leaves the strangers' pool only with
// a valid first frame, and with a gossip key required that means an
// authenticated one: a well-formed plaintext frame is refused.
func TestFirstFrameProves(t *testing.T) {
	codec, err := wire.NewCodec(wire.Config{})
	if err != nil {
		t.Fatal(err)
	}
	frame, err := codec.AppendFrame([]byte{chanDeltas}, wire.TypeData, (&wire.Data{Kind: 200, Payload: []byte("x")}).AppendBody(nil))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name       string
		key        string
		wantProven bool
	}{
		{"plaintext node", "", true},
		{"node requiring encryption", testKey(1), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t, 1, false, func(cfg *Config) { cfg.EncryptKey = tc.key })
			nd := c.nodes[0]
			bad := nd.met.connsClosed.WithLabelValues(closedFirstBad)
			dialAll(t, nd.Addr().String(), 1, func(int) []byte { return frame })
			// A served deltas stream hands the (unknown) kind to the
			// store, which refuses it: a delta error shows it was served.
			served := func() bool { return testutilCounter(nd.met.deltaErrors) > 0 }
			eventually(t, "first frame judged", func() error {
				if !served() && testutilCounter(bad) == 0 {
					return errors.New("neither served nor refused")
				}
				return nil
			})
			if served() != tc.wantProven {
				t.Errorf("served: %v, want %v (closed for a bad first frame: %v)", served(), tc.wantProven, testutilCounter(bad))
			}
		})
	}
}

package kvevents

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// waitFor polls cond until it holds or the deadline passes: these tests
// run real sockets on loopback, where only polling with a deadline can
// observe a subscription reaching the publisher.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func testBatch(i int) *Batch {
	return &Batch{TS: float64(i), HasDPRank: true, Events: []Event{{
		Kind: KindBlockStored, BlockHashes: []uint64{uint64(i), uint64(i) + 1}, TokenIDs: []uint32{1, 2, 3, 4},
		BlockSize: 2, Medium: MediumGPU, HasParent: i > 0, ParentHash: uint64(max(i-1, 0)),
	}}}
}

func TestPublishSubscribeReplay(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	p, err := NewPublisher(ctx, "tcp://127.0.0.1:0", "tcp://127.0.0.1:0", "kv", 4)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	s, err := Subscribe(ctx, "tcp://"+p.Addr().String(), "kv")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	waitFor(t, "the subscription", func() bool { return p.Subscribed("kv") })

	const n = 6
	for i := range n {
		seq, err := p.Publish(testBatch(i))
		if err != nil || seq != int64(i) {
			t.Fatalf("Publish %d = %d, %v", i, seq, err)
		}
	}
	var b Batch
	for i := range n {
		m, err := s.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if m.Topic != "kv" || m.Seq != int64(i) {
			t.Fatalf("message %d: topic %q seq %d", i, m.Topic, m.Seq)
		}
		if err := DecodeBatch(&b, m.Payload, Limits{}); err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(*testBatch(i), b, batchCmp); d != "" {
			t.Fatalf("batch %d (-want +got):\n%s", i, d)
		}
	}

	replayAddr := "tcp://" + p.ReplayAddr().String()
	for _, tc := range []struct {
		start int64
		want  []int64
	}{
		{3, []int64{3, 4, 5}},
		{0, []int64{2, 3, 4, 5}}, // 0 and 1 are no longer kept
		{6, nil},
		{100, nil},
	} {
		var got []int64
		err := Replay(ctx, replayAddr, tc.start, func(m Message) error {
			if err := DecodeBatch(&b, m.Payload, Limits{}); err != nil {
				return err
			}
			if d := cmp.Diff(*testBatch(int(m.Seq)), b, batchCmp); d != "" {
				t.Errorf("replayed batch %d (-want +got):\n%s", m.Seq, d)
			}
			got = append(got, m.Seq)
			return nil
		})
		if err != nil {
			t.Fatalf("Replay(%d): %v", tc.start, err)
		}
		if d := cmp.Diff(tc.want, got); d != "" {
			t.Errorf("Replay(%d) seqs (-want +got):\n%s", tc.start, d)
		}
	}

	// fn's error ends the replay and is returned.
	stop := errors.New("stop")
	if err := Replay(ctx, replayAddr, 0, func(Message) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("Replay with a failing fn = %v, want %v", err, stop)
	}
}

// zmtpGreeting is a ZMTP 3.0 greeting for the NULL mechanism.
func zmtpGreeting(asServer bool) []byte {
	g := make([]byte, 64)
	g[0], g[9], g[10] = 0xff, 0x7f, 3
	copy(g[12:], "NULL")
	if asServer {
		g[32] = 1
	}
	return g
}

// zmtpReady is a READY command naming the socket type.
func zmtpReady(socketType string) []byte {
	body := append([]byte{5}, "READY"...)
	body = append(body, byte(len("Socket-Type")))
	body = append(body, "Socket-Type"...)
	body = binary.BigEndian.AppendUint32(body, uint32(len(socketType)))
	body = append(body, socketType...)
	return append([]byte{flagCommand, byte(len(body))}, body...)
}

// TestSubscriberRefusesHugeFrame runs a fake engine that completes the
// ZMTP handshake and then announces a frame of 2^40 bytes: the subscriber
// must drop the connection instead of allocating it.
func TestSubscriberRefusesHugeFrame(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		var out bytes.Buffer
		out.Write(zmtpGreeting(true))
		out.Write(zmtpReady("PUB"))
		huge := []byte{flagLong | flagMore}
		huge = binary.BigEndian.AppendUint64(huge, 1<<40)
		out.Write(huge)
		_, _ = c.Write(out.Bytes())
		_, _ = c.Read(make([]byte, 1024)) // until the subscriber hangs up
		<-ctx.Done()
	}()
	s, err := Subscribe(ctx, "tcp://"+l.Addr().String(), "")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Recv(); err == nil {
		t.Fatal("Recv succeeded on a 2^40-byte frame")
	}
	cancel()
	<-done
}

func TestGuardConnScan(t *testing.T) {
	frame := func(flags byte, size int) []byte {
		if size > 255 {
			return binary.BigEndian.AppendUint64([]byte{flags | flagLong}, uint64(size))
		}
		return []byte{flags, byte(size)}
	}
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	body := func(n int) []byte { return make([]byte, n) }
	for _, tc := range []struct {
		name   string
		stream []byte
		ok     bool
	}{
		{"greeting only", zmtpGreeting(false), true},
		{"handshake and a message", cat(zmtpGreeting(false), zmtpReady("PUB"),
			frame(flagMore, 2), body(2), frame(flagMore, 8), body(8), frame(0, 300), body(300)), true},
		{"many messages", cat(zmtpGreeting(false), bytes.Repeat(cat(frame(flagMore, 1), body(1), frame(0, 1), body(1)), 100)), true},
		{"frame at the cap", cat(zmtpGreeting(false), frame(0, MaxFrameBytes)), true},
		{"frame over the cap", cat(zmtpGreeting(false), frame(0, MaxFrameBytes+1)), false},
		{"announced 2^63", cat(zmtpGreeting(false), []byte{flagLong, 0x80, 0, 0, 0, 0, 0, 0, 0}), false},
		{"message over the cap", cat(zmtpGreeting(false), frame(flagMore, MaxFrameBytes/2), body(MaxFrameBytes/2),
			frame(0, MaxFrameBytes/2+1)), false},
		{"too many frames", cat(zmtpGreeting(false), bytes.Repeat(frame(flagMore, 0), maxFramesPerMessage+1)), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Feed the stream in chunks from 1 byte to all at once (large
			// streams, whose bodies the guard skips, in fewer chunks).
			chunks := []int{1, 3, 64, len(tc.stream)}
			if len(tc.stream) > 1<<16 {
				chunks = []int{4096, len(tc.stream)}
			}
			for _, chunk := range chunks {
				c := guardConn{greeting: zmtpGreetingBytes}
				var err error
				for rest := tc.stream; len(rest) > 0 && err == nil; {
					k := min(chunk, len(rest))
					err = c.scan(rest[:k])
					rest = rest[k:]
				}
				if (err == nil) != tc.ok {
					t.Fatalf("chunk %d: scan = %v, want ok=%v", chunk, err, tc.ok)
				}
			}
		})
	}
}

func TestEndpointsTCPOnly(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, ep := range []string{"ipc:///x", "inproc://x", "udp://127.0.0.1:1", "tcp://", "127.0.0.1:5557", ""} {
		if _, err := Subscribe(ctx, ep, ""); !errors.Is(err, ErrEndpoint) {
			t.Errorf("Subscribe(%q) = %v, want ErrEndpoint", ep, err)
		}
		if err := Replay(ctx, ep, 0, func(Message) error { return nil }); !errors.Is(err, ErrEndpoint) {
			t.Errorf("Replay(%q) = %v, want ErrEndpoint", ep, err)
		}
		if _, err := NewPublisher(ctx, ep, "", "", 1); !errors.Is(err, ErrEndpoint) {
			t.Errorf("NewPublisher(%q) = %v, want ErrEndpoint", ep, err)
		}
	}
	if _, err := NewPublisher(ctx, "tcp://127.0.0.1:0", "ipc:///x", "", 1); !errors.Is(err, ErrEndpoint) {
		t.Errorf("NewPublisher with an ipc replay endpoint = %v, want ErrEndpoint", err)
	}
}

// TestRecvFailsWhenPublisherGoes: when the engine goes away, Recv returns
// an error instead of waiting forever, so that the caller re-subscribes
// and replays.
func TestRecvFailsWhenPublisherGoes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	p, err := NewPublisher(ctx, "tcp://127.0.0.1:0", "", "", 1)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Subscribe(ctx, "tcp://"+p.Addr().String(), "")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	waitFor(t, "the subscription", func() bool { return p.Subscribed("") })
	if _, err := p.Publish(testBatch(0)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Recv(); err != nil {
		t.Fatal(err)
	}
	p.Close()
	got := make(chan error, 1)
	go func() { _, err := s.Recv(); got <- err }()
	select {
	case err := <-got:
		if err == nil {
			t.Fatal("Recv after the publisher closed returned no error")
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Recv still waiting 20 s after the publisher closed")
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close after the publisher went away: %v", err)
	}
}

// TestReplayHonoursContext: a replay endpoint that never answers holds
// Replay only until ctx ends.
func TestReplayHonoursContext(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = c.Write(append(zmtpGreeting(true), zmtpReady("ROUTER")...))
		_, _ = io.Copy(io.Discard, c) // read the request, never answer
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err = Replay(ctx, "tcp://"+l.Addr().String(), 0, func(Message) error { return nil })
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Replay = %v, want the context's deadline", err)
	}
}

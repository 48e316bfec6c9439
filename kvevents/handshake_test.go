package kvevents

import (
	"context"
	"net"
	"testing"
	"time"
)

// silentEndpoint accepts TCP connections and never sends a byte, as the
// kernel of a stopped engine does; it returns its tcp:// endpoint.
func silentEndpoint(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { _ = c.Close() })
		}
	}()
	return "tcp://" + l.Addr().String()
}

// TestSilentEndpointGivesUp checks that Subscribe and Replay give up on an
// endpoint that never completes the ZMTP handshake: when their context ends,
// and on their own after HandshakeTimeout.
func TestSilentEndpointGivesUp(t *testing.T) {
	ep := silentEndpoint(t)
	attempts := map[string]func(ctx context.Context) error{
		"subscribe": func(ctx context.Context) error {
			s, err := Subscribe(ctx, ep, "")
			if err == nil {
				// zmq4 may dial in the background: the handshake then
				// fails in Recv.
				defer s.Close()
				_, err = s.Recv()
			}
			return err
		},
		"replay": func(ctx context.Context) error {
			return Replay(ctx, ep, 0, func(Message) error { return nil })
		},
	}
	for name, attempt := range attempts {
		t.Run(name+"/cancel", func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- attempt(ctx) }()
			cancel()
			select {
			case err := <-done:
				if err == nil {
					t.Fatal("succeeded against a silent endpoint")
				}
			case <-time.After(20 * time.Second): // a deadline, not a wait
				t.Fatal("still waiting 20 s after its context ended")
			}
		})
		t.Run(name+"/timeout", func(t *testing.T) {
			old := HandshakeTimeout
			HandshakeTimeout = 100 * time.Millisecond
			t.Cleanup(func() { HandshakeTimeout = old })
			done := make(chan error, 1)
			go func() { done <- attempt(context.Background()) }()
			select {
			case err := <-done:
				if err == nil {
					t.Fatal("succeeded against a silent endpoint")
				}
			case <-time.After(20 * time.Second):
				t.Fatal("still waiting 20 s after a 100 ms handshake timeout")
			}
		})
	}
}

package kvevents

import (
	"context"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestNoLeak checks that the sockets' goroutines end with Close, but for
// zmq4's PUB writer loop, which its Close never stops (see Publisher).
func TestNoLeak(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreAnyFunction(ZMQ4LeakedFunction))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	p, err := NewPublisher(ctx, "tcp://127.0.0.1:0", "tcp://127.0.0.1:0", "kv", 4)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Subscribe(ctx, "tcp://"+p.Addr().String(), "kv")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the subscription", func() bool { return p.Subscribed("kv") })
	for i := range 3 {
		if _, err := p.Publish(testBatch(i)); err != nil {
			t.Fatal(err)
		}
	}
	for range 3 {
		if _, err := s.Recv(); err != nil {
			t.Fatal(err)
		}
	}
	if err := Replay(ctx, "tcp://"+p.ReplayAddr().String(), 0, func(Message) error { return nil }); err != nil {
		t.Fatal(err)
	}
	s.Close()
	p.Close()
}

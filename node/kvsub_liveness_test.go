package node

import (
	"context"
	"errors"
	"net"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/meshnode/meshnode/kvevents"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// counterValue returns a counter's value.
func counterValue(t *testing.T, c prometheus.Metric) float64 {
	t.Helper()
	var v dto.Metric
	if err := c.Write(&v); err != nil {
		t.Fatal(err)
	}
	return v.GetCounter().GetValue()
}

// kvTestNode returns a node (not started) whose KV event seams are
// configured by seams, following worker e1's engine at the endpoints of
// kv, with a recording index.
func kvTestNode(t *testing.T, grace time.Duration, seams func(*Config), kv KVEvents) (*Node, *fakeEventIndex) {
	t.Helper()
	cfg := Config{Name: "n0", BindAddr: "127.0.0.1:0", APIAddr: "off", KVGrace: Duration(grace)}
	seams(&cfg)
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Shutdown(context.Background()) })
	ix := newFakeEventIndex(16)
	n.evIx = ix
	n.synced.Store(true) // as after Start: the node may own streams
	if _, err := n.st.putWorker(Worker{ID: "e1", URL: "http://127.0.0.1:8001", Model: "m", Health: "healthy",
		KVEvents: &kv}, time.Now()); err != nil {
		t.Fatal(err)
	}
	n.reconcileKV()
	return n, ix
}

// TestKVSubscriptionSilentEngine: a stream that falls silent is not taken
// for a dead engine while its replay endpoint answers (an idle engine),
// and a batch the stream lost with nothing after it is found by the
// probe; an engine stopped with its stream open (SIGSTOP: the connection
// stays, nothing answers) has its pages dropped past the grace period,
// and restored by replay once it runs again.
func TestKVSubscriptionSilentEngine(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const grace = 9 * time.Second // probes every 3 s of silence, a probe gets 4.5 s
		e := newMemEngine(16, 1000)
		es := memEngines{"tcp://127.0.0.1:5557": e, "tcp://127.0.0.1:5558": e}
		n, ix := kvTestNode(t, grace, es.config, KVEvents{Endpoint: "tcp://127.0.0.1:5557", ReplayEndpoint: "tcp://127.0.0.1:5558"})
		step := func(what string, want ...string) {
			t.Helper()
			synctest.Wait()
			if diff := cmp.Diff(want, ix.takeLog()); diff != "" {
				t.Fatalf("%s: index calls (-want +got):\n%s", what, diff)
			}
		}
		state := func(what, want string) {
			t.Helper()
			if st := n.KVSubscriptions(); len(st) != 1 || st[0].State != want {
				t.Fatalf("%s: status %+v, want state %s", what, st, want)
			}
		}
		e.prefill(prompt(1, 16))
		step("live", "store gen=1 ver=0:0 parent=false pages=1 blocks=["+hashes(prompt(1, 16), 16)+"] ppb=1")

		time.Sleep(10 * grace)
		step("an idle engine keeps its pages")
		state("idle", kvStateStreaming)
		if got := counterValue(t, n.met.kvProbes.WithLabelValues("ok")); got < 20 {
			t.Errorf("%v probes answered in %v of silence, want one per %v", got, 10*grace, kvProbeInterval(grace))
		}

		e.mu.Lock()
		e.dropNext = true
		e.mu.Unlock()
		e.prefill(prompt(2, 16))
		step("a lost batch is not seen at once")
		time.Sleep(kvProbeInterval(grace) + time.Second)
		step("a probe finds the batch the silent stream lost",
			"store gen=1 ver=1:0 parent=false pages=1 blocks=["+hashes(prompt(2, 16), 16)+"] ppb=1")

		e.setStopped(true)
		stopped := time.Now()
		time.Sleep(grace - time.Second)
		step("stopped within the grace period")
		state("stopped within the grace period", kvStateStreaming)
		// Detected at the first failed probe past the grace period: the
		// last answer came at most a probe interval before the stop.
		time.Sleep(kvProbeInterval(grace) + kvProbeTimeout(grace) + 2*time.Second)
		step("stopped past the grace period", "clear gen=2")
		state("stopped past the grace period", kvStateDropped)
		if got := counterValue(t, n.met.kvProbes.WithLabelValues("failed")); got < 1 {
			t.Errorf("%v failed probes counted", got)
		}
		if d := time.Since(stopped); d <= grace {
			t.Errorf("dropped %v after the stop, within the grace period %v", d, grace)
		}

		e.setStopped(false)
		time.Sleep(kvBackoffMax + kvevents.HandshakeTimeout + time.Second)
		step("running again: the pages come back by replay from the start",
			"store gen=2 ver=0:0 parent=false pages=1 blocks=["+hashes(prompt(1, 16), 16)+"] ppb=1",
			"store gen=2 ver=1:0 parent=false pages=1 blocks=["+hashes(prompt(2, 16), 16)+"] ppb=1")
		state("running again", kvStateStreaming)
	})
}

// TestKVSubscriptionSilentNoReplay: without a replay endpoint a silent
// stream cannot be probed, and its engine's pages stay: the grace period
// counts failed connections only.
func TestKVSubscriptionSilentNoReplay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const grace = 3 * time.Second
		e := newMemEngine(16, 1000)
		es := memEngines{"tcp://127.0.0.1:5557": e}
		n, ix := kvTestNode(t, grace, es.config, KVEvents{Endpoint: "tcp://127.0.0.1:5557"})
		e.prefill(prompt(1, 16))
		synctest.Wait()
		ix.takeLog()
		e.setStopped(true)
		time.Sleep(20 * grace)
		synctest.Wait()
		if got := ix.takeLog(); len(got) != 0 {
			t.Fatalf("index calls while silent without a replay endpoint: %q", got)
		}
		if got := counterValue(t, n.met.kvProbes.WithLabelValues("failed")) + counterValue(t, n.met.kvProbes.WithLabelValues("ok")); got != 0 {
			t.Errorf("%v probes without a replay endpoint", got)
		}
		e.setStopped(false)
	})
}

// brokenStream completes its "handshake" and then fails, as an endpoint
// that sends a frame over the cap does.
type brokenStream struct{}

func (brokenStream) Recv() (kvevents.Message, error) {
	return kvevents.Message{}, errors.New("test: frame over the cap")
}
func (brokenStream) Close() error { return nil }

// TestKVSubscriptionBrokenStream: a stream that breaks before its first
// message counts as a failed attempt: a connect error each, and a backoff
// that grows to kvBackoffMax instead of a retry every kvBackoffMin.
func TestKVSubscriptionBrokenStream(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var dials atomic.Int64
		var healthy atomic.Bool
		e := newMemEngine(16, 1000)
		seams := func(cfg *Config) {
			memEngines{"tcp://127.0.0.1:5557": e}.config(cfg)
			good := cfg.KVEventsDial
			cfg.KVEventsDial = func(ctx context.Context, endpoint, topic string) (EventStream, error) {
				dials.Add(1)
				if healthy.Load() {
					return good(ctx, endpoint, topic)
				}
				return brokenStream{}, nil
			}
		}
		n, _ := kvTestNode(t, 10*time.Second, seams, KVEvents{Endpoint: "tcp://127.0.0.1:5557"})
		const window = 30 * time.Second
		time.Sleep(window)
		synctest.Wait()
		// 0.1 + 0.2 + ... + 3.2 s, then one every 5 s (jitter: 25 %).
		got := dials.Load()
		if got < 8 || got > 14 {
			t.Errorf("%d attempts in %v at a stream that breaks at once, want 8 to 14 (a growing backoff)", got, window)
		}
		if ce := counterValue(t, n.met.kvConnectErrors); ce != float64(got) {
			t.Errorf("%v connect errors counted for %d streams that ended before their first message", ce, got)
		}
		if st := n.KVSubscriptions(); len(st) != 1 || st[0].State != kvStateBackoff || st[0].Error == "" {
			t.Errorf("status %+v", st)
		}

		// A first message resets the backoff: the next break is retried
		// within kvBackoffMin.
		healthy.Store(true)
		time.Sleep(kvBackoffMax*5/4 + time.Second) // the backoff, jittered
		e.prefill(prompt(1, 16))
		synctest.Wait()
		if st := n.KVSubscriptions(); st[0].State != kvStateStreaming || st[0].LastSeq != 0 {
			t.Fatalf("status %+v", st)
		}
		ce := counterValue(t, n.met.kvConnectErrors)
		before := dials.Load()
		e.setDown(true)
		synctest.Wait()
		e.setDown(false)
		time.Sleep(kvBackoffMin*5/4 + time.Millisecond)
		synctest.Wait()
		if got := dials.Load() - before; got != 1 {
			t.Errorf("%d attempts within %v of a break after a message, want 1", got, kvBackoffMin*5/4)
		}
		if got := counterValue(t, n.met.kvConnectErrors); got != ce {
			t.Errorf("a stream that broke after a message counted as a connect error (%v, was %v)", got, ce)
		}
	})
}

// TestKVShutdownSilentEndpoint: a node subscribing to an endpoint that
// accepts the TCP connection and never sends its ZMTP greeting (a stopped
// engine's kernel does that) shuts down without waiting for the
// handshake to time out. Real loopback sockets: the handshake deadline is
// made far longer than the shutdown's.
func TestKVShutdownSilentEndpoint(t *testing.T) {
	old := kvevents.HandshakeTimeout
	kvevents.HandshakeTimeout = 10 * time.Minute
	t.Cleanup(func() { kvevents.HandshakeTimeout = old })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c // held open, never written to
		}
	}()
	defer func() {
		ln.Close()
		for c := range accepted {
			c.Close()
		}
	}()
	n, err := New(Config{Name: "n0", BindAddr: "127.0.0.1:0", APIAddr: "off"})
	if err != nil {
		t.Fatal(err)
	}
	n.evIx = newFakeEventIndex(16)
	n.synced.Store(true)
	if _, err := n.st.putWorker(Worker{ID: "e1", URL: "http://127.0.0.1:8001", Model: "m", Health: "healthy",
		KVEvents: &KVEvents{Endpoint: "tcp://" + ln.Addr().String()}}, time.Now()); err != nil {
		t.Fatal(err)
	}
	n.reconcileKV()
	select {
	case <-accepted:
	case <-time.After(time.Minute):
		t.Fatal("the node never dialled the endpoint")
	}
	// The dial is stuck in the handshake now; shutting down must end it.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := n.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown with a subscription stuck on a silent endpoint: %v", err)
	}
}

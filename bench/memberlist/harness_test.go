package memberlist

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/memberlist"
	"go.uber.org/goleak"

	"github.com/meshnode/meshnode/swim/swimnet"
)

func TestHoles(t *testing.T) {
	tests := []struct {
		name     string
		views    [][]bool
		skip     int
		want     int
		someFull bool
	}{
		{"all know all", [][]bool{{true, true, true}, {true, true, true}, {true, true, true}}, -1, 0, true},
		{"self is not a hole", [][]bool{{false, true, true}, {true, false, true}, {true, true, false}}, -1, 0, true},
		{"one missing pair", [][]bool{{true, true, true}, {true, true, false}, {true, true, true}}, -1, 1, true},
		{"nobody full", [][]bool{{true, false, true}, {true, true, false}, {false, true, true}}, -1, 3, false},
		{"skipped node neither counts nor is counted", [][]bool{{true, true, false}, {true, true, false}, nil}, 2, 0, true},
		{"skipped node known is fine", [][]bool{{true, false, true}, {true, true, true}, nil}, 2, 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, someFull := holes(tt.views, tt.skip)
			if got != tt.want || someFull != tt.someFull {
				t.Errorf("holes = %d, %v; want %d, %v", got, someFull, tt.want, tt.someFull)
			}
		})
	}
}

func TestQuantile(t *testing.T) {
	xs := []float64{5, 1, 4, 2, 3}
	tests := []struct {
		q    float64
		want float64
	}{{0, 1}, {0.5, 3}, {0.99, 5}, {1, 5}}
	for _, tt := range tests {
		got, ok := quantile(xs, tt.q)
		if !ok || got != tt.want {
			t.Errorf("quantile(%v) = %v, %v; want %v", tt.q, got, ok, tt.want)
		}
	}
	if diff := cmp.Diff([]float64{5, 1, 4, 2, 3}, xs); diff != "" {
		t.Errorf("quantile sorted its input (-want +got):\n%s", diff)
	}
	if _, ok := quantile([]time.Duration(nil), 0.5); ok {
		t.Error("quantile of nothing reported a value")
	}
}

func TestReceipts(t *testing.T) {
	var r receipts
	t0 := time.Unix(100, 0)
	if !r.add(1, []byte("m"), t0) {
		t.Fatal("first receipt not reported as first")
	}
	if r.add(1, []byte("m"), t0.Add(time.Second)) {
		t.Error("second receipt reported as first")
	}
	if !r.add(2, []byte("m"), t0.Add(2*time.Second)) {
		t.Error("another node's receipt not reported as first")
	}
	if got, ok := r.get(1, "m"); !ok || !got.Equal(t0) {
		t.Errorf("get(1) = %v, %v; want the first receipt %v", got, ok, t0)
	}
	if _, ok := r.get(3, "m"); ok {
		t.Error("get(3) found a receipt never made")
	}
}

// TestReceiptsRepair checks the push-pull state: empty unless repair is on,
// then every broadcast a node holds, which a peer merges as received.
func TestReceiptsRepair(t *testing.T) {
	var r receipts
	t0 := time.Unix(100, 0)
	a, b := broadcastID(0, 0), broadcastID(1, 0)
	r.add(0, []byte(a), t0)
	r.add(0, []byte(b), t0)
	if got := r.state(0); got != nil {
		t.Fatalf("state with repair off = %q, want nil", got)
	}
	r.repair.Store(true)
	st := r.state(0)
	if diff := cmp.Diff(a+b, string(st)); diff != "" {
		t.Fatalf("state (-want +got):\n%s", diff)
	}
	r.merge(1, st, t0.Add(time.Second))
	r.merge(2, st[:msgBytes+1], t0) // torn: ignored
	for _, m := range []string{a, b} {
		if got, ok := r.get(1, m); !ok || !got.Equal(t0.Add(time.Second)) {
			t.Errorf("node 1 holds %q at %v, %v; want the merge time", m, got, ok)
		}
		if _, ok := r.get(2, m); ok {
			t.Errorf("node 2 merged %q from a torn state", m)
		}
	}
	if diff := cmp.Diff(a+b, string(r.state(1))); diff != "" {
		t.Errorf("merged node's state (-want +got):\n%s", diff)
	}
}

func TestSummarize(t *testing.T) {
	rs := []Result{
		{N: 3, Bootstrap: time.Second, Holes: 2, HoleLasted: 3 * time.Second, Sent: 6, ByGossip: 4, Reached: 5,
			Spread: []time.Duration{time.Millisecond}, Idle: bytes{UDP: 300, TCP: 300}, IdleWindow: 2 * time.Second, Detect: -1},
		{N: 3, Bootstrap: -1, Sent: 6, ByGossip: 6, Reached: 6, Idle: bytes{UDP: 60}, IdleWindow: time.Second, Detect: time.Second, FalseDead: 1},
		{N: 3, Bootstrap: 2 * time.Second, Detect: time.Second}, // idle not measured
	}
	got := summarize("x", rs)
	want := Summary{
		Impl: "x", N: 3, Trials: 3,
		Bootstrap: []time.Duration{time.Second, 2 * time.Second}, Unfinished: 1,
		HoleTrials: 1, HolePairs: 2, HoleLasted: 3 * time.Second,
		Sent: 12, ByGossip: 10, Reached: 11, Spread: []time.Duration{time.Millisecond},
		Idle: []float64{100, 20}, IdleUDP: []float64{50, 20},
		Detect: []time.Duration{time.Second, time.Second}, Undetected: 1, FalseDead: 1,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("summarize (-want +got):\n%s", diff)
	}
}

func TestParseSizes(t *testing.T) {
	got, err := parseSizes("5, 20,50")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]int{5, 20, 50}, got); diff != "" {
		t.Errorf("parseSizes (-want +got):\n%s", diff)
	}
	for _, bad := range []string{"", "2", "x", "5,,6"} {
		if _, err := parseSizes(bad); err == nil {
			t.Errorf("parseSizes(%q) accepted", bad)
		}
	}
}

func TestBroadcastID(t *testing.T) {
	seen := map[string]bool{}
	for i := range 60 {
		for k := range 3 {
			id := broadcastID(i, k)
			if len(id) != 32 {
				t.Fatalf("broadcastID(%d, %d) = %q: %d bytes, want 32", i, k, id, len(id))
			}
			if seen[id] {
				t.Fatalf("broadcastID(%d, %d) = %q twice", i, k, id)
			}
			seen[id] = true
		}
	}
}

// TestCountedConn checks that the bytes written on a stream are counted,
// whichever side writes them, and that reads are not.
func TestCountedConn(t *testing.T) {
	a, b := net.Pipe()
	c := &counter{}
	ca := countedConn{Conn: a, c: c}
	done := make(chan error, 1)
	go func() {
		buf := make([]byte, 5)
		if _, err := b.Read(buf); err != nil {
			done <- err
			return
		}
		_, err := b.Write([]byte("abc"))
		done <- err
	}()
	if _, err := ca.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 3)
	if _, err := ca.Read(buf); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	ca.Close()
	b.Close()
	if diff := cmp.Diff(bytes{TCP: 5}, c.load()); diff != "" {
		t.Errorf("counted (-want +got):\n%s", diff)
	}
}

func TestPushPullScaled(t *testing.T) {
	tests := []struct {
		n    int
		want time.Duration
	}{{5, 15 * time.Second}, {32, 15 * time.Second}, {33, 30 * time.Second}, {50, 30 * time.Second}, {64, 30 * time.Second}, {65, 45 * time.Second}}
	for _, tt := range tests {
		if got := pushPullScaled(15*time.Second, tt.n); got != tt.want {
			t.Errorf("pushPullScaled(15s, %d) = %v, want %v", tt.n, got, tt.want)
		}
	}
}

// TestCountedTransport checks the swim transport wrapper on an in-memory
// network: datagrams and stream bytes written on either side are counted,
// streams peers open are handed out, and Shutdown ends the forwarding
// goroutine.
func TestCountedTransport(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	mem := swimnet.NewMemNetwork(8)
	ta, err := mem.Listen(netip.MustParseAddrPort("10.0.0.1:7946"))
	if err != nil {
		t.Fatal(err)
	}
	tb, err := mem.Listen(netip.MustParseAddrPort("10.0.0.2:7946"))
	if err != nil {
		t.Fatal(err)
	}
	c := &counter{}
	a, b := newCountedTransport(ta, c), newCountedTransport(tb, c)
	defer a.Shutdown()
	defer b.Shutdown()

	if err := a.WriteTo([]byte("ping!"), b.Addr()); err != nil {
		t.Fatal(err)
	}
	if in := <-b.Packets(); string(in.Buf) != "ping!" {
		t.Fatalf("b received %q", in.Buf)
	}
	// In-memory streams are synchronous pipes: the answering side runs on
	// its own goroutine (requestAnswer starts it before dialling).
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	requestAnswer(t, c,
		func() io.ReadWriteCloser { return (<-b.Streams()).Conn },
		func() (halfCloser, error) { return a.DialStream(ctx, b.Addr()) })
}

// halfCloser is a stream whose write side closes on its own.
type halfCloser interface {
	io.ReadWriteCloser
	CloseWrite() error
}

// requestAnswer serves one stream from accept, which answers "answer" to the
// request "req" sent over the stream dial opens, and checks the answer and
// that c counted the 5-byte datagram the caller sent before and the 9
// stream bytes.
func requestAnswer(t *testing.T, c *counter, accept func() io.ReadWriteCloser, dial func() (halfCloser, error)) {
	t.Helper()
	served := make(chan error, 1)
	go func() {
		in := accept()
		defer in.Close()
		req, err := io.ReadAll(in)
		if err == nil && string(req) != "req" {
			err = fmt.Errorf("b read %q", req)
		}
		if err == nil {
			_, err = in.Write([]byte("answer"))
		}
		served <- err
	}()
	conn, err := dial()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("req")); err != nil {
		t.Fatal(err)
	}
	if err := conn.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	resp, err := io.ReadAll(conn)
	if err != nil || string(resp) != "answer" {
		t.Fatalf("a read %q, %v", resp, err)
	}
	if err := <-served; err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(bytes{UDP: 5, TCP: 3 + 6}, c.load()); diff != "" {
		t.Errorf("counted (-want +got):\n%s", diff)
	}
}

// TestCountedMLTransport checks the memberlist transport wrapper on
// loopback: datagrams and stream bytes written on either side are counted,
// streams peers open are handed out, and Shutdown ends the forwarding
// goroutine.
func TestCountedMLTransport(t *testing.T) {
	// Registered first, so it runs after the transports' cleanups.
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
	c := &counter{}
	listen := func() *countedMLTransport {
		nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{
			BindAddrs: []string{"127.0.0.1"},
			Logger:    log.New(io.Discard, "", 0),
		})
		if err != nil {
			t.Fatal(err)
		}
		ct := newCountedMLTransport(nt, c)
		t.Cleanup(func() { ct.Shutdown() })
		return ct
	}
	a, b := listen(), listen()
	ip, port, err := b.FinalAdvertiseAddr("", 0)
	if err != nil {
		t.Fatal(err)
	}
	to := net.JoinHostPort(ip.String(), strconv.Itoa(port))

	if _, err := a.WriteTo([]byte("ping!"), to); err != nil {
		t.Fatal(err)
	}
	if p := <-b.PacketCh(); string(p.Buf) != "ping!" {
		t.Fatalf("b received %q", p.Buf)
	}
	requestAnswer(t, c,
		func() io.ReadWriteCloser { return <-b.StreamCh() },
		func() (halfCloser, error) {
			conn, err := a.DialTimeout(to, 10*time.Second)
			if err != nil {
				return nil, err
			}
			hc, ok := conn.(halfCloser)
			if !ok {
				conn.Close()
				return nil, fmt.Errorf("%T cannot close its write side", conn)
			}
			return hc, nil
		})
}

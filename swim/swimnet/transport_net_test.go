package swimnet_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/meshnode/meshnode/swim/swimnet"
)

func newNet(t *testing.T, cfg swimnet.NetConfig) *swimnet.NetTransport {
	t.Helper()
	tr, err := swimnet.NewNetTransport(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Shutdown() })
	return tr
}

func loopback() netip.AddrPort { return netip.MustParseAddrPort("127.0.0.1:0") }

// sendUDP sends b to to from a fresh socket.
func sendUDP(t *testing.T, to netip.AddrPort, bs ...[]byte) {
	t.Helper()
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(to))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, b := range bs {
		if _, err := c.Write(b); err != nil {
			t.Fatal(err)
		}
	}
}

// recvPacket waits for the next packet of tr.
func recvPacket(t *testing.T, tr swimnet.Transport) swimnet.Inbound {
	t.Helper()
	select {
	case p := <-tr.Packets():
		return p
	case <-time.After(e2eTimeout):
		t.Fatalf("no packet within %v", e2eTimeout)
		return swimnet.Inbound{}
	}
}

func TestNetTransportOnePort(t *testing.T) {
	noLeaks(t)
	a := newNet(t, swimnet.NetConfig{BindAddr: loopback()})
	b := newNet(t, swimnet.NetConfig{BindAddr: loopback()})
	if a.Addr() != a.LocalAddr() || a.Addr().Port() == 0 {
		t.Fatalf("Addr %v, LocalAddr %v: want the same bound address", a.Addr(), a.LocalAddr())
	}
	// UDP both ways, from the shared port.
	if err := a.WriteTo([]byte("ping"), b.Addr()); err != nil {
		t.Fatal(err)
	}
	p := recvPacket(t, b)
	if diff := cmp.Diff(swimnet.Inbound{From: a.Addr(), Buf: []byte("ping")}, p, cmp.Comparer(func(x, y netip.AddrPort) bool { return x == y })); diff != "" {
		t.Errorf("packet (-want +got):\n%s", diff)
	}
	// TCP on the same port, with half-close.
	ctx, cancel := context.WithTimeout(context.Background(), e2eTimeout)
	defer cancel()
	c, err := a.DialStream(ctx, b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("request")); err != nil {
		t.Fatal(err)
	}
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	var in swimnet.Incoming
	select {
	case in = <-b.Streams():
	case <-time.After(e2eTimeout):
		t.Fatal("no stream accepted")
	}
	req, err := io.ReadAll(in.Conn)
	if err != nil || string(req) != "request" {
		t.Fatalf("acceptor read %q, %v", req, err)
	}
	if _, err := in.Conn.Write([]byte("reply")); err != nil {
		t.Fatal(err)
	}
	in.Conn.Close()
	resp, err := io.ReadAll(c)
	if err != nil || string(resp) != "reply" {
		t.Fatalf("opener read %q, %v", resp, err)
	}
	if in.From.Addr() != a.Addr().Addr() {
		t.Errorf("stream from %v, want host %v", in.From, a.Addr().Addr())
	}
	a.Shutdown()
	b.Shutdown()
}

func TestNetTransportAddresses(t *testing.T) {
	tests := []struct {
		name    string
		cfg     swimnet.NetConfig
		want    func(bound netip.AddrPort) netip.AddrPort
		wantErr bool
	}{
		{"advertise bound", swimnet.NetConfig{BindAddr: loopback()}, func(b netip.AddrPort) netip.AddrPort { return b }, false},
		{"advertise other host, bound port", swimnet.NetConfig{BindAddr: loopback(), AdvertiseAddr: netip.MustParseAddrPort("192.0.2.7:0")},
			func(b netip.AddrPort) netip.AddrPort {
				return netip.AddrPortFrom(netip.MustParseAddr("192.0.2.7"), b.Port())
			}, false},
		{"advertise other host and port", swimnet.NetConfig{BindAddr: loopback(), AdvertiseAddr: netip.MustParseAddrPort("192.0.2.7:9999")},
			func(netip.AddrPort) netip.AddrPort { return netip.MustParseAddrPort("192.0.2.7:9999") }, false},
		{"unspecified bind needs an advertise address", swimnet.NetConfig{BindAddr: netip.MustParseAddrPort("0.0.0.0:0")}, nil, true},
		{"invalid bind", swimnet.NetConfig{}, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr, err := swimnet.NewNetTransport(tt.cfg)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			defer tr.Shutdown()
			if got, want := tr.Addr(), tt.want(tr.LocalAddr()); got != want {
				t.Errorf("Addr = %v, want %v", got, want)
			}
		})
	}
}

func TestNetTransportPortTaken(t *testing.T) {
	u, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(loopback()))
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	taken := u.LocalAddr().(*net.UDPAddr).AddrPort()
	if tr, err := swimnet.NewNetTransport(swimnet.NetConfig{BindAddr: taken}); err == nil {
		tr.Shutdown()
		t.Fatalf("bound %v although its UDP port is taken", taken)
	}
}

func TestNetTransportOversizedAndDropped(t *testing.T) {
	tr := newNet(t, swimnet.NetConfig{BindAddr: loopback(), MaxPacketBytes: 100, PacketQueue: 2})
	sendUDP(t, tr.Addr(), make([]byte, 101), make([]byte, 100), make([]byte, 1), make([]byte, 2), make([]byte, 3))
	eventually(t, e2eTimeout, "all counted", func() error {
		s := tr.Stats()
		if got := s.PacketsReceived + s.PacketsDropped + s.PacketsOversized; got != 5 {
			return fmt.Errorf("stats %+v account for %d packets, want 5", s, got)
		}
		return nil
	})
	want := swimnet.NetStats{PacketsReceived: 2, PacketsDropped: 2, PacketsOversized: 1}
	if diff := cmp.Diff(want, tr.Stats()); diff != "" {
		t.Errorf("stats (-want +got):\n%s", diff)
	}
	// The queue kept the first two that fit, whole.
	for _, n := range []int{100, 1} {
		if p := recvPacket(t, tr); len(p.Buf) != n {
			t.Errorf("packet of %d bytes, want %d", len(p.Buf), n)
		}
	}
}

func TestNetTransportStreamBound(t *testing.T) {
	tr := newNet(t, swimnet.NetConfig{BindAddr: loopback(), MaxStreams: 1})
	dial := func() net.Conn {
		c, err := net.Dial("tcp", tr.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	dial()
	var first swimnet.Incoming
	select {
	case first = <-tr.Streams():
	case <-time.After(e2eTimeout):
		t.Fatal("first stream not accepted")
	}
	// The slot is taken: the next connection is closed at once.
	second := dial()
	if n, err := second.Read(make([]byte, 1)); err == nil {
		t.Fatalf("second stream read %d bytes, want it closed", n)
	}
	if got := tr.Stats().StreamsRejected; got != 1 {
		t.Errorf("StreamsRejected = %d, want 1", got)
	}
	// Closing the first frees the slot.
	first.Conn.Close()
	eventually(t, e2eTimeout, "slot freed", func() error {
		dial()
		select {
		case in := <-tr.Streams():
			in.Conn.Close()
			return nil
		case <-time.After(100 * time.Millisecond):
			return fmt.Errorf("stats %+v", tr.Stats())
		}
	})
}

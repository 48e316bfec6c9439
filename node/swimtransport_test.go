package node

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/meshnode/meshnode/swim/swimnet"
	"github.com/meshnode/meshnode/wire"
)

func newSwimTransport(t *testing.T, name string) *SwimTransport {
	t.Helper()
	tr, err := ListenSwimTransport(Config{Name: name, BindAddr: "127.0.0.1:0", APIAddr: "off"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Shutdown() })
	return tr
}

// TestSwimTransportOnePort carries datagrams both ways and a swim stream
// exchange with half-close over the one port of the transport the daemon
// ships; the stream reaches the acceptor whole, its first frame (read for
// admission) replayed.
func TestSwimTransportOnePort(t *testing.T) {
	a := newSwimTransport(t, "a")
	b := newSwimTransport(t, "b")
	if a.Addr().Port() == 0 || a.Addr() == b.Addr() {
		t.Fatalf("addresses %v and %v: want two bound ports", a.Addr(), b.Addr())
	}
	if err := a.WriteTo([]byte("ping"), b.Addr()); err != nil {
		t.Fatal(err)
	}
	var p swimnet.Inbound
	select {
	case p = <-b.Packets():
	case <-time.After(e2eTimeout):
		t.Fatal("no packet")
	}
	if diff := cmp.Diff(swimnet.Inbound{From: a.Addr(), Buf: []byte("ping")}, p, cmp.Comparer(func(x, y netip.AddrPort) bool { return x == y })); diff != "" {
		t.Errorf("packet (-want +got):\n%s", diff)
	}

	codec, err := wire.NewCodec(wire.Config{})
	if err != nil {
		t.Fatal(err)
	}
	var req, resp bytes.Buffer
	ping := &wire.Ping{Seq: 7, Target: "b", SourceName: "a", SourceAddr: a.Addr()}
	if err := codec.WriteFrames(&req, ping.Type(), ping.AppendBody(nil), 0); err != nil {
		t.Fatal(err)
	}
	ack := &wire.Ack{Seq: 7}
	if err := codec.WriteFrames(&resp, ack.Type(), ack.AppendBody(nil), 0); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), e2eTimeout)
	defer cancel()
	c, err := a.DialStream(ctx, b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(req.Bytes()); err != nil {
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
	got, err := io.ReadAll(in.Conn)
	if err != nil || !bytes.Equal(got, req.Bytes()) {
		t.Fatalf("acceptor read %x, %v; want %x", got, err, req.Bytes())
	}
	if in.From.Addr() != a.Addr().Addr() {
		t.Errorf("stream from %v, want host %v", in.From, a.Addr().Addr())
	}
	if _, err := in.Conn.Write(resp.Bytes()); err != nil {
		t.Fatal(err)
	}
	in.Conn.Close()
	got, err = io.ReadAll(c)
	if err != nil || !bytes.Equal(got, resp.Bytes()) {
		t.Fatalf("opener read %x, %v; want %x", got, err, resp.Bytes())
	}
	st := a.Stats()
	if st.UDPSentBytes != 4 || st.TCPSentBytes != uint64(1+req.Len()) {
		t.Errorf("a sent %+v, want 4 UDP bytes and %d TCP bytes (channel byte and frame)", st, 1+req.Len())
	}
	a.Shutdown()
	b.Shutdown()
}

// TestSwimTransportPortTaken: a fixed port whose UDP or TCP half is taken
// cannot be bound.
func TestSwimTransportPortTaken(t *testing.T) {
	u, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	l, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for _, taken := range []string{u.LocalAddr().String(), l.Addr().String()} {
		if tr, err := ListenSwimTransport(Config{Name: "x", BindAddr: taken, APIAddr: "off"}); err == nil {
			tr.Shutdown()
			t.Errorf("bound %v although half of it is taken", taken)
		}
	}
}

package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/meshnode/meshnode/swim"
	"github.com/meshnode/meshnode/swim/swimnet"
	"github.com/meshnode/meshnode/wire"
)

// These tests run swimnet's Runner on the transport the daemon ships
// (node.SwimTransport), on real UDP and TCP sockets on 127.0.0.1.

// e2eTimeout bounds each wait of the swim tests on real sockets.
const e2eTimeout = 30 * time.Second

// wantSwimState returns a condition that every runner in rs sees name in state.
func wantSwimState(rs []*swimnet.Runner, name string, want swim.State) func() error {
	return func() error {
		for _, r := range rs {
			if m, ok := r.Member(name); !ok || m.State != want {
				return fmt.Errorf("%s sees %s as %v (known: %v), want %v", r.Self().Name, name, m.State, ok, want)
			}
		}
		return nil
	}
}

// swimE2EConfig is the local profile with a pause threshold that a busy machine
// running the race detector does not cross between two loop iterations.
func swimE2EConfig() swim.Config {
	cfg := swim.LocalConfig()
	cfg.PauseThreshold = 5 * time.Second
	return cfg
}

// swimRunner starts a runner on real sockets at bind.
func swimRunner(t testing.TB, name string, bind netip.AddrPort, cfg swim.Config) *swimnet.Runner {
	t.Helper()
	tr, err := ListenSwimTransport(Config{Name: name, BindAddr: bind.String(), APIAddr: "off"})
	if err != nil {
		t.Fatalf("transport %s: %v", name, err)
	}
	r, err := swimnet.NewRunner(cfg, swim.Identity{Name: name, Gen: 1}, tr, swimnet.RunnerOptions{})
	if err != nil {
		tr.Shutdown()
		t.Fatalf("runner %s: %v", name, err)
	}
	if err := r.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(func() { r.Shutdown() })
	return r
}

// TestSwimE2E runs five runners on real UDP and TCP sockets on 127.0.0.1: they
// form a cluster; one stops without leaving and the rest mark it dead; one
// leaves and the rest mark it left. It stays on real sockets on purpose: it
// checks the shipped transport under the swim Runner; the node-level
// scenarios run in virtual time (e2e_virtual_test.go).
func TestSwimE2E(t *testing.T) {
	cfg := swimE2EConfig()
	const n = 5
	rs := make([]*swimnet.Runner, n)
	for i := range rs {
		rs[i] = swimRunner(t, fmt.Sprintf("node%d", i), netip.MustParseAddrPort("127.0.0.1:0"), cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), e2eTimeout)
	defer cancel()
	seed := rs[0].Addr().String()
	for _, r := range rs[1:] {
		if _, err := r.Join(ctx, seed); err != nil {
			t.Fatalf("%s join %s: %v", r.Self().Name, seed, err)
		}
	}
	eventually(t, "cluster forms", func() error {
		for _, r := range rs {
			if got := r.NumAlive(); got != n {
				return fmt.Errorf("%s sees %d alive, want %d", r.Self().Name, got, n)
			}
		}
		return nil
	})

	// node4 stops without a word: the others must find out by themselves.
	if err := rs[4].Shutdown(); err != nil {
		t.Fatalf("shutdown node4: %v", err)
	}
	eventually(t, "node4 declared dead", wantSwimState(rs[:4], "node4", swim.StateDead))

	// node3 leaves gracefully: the others hear it, nobody has to detect it.
	if err := rs[3].Leave(e2eTimeout); err != nil {
		t.Fatalf("leave node3: %v", err)
	}
	if err := rs[3].Shutdown(); err != nil {
		t.Fatalf("shutdown node3: %v", err)
	}
	eventually(t, "node3 marked left", wantSwimState(rs[:3], "node3", swim.StateLeft))

	// Those that remain see each other alive (eventually: on a busy
	// machine a slow ack may raise a suspicion that is then refuted).
	eventually(t, "the rest alive", func() error {
		for _, name := range []string{"node0", "node1", "node2"} {
			if err := wantSwimState(rs[:3], name, swim.StateAlive)(); err != nil {
				return err
			}
		}
		return nil
	})
	for _, r := range rs {
		if err := r.Shutdown(); err != nil {
			t.Errorf("shutdown %s: %v", r.Self().Name, err)
		}
	}
}

// TestSwimE2EIPv6 forms a cluster of two over [::1], when the machine has it.
func TestSwimE2EIPv6(t *testing.T) {
	if c, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback}); err != nil {
		t.Skipf("no IPv6 loopback on this machine: %v", err)
	} else {
		c.Close()
	}
	cfg := swimE2EConfig()
	a := swimRunner(t, "a", netip.MustParseAddrPort("[::1]:0"), cfg)
	b := swimRunner(t, "b", netip.MustParseAddrPort("[::1]:0"), cfg)
	if !a.Addr().Addr().Is6() {
		t.Fatalf("advertised %v, want an IPv6 address", a.Addr())
	}
	ctx, cancel := context.WithTimeout(context.Background(), e2eTimeout)
	defer cancel()
	if n, err := b.Join(ctx, a.Addr().String()); err != nil || n != 1 {
		t.Fatalf("join = %d, %v; want 1, nil", n, err)
	}
	rs := []*swimnet.Runner{a, b}
	eventually(t, "both alive", func() error {
		if err := wantSwimState(rs, "a", swim.StateAlive)(); err != nil {
			return err
		}
		return wantSwimState(rs, "b", swim.StateAlive)()
	})
	a.Shutdown()
	b.Shutdown()
}

// BenchmarkE2EDetect measures, on real sockets on 127.0.0.1 with the local
// profile, how long after a member of five stops the other four all have it
// dead, and how long after a member leaves the other three all have it left.
func BenchmarkE2EDetect(b *testing.B) {
	cfg := swimE2EConfig()
	var detect, left time.Duration
	for b.Loop() {
		const n = 5
		rs := make([]*swimnet.Runner, n)
		for i := range rs {
			rs[i] = swimRunner(b, fmt.Sprintf("node%d", i), netip.MustParseAddrPort("127.0.0.1:0"), cfg)
		}
		ctx, cancel := context.WithTimeout(context.Background(), e2eTimeout)
		for _, r := range rs[1:] {
			if _, err := r.Join(ctx, rs[0].Addr().String()); err != nil {
				b.Fatal(err)
			}
		}
		cancel()
		eventually(b, "bench", func() error {
			for _, r := range rs {
				if r.NumAlive() != n {
					return fmt.Errorf("%s sees %d alive", r.Self().Name, r.NumAlive())
				}
			}
			return nil
		})
		start := time.Now()
		rs[4].Shutdown()
		eventually(b, "bench", wantSwimState(rs[:4], "node4", swim.StateDead))
		detect += time.Since(start)
		start = time.Now()
		if err := rs[3].Leave(e2eTimeout); err != nil {
			b.Fatal(err)
		}
		rs[3].Shutdown()
		eventually(b, "bench", wantSwimState(rs[:3], "node3", swim.StateLeft))
		left += time.Since(start)
		for _, r := range rs {
			r.Shutdown()
		}
	}
	b.ReportMetric((detect / time.Duration(b.N)).Seconds(), "s/detect")
	b.ReportMetric((left / time.Duration(b.N)).Seconds(), "s/leave")
}

// BenchmarkE2EJoin measures a join over loopback TCP: seed resolution and
// one push-pull exchange with the seed.
func BenchmarkE2EJoin(b *testing.B) {
	cfg := swimE2EConfig()
	a := swimRunner(b, "a", netip.MustParseAddrPort("127.0.0.1:0"), cfg)
	c := swimRunner(b, "c", netip.MustParseAddrPort("127.0.0.1:0"), cfg)
	seed := a.Addr().String()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if n, err := c.Join(ctx, seed); err != nil || n != 1 {
			b.Fatalf("join = %d, %v", n, err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "joins/s")
}

// BenchmarkRunnerPingAck measures the round trip of a ping through a
// running Runner: the transport's queue, the loop, packet decoding, the
// core, packet encoding, and the ack back, over swimnet's in-memory transport
// and over the transport the daemon ships.
func BenchmarkRunnerPingAck(b *testing.B) {
	for _, kind := range []string{"mem", "udp"} {
		b.Run("transport="+kind, func(b *testing.B) {
			var tr, peer swimnet.Transport
			switch kind {
			case "mem":
				net := swimnet.NewMemNetwork(0)
				t1, err1 := net.Listen(netip.AddrPort{})
				t2, err2 := net.Listen(netip.AddrPort{})
				if err := errors.Join(err1, err2); err != nil {
					b.Fatal(err)
				}
				tr, peer = t1, t2
			case "udp":
				t1, err1 := ListenSwimTransport(Config{Name: "target", BindAddr: "127.0.0.1:0", APIAddr: "off"})
				t2, err2 := ListenSwimTransport(Config{Name: "bench", BindAddr: "127.0.0.1:0", APIAddr: "off"})
				if err := errors.Join(err1, err2); err != nil {
					b.Fatal(err)
				}
				tr, peer = t1, t2
			}
			defer peer.Shutdown()
			r, err := swimnet.NewRunner(swim.LANConfig(), swim.Identity{Name: "target", Gen: 1}, tr, swimnet.RunnerOptions{})
			if err != nil {
				b.Fatal(err)
			}
			if err := r.Start(); err != nil {
				b.Fatal(err)
			}
			defer r.Shutdown()
			codec, err := wire.NewCodec(wire.Config{})
			if err != nil {
				b.Fatal(err)
			}
			ping := &wire.Ping{Target: "target", SourceName: "bench", SourceAddr: peer.Addr()}
			ack := &wire.Ack{}
			var pkt []byte
			b.ReportAllocs()
			for b.Loop() {
				ping.Seq++
				pkt, err = codec.AppendPacket(pkt[:0], ping)
				if err != nil {
					b.Fatal(err)
				}
				if err := peer.WriteTo(pkt, tr.Addr()); err != nil {
					b.Fatal(err)
				}
				// The ack may carry piggybacked news: the first part is
				// the ack.
				for {
					in := <-peer.Packets()
					body, err := codec.OpenPacket(in.Buf)
					if err != nil {
						b.Fatal(err)
					}
					pr := wire.NewPartReader(body)
					typ, part, err := pr.Next()
					if err != nil {
						b.Fatal(err)
					}
					if typ != wire.TypeAck {
						continue
					}
					if err := ack.DecodeBody(part); err != nil {
						b.Fatal(err)
					}
					if ack.Seq == ping.Seq {
						break
					}
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pings/s")
		})
	}
}

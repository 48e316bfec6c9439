package swimnet_test

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/meshnode/meshnode/swim"
	"github.com/meshnode/meshnode/swim/swimnet"
)

// e2eTimeout bounds every wait of the real-socket tests. It is generous on
// purpose: the machine running the tests may be slow and busy, and a wait
// ends as soon as its condition holds.
const e2eTimeout = 30 * time.Second

// eventually polls cond until it holds or timeout passes. Polling real
// sockets cannot be done in virtual time; the ticker paces the checks, it is
// not a timing assumption.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		err := cond()
		if err == nil {
			return
		}
		select {
		case <-deadline.C:
			t.Fatalf("%s: not within %v: %v", what, timeout, err)
		case <-tick.C:
		}
	}
}

// noLeaks fails t if goroutines started during the test outlive it. It runs
// after every cleanup registered later, so the runners' Shutdowns come first.
func noLeaks(t *testing.T) {
	t.Helper()
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
}

// stateOf returns how r sees member name.
func stateOf(r *swimnet.Runner, name string) (swim.State, bool) {
	m, ok := r.Member(name)
	return m.State, ok
}

// wantState returns a condition that every runner in rs sees name in state.
func wantState(rs []*swimnet.Runner, name string, want swim.State) func() error {
	return func() error {
		for _, r := range rs {
			got, ok := stateOf(r, name)
			if !ok {
				return fmt.Errorf("%s does not know %s", r.Self().Name, name)
			}
			if got != want {
				return fmt.Errorf("%s sees %s %v, want %v", r.Self().Name, name, got, want)
			}
		}
		return nil
	}
}

// netRunner starts a runner on real sockets at bind.
func netRunner(t testing.TB, name string, bind netip.AddrPort, cfg swim.Config) *swimnet.Runner {
	t.Helper()
	tr, err := swimnet.NewNetTransport(swimnet.NetConfig{BindAddr: bind})
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

// e2eConfig is the local profile with a pause threshold that a busy machine
// running the race detector does not cross between two loop iterations.
func e2eConfig() swim.Config {
	cfg := swim.LocalConfig()
	cfg.PauseThreshold = 5 * time.Second
	return cfg
}

// TestE2E runs five runners on real UDP and TCP sockets on 127.0.0.1: they
// form a cluster; one stops without leaving and the rest mark it dead; one
// leaves and the rest mark it left.
func TestE2E(t *testing.T) {
	noLeaks(t)
	cfg := e2eConfig()
	const n = 5
	rs := make([]*swimnet.Runner, n)
	for i := range rs {
		rs[i] = netRunner(t, fmt.Sprintf("node%d", i), netip.MustParseAddrPort("127.0.0.1:0"), cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), e2eTimeout)
	defer cancel()
	seed := rs[0].Addr().String()
	for _, r := range rs[1:] {
		if _, err := r.Join(ctx, seed); err != nil {
			t.Fatalf("%s join %s: %v", r.Self().Name, seed, err)
		}
	}
	eventually(t, e2eTimeout, "cluster forms", func() error {
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
	eventually(t, e2eTimeout, "node4 declared dead", wantState(rs[:4], "node4", swim.StateDead))

	// node3 leaves gracefully: the others hear it, nobody has to detect it.
	if err := rs[3].Leave(e2eTimeout); err != nil {
		t.Fatalf("leave node3: %v", err)
	}
	if err := rs[3].Shutdown(); err != nil {
		t.Fatalf("shutdown node3: %v", err)
	}
	eventually(t, e2eTimeout, "node3 marked left", wantState(rs[:3], "node3", swim.StateLeft))

	// Those that remain see each other alive (eventually: on a busy
	// machine a slow ack may raise a suspicion that is then refuted).
	eventually(t, e2eTimeout, "the rest alive", func() error {
		for _, name := range []string{"node0", "node1", "node2"} {
			if err := wantState(rs[:3], name, swim.StateAlive)(); err != nil {
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

// TestE2EIPv6 forms a cluster of two over [::1], when the machine has it.
func TestE2EIPv6(t *testing.T) {
	if c, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback}); err != nil {
		t.Skipf("no IPv6 loopback on this machine: %v", err)
	} else {
		c.Close()
	}
	noLeaks(t)
	cfg := e2eConfig()
	a := netRunner(t, "a", netip.MustParseAddrPort("[::1]:0"), cfg)
	b := netRunner(t, "b", netip.MustParseAddrPort("[::1]:0"), cfg)
	if !a.Addr().Addr().Is6() {
		t.Fatalf("advertised %v, want an IPv6 address", a.Addr())
	}
	ctx, cancel := context.WithTimeout(context.Background(), e2eTimeout)
	defer cancel()
	if n, err := b.Join(ctx, a.Addr().String()); err != nil || n != 1 {
		t.Fatalf("join = %d, %v; want 1, nil", n, err)
	}
	rs := []*swimnet.Runner{a, b}
	eventually(t, e2eTimeout, "both alive", func() error {
		if err := wantState(rs, "a", swim.StateAlive)(); err != nil {
			return err
		}
		return wantState(rs, "b", swim.StateAlive)()
	})
	a.Shutdown()
	b.Shutdown()
}

// BenchmarkE2EDetect measures, on real sockets on 127.0.0.1 with the local
// profile, how long after a member of five stops the other four all have it
// dead, and how long after a member leaves the other three all have it left.
func BenchmarkE2EDetect(b *testing.B) {
	cfg := e2eConfig()
	var detect, left time.Duration
	for b.Loop() {
		const n = 5
		rs := make([]*swimnet.Runner, n)
		for i := range rs {
			rs[i] = netRunner(b, fmt.Sprintf("node%d", i), netip.MustParseAddrPort("127.0.0.1:0"), cfg)
		}
		ctx, cancel := context.WithTimeout(context.Background(), e2eTimeout)
		for _, r := range rs[1:] {
			if _, err := r.Join(ctx, rs[0].Addr().String()); err != nil {
				b.Fatal(err)
			}
		}
		cancel()
		waitFor(b, func() error {
			for _, r := range rs {
				if r.NumAlive() != n {
					return fmt.Errorf("%s sees %d alive", r.Self().Name, r.NumAlive())
				}
			}
			return nil
		})
		start := time.Now()
		rs[4].Shutdown()
		waitFor(b, wantState(rs[:4], "node4", swim.StateDead))
		detect += time.Since(start)
		start = time.Now()
		if err := rs[3].Leave(e2eTimeout); err != nil {
			b.Fatal(err)
		}
		rs[3].Shutdown()
		waitFor(b, wantState(rs[:3], "node3", swim.StateLeft))
		left += time.Since(start)
		for _, r := range rs {
			r.Shutdown()
		}
	}
	b.ReportMetric((detect / time.Duration(b.N)).Seconds(), "s/detect")
	b.ReportMetric((left / time.Duration(b.N)).Seconds(), "s/leave")
}

// waitFor polls cond every millisecond for a benchmark, failing after
// e2eTimeout.
func waitFor(b *testing.B, cond func() error) {
	b.Helper()
	deadline := time.Now().Add(e2eTimeout)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for cond() != nil {
		if time.Now().After(deadline) {
			b.Fatalf("not within %v: %v", e2eTimeout, cond())
		}
		<-tick.C
	}
}

// BenchmarkE2EJoin measures a join over loopback TCP: seed resolution and
// one push-pull exchange with the seed.
func BenchmarkE2EJoin(b *testing.B) {
	cfg := e2eConfig()
	a := netRunner(b, "a", netip.MustParseAddrPort("127.0.0.1:0"), cfg)
	c := netRunner(b, "c", netip.MustParseAddrPort("127.0.0.1:0"), cfg)
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

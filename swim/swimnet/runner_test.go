package swimnet_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/meshnode/meshnode/swim"
	"github.com/meshnode/meshnode/swim/swimnet"
	"github.com/meshnode/meshnode/wire"
)

// The tests in this file run runners over a MemNetwork inside
// testing/synctest bubbles: time is virtual, so failure detection that takes
// seconds of protocol time takes milliseconds, and no test sleeps on the
// wall clock.

// memCluster is a set of runners on one MemNetwork.
type memCluster struct {
	t   *testing.T
	net *swimnet.MemNetwork
	rs  []*swimnet.Runner
}

func newMemCluster(t *testing.T, n int, cfg swim.Config, opts func(i int, o *swimnet.RunnerOptions)) *memCluster {
	t.Helper()
	c := &memCluster{t: t, net: swimnet.NewMemNetwork(0)}
	for i := range n {
		tr, err := c.net.Listen(netip.AddrPort{})
		if err != nil {
			t.Fatal(err)
		}
		o := swimnet.RunnerOptions{Rand: rand.New(rand.NewPCG(1, uint64(i)))}
		if opts != nil {
			opts(i, &o)
		}
		r, err := swimnet.NewRunner(cfg, swim.Identity{Name: fmt.Sprintf("m%d", i), Gen: 1}, tr, o)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Start(); err != nil {
			t.Fatal(err)
		}
		c.rs = append(c.rs, r)
	}
	return c
}

// joinAll makes every runner but the first join through the first.
func (c *memCluster) joinAll() {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, r := range c.rs[1:] {
		if n, err := r.Join(ctx, c.rs[0].Addr().String()); err != nil || n != 1 {
			c.t.Fatalf("%s join = %d, %v; want 1, nil", r.Self().Name, n, err)
		}
	}
	within(c.t, time.Minute, "cluster forms", func() error {
		for _, r := range c.rs {
			if got := r.NumAlive(); got != len(c.rs) {
				return fmt.Errorf("%s sees %d alive, want %d", r.Self().Name, got, len(c.rs))
			}
		}
		return nil
	})
}

func (c *memCluster) shutdown() {
	for _, r := range c.rs {
		if err := r.Shutdown(); err != nil {
			c.t.Errorf("shutdown %s: %v", r.Self().Name, err)
		}
	}
}

// within advances virtual time in small steps until cond holds, failing the
// test once d of virtual time has passed.
func within(t *testing.T, d time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		err := cond()
		if err == nil {
			return
		}
		if !time.Now().Before(deadline) {
			t.Fatalf("%s: not within %v of virtual time: %v", what, d, err)
		}
		<-tick.C
	}
}

// advance lets d of virtual time pass; only for use inside a bubble.
func advance(d time.Duration) { <-time.After(d) }

// drain returns the events left in r's channel after Shutdown closed it.
func drain(r *swimnet.Runner) []swim.Event {
	var evs []swim.Event
	for ev := range r.Events() {
		evs = append(evs, ev)
	}
	return evs
}

// kinds returns the kinds of the events about name, in order.
func kinds(evs []swim.Event, name string) []swim.EventKind {
	var ks []swim.EventKind
	for _, ev := range evs {
		if ev.Member.Name == name {
			ks = append(ks, ev.Kind)
		}
	}
	return ks
}

func TestRunnerLifecycle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newMemCluster(t, 5, swim.LocalConfig(), nil)
		defer c.shutdown()
		c.joinAll()
		start := time.Now()

		// m4 crashes: the others detect it.
		c.rs[4].Shutdown()
		within(t, time.Minute, "m4 dead", wantState(c.rs[:4], "m4", swim.StateDead))
		took := time.Since(start)
		// The suspicion lasts between its minimum and maximum timeout
		// (3 and 18 probe periods in the local profile, for 5 members),
		// plus the probe that starts it.
		if min, max := 3*200*time.Millisecond, 20*200*time.Millisecond; took < min || took > max {
			t.Errorf("m4 declared dead after %v of virtual time, want within [%v, %v]", took, min, max)
		}

		// m3 leaves: the others hear it.
		if err := c.rs[3].Leave(10 * time.Second); err != nil {
			t.Fatalf("leave: %v", err)
		}
		c.rs[3].Shutdown()
		within(t, time.Minute, "m3 left", wantState(c.rs[:3], "m3", swim.StateLeft))
		c.shutdown()

		// What m0 saw of m3 and m4, through its event channel.
		evs := drain(c.rs[0])
		if diff := cmp.Diff([]swim.EventKind{swim.EventJoin, swim.EventLeave}, kinds(evs, "m3")); diff != "" {
			t.Errorf("m0's events about m3 (-want +got):\n%s", diff)
		}
		ks := kinds(evs, "m4")
		if len(ks) < 2 || ks[0] != swim.EventJoin || ks[len(ks)-1] != swim.EventDead {
			t.Errorf("m0's events about m4 = %v, want join ... dead", ks)
		}
		if s := c.rs[0].Stats(); s.EventsDropped != 0 || s.PacketsBad != 0 || s.PacketsUnsent != 0 {
			t.Errorf("m0 stats %+v: want no drops", s)
		}
	})
}

func TestRunnerEventsOverflowCounted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newMemCluster(t, 4, swim.LocalConfig(), func(i int, o *swimnet.RunnerOptions) {
			if i == 0 {
				o.EventBuffer = 1
			}
		})
		defer c.shutdown()
		c.joinAll()
		// Nobody reads m0's events: the loop must not stall (the cluster
		// formed, and m0 still answers) and the overflow is counted.
		within(t, time.Minute, "overflow counted", func() error {
			if s := c.rs[0].Stats(); s.EventsDropped < 2 {
				return fmt.Errorf("EventsDropped = %d, want >= 2 (3 joins, room for 1)", s.EventsDropped)
			}
			return nil
		})
		c.shutdown()
		evs := drain(c.rs[0])
		if len(evs) != 1 || evs[0].Kind != swim.EventJoin {
			t.Errorf("buffered events %v, want the first join only", evs)
		}
		if got, want := c.rs[0].Stats().EventsDropped, uint64(2); got < want {
			t.Errorf("EventsDropped = %d, want >= %d", got, want)
		}
	})
}

// fakeResolver answers from a script, one answer per call, repeating the
// last; it counts the calls.
type fakeResolver struct {
	mu      sync.Mutex
	answers [][]netip.Addr
	calls   int
}

func (f *fakeResolver) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	a := f.answers[min(f.calls, len(f.answers))-1]
	if a == nil {
		return nil, fmt.Errorf("lookup %s: no such host", host)
	}
	return a, nil
}

func (f *fakeResolver) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

func TestRunnerJoinReresolves(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		res := &fakeResolver{}
		c := newMemCluster(t, 2, swim.LocalConfig(), func(i int, o *swimnet.RunnerOptions) { o.Resolver = res })
		defer c.shutdown()
		seed := c.rs[0].Addr()
		// The name first fails to resolve, then points where nobody
		// listens, then at the seed.
		res.answers = [][]netip.Addr{nil, {netip.MustParseAddr("10.99.0.1")}, {seed.Addr()}}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		n, err := c.rs[1].Join(ctx, fmt.Sprintf("seed.mesh.test:%d", seed.Port()))
		if err != nil || n != 1 {
			t.Fatalf("join = %d, %v; want 1, nil", n, err)
		}
		if got := res.count(); got != 3 {
			t.Errorf("resolver called %d times, want 3 (once per attempt)", got)
		}
		if got := c.rs[1].Stats().SeedLookups; got != 3 {
			t.Errorf("SeedLookups = %d, want 3", got)
		}
		within(t, time.Minute, "joined", wantState(c.rs, "m1", swim.StateAlive))
	})
}

// TestRunnerJoinOnlySelfBootstraps: a member whose seeds name only itself
// is the first of its cluster. Join succeeds at once, and when the seed name
// later lists another member that bootstrapped alone, the two merge.
func TestRunnerJoinOnlySelfBootstraps(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		res := &fakeResolver{}
		c := newMemCluster(t, 2, swim.LocalConfig(), func(i int, o *swimnet.RunnerOptions) { o.Resolver = res })
		defer c.shutdown()
		self, other := c.rs[1].Addr().Addr(), c.rs[0].Addr().Addr()
		res.answers = [][]netip.Addr{{self}, {self, other}}
		start := time.Now()
		n, err := c.rs[1].Join(context.Background(), "peers.mesh.test")
		if err != nil || n != 0 {
			t.Fatalf("join = %d, %v; want 0, nil", n, err)
		}
		if took := time.Since(start); took != 0 {
			t.Errorf("join through only itself took %v, want no wait", took)
		}
		if got := res.count(); got != 1 {
			t.Errorf("resolver called %d times by the join, want 1", got)
		}
		// m0 never joined anyone: only m1's reconnect loop, dialling what
		// the name now lists, brings them together.
		within(t, time.Minute, "the lone members merge", func() error {
			if err := wantState(c.rs, "m0", swim.StateAlive)(); err != nil {
				return err
			}
			return wantState(c.rs, "m1", swim.StateAlive)()
		})
	})
}

func TestRunnerJoinCountsSeeds(t *testing.T) {
	tests := []struct {
		name  string
		seeds func(c *memCluster) []string
		want  int
	}{
		{"one", func(c *memCluster) []string { return []string{c.rs[0].Addr().String()} }, 1},
		{"two", func(c *memCluster) []string { return []string{c.rs[0].Addr().String(), c.rs[1].Addr().String()} }, 2},
		{"two and a dead one", func(c *memCluster) []string {
			return []string{c.rs[0].Addr().String(), "10.99.0.1:7946", c.rs[1].Addr().String()}
		}, 2},
		{"self is skipped", func(c *memCluster) []string { return []string{c.rs[2].Addr().String(), c.rs[0].Addr().String()} }, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c := newMemCluster(t, 3, swim.LocalConfig(), nil)
				defer c.shutdown()
				if _, err := c.rs[1].Join(context.Background(), c.rs[0].Addr().String()); err != nil {
					t.Fatal(err)
				}
				n, err := c.rs[2].Join(context.Background(), tt.seeds(c)...)
				if err != nil || n != tt.want {
					t.Errorf("join = %d, %v; want %d, nil", n, err, tt.want)
				}
			})
		})
	}
}

func TestRunnerReseedsAfterJoin(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		res := &fakeResolver{}
		c := newMemCluster(t, 2, swim.LocalConfig(), func(i int, o *swimnet.RunnerOptions) { o.Resolver = res })
		defer c.shutdown()
		res.answers = [][]netip.Addr{{c.rs[0].Addr().Addr()}}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := c.rs[1].Join(ctx, fmt.Sprintf("seed.mesh.test:%d", c.rs[0].Addr().Port())); err != nil {
			t.Fatal(err)
		}
		if got := res.count(); got != 1 {
			t.Fatalf("resolver called %d times by the join, want 1", got)
		}
		// The seed name is looked up again every reconnect interval, for
		// the core's reconnect loop; m0 never joined by name and never
		// looks anything up.
		advance(5*swim.LocalConfig().ReconnectInterval + time.Millisecond)
		if got := res.count(); got != 6 {
			t.Errorf("resolver called %d times after 5 reconnect intervals, want 6", got)
		}
		if got := c.rs[0].Stats().SeedLookups; got != 0 {
			t.Errorf("m0 SeedLookups = %d, want 0", got)
		}
	})
}

func TestRunnerJoinAttemptsBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		res := &fakeResolver{answers: [][]netip.Addr{{netip.MustParseAddr("10.99.0.1")}}}
		c := newMemCluster(t, 1, swim.LocalConfig(), func(i int, o *swimnet.RunnerOptions) {
			o.Resolver = res
			o.JoinAttempts = 4
		})
		defer c.shutdown()
		start := time.Now()
		n, err := c.rs[0].Join(context.Background(), "nowhere.mesh.test:7946", "also-nowhere.mesh.test")
		if !errors.Is(err, swimnet.ErrJoin) || n != 0 {
			t.Fatalf("join = %d, %v; want 0, ErrJoin", n, err)
		}
		if got := res.count(); got != 8 {
			t.Errorf("resolver called %d times, want 8 (2 names, 4 attempts)", got)
		}
		// Three backoffs between four attempts: at least half of
		// min, 2 min, 4 min (jitter over the upper half of each wait).
		cfg := swim.LocalConfig()
		if took, least := time.Since(start), 7*cfg.JoinRetryMin/2; took < least {
			t.Errorf("4 attempts took %v of virtual time, want >= %v of backoff", took, least)
		}
	})
}

// TestRunnerJoinIsTheOnlyRetry checks that the Runner's attempts are the
// only join retries: the core dials the seed once per attempt and keeps no
// backoff of its own running between them.
func TestRunnerJoinIsTheOnlyRetry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := swim.LocalConfig()
		cfg.ReconnectInterval = time.Hour // keeps the reconnect loop's dials out of the count
		c := newMemCluster(t, 2, cfg, func(i int, o *swimnet.RunnerOptions) { o.JoinAttempts = 4 })
		defer c.shutdown()
		seed := c.rs[0].Addr()
		var (
			mu    sync.Mutex
			dials int
		)
		c.net.SetDrop(func(from, to netip.AddrPort, stream bool) bool {
			if to != seed {
				return false
			}
			if stream {
				mu.Lock()
				dials++
				mu.Unlock()
			}
			return true
		})
		if _, err := c.rs[1].Join(context.Background(), seed.String()); !errors.Is(err, swimnet.ErrJoin) {
			t.Fatalf("join = %v, want ErrJoin", err)
		}
		mu.Lock()
		defer mu.Unlock()
		if dials != 4 {
			t.Errorf("%d dials to the seed in 4 join attempts, want 4: one per attempt", dials)
		}
	})
}

func TestRunnerJoinContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newMemCluster(t, 1, swim.LocalConfig(), nil)
		defer c.shutdown()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := c.rs[0].Join(ctx, "10.99.0.1:7946")
		if !errors.Is(err, swimnet.ErrJoin) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("join = %v, want ErrJoin and DeadlineExceeded", err)
		}
	})
}

// delegateLog is a Delegate that records what it is given.
type delegateLog struct {
	mu     sync.Mutex
	data   []string
	states []string
}

func (r *delegateLog) NotifyData(d swim.Received) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.data = append(r.data, fmt.Sprintf("%d:%s", d.Data.Kind, d.Data.Payload))
}

func (r *delegateLog) NotifyState(s swim.RemoteState) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.states = append(r.states, fmt.Sprintf("join=%v:%s", s.Join, s.State))
}

func (r *delegateLog) snapshot() (data, states []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.data), slices.Clone(r.states)
}

// stateOfName is a StateDelegate returning a fixed state.
type stateOfName string

func (s stateOfName) LocalState(join bool) []byte { return []byte(s) }

func TestRunnerDelegate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		recs := make([]*delegateLog, 3)
		cfgs := make([]swim.Config, 3)
		for i := range recs {
			recs[i] = &delegateLog{}
			cfgs[i] = swim.LocalConfig()
			cfgs[i].State = stateOfName(fmt.Sprintf("state-of-m%d", i))
		}
		net := swimnet.NewMemNetwork(0)
		c := &memCluster{t: t, net: net}
		for i := range recs {
			tr, err := net.Listen(netip.AddrPort{})
			if err != nil {
				t.Fatal(err)
			}
			r, err := swimnet.NewRunner(cfgs[i], swim.Identity{Name: fmt.Sprintf("m%d", i), Gen: 1}, tr, swimnet.RunnerOptions{Delegate: recs[i]})
			if err != nil {
				t.Fatal(err)
			}
			if err := r.Start(); err != nil {
				t.Fatal(err)
			}
			c.rs = append(c.rs, r)
		}
		defer c.shutdown()
		c.joinAll()

		// The seed got each joiner's state, and each joiner the seed's.
		_, st0 := recs[0].snapshot()
		for _, want := range []string{"join=true:state-of-m1", "join=true:state-of-m2"} {
			if !slices.Contains(st0, want) {
				t.Errorf("m0 states %q, want %q among them", st0, want)
			}
		}
		_, st1 := recs[1].snapshot()
		if !slices.Contains(st1, "join=true:state-of-m0") {
			t.Errorf("m1 states %q, want the seed's", st1)
		}

		if err := c.rs[2].Broadcast(7, []byte("hello")); err != nil {
			t.Fatal(err)
		}
		within(t, time.Minute, "data gossiped", func() error {
			for _, i := range []int{0, 1} {
				if data, _ := recs[i].snapshot(); !slices.Contains(data, "7:hello") {
					return fmt.Errorf("m%d got %q", i, data)
				}
			}
			return nil
		})
		big := make([]byte, 2000)
		if err := c.rs[2].Broadcast(7, big); !errors.Is(err, swim.ErrTooLarge) {
			t.Errorf("Broadcast of %d bytes = %v, want ErrTooLarge", len(big), err)
		}
	})
}

func TestRunnerSetMeta(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newMemCluster(t, 3, swim.LocalConfig(), nil)
		defer c.shutdown()
		c.joinAll()
		if err := c.rs[1].SetMeta([]byte("zone=b")); err != nil {
			t.Fatal(err)
		}
		within(t, time.Minute, "meta spread", func() error {
			for _, r := range c.rs {
				if m, _ := r.Member("m1"); string(m.Meta) != "zone=b" {
					return fmt.Errorf("%s sees m1 meta %q", r.Self().Name, m.Meta)
				}
			}
			return nil
		})
		if err := c.rs[1].SetMeta(make([]byte, swim.LocalConfig().MaxMetaBytes+1)); !errors.Is(err, swim.ErrTooLarge) {
			t.Errorf("SetMeta over the bound = %v, want ErrTooLarge", err)
		}
		c.shutdown()
		ks := kinds(drain(c.rs[0]), "m1")
		if !slices.Contains(ks, swim.EventUpdate) {
			t.Errorf("m0's events about m1 %v, want an update", ks)
		}
	})
}

func TestRunnerLossyNetwork(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newMemCluster(t, 5, swim.LocalConfig(), nil)
		defer c.shutdown()
		c.joinAll()
		// 10% loss in each direction, and 5 ms of latency: the protocol
		// must ride it out without declaring anyone dead.
		rng := rand.New(rand.NewPCG(7, 7))
		var mu sync.Mutex
		c.net.SetDrop(func(from, to netip.AddrPort, stream bool) bool {
			mu.Lock()
			defer mu.Unlock()
			return rng.IntN(10) == 0
		})
		c.net.SetDelay(5 * time.Millisecond)
		deadline := time.Now().Add(30 * time.Second)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for time.Now().Before(deadline) {
			<-tick.C
			for _, r := range c.rs {
				for _, m := range r.Members() {
					if m.State == swim.StateDead {
						t.Fatalf("%s declared %s dead under 10%% loss", r.Self().Name, m.Name)
					}
				}
			}
		}
	})
}

func TestRunnerTCPFallback(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newMemCluster(t, 4, swim.LocalConfig(), nil)
		defer c.shutdown()
		c.joinAll()
		// UDP to and from m3 is lost; TCP still works. Its probes are
		// answered over TCP only: flagged, never declared dead.
		m3 := c.rs[3].Addr()
		c.net.SetDrop(func(from, to netip.AddrPort, stream bool) bool {
			return !stream && (from == m3 || to == m3)
		})
		within(t, time.Minute, "m3 flagged TCP-only", func() error {
			for _, r := range c.rs[:3] {
				if m, _ := r.Member("m3"); !m.TCPOnly {
					return fmt.Errorf("%s sees m3 %+v", r.Self().Name, m)
				}
			}
			return nil
		})
		end := time.Now().Add(20 * time.Second)
		for time.Now().Before(end) {
			advance(100 * time.Millisecond)
			for _, r := range c.rs {
				for _, m := range r.Members() {
					if m.State == swim.StateDead {
						t.Fatalf("%s declared %s dead although TCP works", r.Self().Name, m.Name)
					}
				}
			}
		}
		if got := c.rs[0].Stats().Core.TCPOnlyProbes; got == 0 {
			t.Errorf("m0 TCPOnlyProbes = 0, want some")
		}
	})
}

func TestRunnerIncomingStreamBound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newMemCluster(t, 1, swim.LocalConfig(), func(i int, o *swimnet.RunnerOptions) { o.MaxIncomingStreams = 1 })
		defer c.shutdown()
		peer, err := c.net.Listen(netip.AddrPort{})
		if err != nil {
			t.Fatal(err)
		}
		defer peer.Shutdown()
		timeout := swim.LocalConfig().StreamTimeout
		dial := func() swimnet.Conn {
			t.Helper()
			conn, err := peer.DialStream(context.Background(), c.rs[0].Addr())
			if err != nil {
				t.Fatal(err)
			}
			synctest.Wait()
			return conn
		}
		// A peer that opens a stream and says nothing holds the only slot
		// until the stream's deadline.
		first := dial()
		defer first.Close()
		opened := time.Now()
		// Three more wait for the slot (one per slot times three); a fifth
		// is closed at once.
		var waiting []swimnet.Conn
		for range 3 {
			waiting = append(waiting, dial())
		}
		fifth := dial()
		if n, err := fifth.Read(make([]byte, 1)); err != io.EOF {
			t.Errorf("fifth stream read %d, %v; want it closed at once", n, err)
		}
		if took := time.Since(opened); took != 0 {
			t.Errorf("fifth stream closed after %v, want at once", took)
		}
		if got := c.rs[0].Stats().StreamsRejected; got != 1 {
			t.Errorf("StreamsRejected = %d, want 1", got)
		}
		// The waiting ones give up after a quarter of the stream timeout,
		// while the silent stream still holds the slot.
		for i, w := range waiting {
			if n, err := w.Read(make([]byte, 1)); err != io.EOF {
				t.Errorf("waiting stream %d read %d, %v; want it closed", i, n, err)
			}
			w.Close()
		}
		if took := time.Since(opened); took != timeout/4 {
			t.Errorf("waiting streams closed after %v, want %v", took, timeout/4)
		}
		if got := c.rs[0].Stats().StreamsRejected; got != 4 {
			t.Errorf("StreamsRejected = %d, want 4", got)
		}
		// The silent stream is cut at the deadline, counted as an error.
		if n, err := first.Read(make([]byte, 1)); err != io.EOF {
			t.Errorf("silent stream read %d, %v; want it closed", n, err)
		}
		if took := time.Since(opened); took != timeout {
			t.Errorf("silent stream closed after %v, want the stream timeout %v", took, timeout)
		}
		within(t, time.Minute, "error counted", func() error {
			if got := c.rs[0].Stats().StreamErrors; got != 1 {
				return fmt.Errorf("StreamErrors = %d, want 1", got)
			}
			return nil
		})

		// A stream that waits is served once the slot frees: a TCP ping
		// queued behind a silent stream gets its ack when that stream ends.
		codec, err := wire.NewCodec(wire.Config{})
		if err != nil {
			t.Fatal(err)
		}
		ping := &wire.Ping{Seq: 7, Target: "m0", SourceName: "peer", SourceAddr: peer.Addr()}
		req, err := codec.AppendFrame(nil, ping.Type(), ping.AppendBody(nil))
		if err != nil {
			t.Fatal(err)
		}
		silent := dial()
		queued := dial()
		go func() {
			queued.Write(req)
			queued.CloseWrite()
		}()
		synctest.Wait()
		silent.Close() // frees the slot: its server reads end of stream
		reply, err := io.ReadAll(queued)
		queued.Close()
		if err != nil || len(reply) == 0 {
			t.Fatalf("queued stream: reply %d bytes, %v; want an ack", len(reply), err)
		}
		f, _, err := codec.DecodeFrame(reply)
		if err != nil {
			t.Fatalf("queued stream reply: %v", err)
		}
		if f.Type != wire.TypeAck {
			t.Fatalf("queued stream reply of type %v, want an ack", f.Type)
		}
		if got := c.rs[0].Stats().StreamsRejected; got != 4 {
			t.Errorf("StreamsRejected = %d, want still 4", got)
		}
	})
}

func TestRunnerShutdown(t *testing.T) {
	// Outside a bubble, on purpose: goleak sees every goroutine of the
	// process, and the network here runs in real time.
	noLeaks(t)
	net := swimnet.NewMemNetwork(0)
	var rs []*swimnet.Runner
	for i := range 3 {
		tr, err := net.Listen(netip.AddrPort{})
		if err != nil {
			t.Fatal(err)
		}
		r, err := swimnet.NewRunner(swim.LocalConfig(), swim.Identity{Name: fmt.Sprintf("m%d", i), Gen: 1}, tr, swimnet.RunnerOptions{Delegate: &delegateLog{}})
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Start(); err != nil {
			t.Fatal(err)
		}
		rs = append(rs, r)
	}
	ctx, cancel := context.WithTimeout(context.Background(), e2eTimeout)
	defer cancel()
	for _, r := range rs[1:] {
		if _, err := r.Join(ctx, rs[0].Addr().String()); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range rs {
		if err := r.Shutdown(); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := r.Shutdown(); err != nil {
			t.Errorf("second shutdown: %v", err)
		}
		if err := r.Start(); !errors.Is(err, swimnet.ErrNotRunning) {
			t.Errorf("Start after Shutdown = %v, want ErrNotRunning", err)
		}
		if _, err := r.Join(ctx, rs[0].Addr().String()); !errors.Is(err, swimnet.ErrNotRunning) {
			t.Errorf("Join after Shutdown = %v, want ErrNotRunning", err)
		}
		if err := r.Leave(time.Second); !errors.Is(err, swimnet.ErrNotRunning) {
			t.Errorf("Leave after Shutdown = %v, want ErrNotRunning", err)
		}
		if got := len(r.Members()); got == 0 {
			t.Errorf("Members after Shutdown is empty, want the final snapshot")
		}
		if _, ok := <-r.Events(); ok {
			// Buffered events are still readable; the channel must end.
			for range r.Events() {
			}
		}
	}
}

func TestRunnerShutdownBeforeStart(t *testing.T) {
	noLeaks(t)
	tr, err := swimnet.NewMemNetwork(0).Listen(netip.AddrPort{})
	if err != nil {
		t.Fatal(err)
	}
	r, err := swimnet.NewRunner(swim.LocalConfig(), swim.Identity{Name: "alone", Gen: 1}, tr, swimnet.RunnerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.SetMeta([]byte("before start")); err != nil {
		t.Fatalf("SetMeta before Start: %v", err)
	}
	if err := r.Shutdown(); err != nil {
		t.Fatal(err)
	}
	if got := string(r.Self().Meta); got != "before start" {
		t.Errorf("meta %q after Shutdown", got)
	}
	if _, ok := <-r.Events(); ok {
		t.Errorf("Events not closed")
	}
}

func TestRunnerCountsBadInput(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newMemCluster(t, 2, swim.LocalConfig(), nil)
		defer c.shutdown()
		c.joinAll()
		evil, err := c.net.Listen(netip.AddrPort{})
		if err != nil {
			t.Fatal(err)
		}
		defer evil.Shutdown()
		target := c.rs[0].Addr()
		codec, err := wire.NewCodec(wire.Config{})
		if err != nil {
			t.Fatal(err)
		}
		frame := func(m wire.Message) []byte {
			b, err := codec.AppendFrame(nil, m.Type(), m.AppendBody(nil))
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
		var tooMany []byte
		for range 17 {
			tooMany = append(tooMany, frame(&wire.Nack{Seq: 1})...)
		}
		streams := []struct {
			name string
			send []byte
		}{
			{"garbage", []byte("not a frame at all, just bytes")},
			{"frame over the cap", []byte{0xff, 0xff, 0xff, 0xff, byte(wire.TypePing), 0}},
			{"truncated frame", frame(&wire.PushPull{})[:5]},
			{"too many messages", tooMany},
			{"empty", nil},
		}
		for i, s := range streams {
			conn, err := evil.DialStream(context.Background(), target)
			if err != nil {
				t.Fatalf("%s: %v", s.name, err)
			}
			go func() {
				conn.Write(s.send)
				conn.CloseWrite()
			}()
			reply, err := io.ReadAll(conn)
			conn.Close()
			if len(reply) != 0 {
				t.Errorf("%s: got a %d-byte reply, want none", s.name, len(reply))
			}
			within(t, time.Minute, s.name, func() error {
				if got := c.rs[0].Stats().StreamErrors; got != uint64(i+1) {
					return fmt.Errorf("StreamErrors = %d, want %d", got, i+1)
				}
				return nil
			})
		}
		for _, p := range [][]byte{nil, {0x01}, {0x07, 0x00, 0x01}, []byte("garbage that is long enough to be parsed as something")} {
			evil.WriteTo(p, target)
		}
		within(t, time.Minute, "bad packets counted", func() error {
			if got := c.rs[0].Stats().PacketsBad; got != 4 {
				return fmt.Errorf("PacketsBad = %d, want 4", got)
			}
			return nil
		})
		// Still a healthy cluster.
		if err := wantState(c.rs, "m0", swim.StateAlive)(); err != nil {
			t.Error(err)
		}
	})
}

// bigState is a StateDelegate returning a large incompressible state.
type bigState []byte

func (s bigState) LocalState(join bool) []byte { return s }

func TestRunnerLargeState(t *testing.T) {
	state := make([]byte, 3<<20+17) // three and a bit chunks
	rng := rand.New(rand.NewPCG(3, 3))
	for i := range state {
		state[i] = byte(rng.Uint32())
	}
	tests := []struct {
		name      string
		maxStream int // the seed's bound on a reassembled message
		wantJoin  bool
	}{
		{"chunked and reassembled", 0, true},
		{"above the reassembly bound", 1 << 20, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				net := swimnet.NewMemNetwork(0)
				log := &delegateLog{}
				var rs []*swimnet.Runner
				for i := range 2 {
					tr, err := net.Listen(netip.AddrPort{})
					if err != nil {
						t.Fatal(err)
					}
					cfg := swim.LocalConfig()
					opts := swimnet.RunnerOptions{JoinAttempts: 1}
					if i == 0 {
						opts.Delegate, opts.MaxStreamBytes = log, tt.maxStream
					} else {
						cfg.State = bigState(state)
					}
					r, err := swimnet.NewRunner(cfg, swim.Identity{Name: fmt.Sprintf("m%d", i), Gen: 1}, tr, opts)
					if err != nil {
						t.Fatal(err)
					}
					if err := r.Start(); err != nil {
						t.Fatal(err)
					}
					defer r.Shutdown()
					rs = append(rs, r)
				}
				_, err := rs[1].Join(context.Background(), rs[0].Addr().String())
				if gotJoin := err == nil; gotJoin != tt.wantJoin {
					t.Fatalf("join error %v, want success %v", err, tt.wantJoin)
				}
				if !tt.wantJoin {
					if got := rs[0].Stats().StreamErrors; got == 0 {
						t.Errorf("seed StreamErrors = 0, want the oversized transfer counted")
					}
					return
				}
				within(t, time.Minute, "state delivered", func() error {
					log.mu.Lock()
					defer log.mu.Unlock()
					if len(log.states) == 0 {
						return errors.New("no state yet")
					}
					return nil
				})
				log.mu.Lock()
				got := log.states[0]
				log.mu.Unlock()
				if want := "join=true:" + string(state); got != want {
					t.Errorf("state of %d bytes delivered, want the %d sent", len(got)-len("join=true:"), len(state))
				}
			})
		})
	}
}

func TestRunnerEncrypted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ring := wire.NewKeyring()
		if err := ring.Install(1, make([]byte, wire.KeySize)); err != nil {
			t.Fatal(err)
		}
		c := newMemCluster(t, 3, swim.LocalConfig(), func(i int, o *swimnet.RunnerOptions) {
			o.Wire = wire.Config{Label: "cluster-a", Keyring: ring}
		})
		defer c.shutdown()
		c.joinAll()

		// Same key, another cluster label: it cannot read the cluster's
		// streams nor its packets.
		tr, err := c.net.Listen(netip.AddrPort{})
		if err != nil {
			t.Fatal(err)
		}
		out, err := swimnet.NewRunner(swim.LocalConfig(), swim.Identity{Name: "outsider", Gen: 1}, tr, swimnet.RunnerOptions{
			Wire:         wire.Config{Label: "cluster-b", Keyring: ring},
			JoinAttempts: 2,
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := out.Start(); err != nil {
			t.Fatal(err)
		}
		defer out.Shutdown()
		if _, err := out.Join(context.Background(), c.rs[0].Addr().String()); !errors.Is(err, swimnet.ErrJoin) {
			t.Fatalf("outsider join = %v, want ErrJoin", err)
		}
		if _, ok := c.rs[0].Member("outsider"); ok {
			t.Errorf("the seed knows the outsider")
		}
		if got := c.rs[0].Stats().StreamErrors; got == 0 {
			t.Errorf("seed StreamErrors = 0, want the outsider's streams counted")
		}
	})
}

func TestRunnerPartitionHeals(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newMemCluster(t, 6, swim.LocalConfig(), nil)
		defer c.shutdown()
		c.joinAll()
		side := func(a netip.AddrPort) int {
			for i, r := range c.rs {
				if r.Addr() == a {
					return i % 2
				}
			}
			return -1
		}
		// Odd and even members lose each other, packets and streams.
		c.net.SetDrop(func(from, to netip.AddrPort, stream bool) bool { return side(from) != side(to) })
		within(t, time.Minute, "halves split", func() error {
			for i, r := range c.rs {
				for j := range c.rs {
					want := swim.StateAlive
					if i%2 != j%2 {
						want = swim.StateDead
					}
					if m, _ := r.Member(fmt.Sprintf("m%d", j)); m.State != want {
						return fmt.Errorf("m%d sees m%d %v, want %v", i, j, m.State, want)
					}
				}
			}
			return nil
		})
		// Healed: the reconnect loop re-dials dead members and the halves
		// merge without anyone joining again.
		c.net.SetDrop(nil)
		within(t, time.Minute, "halves merged", func() error {
			for _, r := range c.rs {
				if got := r.NumAlive(); got != len(c.rs) {
					return fmt.Errorf("%s sees %d alive", r.Self().Name, got)
				}
			}
			return nil
		})
	})
}

func TestRunnerShutdownInterruptsStreams(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newMemCluster(t, 1, swim.LocalConfig(), nil)
		// A "seed" that accepts streams and never reads them: the join's
		// exchange blocks writing until its deadline.
		mute, err := c.net.Listen(netip.AddrPort{})
		if err != nil {
			t.Fatal(err)
		}
		defer mute.Shutdown()
		ctx, cancel := context.WithCancel(context.Background())
		joined := make(chan error)
		go func() {
			_, err := c.rs[0].Join(ctx, mute.Addr().String())
			joined <- err
		}()
		var in swimnet.Incoming
		select {
		case in = <-mute.Streams():
		case <-time.After(time.Second):
			t.Fatal("no stream opened to the seed")
		}
		defer in.Conn.Close()
		synctest.Wait()
		start := time.Now()
		c.shutdown()
		if took := time.Since(start); took != 0 {
			t.Errorf("Shutdown took %v of virtual time, want it to cut the stream at once", took)
		}
		if err := <-joined; !errors.Is(err, swimnet.ErrNotRunning) {
			t.Errorf("pending Join = %v, want ErrNotRunning", err)
		}
		cancel()
	})
}

func TestRunnerLeaveTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newMemCluster(t, 3, swim.LocalConfig(), nil)
		defer c.shutdown()
		c.joinAll()
		// No time to gossip: the leave is announced but not yet spread.
		if err := c.rs[2].Leave(0); !errors.Is(err, swimnet.ErrLeaveTimeout) {
			t.Fatalf("Leave(0) = %v, want ErrLeaveTimeout", err)
		}
		// The runner keeps gossiping until Shutdown: the others hear it.
		within(t, time.Minute, "m2 left", wantState(c.rs[:2], "m2", swim.StateLeft))
		if err := c.rs[2].SetMeta([]byte("x")); !errors.Is(err, swim.ErrLeft) {
			t.Errorf("SetMeta after Leave = %v, want ErrLeft", err)
		}
	})
}

// TestRunnerReportsWhyInputIsBad checks that a member with another gossip
// key or cluster label is never silent: the seed reports each stream and
// packet it cannot open with the wire error that says why, and the joiner
// reports each failed attempt with the seed that did not answer.
func TestRunnerReportsWhyInputIsBad(t *testing.T) {
	ring := func(id uint8) *wire.Keyring {
		k := wire.NewKeyring()
		if err := k.Install(id, bytes.Repeat([]byte{id}, wire.KeySize)); err != nil {
			t.Fatal(err)
		}
		return k
	}
	tests := []struct {
		name     string
		outsider wire.Config
		want     error
	}{
		{"another label", wire.Config{Label: "cluster-b", Keyring: ring(1)}, wire.ErrAuth},
		{"another key", wire.Config{Label: "cluster-a", Keyring: ring(2)}, wire.ErrUnknownKey},
		{"plaintext", wire.Config{Label: "cluster-a"}, wire.ErrPlaintextRefused},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				type report struct {
					from   netip.AddrPort
					stream bool
					err    error
				}
				var (
					mu  sync.Mutex
					got []report
				)
				c := newMemCluster(t, 1, swim.LocalConfig(), func(i int, o *swimnet.RunnerOptions) {
					o.Wire = wire.Config{Label: "cluster-a", Keyring: ring(1)}
					o.OnBadInput = func(in swimnet.BadInput) {
						if in.Reply {
							t.Errorf("the seed reports a reply: %+v", in)
						}
						mu.Lock()
						defer mu.Unlock()
						got = append(got, report{in.From, in.Stream, in.Err})
					}
				})
				defer c.shutdown()
				tr, err := c.net.Listen(netip.AddrPort{})
				if err != nil {
					t.Fatal(err)
				}
				var attempts []error
				out, err := swimnet.NewRunner(swim.LocalConfig(), swim.Identity{Name: "outsider", Gen: 1}, tr, swimnet.RunnerOptions{
					Wire:         tt.outsider,
					JoinAttempts: 2,
					OnJoinFailed: func(attempt int, err error) { attempts = append(attempts, err) },
				})
				if err != nil {
					t.Fatal(err)
				}
				if err := out.Start(); err != nil {
					t.Fatal(err)
				}
				defer out.Shutdown()
				seed := c.rs[0].Addr()
				if _, err := out.Join(context.Background(), seed.String()); !errors.Is(err, swimnet.ErrJoin) || !errors.Is(err, swimnet.ErrNoReply) {
					t.Fatalf("outsider join = %v, want ErrJoin and ErrNoReply", err)
				}
				if len(attempts) != 2 {
					t.Fatalf("OnJoinFailed called %d times, want 2", len(attempts))
				}
				for _, err := range attempts {
					if !errors.Is(err, swimnet.ErrNoReply) || !strings.Contains(err.Error(), seed.String()) {
						t.Errorf("attempt error %q: want ErrNoReply naming the seed %v", err, seed)
					}
				}
				// A packet from the outsider, sealed its way.
				codec, err := wire.NewCodec(tt.outsider)
				if err != nil {
					t.Fatal(err)
				}
				pkt, err := codec.AppendPacket(nil, &wire.Ping{Seq: 1, Target: "m0", SourceName: "outsider"})
				if err != nil {
					t.Fatal(err)
				}
				if err := tr.WriteTo(pkt, seed); err != nil {
					t.Fatal(err)
				}
				within(t, time.Minute, "bad packet reported", func() error {
					mu.Lock()
					defer mu.Unlock()
					for _, r := range got {
						if !r.stream {
							return nil
						}
					}
					return errors.New("no packet reported")
				})
				mu.Lock()
				defer mu.Unlock()
				var streams, packets int
				for _, r := range got {
					if r.stream {
						streams++
					} else {
						packets++
					}
					if !errors.Is(r.err, tt.want) {
						t.Errorf("reported %v (stream %v), want %v", r.err, r.stream, tt.want)
					}
					if r.from.Addr() != tr.Addr().Addr() {
						t.Errorf("reported from %v, want the outsider's address %v", r.from, tr.Addr())
					}
				}
				if streams < 2 || packets != 1 {
					t.Errorf("reported %d streams and %d packets, want >= 2 (one per attempt) and 1", streams, packets)
				}
				if got := c.rs[0].Stats().PacketsBad; got != 1 {
					t.Errorf("PacketsBad = %d, want 1", got)
				}
			})
		})
	}
}

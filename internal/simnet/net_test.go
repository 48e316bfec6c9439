package simnet_test

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/meshnode/meshnode/internal/simnet"
)

// node records what it receives and ticks every period (0: never).
type node struct {
	net      *simnet.Net
	id       int
	period   time.Duration
	next     time.Time
	got      []string
	ticks    []time.Duration
	done     []string
	serveLag time.Duration
}

func (n *node) Receive(now time.Time, from netip.AddrPort, p any) {
	n.got = append(n.got, fmt.Sprintf("%v %v", now.Sub(simnet.Start), p))
}

func (n *node) Serve(now time.Time, from netip.AddrPort, req any) (any, int) {
	return fmt.Sprintf("re:%v", req), 10
}

func (n *node) StreamDone(now time.Time, id uint64, resp any, err error) {
	n.done = append(n.done, fmt.Sprintf("%d %v %v %v", id, now.Sub(simnet.Start), resp, err))
}

func (n *node) Tick(now time.Time) {
	n.ticks = append(n.ticks, now.Sub(simnet.Start))
	if n.period > 0 {
		n.next = now.Add(n.period)
	}
}

func (n *node) Next() time.Time { return n.next }

func addr(i int) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}), 1)
}

func pair(t *testing.T, l simnet.Link) (*simnet.Net, *node, *node) {
	t.Helper()
	net := simnet.New(1, l)
	a, b := &node{net: net}, &node{net: net}
	a.id = net.Add(addr(1), a)
	b.id = net.Add(addr(2), b)
	return net, a, b
}

func TestDelayAndTieBreak(t *testing.T) {
	net, a, b := pair(t, simnet.Link{Delay: 10 * time.Millisecond})
	h := net.Host(a.id)
	for i := range 3 {
		h.Send(addr(2), i, 100)
	}
	net.RunFor(time.Second)
	want := []string{"10ms 0", "10ms 1", "10ms 2"}
	if diff := cmp.Diff(want, b.got); diff != "" {
		t.Errorf("deliveries (-want +got):\n%s", diff)
	}
	if s := net.Stats(a.id); s.PacketsSent != 3 || s.BytesSent != 300 {
		t.Errorf("sender stats %+v", s)
	}
	if s := net.Stats(b.id); s.PacketsRecv != 3 || s.BytesRecv != 300 {
		t.Errorf("receiver stats %+v", s)
	}
}

func TestLossAndDuplication(t *testing.T) {
	tests := []struct {
		name   string
		link   simnet.Link
		lo, hi int
	}{
		{"10% loss", simnet.Link{Loss: 0.1}, 8700, 9300},
		{"no loss", simnet.Link{}, 10000, 10000},
		{"all duplicated", simnet.Link{Dup: 1}, 20000, 20000},
		{"reordered", simnet.Link{Reorder: 0.5, ReorderBy: time.Millisecond}, 10000, 10000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			net, a, b := pair(t, tt.link)
			for i := range 10000 {
				net.Host(a.id).Send(addr(2), i, 1)
			}
			net.RunFor(time.Second)
			if n := len(b.got); n < tt.lo || n > tt.hi {
				t.Errorf("delivered %d of 10000, want [%d, %d]", n, tt.lo, tt.hi)
			}
		})
	}
}

func TestNodeLossAndSlow(t *testing.T) {
	net, a, b := pair(t, simnet.Link{})
	net.SetLoss(b.id, 1)
	net.Host(a.id).Send(addr(2), "lost", 1)
	net.RunFor(time.Second)
	net.SetLoss(b.id, 0)
	net.SetSlow(b.id, 200*time.Millisecond, 200*time.Millisecond)
	net.Host(a.id).Send(addr(2), "slow", 1)
	net.RunFor(time.Second)
	if diff := cmp.Diff([]string{"1.2s slow"}, b.got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestPartitions(t *testing.T) {
	net, a, b := pair(t, simnet.Link{})
	send := func(msg string) {
		net.Host(a.id).Send(addr(2), msg, 1)
		net.Host(b.id).Send(addr(1), msg, 1)
		net.RunFor(time.Second)
	}
	send("open")
	net.Cut(a.id, b.id)
	send("a-to-b-cut")
	net.Heal()
	net.Partition([]int{a.id})
	send("split")
	net.Heal()
	net.CutInbound(a.id, true)
	send("a-deaf")
	net.Heal()
	send("healed")
	if diff := cmp.Diff([]string{"0s open", "3s a-deaf", "4s healed"}, b.got); diff != "" {
		t.Errorf("b got (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"0s open", "1s a-to-b-cut", "4s healed"}, a.got); diff != "" {
		t.Errorf("a got (-want +got):\n%s", diff)
	}
}

func TestDropDatagrams(t *testing.T) {
	net, a, b := pair(t, simnet.Link{})
	send := func(msg string) {
		net.Host(a.id).Send(addr(2), msg, 1)
		net.Host(b.id).Send(addr(1), msg, 1)
		net.RunFor(time.Second)
	}
	net.DropDatagrams(a.id, b.id, net.Now().Add(1500*time.Millisecond))
	send("lost")
	send("lost-too")
	send("through")
	if diff := cmp.Diff([]string{"2s through"}, b.got); diff != "" {
		t.Errorf("b got (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"0s lost", "1s lost-too", "2s through"}, a.got); diff != "" {
		t.Errorf("a got (-want +got):\n%s", diff)
	}
}

func TestPauseKeepsBacklog(t *testing.T) {
	net, a, b := pair(t, simnet.Link{Delay: time.Millisecond})
	b.period = 100 * time.Millisecond
	b.next = simnet.Start
	net.Wake(b.id)
	net.RunFor(250 * time.Millisecond)
	net.Pause(b.id)
	net.Host(a.id).Send(addr(2), "first", 1)
	net.Host(a.id).Send(addr(2), "second", 1)
	net.RunFor(5 * time.Second)
	if len(b.got) != 0 {
		t.Fatalf("paused node received %v", b.got)
	}
	ticks := len(b.ticks)
	net.Resume(b.id)
	want := []string{"5.25s first", "5.25s second"}
	if diff := cmp.Diff(want, b.got); diff != "" {
		t.Errorf("backlog (-want +got):\n%s", diff)
	}
	if ticks != 3 || len(b.ticks) != 4 || b.ticks[3] != 5250*time.Millisecond {
		t.Errorf("ticks %v: want 3 before the pause and one at resume", b.ticks)
	}
}

func TestStreams(t *testing.T) {
	deadline := simnet.Start.Add(2 * time.Second)
	t.Run("delivered", func(t *testing.T) {
		net, a, _ := pair(t, simnet.Link{Delay: 10 * time.Millisecond})
		net.Host(a.id).Open(1, addr(2), "req", 3, deadline)
		net.RunFor(5 * time.Second)
		if diff := cmp.Diff([]string{"1 40ms re:req <nil>"}, a.done); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	})
	t.Run("partitioned", func(t *testing.T) {
		net, a, b := pair(t, simnet.Link{Delay: 10 * time.Millisecond})
		net.Cut(b.id, a.id) // one way is enough to break TCP
		net.Host(a.id).Open(1, addr(2), "req", 3, deadline)
		net.RunFor(5 * time.Second)
		if diff := cmp.Diff([]string{"1 2s <nil> " + simnet.ErrTimeout.Error()}, a.done); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	})
	t.Run("crashed", func(t *testing.T) {
		net, a, b := pair(t, simnet.Link{Delay: 10 * time.Millisecond})
		net.Crash(b.id)
		net.Host(a.id).Open(1, addr(2), "req", 3, deadline)
		net.RunFor(5 * time.Second)
		if len(a.done) != 1 || !errorsIs(a.done[0], simnet.ErrRefused) {
			t.Errorf("done = %v, want refused", a.done)
		}
	})
	t.Run("paused", func(t *testing.T) {
		net, a, b := pair(t, simnet.Link{Delay: 10 * time.Millisecond})
		net.Pause(b.id)
		net.Host(a.id).Open(1, addr(2), "req", 3, deadline)
		net.RunFor(5 * time.Second)
		if len(a.done) != 1 || !errorsIs(a.done[0], simnet.ErrTimeout) {
			t.Errorf("done = %v, want a timeout", a.done)
		}
	})
	t.Run("old process", func(t *testing.T) {
		net, a, _ := pair(t, simnet.Link{Delay: 10 * time.Millisecond})
		net.Host(a.id).Open(1, addr(2), "req", 3, deadline)
		net.Restart(a.id, a) // same address, new process: the reply is not for it
		net.RunFor(5 * time.Second)
		if len(a.done) != 0 {
			t.Errorf("restarted process got %v", a.done)
		}
	})
}

func errorsIs(s string, err error) bool {
	return len(s) > 0 && s[len(s)-len(err.Error()):] == err.Error()
}

func TestDeterministic(t *testing.T) {
	run := func(seed uint64) []string {
		net := simnet.New(seed, simnet.Link{Loss: 0.3, Delay: time.Millisecond, Jitter: 5 * time.Millisecond, Dup: 0.1})
		var nodes []*node
		for i := range 4 {
			n := &node{net: net}
			n.id = net.Add(addr(i), n)
			nodes = append(nodes, n)
		}
		for i := range 200 {
			net.Host(i%4).Send(addr((i+1)%4), i, 1)
		}
		net.RunFor(time.Second)
		var all []string
		for _, n := range nodes {
			all = append(all, n.got...)
		}
		return all
	}
	if diff := cmp.Diff(run(7), run(7)); diff != "" {
		t.Errorf("same seed, different runs (-first +second):\n%s", diff)
	}
	if cmp.Equal(run(7), run(8)) {
		t.Error("different seeds gave identical runs")
	}
}

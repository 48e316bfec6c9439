package swim_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/meshnode/meshnode/internal/simnet/swimsim"
	"github.com/meshnode/meshnode/swim"
	"github.com/meshnode/meshnode/wire"
)

// Scenario tests of mechanisms that need a cluster, on the simulator.

func TestDeterministicTrace(t *testing.T) {
	run := func(seed uint64) uint64 {
		l := swimsim.LAN
		l.Loss, l.Dup, l.Reorder, l.ReorderBy = 0.05, 0.01, 0.05, 20*time.Millisecond
		c := swimsim.NewScenario(t, seed, 20, l)
		c.Trace()
		c.Boot(t, 20*time.Second)
		c.Crash(7)
		c.Net.Pause(9)
		c.Net.RunFor(3 * time.Second)
		c.Net.Resume(9)
		c.Net.RunFor(30 * time.Second)
		return c.TraceSum()
	}
	a, b := run(5), run(5)
	if a != b {
		t.Errorf("same seed, different traces: %x, %x", a, b)
	}
	if run(6) == a {
		t.Error("different seeds, same trace")
	}
}

// Every packet the cores produce, encoded by wire with AES-GCM, fits the
// 1200-byte budget, even with metadata near its bound on every member.
func TestPacketsFitEncryptedBudget(t *testing.T) {
	kr := wire.NewKeyring()
	if err := kr.Install(1, bytes.Repeat([]byte{7}, 32)); err != nil {
		t.Fatal(err)
	}
	if err := kr.Use(1); err != nil {
		t.Fatal(err)
	}
	codec, err := wire.NewCodec(wire.Config{Label: "test", Keyring: kr, NoCompression: true})
	if err != nil {
		t.Fatal(err)
	}
	c := swimsim.NewScenario(t, 1, 30, swimsim.LAN)
	for i := range c.Nodes {
		if err := c.Nodes[i].Core.SetMeta(c.Net.Now(), bytes.Repeat([]byte{byte(i)}, 500)); err != nil {
			t.Fatal(err)
		}
		c.Nodes[i].Flush()
	}
	var n, biggest int
	c.OnSend = func(from int, p swim.Packet) {
		b, err := codec.AppendPacket(nil, p.Msgs...)
		if err != nil {
			t.Errorf("node %d: packet of %d messages: %v", from, len(p.Msgs), err)
			return
		}
		n++
		biggest = max(biggest, len(b))
	}
	c.Boot(t, 20*time.Second)
	c.Crash(4)
	c.Net.RunFor(30 * time.Second)
	if c.Oversize != 0 || biggest > 1200 {
		t.Errorf("%d packets over the body budget; biggest encrypted packet %d bytes", c.Oversize, biggest)
	}
	t.Logf("%d packets, biggest %d bytes", n, biggest)
}

func TestLeaveAndReap(t *testing.T) {
	c := booted(t, 1, 12, func(cfg *swim.Config) { cfg.ReapTimeout = 2 * time.Minute })
	leaver := c.Nodes[5]
	start := c.Net.Now()
	leaver.Core.Leave(start)
	leaver.Flush()
	c.Net.Wake(5)
	if _, ok := c.RunUntil(10*time.Second, func() bool { return leaver.Core.Pending() == 0 }); !ok {
		t.Fatal("leave broadcast not drained in 10s")
	}
	c.Crash(5)
	c.Net.RunFor(5 * time.Second)
	left := c.Rec.Filter(leaver.Name, swim.EventLeave, start)
	if len(left) != 11 {
		t.Errorf("%d leave events, want one at each of 11 members", len(left))
	}
	if n := len(c.Rec.Filter(leaver.Name, swim.EventDead, start)) + len(c.Rec.Filter(leaver.Name, swim.EventSuspect, start)); n != 0 {
		t.Errorf("%d suspect/dead events for a member that left", n)
	}
	m, ok := c.Nodes[0].Core.Member(leaver.Name)
	if !ok || m.State != swim.StateLeft {
		t.Errorf("member after leave = %+v, %v; want a left tombstone", m, ok)
	}
	c.Net.RunFor(3 * time.Minute)
	for i := range c.Nodes {
		if _, ok := c.Nodes[i].Core.Member(leaver.Name); ok && i != 5 {
			t.Errorf("node %d still holds the tombstone after the reap timeout", i)
		}
	}
}

func TestMetadataAndDataReachEveryone(t *testing.T) {
	c := booted(t, 2, 25)
	updates := map[int]string{}
	data := map[int]string{}
	c.OnEvent = func(obs int, ev swim.Event) {
		if ev.Kind == swim.EventUpdate && ev.Member.Name == c.Nodes[3].Name {
			updates[obs] = string(ev.Member.Meta)
		}
	}
	c.OnData = func(obs int, d swim.Received) { data[obs] = string(d.Data.Payload) }
	now := c.Net.Now()
	if err := c.Nodes[3].Core.SetMeta(now, []byte("v2")); err != nil {
		t.Fatal(err)
	}
	if err := c.Nodes[3].Core.Broadcast(wire.Data{Kind: 1, Payload: []byte("delta")}); err != nil {
		t.Fatal(err)
	}
	c.Nodes[3].Flush()
	c.Net.Wake(3)
	c.Net.RunFor(5 * time.Second)
	if len(updates) != 24 {
		t.Errorf("%d members saw the metadata update, want 24", len(updates))
	}
	for obs, m := range updates {
		if m != "v2" {
			t.Errorf("node %d saw metadata %q", obs, m)
		}
	}
	// Data is not relayed by swim (the layer above decides): it reaches the
	// members the originator gossips to, a few per round, until its
	// retransmit limit.
	if len(data) < 3 {
		t.Errorf("data reached %d members, want at least the first gossip round", len(data))
	}
	for obs, d := range data {
		if d != "delta" {
			t.Errorf("node %d got data %q", obs, d)
		}
	}
}

// A node that cannot hear anyone issues no verdicts of its own: it blames
// itself.
func TestIsolatedNodeIssuesNoVerdicts(t *testing.T) {
	c := booted(t, 3, 20)
	c.Net.CutInbound(8, true)
	before := c.Nodes[8].Core.Stats()
	c.Net.RunFor(2 * time.Minute)
	after := c.Nodes[8].Core.Stats()
	if after.DeathVerdicts != before.DeathVerdicts {
		t.Errorf("deaf node issued %d death verdicts", after.DeathVerdicts-before.DeathVerdicts)
	}
	if after.VerdictsWithheld == before.VerdictsWithheld {
		t.Error("deaf node withheld no verdicts: its suspicions never ran out?")
	}
}

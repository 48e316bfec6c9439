package swim

import (
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/meshnode/meshnode/wire"
)

// TestCoreInvariants feeds a core random sequences of messages, stream
// replies and ticks from a small cast of members, and checks after every
// step what must always hold: counters agree with the member table, our own
// record is alive and its incarnation never goes back, every packet fits
// the budget, and no member is both in the suspect list and not suspect.
func TestCoreInvariants(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		cfg := LANConfig()
		self := Identity{Name: "m0", Gen: 1, Addr: netip.MustParseAddrPort("10.0.0.1:1")}
		c, err := NewCore(cfg, self, rand.New(rand.NewPCG(rapid.Uint64().Draw(rt, "seed"), 1)), t0)
		if err != nil {
			rt.Fatal(err)
		}
		names := []string{"m0", "m1", "m2", "m3", "m4"}
		addr := func(i int) netip.AddrPort {
			return netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)}), 1)
		}
		now := t0
		var lastInc uint64
		var streams []Stream
		steps := rapid.IntRange(1, 200).Draw(rt, "steps")
		for range steps {
			now = now.Add(time.Duration(rapid.IntRange(0, 1500).Draw(rt, "dt")) * time.Millisecond)
			i := rapid.IntRange(0, len(names)-1).Draw(rt, "who")
			gen := rapid.Uint64Range(0, 2).Draw(rt, "gen")
			inc := rapid.Uint64Range(0, 4).Draw(rt, "inc")
			from := names[rapid.IntRange(0, len(names)-1).Draw(rt, "from")]
			var msg wire.Message
			switch rapid.IntRange(0, 7).Draw(rt, "kind") {
			case 0:
				msg = &wire.Alive{Name: names[i], Gen: gen, Incarnation: inc, Addr: addr(i), Meta: []byte{byte(inc)}}
			case 1:
				msg = &wire.Suspect{Name: names[i], Gen: gen, Incarnation: inc, From: from}
			case 2:
				msg = &wire.Dead{Name: names[i], Gen: gen, Incarnation: inc, From: from, Left: rapid.Bool().Draw(rt, "left")}
			case 3:
				msg = &wire.Ping{Seq: uint32(inc), Target: names[i], SourceName: from, SourceAddr: addr(i)}
			case 4:
				msg = &wire.Ack{Seq: c.seq - uint32(inc)}
			case 5:
				msg = &wire.Nack{Seq: c.seq - uint32(inc)}
			case 6:
				msg = &wire.IndirectPing{Seq: uint32(inc), Target: names[i], TargetAddr: addr(i), WantNack: true, SourceName: from, SourceAddr: addr(i)}
			case 7:
				if len(streams) > 0 {
					s := streams[0]
					streams = streams[1:]
					var resp []wire.Message
					if rapid.Bool().Draw(rt, "ok") {
						resp = []wire.Message{&wire.PushPull{}, &wire.Members{Records: []wire.MemberRecord{
							{Name: names[i], Gen: gen, Incarnation: inc, State: wire.MemberState(inc % 4), Addr: addr(i)},
						}}, &wire.Digest{Entries: []wire.DigestEntry{{Name: names[(i+1)%5], Gen: 1}}}}
					}
					c.StreamDone(now, s.ID, resp, nil)
				}
			}
			if msg != nil {
				c.HandlePacket(now, addr(i), msg)
			}
			c.Tick(now)
			r := c.Ready()
			streams = append(streams, r.Streams...)
			for _, p := range r.Packets {
				if n := BodySize(p.Msgs); n > cfg.packetBudget() {
					rt.Fatalf("packet of %d bytes over the budget", n)
				}
			}
			if !r.Next.After(now) {
				rt.Fatalf("Next %v not after now %v", r.Next, now)
			}
			s := c.Self()
			if s.State != StateAlive || s.Gen != 1 || s.Incarnation < lastInc {
				rt.Fatalf("self %+v after incarnation %d", s, lastInc)
			}
			lastInc = s.Incarnation
			live, dead := 0, 0
			for _, m := range c.order {
				switch m.State {
				case StateAlive, StateSuspect:
					live++
				case StateDead:
					dead++
				}
				if (m.State == StateSuspect) != (m.susp != nil) {
					rt.Fatalf("member %s %v with suspicion %v", m.Name, m.State, m.susp != nil)
				}
				if c.order[m.probeIdx] != m || c.members[m.Name] != m {
					rt.Fatalf("member %s: index or map out of step", m.Name)
				}
			}
			if live != c.live || dead != c.dead || len(c.suspects) > len(c.order) {
				rt.Fatalf("counts live %d dead %d, core says %d %d", live, dead, c.live, c.dead)
			}
			if len(c.members) != len(c.order)+1 {
				rt.Fatalf("%d members in the map, %d in the order", len(c.members), len(c.order))
			}
		}
	})
}

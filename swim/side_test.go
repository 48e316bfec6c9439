package swim_test

import (
	"testing"
	"time"

	"github.com/meshnode/meshnode/wire"
)

// While many members are suspect, a member that hears another's
// accusation pings the accused at once, and when it gets no answer it
// confirms, telling the accuser directly: when most members have failed
// together, gossip to random members rarely reaches the few still up, and
// the survivors found the victims one probe at a time.
func TestSideCheckConfirmsAccusations(t *testing.T) {
	c := newCore(t, "a", 0)
	know(c, t0, "b", "c", "d", "e", "f", "g", "h", "i") // addr(1) to addr(8)
	for _, name := range []string{"b", "d", "f"} {
		c.HandlePacket(t0, addr(2), &wire.Suspect{Name: name, Gen: 1, From: "c"})
	}
	accused := map[string]bool{"b": true, "d": true, "f": true}
	pinged := map[string]bool{}
	confirmed := map[string]bool{}
	for now := t0; now.Before(t0.Add(1500 * time.Millisecond)); now = now.Add(10 * time.Millisecond) {
		c.Tick(now)
		for _, p := range c.Ready().Packets {
			for _, m := range p.Msgs {
				switch m := m.(type) {
				case *wire.Ping:
					if accused[m.Target] {
						if !now.After(t0.Add(50 * time.Millisecond)) {
							pinged[m.Target] = true
						}
						continue // the accused are down
					}
					c.HandlePacket(now, p.To, &wire.Ack{Seq: m.Seq})
				case *wire.Suspect:
					if p.To == addr(2) && m.From == "a" {
						confirmed[m.Name] = true
					}
				}
			}
		}
	}
	// The accusations of d and f found two suspects already: both are
	// pinged at once (b, the first, waits for the next probe).
	for _, name := range []string{"d", "f"} {
		if !pinged[name] {
			t.Errorf("%s not pinged within 50 ms of its accusation", name)
		}
		if !confirmed[name] {
			t.Errorf("accuser c not told of a's confirmation of %s within 1.5 s", name)
		}
	}
}

// A probe whose relays were all silent makes the node ping more members at
// once: after many members failed together, the survivors otherwise picked
// dead relays for seconds before finding each other.
func TestSilentRelaysMakeNodePingMore(t *testing.T) {
	c := newCore(t, "a", 0)
	names := []string{"b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m"}
	know(c, t0, names...)
	pinged := map[string]bool{}
	for now := t0; now.Before(t0.Add(2500 * time.Millisecond)); now = now.Add(10 * time.Millisecond) {
		c.Tick(now)
		for _, p := range c.Ready().Packets {
			if ping, ok := p.Msgs[0].(*wire.Ping); ok {
				pinged[ping.Target] = true // no one answers
			}
		}
	}
	if len(pinged) < 6 {
		t.Errorf("pinged %d members in 2.5 s while no one answered, want at least 6 (the first probe's target and side pings)", len(pinged))
	}
	if s := c.Stats(); s.SidePings == 0 || s.SideSuspicions != 0 {
		t.Errorf("side pings %d, side suspicions %d: want some pings and no suspicion (no one confirms)", s.SidePings, s.SideSuspicions)
	}
}

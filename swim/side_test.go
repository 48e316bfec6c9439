package swim_test

import (
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/meshnode/meshnode/swim"
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

// A probe whose relays were all silent starts a sweep that pings every
// member, a batch every half probe interval whatever the node's health,
// until one answers; the one that answers is told the node's accusations.
// Two survivors of 98 crashes of 100 used to find each other eight pings
// per failed probe, with probes slowed by the health their dead relays
// cost: up to a minute.
func TestSweepFindsTheOtherSurvivor(t *testing.T) {
	c := newCore(t, "a", 0)
	var names []string
	for i := range 60 {
		names = append(names, fmt.Sprintf("m%02d", i))
	}
	know(c, t0, names...) // m00 at addr(1) ... m59 at addr(60)
	survivor := addr(38)  // m37
	var told time.Time
	pinged := map[string]bool{}
	for now := t0; now.Before(t0.Add(6 * time.Second)); now = now.Add(10 * time.Millisecond) {
		c.Tick(now)
		for _, p := range c.Ready().Packets {
			for _, m := range p.Msgs {
				switch m := m.(type) {
				case *wire.Ping:
					pinged[m.Target] = true
					if p.To == survivor {
						c.HandlePacket(now, p.To, &wire.Ack{Seq: m.Seq})
					}
				case *wire.Suspect:
					if p.To == survivor && m.From == "a" && told.IsZero() {
						told = now
					}
				}
			}
		}
	}
	// The first probe starts within a second and ends a second later;
	// the sweep covers the 59 others in four batches, half a second apart.
	if told.IsZero() || told.After(t0.Add(4*time.Second)) {
		t.Errorf("the survivor told a's accusations %s (pinged %d members), want within 4 s", after(told), len(pinged))
	}
	if s := c.Stats(); s.Sweeps == 0 || s.SideSuspicions != 0 {
		t.Errorf("sweeps %d, side suspicions %d: want a sweep and no suspicion from it (no one confirms)", s.Sweeps, s.SideSuspicions)
	}
}

// A node whose probes get no answer at all tells a member that pings it
// whom it accuses: each of two survivors that finds the other this way
// learns that it is not alone, whichever pinged first.
func TestPingedNodeSharesItsAccusations(t *testing.T) {
	c := newCore(t, "a", 0)
	know(c, t0, "b", "c", "d", "e", "f", "g", "h") // b at addr(1)
	for now := t0; now.Before(t0.Add(2500 * time.Millisecond)); now = now.Add(10 * time.Millisecond) {
		c.Tick(now)
		c.Ready() // no one answers
	}
	if c.Stats().SuspicionsRaised == 0 {
		t.Fatal("no accusation after 2.5 s of unanswered probes; the test needs one")
	}
	now := t0.Add(2500 * time.Millisecond)
	c.HandlePacket(now, addr(1), &wire.Ping{Seq: 9, Target: "a", SourceName: "b", SourceAddr: addr(1)})
	var toB []string
	for _, p := range c.Ready().Packets {
		if p.To != addr(1) {
			continue
		}
		for _, m := range p.Msgs {
			switch m := m.(type) {
			case *wire.Ack:
				toB = append(toB, "ack")
			case *wire.Suspect:
				if m.From == "a" {
					toB = append(toB, "accusation")
				}
			}
		}
	}
	if !slices.Contains(toB, "ack") || !slices.Contains(toB, "accusation") {
		t.Errorf("sent to b, which pinged: %v; want the ack and a's accusations", toB)
	}
}

// A member still suspect after the minimum timeout, with fewer
// confirmations than expected, asks its accusers; an accuser that has
// reached its verdict answers with it. With half of 100 members crashed,
// half the gossip went to failed members, and an observer that got
// neither the confirmations nor the death news held a victim suspect for
// 20 s after every other survivor had declared it dead.
func TestSuspectAsksAccusersForTheirVerdict(t *testing.T) {
	o := newCore(t, "o", 0)
	know(o, t0, "a", "v", "c", "d", "e", "f", "g", "h", "i", "j") // a at addr(1), v at addr(2)
	o.HandlePacket(t0, addr(1), &wire.Suspect{Name: "v", Gen: 1, From: "a"})
	var asked time.Time
	for now := t0; now.Before(t0.Add(10*time.Second)) && asked.IsZero(); now = now.Add(10 * time.Millisecond) {
		o.Tick(now)
		for _, p := range o.Ready().Packets {
			for _, m := range p.Msgs {
				switch m := m.(type) {
				case *wire.Ping:
					if m.Target != "v" {
						o.HandlePacket(now, p.To, &wire.Ack{Seq: m.Seq}) // all but v are up
					}
				case *wire.Suspect:
					if p.To == addr(1) && m.Name == "v" && m.From == "a" {
						asked = now
					}
				}
			}
		}
	}
	cfg := swim.LANConfig()
	lo := time.Duration(float64(cfg.SuspicionMult) * math.Log10(11) * float64(cfg.ProbeInterval)) // the minimum at N = 11
	if asked.IsZero() || asked.After(t0.Add(lo+100*time.Millisecond)) {
		t.Fatalf("accuser a asked %s, want at the minimum timeout %v", after(asked), lo)
	}

	// The accuser's side: its own accusation sent back is answered with
	// its verdict, to the sender; another's accusation is not.
	a := newCore(t, "a", 1)
	know(a, t0, "o", "v", "c") // o at addr(1), v at addr(2)
	a.HandlePacket(t0, addr(3), &wire.Dead{Name: "v", Gen: 1, From: "c"})
	a.Ready()
	for _, tc := range []struct {
		from   string
		to     int
		answer bool
	}{{"a", 1, true}, {"c", 1, false}} {
		a.HandlePacket(t0.Add(time.Second), addr(tc.to), &wire.Suspect{Name: "v", Gen: 1, From: tc.from})
		got := false
		for _, p := range a.Ready().Packets {
			for _, m := range p.Msgs {
				if d, ok := m.(*wire.Dead); ok && d.Name == "v" && p.To == addr(tc.to) {
					got = true
				}
			}
		}
		if got != tc.answer {
			t.Errorf("suspect v from %s sent to a, which holds v dead: verdict told %v, want %v", tc.from, got, tc.answer)
		}
	}
}

// after describes when t happened, relative to t0.
func after(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return fmt.Sprintf("%v after start", t.Sub(t0))
}

package swim_test

import (
	"testing"
	"time"

	"github.com/meshnode/meshnode/swim"
	"github.com/meshnode/meshnode/wire"
)

// A suspect hears its accusation in every gossip round of a member that
// suspects it, long after the news itself has run out of retransmits: the
// copies gossiped when the suspicion was raised may all have gone to
// members that could not pass them on (the far side of a partition).
func TestGossipTellsSuspect(t *testing.T) {
	c := newCore(t, "a", 0)
	know(c, t0, "b", "c", "d", "e")
	c.HandlePacket(t0, addr(3), &wire.Suspect{Name: "b", Gen: 1, From: "c"})
	// Everyone but b answers every ping; b is silent.
	told := 0
	for now := t0; now.Before(t0.Add(8 * time.Second)); now = now.Add(10 * time.Millisecond) {
		c.Tick(now)
		r := c.Ready()
		for _, p := range r.Packets {
			if ping, ok := p.Msgs[0].(*wire.Ping); ok && p.To != addr(1) {
				c.HandlePacket(now, p.To, &wire.Ack{Seq: ping.Seq})
			}
			if s, ok := p.Msgs[0].(*wire.Suspect); ok && p.To == addr(1) && s.Name == "b" && now.After(t0.Add(6*time.Second)) {
				told++
			}
		}
	}
	if m, _ := c.Member("b"); m.State != swim.StateSuspect {
		t.Fatalf("b is %v after 8 s, want still suspect", m.State)
	}
	// Ten gossip rounds from 6 s to 8 s, and b is the only suspect.
	if told < 8 {
		t.Errorf("b told of its accusation %d times between 6 s and 8 s, want at least 8 (one per gossip round)", told)
	}
}

// A member pinged by a member it suspects acks with the accusation
// attached, so that the suspect can refute at once.
func TestAckCarriesAccusation(t *testing.T) {
	c := newCore(t, "a", 0)
	know(c, t0, "b", "c", "d", "e")
	c.HandlePacket(t0, addr(3), &wire.Suspect{Name: "b", Gen: 1, Incarnation: 0, From: "c"})
	c.Ready()
	c.HandlePacket(t0, addr(1), &wire.Ping{Seq: 7, Target: "a", SourceName: "b", SourceAddr: addr(1)})
	r := c.Ready()
	if len(r.Packets) != 1 || len(r.Packets[0].Msgs) < 2 {
		t.Fatalf("answer to a suspect's ping: %+v, want one packet with an ack and its accusation", r.Packets)
	}
	if a, ok := r.Packets[0].Msgs[0].(*wire.Ack); !ok || a.Seq != 7 {
		t.Errorf("first message %+v, want the ack of seq 7", r.Packets[0].Msgs[0])
	}
	if s, ok := r.Packets[0].Msgs[1].(*wire.Suspect); !ok || s.Name != "b" || s.From != "a" {
		t.Errorf("second message %+v, want the accusation of b", r.Packets[0].Msgs[1])
	}
}

package swim_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/meshnode/meshnode/swim"
	"github.com/meshnode/meshnode/wire"
)

// Scenario tests of single mechanisms, driving one core by hand in virtual
// time: every input is given, every output inspected.

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func addr(i int) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}), 7946)
}

func newCore(t *testing.T, name string, i int, edit ...func(*swim.Config)) *swim.Core {
	t.Helper()
	cfg := swim.LANConfig()
	for _, e := range edit {
		e(&cfg)
	}
	c, err := swim.NewCore(cfg, swim.Identity{Name: name, Gen: 1, Addr: addr(i)}, rand.New(rand.NewPCG(uint64(i), 7)), t0)
	if err != nil {
		t.Fatal(err)
	}
	c.Ready() // drop the start-up output
	return c
}

// know makes c learn alive members name1..: n1 at addr(1) and so on.
func know(c *swim.Core, now time.Time, names ...string) {
	for i, n := range names {
		c.HandlePacket(now, addr(100+i), &wire.Alive{Name: n, Gen: 1, Addr: addr(1 + i)})
	}
}

// sent returns every message of type T in the packets of r, in order.
func sent[T any](r swim.Ready) []T {
	var out []T
	for _, p := range r.Packets {
		for _, m := range p.Msgs {
			if v, ok := m.(T); ok {
				out = append(out, v)
			}
		}
	}
	return out
}

// drainUntil ticks c every 10 ms until until and returns everything it
// produced.
func drainUntil(c *swim.Core, from, until time.Time) swim.Ready {
	var all swim.Ready
	for now := from; !now.After(until); now = now.Add(10 * time.Millisecond) {
		c.Tick(now)
		r := c.Ready()
		all.Packets = append(all.Packets, r.Packets...)
		all.Streams = append(all.Streams, r.Streams...)
		all.Events = append(all.Events, r.Events...)
	}
	return all
}

func TestAccusationsAboutSelf(t *testing.T) {
	tests := []struct {
		name    string
		msg     wire.Message
		wantInc uint64
	}{
		{"suspect at our incarnation is refuted", &wire.Suspect{Name: "a", Gen: 1, Incarnation: 0, From: "b"}, 1},
		{"dead at our incarnation is refuted", &wire.Dead{Name: "a", Gen: 1, Incarnation: 0, From: "b"}, 1},
		{"claim of a higher incarnation is outbid", &wire.Alive{Name: "a", Gen: 1, Incarnation: 5, Addr: addr(9)}, 6},
		{"claim of other data at our incarnation is outbid", &wire.Alive{Name: "a", Gen: 1, Incarnation: 0, Addr: addr(9)}, 1},
		{"our own current news is no accusation", &wire.Alive{Name: "a", Gen: 1, Incarnation: 0, Addr: addr(1)}, 0},
		{"accusing an older generation is ignored", &wire.Suspect{Name: "a", Gen: 0, Incarnation: 3, From: "b"}, 0},
		{"a newer generation of our name is ignored", &wire.Dead{Name: "a", Gen: 2, Incarnation: 0, From: "b"}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCore(t, "a", 1)
			know(c, t0, "b")
			c.HandlePacket(t0, addr(2), tt.msg)
			if got := c.Self(); got.Incarnation != tt.wantInc || got.State != swim.StateAlive {
				t.Fatalf("self = inc %d %v, want inc %d alive", got.Incarnation, got.State, tt.wantInc)
			}
			if tt.wantInc == 0 {
				return
			}
			// The refutation goes out with the next gossip.
			r := drainUntil(c, t0, t0.Add(time.Second))
			found := false
			for _, a := range sent[*wire.Alive](r) {
				found = found || (a.Name == "a" && a.Incarnation == tt.wantInc)
			}
			if !found {
				t.Errorf("no alive message for a at incarnation %d sent", tt.wantInc)
			}
		})
	}
}

func TestGenerationWins(t *testing.T) {
	c := newCore(t, "a", 1)
	c.HandlePacket(t0, addr(2), &wire.Alive{Name: "b", Gen: 1, Incarnation: 7, Addr: addr(2)})
	c.HandlePacket(t0, addr(2), &wire.Alive{Name: "b", Gen: 2, Incarnation: 0, Addr: addr(3)})
	r := c.Ready()
	c.HandlePacket(t0, addr(2), &wire.Dead{Name: "b", Gen: 1, Incarnation: 9, From: "x"})
	c.HandlePacket(t0, addr(2), &wire.Suspect{Name: "b", Gen: 1, Incarnation: 8, From: "x"})
	got, _ := c.Member("b")
	want := swim.Member{Name: "b", Gen: 2, Incarnation: 0, Addr: addr(3), Meta: []byte{}, State: swim.StateAlive, Since: t0}
	if diff := cmp.Diff(want, got, cmpopts.EquateComparable(netip.AddrPort{}), cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("member b (-want +got):\n%s", diff)
	}
	var kinds []swim.EventKind
	for _, e := range r.Events {
		kinds = append(kinds, e.Kind)
	}
	if diff := cmp.Diff([]swim.EventKind{swim.EventJoin, swim.EventJoin}, kinds); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	// A death of the newer generation kills it.
	c.HandlePacket(t0, addr(2), &wire.Dead{Name: "b", Gen: 2, Incarnation: 0, From: "x"})
	if got, _ := c.Member("b"); got.State != swim.StateDead {
		t.Errorf("b after dead gen 2 = %v, want dead", got.State)
	}
}

func TestForwardsAccusationsAboutUnknownMembers(t *testing.T) {
	c := newCore(t, "a", 1)
	know(c, t0, "b")
	c.Ready()
	before := c.Pending()
	s := &wire.Suspect{Name: "stranger", Gen: 4, Incarnation: 2, From: "b"}
	c.HandlePacket(t0, addr(2), s)
	if c.Pending() != before+1 {
		t.Fatalf("pending = %d, want %d: accusation not queued", c.Pending(), before+1)
	}
	if _, ok := c.Member("stranger"); ok {
		t.Error("an accusation made the stranger a member")
	}
	r := drainUntil(c, t0, t0.Add(time.Second))
	var fwd []string
	for _, m := range sent[*wire.Suspect](r) {
		fwd = append(fwd, m.Name)
	}
	if len(fwd) == 0 || fwd[0] != "stranger" {
		t.Errorf("forwarded suspects = %v, want the stranger", fwd)
	}
	// The same news again is not forwarded a second time.
	pending := c.Pending()
	c.HandlePacket(t0.Add(time.Second), addr(2), s)
	if c.Pending() != pending {
		t.Errorf("pending %d after the same accusation again, %d before: queued again", c.Pending(), pending)
	}
}

func TestIndirectRelay(t *testing.T) {
	for _, answered := range []bool{true, false} {
		t.Run(map[bool]string{true: "ack forwarded", false: "nack on timeout"}[answered], func(t *testing.T) {
			c := newCore(t, "relay", 1)
			c.HandlePacket(t0, addr(3), &wire.IndirectPing{Seq: 77, Target: "target", TargetAddr: addr(2), WantNack: true, SourceName: "src", SourceAddr: addr(3)})
			r := c.Ready()
			pings := sent[*wire.Ping](r)
			if len(pings) != 1 || r.Packets[0].To != addr(2) || pings[0].Target != "target" {
				t.Fatalf("relay sent %+v, want one ping to the target", r.Packets)
			}
			now := t0.Add(5 * time.Millisecond)
			if answered {
				c.HandlePacket(now, addr(2), &wire.Ack{Seq: pings[0].Seq})
			}
			r = drainUntil(c, now, t0.Add(time.Second))
			var toSrc []wire.Message
			for _, p := range r.Packets {
				if p.To == addr(3) {
					toSrc = append(toSrc, p.Msgs[0])
				}
			}
			var want []wire.Message = []wire.Message{&wire.Nack{Seq: 77}}
			if answered {
				want = []wire.Message{&wire.Ack{Seq: 77}}
			}
			if diff := cmp.Diff(want, toSrc); diff != "" {
				t.Errorf("sent to the requester (-want +got):\n%s", diff)
			}
		})
	}
}

// A relay nacks within four fifths of its unscaled timeout for the target,
// whatever its own health, so that the nack reaches the requester before
// its probe ends (a probe waits at least its direct timeout for the
// indirect answers); an ack that comes after the nack is still passed on.
// On real processes, relays whose failed probes had raised their health
// nacked after the requesters' probes had ended: the requesters counted
// silence, raised their own health and did not learn that others saw the
// same failures, and three crashes of five took twice as long as one.
func TestRelayNacksInTimeWhateverItsHealth(t *testing.T) {
	for _, late := range []bool{false, true} {
		t.Run(map[bool]string{false: "no answer", true: "ack after the nack"}[late], func(t *testing.T) {
			c := newCore(t, "relay", 1)
			know(c, t0, "b", "c", "d", "e")
			// Nothing answers the relay's own probes for a while: its
			// health rises.
			start := t0.Add(4 * time.Second)
			drainUntil(c, t0, start)
			if c.Health() == 0 {
				t.Fatalf("health 0 after 4 s of unanswered probes; the test needs a relay in poor health")
			}
			c.HandlePacket(start, addr(30), &wire.IndirectPing{Seq: 77, Target: "target", TargetAddr: addr(20), WantNack: true, SourceName: "src", SourceAddr: addr(30)})
			var seq uint32
			for _, p := range c.Ready().Packets {
				if ping, ok := p.Msgs[0].(*wire.Ping); ok && p.To == addr(20) {
					seq = ping.Seq
				}
			}
			if seq == 0 {
				t.Fatal("the relay did not ping the target")
			}
			nackBy := start.Add(swim.LANConfig().ProbeTimeout * 4 / 5)
			var got []string
			for now := start; now.Before(start.Add(3 * time.Second)); now = now.Add(10 * time.Millisecond) {
				if late && now.Equal(nackBy.Add(50*time.Millisecond)) {
					c.HandlePacket(now, addr(20), &wire.Ack{Seq: seq})
				}
				c.Tick(now)
				for _, p := range c.Ready().Packets {
					if p.To != addr(30) {
						continue
					}
					switch m := p.Msgs[0].(type) {
					case *wire.Nack:
						got = append(got, fmt.Sprintf("nack %d in time %v", m.Seq, !now.After(nackBy)))
					case *wire.Ack:
						got = append(got, fmt.Sprintf("ack %d", m.Seq))
					}
				}
			}
			want := []string{"nack 77 in time true"}
			if late {
				want = append(want, "ack 77")
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("relay (health %d) sent to the requester (-want +got):\n%s", c.Health(), diff)
			}
		})
	}
}

// answer plays every member but c: it acks every direct ping c sends.
func answer(c *swim.Core, from, until time.Time, targets map[string]int) {
	for now := from; !now.After(until); now = now.Add(10 * time.Millisecond) {
		c.Tick(now)
		r := c.Ready()
		for _, p := range r.Packets {
			for _, m := range p.Msgs {
				if ping, ok := m.(*wire.Ping); ok {
					targets[ping.Target]++
					c.HandlePacket(now.Add(time.Millisecond), p.To, &wire.Ack{Seq: ping.Seq})
				}
			}
		}
	}
}

func TestRoundRobinProbing(t *testing.T) {
	c := newCore(t, "a", 1)
	names := []string{"b", "c", "d", "e", "f"}
	know(c, t0, names...)
	got := map[string]int{}
	// Five probe periods: each member exactly once. Ten: exactly twice.
	answer(c, t0, t0.Add(5*time.Second-time.Millisecond), got)
	want := map[string]int{"b": 1, "c": 1, "d": 1, "e": 1, "f": 1}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("probes in one round (-want +got):\n%s", diff)
	}
	answer(c, t0.Add(5*time.Second), t0.Add(10*time.Second-time.Millisecond), got)
	for _, n := range names {
		if got[n] != 2 {
			t.Errorf("after two rounds %s probed %d times, want 2", n, got[n])
		}
	}
	if s := c.Stats(); s.ProbesFailed != 0 || c.Health() != 0 {
		t.Errorf("answered probes failed: %+v, health %d", s, c.Health())
	}
}

func TestTCPOnlyMemberIsFlaggedNotSuspected(t *testing.T) {
	c := newCore(t, "a", 1, func(cfg *swim.Config) { cfg.IndirectChecks = 2 })
	know(c, t0, "b", "c", "d")
	var target string
	var ev []swim.Event
	for now := t0; now.Before(t0.Add(3 * time.Second)); now = now.Add(10 * time.Millisecond) {
		c.Tick(now)
		r := c.Ready()
		ev = append(ev, r.Events...)
		for _, p := range r.Packets {
			switch m := p.Msgs[0].(type) {
			case *wire.Ping:
				// Never answered over UDP.
			case *wire.IndirectPing:
				c.HandlePacket(now, p.To, &wire.Nack{Seq: m.Seq}) // relays cannot reach it either
			}
		}
		for _, s := range r.Streams {
			if ping, ok := s.Msgs[0].(*wire.Ping); ok {
				target = ping.Target
				c.StreamDone(now, s.ID, []wire.Message{&wire.Ack{Seq: ping.Seq}}, nil)
			}
		}
		if c.Stats().TCPOnlyProbes > 0 {
			break
		}
	}
	m, _ := c.Member(target)
	if !m.TCPOnly || m.State != swim.StateAlive || c.Stats().TCPOnlyProbes != 1 {
		t.Errorf("member %s = %+v, stats %+v: want alive, flagged TCP-only, counted once", target, m, c.Stats())
	}
	for _, e := range ev {
		if e.Kind == swim.EventSuspect {
			t.Errorf("TCP-only member suspected: %+v", e)
		}
	}
}

// TestJoinMakesOneAttempt checks that the core keeps no join backoff of its
// own (the runner retries): a Join push-pulls with every seed once, and
// while the member is alone only the reconnect loop dials a seed again,
// every ReconnectInterval, as a join.
func TestJoinMakesOneAttempt(t *testing.T) {
	c := newCore(t, "a", 1)
	reconnect := swim.LANConfig().ReconnectInterval
	c.Join(t0, []netip.AddrPort{addr(2), addr(3)})
	var attempts []time.Duration
	for now := t0; now.Before(t0.Add(3*reconnect + time.Second)); now = now.Add(10 * time.Millisecond) {
		c.Tick(now)
		r := c.Ready()
		for _, s := range r.Streams {
			if pp, ok := s.Msgs[0].(*wire.PushPull); ok && pp.Join {
				attempts = append(attempts, now.Sub(t0))
			}
			c.StreamDone(now, s.ID, nil, errors.New("connection refused"))
		}
	}
	// Join opens a stream to each seed at once; then one seed per
	// reconnect interval (the reconnect timer started with the core, a
	// little before t0 + reconnect).
	if len(attempts) != 5 {
		t.Fatalf("join attempts at %v, want 2 at once then 3 a reconnect interval apart", attempts)
	}
	first := attempts[2]
	want := []time.Duration{0, 0, first, first + reconnect, first + 2*reconnect}
	if diff := cmp.Diff(want, attempts); diff != "" || first <= 0 || first > reconnect {
		t.Errorf("join attempts (-want +got):\n%s", diff)
	}
	if c.Joined() {
		t.Error("Joined() with every attempt failed")
	}
}

func TestPushPullSendsOnlyDifferences(t *testing.T) {
	a := newCore(t, "a", 1)
	b := newCore(t, "b", 2)
	for _, m := range []*wire.Alive{
		{Name: "x", Gen: 1, Incarnation: 5, Addr: addr(10)}, // only a knows x
		{Name: "y", Gen: 1, Incarnation: 1, Addr: addr(11)}, // b knows y newer
		{Name: "w", Gen: 1, Incarnation: 3, Addr: addr(13)}, // both know w equally
	} {
		a.HandlePacket(t0, addr(99), m)
	}
	for _, m := range []*wire.Alive{
		{Name: "y", Gen: 1, Incarnation: 4, Addr: addr(11)},
		{Name: "z", Gen: 1, Incarnation: 0, Addr: addr(12)}, // only b knows z
		{Name: "w", Gen: 1, Incarnation: 3, Addr: addr(13)},
		{Name: "a", Gen: 1, Incarnation: 0, Addr: addr(1)},
	} {
		b.HandlePacket(t0, addr(99), m)
	}
	a.Ready()
	b.Ready()
	a.Join(t0, []netip.AddrPort{addr(2)})
	req := a.Ready().Streams[0]
	resp := b.HandleStream(t0, addr(1), req.Msgs)
	var recs, want []string
	for _, m := range resp {
		switch m := m.(type) {
		case *wire.Members:
			for _, r := range m.Records {
				recs = append(recs, r.Name)
			}
		case *wire.Digest:
			for _, e := range m.Entries {
				want = append(want, e.Name)
			}
		}
	}
	if diff := cmp.Diff([]string{"b", "y", "z"}, sortStrings(recs)); diff != "" {
		t.Errorf("records b sent (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"x"}, want); diff != "" {
		t.Errorf("records b asked for (-want +got):\n%s", diff)
	}
	if err := a.StreamDone(t0, req.ID, resp, nil); err != nil {
		t.Fatal(err)
	}
	r := a.Ready()
	if len(r.Streams) != 1 || !r.Streams[0].OneWay {
		t.Fatalf("a opened %+v, want one one-way push", r.Streams)
	}
	push := r.Streams[0].Msgs[1].(*wire.Members)
	if len(push.Records) != 1 || push.Records[0].Name != "x" {
		t.Errorf("a pushed %+v, want only x", push.Records)
	}
	b.HandleStream(t0, addr(1), r.Streams[0].Msgs)
	for _, n := range []string{"x", "z"} {
		ma, oka := a.Member(n)
		mb, okb := b.Member(n)
		if !oka || !okb || ma.Incarnation != mb.Incarnation {
			t.Errorf("%s: a has %+v, b has %+v", n, ma, mb)
		}
	}
	if y, _ := a.Member("y"); y.Incarnation != 4 {
		t.Errorf("a's y at incarnation %d, want 4", y.Incarnation)
	}
	if !a.Joined() {
		t.Error("a not joined after a successful push-pull with its seed")
	}
}

func TestMetadata(t *testing.T) {
	c := newCore(t, "a", 1)
	if err := c.SetMeta(t0, make([]byte, 513)); !errors.Is(err, swim.ErrTooLarge) {
		t.Errorf("SetMeta(513 bytes) = %v, want ErrTooLarge", err)
	}
	meta := []byte("zone=eu")
	if err := c.SetMeta(t0, meta); err != nil {
		t.Fatal(err)
	}
	meta[0] = 'X' // the core keeps its own copy
	if got := c.Self(); string(got.Meta) != "zone=eu" || got.Incarnation != 1 {
		t.Errorf("self = %+v, want meta zone=eu at incarnation 1", got)
	}
	if err := c.Broadcast(wire.Data{Kind: 3, Payload: make([]byte, 2000)}); !errors.Is(err, swim.ErrTooLarge) {
		t.Errorf("Broadcast(2000 bytes) = %v, want ErrTooLarge", err)
	}
}

func TestPauseIsNotJudged(t *testing.T) {
	c := newCore(t, "a", 1)
	know(c, t0, "b", "c", "d")
	c.Tick(t0)
	c.Ready()
	// Suspect b, then "freeze" for 40 s, far past its suspicion timeout.
	c.HandlePacket(t0, addr(3), &wire.Suspect{Name: "b", Gen: 1, From: "c"})
	later := t0.Add(40 * time.Second)
	c.Tick(later)
	r := c.Ready()
	for _, e := range r.Events {
		if e.Kind == swim.EventDead {
			t.Errorf("death verdict right after a pause: %+v", e)
		}
	}
	if s := c.Stats(); s.Pauses != 1 {
		t.Errorf("pauses = %d, want 1", s.Pauses)
	}
	if c.Self().Incarnation != 1 {
		t.Errorf("self incarnation %d after a pause, want 1 (re-announced)", c.Self().Incarnation)
	}
}

func sortStrings(s []string) []string {
	for i := range s {
		for j := i + 1; j < len(s); j++ {
			if s[j] < s[i] {
				s[i], s[j] = s[j], s[i]
			}
		}
	}
	return s
}

func TestJoinThroughOnlyItselfIsNoJoin(t *testing.T) {
	c := newCore(t, "a", 1)
	c.Join(t0, []netip.AddrPort{addr(1)})
	if r := c.Ready(); len(r.Streams) != 0 || !c.Joined() {
		t.Errorf("joining through itself: %d streams, Joined() = %v; want none, true", len(r.Streams), c.Joined())
	}
}

// probeOnce runs c until its next probe's indirect stage or end, playing
// the network: direct pings are answered after rtt (never, if rtt < 0);
// relays answer with nacks if nack is set. It returns when the indirect
// stage began (indirect pings or the TCP fallback ping, relative to the
// ping), and the ping packet itself.
func probeOnce(c *swim.Core, from time.Time, rtt time.Duration, nack bool) (indirectAfter time.Duration, ping swim.Packet, end time.Time) {
	var sentAt time.Time
	type due struct {
		at  time.Time
		msg wire.Message
	}
	var acks []due
	for now := from; now.Before(from.Add(30 * time.Second)); now = now.Add(5 * time.Millisecond) {
		for len(acks) > 0 && !acks[0].at.After(now) {
			c.HandlePacket(now, addr(50), acks[0].msg)
			acks = acks[1:]
		}
		c.Tick(now)
		r := c.Ready()
		for _, p := range r.Packets {
			switch m := p.Msgs[0].(type) {
			case *wire.Ping:
				if sentAt.IsZero() {
					sentAt, ping = now, p
					if rtt >= 0 {
						acks = append(acks, due{now.Add(rtt), &wire.Ack{Seq: m.Seq}})
					}
				}
			case *wire.IndirectPing:
				if indirectAfter == 0 {
					indirectAfter = now.Sub(sentAt)
				}
				if nack {
					c.HandlePacket(now, p.To, &wire.Nack{Seq: m.Seq})
				}
			}
		}
		for _, s := range r.Streams {
			// The TCP fallback ping goes out with the indirect pings: it
			// marks the indirect stage too when no member is left to relay
			// (which of them are depends on the random probe order).
			if _, ok := s.Msgs[0].(*wire.Ping); ok && !sentAt.IsZero() && indirectAfter == 0 {
				indirectAfter = now.Sub(sentAt)
			}
			c.StreamDone(now, s.ID, nil, errors.New("refused"))
		}
		if !sentAt.IsZero() && (rtt < 0 && indirectAfter > 0 || rtt >= 0 && len(acks) == 0) {
			return indirectAfter, ping, now
		}
	}
	return indirectAfter, ping, from.Add(30 * time.Second)
}

func TestAdaptiveProbeTimeout(t *testing.T) {
	tests := []struct {
		name      string
		rtt       time.Duration
		wantAfter time.Duration // when indirect pings start once adapted
	}{
		{"fast peer: timeout shrinks to its floor", 2 * time.Millisecond, 100 * time.Millisecond},
		{"slow peer: timeout grows past the default", 800 * time.Millisecond, time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCore(t, "a", 1)
			know(c, t0, "b", "c", "d", "e")
			now := t0
			for range 6 { // enough samples for the peer and for the node
				_, _, end := probeOnce(c, now, tt.rtt, true)
				now = end.Add(2 * time.Second)
			}
			after, _, _ := probeOnce(c, now, -1, true)
			if d := after - tt.wantAfter; d < -10*time.Millisecond || d > 10*time.Millisecond {
				t.Errorf("indirect probes %v after the ping, want about %v", after, tt.wantAfter)
			}
		})
	}
	c := newCore(t, "a", 1)
	know(c, t0, "b", "c", "d", "e")
	if after, _, _ := probeOnce(c, t0, -1, true); after < 495*time.Millisecond || after > 510*time.Millisecond {
		t.Errorf("without samples, indirect probes %v after the ping, want the 500ms default", after)
	}
}

func TestHealthMultiplierAndBuddy(t *testing.T) {
	c := newCore(t, "a", 1)
	know(c, t0, "b", "c", "d", "e")
	// No answer and no nacks: three missed nacks raise the health score by 3
	// and the target becomes suspect.
	_, first, end := probeOnce(c, t0, -1, false)
	end = end.Add(2 * time.Second)
	probes := c.Stats().ProbesSent
	c.Tick(end)
	var times []time.Time
	if n := c.Stats().ProbesSent; n != probes {
		probes = n
		times = append(times, end)
	}
	if h := c.Health(); h != 3 {
		t.Fatalf("health after a probe with 3 missed nacks = %d, want 3", h)
	}
	target := first.Msgs[0].(*wire.Ping).Target
	if m, _ := c.Member(target); m.State != swim.StateSuspect {
		t.Fatalf("%s = %v after a failed probe, want suspect", target, m.State)
	}
	// Each answered probe lowers the score by one, and the next probe
	// follows (1 + score) probe intervals later: 3, 2, 1, 1 s.
	var buddy []string
	for now := end; now.Before(end.Add(20 * time.Second)); now = now.Add(10 * time.Millisecond) {
		c.Tick(now)
		if n := c.Stats().ProbesSent; n != probes {
			probes = n
			times = append(times, now)
		}
		for _, p := range c.Ready().Packets {
			if ping, ok := p.Msgs[0].(*wire.Ping); ok {
				c.HandlePacket(now, p.To, &wire.Ack{Seq: ping.Seq})
				if ping.Target == target {
					for _, m := range p.Msgs[1:] {
						if s, ok := m.(*wire.Suspect); ok && s.Name == target {
							buddy = append(buddy, s.Name)
						}
					}
				}
			}
		}
	}
	var gaps []time.Duration
	for i := 1; i < len(times) && i < 5; i++ {
		gaps = append(gaps, times[i].Sub(times[i-1]).Round(100*time.Millisecond))
	}
	if diff := cmp.Diff([]time.Duration{3 * time.Second, 2 * time.Second, time.Second, time.Second}, gaps); diff != "" {
		t.Errorf("gaps between probes (-want +got):\n%s", diff)
	}
	if len(buddy) == 0 {
		t.Errorf("the ping to suspect %s did not carry the suspicion (buddy system)", target)
	}
}

func TestBoundedStreams(t *testing.T) {
	c := newCore(t, "a", 1, func(cfg *swim.Config) { cfg.MaxStreams = 1 })
	c.Join(t0, []netip.AddrPort{addr(2), addr(3)})
	if r := c.Ready(); len(r.Streams) != 1 || c.Stats().StreamsDropped != 1 {
		t.Errorf("%d streams opened, %d dropped; want 1 and 1", len(r.Streams), c.Stats().StreamsDropped)
	}
}

func TestNewMembersAtRandomPositions(t *testing.T) {
	c := newCore(t, "a", 1)
	var names []string
	for i := range 40 {
		names = append(names, string(rune('A'+i/26))+string(rune('a'+i%26)))
	}
	know(c, t0, names...)
	got := map[string]int{}
	var order []string
	for now := t0; len(order) < 40; now = now.Add(10 * time.Millisecond) {
		c.Tick(now)
		for _, p := range c.Ready().Packets {
			if ping, ok := p.Msgs[0].(*wire.Ping); ok {
				order = append(order, ping.Target)
				got[ping.Target]++
				c.HandlePacket(now, p.To, &wire.Ack{Seq: ping.Seq})
			}
		}
	}
	if len(got) != 40 {
		t.Errorf("first round probed %d distinct members, want all 40", len(got))
	}
	if cmp.Equal(order, names) {
		t.Error("probe order equals insertion order")
	}
}

// A node that hears nothing at all (its links are cut) distrusts itself and
// says so: it declares no one dead. When its links come back, the first
// thing it hears is an accusation: it withholds the refutation (reporting
// it), but pings its probe target again at once; the answer shows a cut,
// not a lossy link, so it trusts itself again without earning back, probe
// by probe, the health the silence cost, and once the members it suspected
// have refuted, it refutes the accusation it had withheld.
func TestCutOffNodeWithholdsThenRefutes(t *testing.T) {
	c := newCore(t, "a", 9)
	know(c, t0, "b", "c", "d", "e")
	c.Ready()
	kinds := map[swim.EventKind]int{}
	inc := c.Self().Incarnation
	var refuted time.Time
	// step notes r's events; with links, it acks every ping, has every
	// suspect that hears its accusation refute it, and notes our refutation.
	step := func(now time.Time, r swim.Ready, links bool) {
		for _, ev := range r.Events {
			kinds[ev.Kind]++
			if ev.Kind == swim.EventIsolated && ev.Reason == "" {
				t.Errorf("isolated event without a reason")
			}
		}
		for _, s := range r.Streams {
			c.StreamDone(now, s.ID, nil, errors.New("refused"))
		}
		if !links {
			return
		}
		for _, p := range r.Packets {
			for _, m := range p.Msgs {
				if a, ok := m.(*wire.Alive); ok && a.Name == "a" && a.Incarnation > inc && refuted.IsZero() {
					refuted = now
				}
			}
			ping, ok := p.Msgs[0].(*wire.Ping)
			if !ok {
				continue
			}
			c.HandlePacket(now, p.To, &wire.Ack{Seq: ping.Seq})
			for _, m := range p.Msgs[1:] {
				if s, ok := m.(*wire.Suspect); ok && s.Name == ping.Target {
					c.HandlePacket(now, p.To, &wire.Alive{Name: s.Name, Gen: 1, Incarnation: s.Incarnation + 1, Addr: p.To})
				}
			}
		}
	}
	now := t0
	for ; now.Before(t0.Add(60 * time.Second)); now = now.Add(10 * time.Millisecond) {
		c.Tick(now)
		step(now, c.Ready(), false)
	}
	if kinds[swim.EventIsolated] != 1 || c.Stats().DeathVerdicts != 0 {
		t.Fatalf("after 60 s cut off: %d isolated events, %d death verdicts; want 1 and 0", kinds[swim.EventIsolated], c.Stats().DeathVerdicts)
	}
	back := now
	for range 2 {
		c.HandlePacket(now, addr(1), &wire.Suspect{Name: "a", Gen: 1, Incarnation: inc, From: "b"})
	}
	step(now, c.Ready(), true)
	if kinds[swim.EventRefuteWithheld] != 1 || c.Stats().RefutesWithheld != 2 {
		t.Fatalf("two accusations on hearing again: %d refute-withheld events, %d withheld; want 1 and 2",
			kinds[swim.EventRefuteWithheld], c.Stats().RefutesWithheld)
	}
	for ; now.Before(back.Add(10*time.Second)) && refuted.IsZero(); now = now.Add(10 * time.Millisecond) {
		c.Tick(now)
		step(now, c.Ready(), true)
	}
	if kinds[swim.EventRecovered] != 1 || refuted.IsZero() {
		t.Fatalf("10 s after the links came back: %d recovered events, refuted %v; want 1 and a refutation", kinds[swim.EventRecovered], !refuted.IsZero())
	}
	if d := refuted.Sub(back); d > 6*time.Second {
		t.Errorf("refuted %v after the links came back, want within 6 s (a round of probes)", d)
	}
	t.Logf("refuted %v after the links came back; health %d", refuted.Sub(back), c.Health())
}

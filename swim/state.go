package swim

import (
	"bytes"
	"net/netip"
	"slices"
	"time"

	"github.com/meshnode/meshnode/wire"
)

// HandlePacket takes one decoded message received over UDP from from. The
// runner splits compound packets and calls HandlePacket for each part, in
// order. msg is only borrowed: the core copies what it keeps, so the runner
// may decode the next message into it. Messages of other types are ignored.
func (c *Core) HandlePacket(now time.Time, from netip.AddrPort, msg wire.Message) {
	c.observe(now)
	if c.leaving {
		return
	}
	c.heard(now)
	switch m := msg.(type) {
	case *wire.Ping:
		c.handlePing(now, from, m)
	case *wire.IndirectPing:
		c.handleIndirect(now, from, m)
	case *wire.Ack:
		c.handleAck(now, m)
	case *wire.Nack:
		c.handleNack(from, m)
	case *wire.Alive:
		c.applyAlive(now, *m)
	case *wire.Suspect:
		c.tellVerdict(now, from, m)
		c.applySuspect(now, *m)
	case *wire.Dead:
		c.applyDead(now, *m, false)
	case *wire.Data:
		c.out.Data = append(c.out.Data, Received{From: from, Data: wire.Data{Kind: m.Kind, Payload: slices.Clone(m.Payload)}})
	}
}

// setState moves m to state s at now, keeping the live count.
func (c *Core) setState(m *member, s State, now time.Time) {
	wasLive := m.State == StateAlive || m.State == StateSuspect
	isLive := s == StateAlive || s == StateSuspect
	if m != c.self {
		if wasLive && !isLive {
			c.live--
		} else if !wasLive && isLive {
			c.live++
		}
		if m.State == StateDead && s != StateDead {
			c.dead--
		} else if m.State != StateDead && s == StateDead {
			c.dead++
		}
	}
	if m.State != s {
		m.Since = now
	}
	m.State = s
	if s != StateSuspect && m.susp != nil {
		m.susp = nil
		if i := slices.Index(c.suspects, m); i >= 0 {
			c.suspects = slices.Delete(c.suspects, i, i+1)
		}
	}
	c.rescaleSuspicions()
}

// confirmers returns the number of confirmations a suspicion can expect:
// the members alive and not suspect, other than self (and the suspect).
func (c *Core) confirmers() int {
	return min(c.cfg.IndirectChecks, c.live-len(c.suspects))
}

// rescaleSuspicions updates the confirmations every running suspicion
// expects after the number of members or suspects changed.
func (c *Core) rescaleSuspicions() {
	if len(c.suspects) == 0 {
		return
	}
	k := c.confirmers()
	for _, m := range c.suspects {
		m.susp.expect(k)
	}
}

// addMember inserts a new member at a random position of the probe order.
func (c *Core) addMember(now time.Time, a wire.Alive) *member {
	m := &member{Member: Member{Name: a.Name, Gen: a.Gen, Incarnation: a.Incarnation, Addr: a.Addr, Meta: a.Meta, State: StateAlive, Since: now}}
	c.members[a.Name] = m
	c.live++
	m.probeIdx = len(c.order)
	c.order = append(c.order, m)
	if n := len(c.order); n > 1 {
		j := c.rng.IntN(n)
		c.order[j], c.order[n-1] = c.order[n-1], c.order[j]
		c.order[j].probeIdx, c.order[n-1].probeIdx = j, n-1
	}
	c.rescaleSuspicions()
	return m
}

func (c *Core) removeMember(m *member) {
	c.setState(m, StateLeft, m.Since) // out of the counts
	delete(c.members, m.Name)
	i := m.probeIdx
	c.order = slices.Delete(c.order, i, i+1)
	for j := i; j < len(c.order); j++ {
		c.order[j].probeIdx = j
	}
	if c.probeAt > i {
		c.probeAt--
	}
	m.probeIdx = -1
}

// applyAlive merges news that a member is alive.
func (c *Core) applyAlive(now time.Time, a wire.Alive) {
	if a.Name == c.self.Name {
		s := c.self
		// Never accept worse news about oneself: a claim of a newer
		// incarnation, or of different data at ours, is refuted.
		if a.Gen == s.Gen && !c.leaving && (a.Incarnation > s.Incarnation ||
			(a.Incarnation == s.Incarnation && (a.Addr != s.Addr || !bytes.Equal(a.Meta, s.Meta)))) {
			c.refute(a.Incarnation)
		}
		return
	}
	if len(a.Meta) > c.cfg.MaxMetaBytes || !a.Addr.IsValid() || a.Name == "" {
		return
	}
	a.Meta = slices.Clone(a.Meta) // a borrowed input; the copy is kept and broadcast
	m := c.members[a.Name]
	if m == nil {
		if len(c.members) >= c.cfg.MaxMembers {
			c.stats.MembersDropped++
			return
		}
		m = c.addMember(now, a)
		c.emit(EventJoin, now, m, false)
		c.enqueue(a.Name, &a, prioAlive)
		return
	}
	if a.Gen < m.Gen || (a.Gen == m.Gen && a.Incarnation <= m.Incarnation) {
		return
	}
	newGen := a.Gen > m.Gen
	prev := m.State
	changed := m.Addr != a.Addr || !bytes.Equal(m.Meta, a.Meta)
	m.Gen, m.Incarnation, m.Addr = a.Gen, a.Incarnation, a.Addr
	if changed {
		m.Meta = a.Meta
	}
	if newGen {
		m.rtt = rttEstimator{}
		m.TCPOnly = false
		m.Since = now
	}
	c.setState(m, StateAlive, now)
	switch {
	case newGen:
		c.emit(EventJoin, now, m, false)
	case prev != StateAlive:
		c.emit(EventAlive, now, m, false)
	case changed:
		c.emit(EventUpdate, now, m, false)
	}
	c.enqueue(a.Name, &a, prioAlive)
}

// applySuspect merges an accusation.
func (c *Core) applySuspect(now time.Time, s wire.Suspect) {
	if s.Name == c.self.Name {
		c.accused(now, s.Gen, s.Incarnation, s.From)
		return
	}
	m := c.members[s.Name]
	if m == nil || s.Gen > m.Gen {
		c.forward(s.Name, s.Gen, s.Incarnation, &s, prioSuspect)
		return
	}
	if s.Gen < m.Gen || s.Incarnation < m.Incarnation || m.State == StateDead || m.State == StateLeft {
		return
	}
	// Only a named accuser other than us is independent evidence: a
	// suspicion merged from a push-pull digest carries no accuser, and may
	// be our own coming back.
	other := s.From != "" && s.From != c.self.Name
	if other {
		c.absolve(s.Name)
	}
	if m.State == StateSuspect {
		if s.Incarnation > m.Incarnation {
			m.Incarnation = s.Incarnation
		}
		if m.susp.confirm(s.From) {
			if other && m.susp.from[0] == c.self.Name {
				c.vindicate(now, s.From)
			}
			// Pass independent confirmations on: they shorten everyone's timer.
			c.enqueue(s.Name, &s, prioSuspect)
		}
		return
	}
	m.Incarnation = s.Incarnation
	c.setState(m, StateSuspect, now)
	lo, hi := c.cfg.suspicionBounds(c.live + 1)
	c.suspects = append(c.suspects, m)
	m.susp = newSuspicion(now, s.From, c.confirmers(), c.cfg.IndirectChecks, lo, hi)
	c.rescaleSuspicions()
	c.emit(EventSuspect, now, m, false)
	c.enqueue(s.Name, &s, prioSuspect)
	if other {
		c.sideCheck(now, m)
	}
}

// applyDead merges a death or leave. With asSuspect, a death reported in a
// push-pull is taken as a suspicion only: the peer may have been on the
// other side of a partition.
func (c *Core) applyDead(now time.Time, d wire.Dead, asSuspect bool) {
	if d.Name == c.self.Name {
		c.accused(now, d.Gen, d.Incarnation, d.From)
		return
	}
	m := c.members[d.Name]
	if m == nil {
		if !asSuspect {
			c.forward(d.Name, d.Gen, d.Incarnation, &d, prioSuspect)
		}
		return
	}
	if d.Gen < m.Gen || (d.Gen == m.Gen && d.Incarnation < m.Incarnation) {
		return
	}
	if d.Gen == m.Gen && (m.State == StateDead || m.State == StateLeft) {
		return
	}
	if asSuspect && !d.Left && d.Gen == m.Gen {
		c.applySuspect(now, wire.Suspect{Name: d.Name, Gen: d.Gen, Incarnation: d.Incarnation, From: d.From})
		return
	}
	if d.From != "" && d.From != c.self.Name && !d.Left {
		c.absolve(d.Name)
		if m.susp != nil && m.susp.from[0] == c.self.Name && d.Gen == m.Gen {
			c.vindicate(now, d.From)
		}
	}
	m.Gen, m.Incarnation = d.Gen, d.Incarnation
	kind, st := EventDead, StateDead
	if d.Left {
		kind, st = EventLeave, StateLeft
	}
	c.setState(m, st, now)
	c.emit(kind, now, m, false)
	c.enqueue(d.Name, &d, prioSuspect)
}

// forward passes on an accusation about a member this node does not know
// (or knows only in an older generation), once per news.
func (c *Core) forward(name string, gen, inc uint64, msg wire.Message, prio int) {
	if old, ok := c.forwarded[name]; ok && (old.gen > gen || old.gen == gen && old.inc >= inc) {
		return
	}
	if len(c.forwarded) >= 1024 {
		clear(c.forwarded) // a bound; at worst some news is forwarded twice
	}
	c.forwarded[name] = news{gen, inc}
	c.enqueue(name, msg, prio)
}

// news identifies what was said about a member: generation and incarnation.
type news struct{ gen, inc uint64 }

// accused handles an accusation of this member by from: a current one is
// refuted; a stale one (older than our incarnation: we refuted already, but
// the accuser missed it) is corrected by sending our alive message straight
// to the accuser, at most once per probe interval per accuser.
func (c *Core) accused(now time.Time, gen, inc uint64, from string) {
	if gen != c.self.Gen || c.leaving {
		return
	}
	if inc >= c.self.Incarnation {
		c.refute(inc)
		return
	}
	a := c.members[from]
	if a == nil || a == c.self || !c.defending() || now.Sub(c.corrected[from]) < c.cfg.ProbeInterval {
		return
	}
	if len(c.corrected) >= 256 {
		clear(c.corrected)
	}
	c.corrected[from] = now
	s := c.self
	c.send(a.Addr, &wire.Alive{Name: s.Name, Gen: s.Gen, Incarnation: s.Incarnation, Addr: s.Addr, Meta: s.Meta}, nil)
}

// refute answers an accusation of this member at incarnation inc by
// broadcasting that it is alive at a higher incarnation, unless this node
// believes it is itself the problem.
func (c *Core) refute(inc uint64) {
	if !c.defending() {
		c.stats.RefutesWithheld++
		if !c.withheld {
			c.withheld = true
			c.out.Events = append(c.out.Events, Event{Kind: EventRefuteWithheld, At: c.lastInput, Member: c.self.Member})
		}
		return
	}
	c.refutes[c.stats.Refutations%uint64(len(c.refutes))] = c.lastInput
	c.stats.Refutations++
	c.self.Incarnation = max(c.self.Incarnation, inc) + 1
	c.broadcastRefutation()
	// Lifeguard: being accused hints that we are slow to answer.
	c.addHealth(1)
}

// askAccusers sends suspect m's accusation back to the members that
// raised or confirmed it (at most askAccusersMax), each as its own
// accusation (so that it counts as no new evidence): one that has
// reached its verdict meanwhile answers with it (see tellVerdict). A
// suspicion that too few confirmations reached runs up to its maximum
// timeout; when many members fail at once, half the gossip goes to
// failed members, and an observer that got neither the confirmations nor
// the death news held a victim suspect for 20 s after everyone else had
// declared it dead.
func (c *Core) askAccusers(m *member) {
	n := 0
	for _, name := range m.susp.from {
		a := c.members[name]
		if n == askAccusersMax || a == nil || a == c.self || a.State != StateAlive {
			continue
		}
		n++
		c.send(a.Addr, &wire.Suspect{Name: m.Name, Gen: m.Gen, Incarnation: m.Incarnation, From: name}, nil)
	}
}

// askAccusersMax bounds the accusers asked at once.
const askAccusersMax = 3

// tellVerdict answers this node's own accusation of a member it now holds
// dead (same generation, incarnation no newer), sent back to it, with the
// verdict, straight to the packet's sender (at most once per
// ProbeInterval per sender and member): the sender still suspects the
// member and asks (see askAccusers). Only its own accusations: a verdict
// reached on the small side of a partition, told in answer to any
// accusation heard after the heal, declared members of the other side
// dead that were alive there and slowed the heal.
func (c *Core) tellVerdict(now time.Time, from netip.AddrPort, s *wire.Suspect) {
	m := c.members[s.Name]
	if s.From != c.self.Name || m == nil || m == c.self || m.State != StateDead || s.Gen != m.Gen || s.Incarnation > m.Incarnation || c.leaving {
		return
	}
	key := s.Name + "\x00" + from.String()
	if t, ok := c.told[key]; ok && now.Sub(t) < c.cfg.ProbeInterval {
		return
	}
	if len(c.told) >= 256 {
		clear(c.told) // a bound; at worst a verdict is told twice
	}
	c.told[key] = now
	c.send(from, &wire.Dead{Name: m.Name, Gen: m.Gen, Incarnation: m.Incarnation, From: c.self.Name}, nil)
}

// tickSuspicions issues the death verdicts whose timers ran out.
func (c *Core) tickSuspicions(now time.Time) {
	for i := 0; i < len(c.suspects); {
		m := c.suspects[i]
		if s := m.susp; !now.Before(s.askAt) {
			// Still suspect after the minimum timeout: the confirmations
			// that would have brought the verdict may have been lost.
			s.askAt = now.Add(s.lo / 2)
			if s.confirmations() < s.k {
				c.askAccusers(m)
			}
		}
		if now.Before(m.susp.deadline) {
			i++
			continue
		}
		if c.isolated() {
			c.stats.VerdictsWithheld++
			m.susp.deadline = now.Add(c.cfg.ProbeInterval)
			i++
			continue
		}
		if s := m.susp; !s.verifying && s.confirmations() < s.k {
			// Too few members confirmed: probe it ourselves first, with the
			// accusation attached, in case its refutation passed us by.
			s.verifying = true
			s.deadline = now.Add(2 * c.scale(c.cfg.ProbeInterval))
			c.probeFirst = m.Name
			i++
			continue
		}
		c.stats.DeathVerdicts++
		c.absolve(m.Name)
		d := &wire.Dead{Name: m.Name, Gen: m.Gen, Incarnation: m.Incarnation, From: c.self.Name}
		c.setState(m, StateDead, now) // removes m from c.suspects
		c.emit(EventDead, now, m, true)
		c.enqueue(m.Name, d, prioSuspect)
	}
}

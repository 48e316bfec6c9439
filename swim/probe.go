package swim

import (
	"net/netip"
	"slices"
	"time"

	"github.com/meshnode/meshnode/wire"
)

// maxRelays bounds Config.IndirectChecks.
const maxRelays = 16

// relay is one member asked to probe a target for us.
type relay struct {
	name   string
	addr   netip.AddrPort
	nacked bool
}

// pendKind says what an outstanding sequence number is waiting for.
type pendKind uint8

const (
	pendDirect   pendKind = iota + 1 // our direct ping; kept past the probe for RTT samples
	pendIndirect                     // acks relayed for our indirect pings
	pendRelay                        // a ping we sent on behalf of another member
	pendCheck                        // a ping of the link check (see startCheck)
	pendSide                         // a side ping beside a probe (see sidePings)
)

// pend is one outstanding sequence number.
type pend struct {
	seq     uint32
	kind    pendKind
	target  string
	sent    time.Time
	expires time.Time
	// side pings only: the target's generation when pinged
	gen uint64
	// relays only
	origSeq  uint32
	src      netip.AddrPort
	wantNack bool
	// nackAt is when a relay sends its nack if the target has not
	// answered by then (zero once sent); the pending entry stays until
	// expires, to pass on an ack that comes later.
	nackAt time.Time
}

// probe is the state of the probe in progress.
type probe struct {
	active    bool
	target    string
	gen       uint64
	seq       uint32 // direct
	seq2      uint32 // indirect
	start     time.Time
	timeoutAt time.Time // direct ping timeout: start indirect probes
	endAt     time.Time // judgement
	indirect  bool      // indirect probes sent
	expected  int       // nacks expected
	nacks     int
	// relays are the members asked to probe the target; nacked marks
	// those whose nack arrived.
	relays    [maxRelays]relay
	tcpAcked  bool
	tcpFailed bool
	// repingedAt is when the target was last pinged again on hearing
	// from a member after a silence.
	repingedAt time.Time
	// repingAt is when a slowed probe pings its target again (see
	// tickProbe).
	repingAt time.Time
}

func (c *Core) nextSeq() uint32 {
	c.seq++
	return c.seq
}

// peerTimeout returns the direct-ping timeout for m, before health scaling:
// ProbeTimeout until there are MinRTTSamples round trips, then adaptive
// (srtt + 4 rttvar) from the peer's own RTTs or, until it has enough, from
// this node's RTTs to everyone (which also makes a slow node wait longer).
// It stays within [ProbeTimeout/5, ProbeInterval].
func (c *Core) peerTimeout(m *member) time.Duration {
	t := c.cfg.ProbeTimeout
	switch {
	case m.rtt.n >= c.cfg.MinRTTSamples:
		t = m.rtt.timeout()
	case c.rtt.n >= c.cfg.MinRTTSamples:
		t = c.rtt.timeout()
	}
	return min(max(t, c.cfg.ProbeTimeout/5), c.cfg.ProbeInterval)
}

func (c *Core) tickProbe(now time.Time) {
	p := &c.probe
	if p.active {
		if !p.indirect && !now.Before(p.timeoutAt) {
			c.probeIndirect(now)
		}
		if p.indirect && !now.Before(p.repingAt) && now.Before(p.endAt) {
			// A probe slowed by poor health waits several intervals for
			// its answer. While other members confirm our suspicions
			// (members failed together, or a partition), the links may
			// come back meanwhile: ping the target again every interval,
			// so that a probe begun during a cut does not accuse a member
			// that answers once it is over.
			p.repingAt = now.Add(c.cfg.ProbeInterval)
			if m := c.members[p.target]; m != nil && m.Gen == p.gen && c.vindicatedRecently() {
				c.sendPing(m, p.seq)
			}
		}
		if !now.Before(p.endAt) || c.probeHopeless() {
			c.probeEnd(now)
		}
	}
	if !p.active && !now.Before(c.nextProbe) {
		c.probeStart(now)
	}
}

// nextTarget returns the next member to probe: a suspect about to be
// judged first, then the next in round-robin order.
func (c *Core) nextTarget() *member {
	if name := c.probeFirst; name != "" {
		c.probeFirst = ""
		if m := c.members[name]; m != nil && m.State == StateSuspect {
			return m
		}
	}
	return c.nextInOrder()
}

// nextInOrder returns the next member alive or suspect in round-robin
// order, reshuffling the order after each full round.
func (c *Core) nextInOrder() *member {
	for range len(c.order) + 1 {
		if c.probeAt >= len(c.order) {
			c.probeAt = 0
			c.shuffle()
		}
		if len(c.order) == 0 {
			return nil
		}
		m := c.order[c.probeAt]
		c.probeAt++
		if m.State == StateAlive || m.State == StateSuspect {
			return m
		}
	}
	return nil
}

func (c *Core) shuffle() {
	c.rng.Shuffle(len(c.order), func(i, j int) {
		c.order[i], c.order[j] = c.order[j], c.order[i]
		c.order[i].probeIdx, c.order[j].probeIdx = i, j
	})
}

func (c *Core) probeStart(now time.Time) {
	m := c.nextTarget()
	if m == nil {
		c.nextProbe = now.Add(c.cfg.ProbeInterval)
		return
	}
	c.stats.ProbesSent++
	t := c.scale(c.peerTimeout(m))
	if c.massFailure() {
		// Many members failed at once and others see it too: the
		// survivors must find every victim, one probe at a time, and
		// their health says nothing about them. Probe at twice the
		// rate (see probeInterval), with unscaled timeouts.
		c.stats.FastProbes++
		t = c.peerTimeout(m)
	}
	period := max(c.probeInterval(), 2*t)
	seq := c.nextSeq()
	c.probe = probe{
		active: true, target: m.Name, gen: m.Gen, seq: seq, start: now,
		timeoutAt: now.Add(t), endAt: now.Add(period),
	}
	c.nextProbe = c.probe.endAt
	c.pending = append(c.pending, pend{seq: seq, kind: pendDirect, target: m.Name, sent: now, expires: now.Add(2 * c.cfg.ProbeInterval * time.Duration(1+c.cfg.HealthMax))})
	c.sendPing(m, seq)
	c.sidePings(now, m, period)
}

// maxSidePings bounds the side pings sent beside one probe.
const maxSidePings = 8

// manySuspects reports whether at least two members are suspect and
// either they are an eighth of the members alive or suspect, or one of
// them is our own accusation: many members may have failed at once (or a
// partition cut the cluster), and other members' accusations are worth
// checking ourselves. Unlike massFailure, it needs no evidence that others
// see the failures too.
func (c *Core) manySuspects() bool {
	n := len(c.suspects)
	if n < 2 {
		return false
	}
	return 8*n >= c.live || slices.ContainsFunc(c.suspects, func(m *member) bool { return m.susp.from[0] == c.self.Name })
}

// sideCheck pings a member that another member just accused, at once,
// while many members are suspect (see manySuspects): if it does not answer
// either, our confirmation shortens its timer and tells its accuser that
// it is not alone, which is what lets the survivors of correlated crashes
// trust themselves and probe fast before their health is spent on probes
// whose relays are dead too.
func (c *Core) sideCheck(now time.Time, m *member) {
	if !c.manySuspects() || c.consecFail >= c.cfg.IsolationProbes || c.leaving ||
		c.sidePinged(m.Name) || c.sideOutstanding() >= 2*maxSidePings+sweepBatch {
		return
	}
	c.sidePing(now, m, max(c.cfg.ProbeInterval/fastProbeDiv, 2*c.peerTimeout(m)))
}

// sidePing sends one side ping to m, judged after period.
func (c *Core) sidePing(now time.Time, m *member, period time.Duration) {
	seq := c.nextSeq()
	c.stats.SidePings++
	c.pending = append(c.pending, pend{seq: seq, kind: pendSide, target: m.Name, gen: m.Gen, sent: now, expires: now.Add(period)})
	c.sendPing(m, seq)
}

// sideOutstanding returns the number of side pings awaiting an answer.
func (c *Core) sideOutstanding() int {
	n := 0
	for _, p := range c.pending {
		if p.kind == pendSide {
			n++
		}
	}
	return n
}

// sidePings pings, beside the probe of target, further members directly
// while many members are suspect at once: first the suspects other members
// accused and we have not, then (only while others confirm our suspicions,
// see massFailure) the next members in probe order; one per four suspects,
// at least one, at most maxSidePings. The survivors of correlated crashes
// must each accuse every victim for the suspicions to reach their shortest
// timeout, and one probe at a time, 98 victims took two survivors minutes;
// confirming each other's first accusations is also what lets them trust
// themselves (and probe fast) before their health is spent on dead relays.
func (c *Core) sidePings(now time.Time, target *member, period time.Duration) {
	if c.leaving {
		return
	}
	n := min(maxSidePings, max(1, len(c.suspects)/4))
	ping := func(m *member) {
		c.sidePing(now, m, period)
		n--
	}
	if c.manySuspects() && c.consecFail < c.cfg.IsolationProbes {
		for _, m := range c.suspects {
			if n == 0 {
				return
			}
			if m != target && !c.accusedBy(m) && !c.sidePinged(m.Name) {
				ping(m)
			}
		}
	}
	if !c.massFailure() {
		return
	}
	for range len(c.order) {
		if n == 0 {
			return
		}
		m := c.nextInOrder()
		if m == nil || m == target {
			return
		}
		if !c.accusedBy(m) && !c.sidePinged(m.Name) {
			ping(m)
		}
	}
}

// Discovery sweep bounds: sweepBatch members pinged every
// ProbeInterval/fastProbeDiv, at most maxSweep members per sweep.
const (
	sweepBatch = 2 * maxSidePings
	maxSweep   = 256
)

// startSweep starts a discovery sweep, unless one is in progress: a probe
// of target got no answer, not even a nack from its relays, so this node
// is either cut off or one of few survivors of many members failing at
// once. The sweep pings every member alive or suspect in probe order
// (at most maxSweep), sweepBatch at a time every ProbeInterval/fastProbeDiv,
// whatever this node's health, until one answers (see handleAck). The
// answer tells both sides that they are not alone: the node sends its
// accusations to the member that answered, which checks them (see
// sideCheck), and the member that was pinged sends back its own (see
// handlePing). The survivors of 98 crashes of 100 found each other one
// probe at a time, with probes slowed by the health their dead relays
// cost: up to a minute. A node that is cut off pings into the void and
// accuses no one: the sweep's pings raise suspicions only while others
// confirm this node's (see sideExpired).
func (c *Core) startSweep(now time.Time, target *member) {
	if c.sweepLeft > 0 || c.leaving {
		return
	}
	c.sweepLeft = min(c.live, maxSweep)
	c.nextSweep = now
	c.stats.Sweeps++
	c.sweep(now, target)
}

// tickSweep pings the sweep's next batch when it is due.
func (c *Core) tickSweep(now time.Time) {
	if c.sweepLeft > 0 && !now.Before(c.nextSweep) {
		var target *member
		if c.probe.active {
			target = c.members[c.probe.target]
		}
		c.sweep(now, target)
	}
}

// sweep pings the next sweepBatch members in probe order but target.
func (c *Core) sweep(now time.Time, target *member) {
	period := c.cfg.ProbeInterval / fastProbeDiv
	c.nextSweep = now.Add(period)
	for n := 0; n < sweepBatch && c.sweepLeft > 0; {
		c.sweepLeft--
		m := c.nextInOrder()
		if m == nil {
			c.sweepLeft = 0
			return
		}
		if m != target && !c.accusedBy(m) && !c.sidePinged(m.Name) {
			c.sidePing(now, m, period)
			n++
		}
	}
}

// accusedBy reports whether this node has accused suspect m itself.
func (c *Core) accusedBy(m *member) bool {
	return m.susp != nil && slices.Contains(m.susp.from, c.self.Name)
}

// sidePinged reports whether a side ping to name is outstanding.
func (c *Core) sidePinged(name string) bool {
	return slices.ContainsFunc(c.pending, func(p pend) bool { return p.kind == pendSide && p.target == name })
}

// sideExpired judges a side ping that got no ack, unless its target was
// heard from since: a suspect another member accused gets our
// confirmation (an independent observer that cannot reach it either),
// while many members are suspect; an alive member becomes suspect, as
// after a failed probe but without indirect probes and at no cost to our
// health, only while others confirm our suspicions (massFailure).
// Lifeguard's guarantees hold: these are suspicions and confirmations, not
// verdicts; the suspect is told (by the buddy system and gossip) and can
// refute, and its timer shortens only with independent confirmations.
func (c *Core) sideExpired(now time.Time, p pend) {
	m := c.members[p.target]
	if m == nil || m.Gen != p.gen || m.lastHeard.After(p.sent) || c.leaving {
		return
	}
	switch {
	case m.State == StateSuspect && !c.accusedBy(m) && c.manySuspects():
	case m.State == StateAlive && c.massFailure():
		c.stats.SuspicionsRaised++
	default:
		return
	}
	c.stats.SideSuspicions++
	accuser := ""
	if m.susp != nil {
		accuser = m.susp.from[0]
	}
	s := wire.Suspect{Name: m.Name, Gen: m.Gen, Incarnation: m.Incarnation, From: c.self.Name}
	c.applySuspect(now, s)
	if a := c.members[accuser]; a != nil && a != c.self && a.State == StateAlive {
		// Tell the accuser at once: gossip goes to random members, and
		// when most have failed it rarely reaches the few still up.
		c.send(a.Addr, &s, nil)
	} else if v := c.members[c.vindicator]; v != nil && v != c.self && v.State == StateAlive {
		// A new suspicion: tell the member that confirmed our last one,
		// which is up and sees the failures we see, so that it checks.
		c.send(v.Addr, &s, nil)
	}
}

// shareAccusations sends m, a member that answered a side ping while our
// probes find no one else, the suspicions we raised that no one confirmed
// yet, with the news queued for gossip: m checks them (see sideCheck), and
// its confirmations tell us that we are not alone.
func (c *Core) shareAccusations(m *member) {
	var msgs [2]wire.Message
	n := 0
	for _, s := range c.suspects {
		if n == len(msgs) {
			break
		}
		if s.susp.from[0] == c.self.Name && s.susp.confirmations() == 0 {
			msgs[n] = &wire.Suspect{Name: s.Name, Gen: s.Gen, Incarnation: s.Incarnation, From: c.self.Name}
			n++
		}
	}
	if n > 0 {
		c.send(m.Addr, msgs[0], msgs[1])
	}
}

func (c *Core) sendPing(m *member, seq uint32) {
	ping := &wire.Ping{Seq: seq, Target: m.Name, SourceName: c.self.Name, SourceAddr: c.self.Addr}
	if m.State == StateSuspect {
		// Buddy system: tell the suspect first, so it can refute at once.
		// Other news is not piggybacked: a suspect is often dead, and each
		// copy sent counts against the news's retransmit limit.
		buddy := &wire.Suspect{Name: m.Name, Gen: m.Gen, Incarnation: m.Incarnation, From: c.self.Name}
		c.sendFill(m.Addr, ping, buddy, false)
		return
	}
	c.send(m.Addr, ping, nil)
}

// vindicate notes that another member confirmed one of our suspicions at
// now. If that ends a time without such confirmations, the probe in
// progress, slowed by a health that came from failures others see too,
// is brought back to the unslowed schedule (see probeInterval): the
// survivors of correlated crashes otherwise waited out several seconds of
// a probe begun before they knew.
func (c *Core) vindicate(now time.Time, by string) {
	was := c.vindicatedRecently()
	c.vindicated = now
	c.vindicator = by
	p := &c.probe
	if was || !p.active {
		return
	}
	m := c.members[p.target]
	if m == nil || m.Gen != p.gen {
		return
	}
	t := c.peerTimeout(m)
	if !p.indirect && p.timeoutAt.After(p.start.Add(t)) {
		p.timeoutAt = later(p.start.Add(t), now)
	}
	if end := p.start.Add(max(c.probeInterval(), 2*t)); end.Before(p.endAt) {
		p.endAt = later(end, now.Add(t))
		c.nextProbe = p.endAt
	}
}

// later returns the later of a and b.
func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// probeInterval returns the time from the start of one probe to the start
// of the next: ProbeInterval scaled by the local health, but not while
// other members confirm our suspicions (our health then comes from failures
// elsewhere, not from our own slowness, and slowing down would only delay
// finding them), and divided by fastProbeDiv while many members fail at
// once.
func (c *Core) probeInterval() time.Duration {
	switch {
	case c.massFailure():
		return c.cfg.ProbeInterval / fastProbeDiv
	case c.vindicatedRecently():
		return c.cfg.ProbeInterval
	}
	return c.scale(c.cfg.ProbeInterval)
}

// fastProbeDiv divides the probe interval while many members fail at once
// (see massFailure).
const fastProbeDiv = 2

// massFailure reports whether many members have failed at once, as others
// see too: at least two suspects, the suspects and the relays that failed to
// answer our probes (blamed) together at least an eighth of the members
// alive or suspect, and another member confirmed one of our suspicions (or a
// relay could not reach our target either) recently. A single bad member,
// or loss, does not qualify; the survivors of correlated crashes, and the
// sides of a partition, do. The silent relays count because at N = 100 with
// 98 crashed, the survivors vindicate each other with a handful of suspects
// each, long before they suspect an eighth of the cluster.
func (c *Core) massFailure() bool {
	n := len(c.suspects)
	return n >= 2 && 8*(n+len(c.blamed)) >= c.live && c.vindicatedRecently()
}

// probeHopeless reports whether the probe in progress can no longer
// succeed before its deadline but through a late direct ack: every relay
// nacked and the TCP ping failed.
func (c *Core) probeHopeless() bool {
	p := &c.probe
	return p.indirect && p.expected > 0 && p.nacks >= p.expected && (p.tcpFailed || c.cfg.DisableTCPFallback)
}

// probeIndirect pings the target once more, asks k members to probe it and
// starts a TCP ping in parallel.
func (c *Core) probeIndirect(now time.Time) {
	p := &c.probe
	p.indirect = true
	p.repingAt = now.Add(c.cfg.ProbeInterval)
	m := c.members[p.target]
	if m == nil || m.Gen != p.gen {
		return
	}
	// A second direct ping: one lost packet should not cost a suspicion.
	c.sendPing(m, p.seq)
	p.seq2 = c.nextSeq()
	c.pending = append(c.pending, pend{seq: p.seq2, kind: pendIndirect, target: m.Name, sent: now, expires: p.endAt})
	relays := c.pickRelays(m)
	for i, r := range relays {
		p.relays[i] = relay{name: r.Name, addr: r.Addr}
		c.stats.IndirectSent++
		c.send(r.Addr, &wire.IndirectPing{Seq: p.seq2, Target: m.Name, TargetAddr: m.Addr, WantNack: true, SourceName: c.self.Name, SourceAddr: c.self.Addr}, nil)
	}
	p.expected = len(relays)
	if !c.cfg.DisableTCPFallback {
		c.startTCPPing(now, m, p.seq2, p.endAt)
	}
}

// pickRelays returns up to IndirectChecks alive members other than target
// to ask for indirect probes, preferring those heard from most recently
// among a random sample: when several members have just failed, relays
// picked blindly are often dead, and their missing nacks would count
// against our own health.
func (c *Core) pickRelays(target *member) []*member {
	k := c.cfg.IndirectChecks
	var buf [4 * maxRelays]*member
	cand := c.randomMembers(buf[:0], min(4*k, len(buf)), target.Name, func(r *member) bool { return r.State == StateAlive })
	slices.SortStableFunc(cand, func(a, b *member) int {
		// Relays that failed to answer for an earlier probe last: they
		// may be among the members that failed.
		if d := c.blamed[a.Name] - c.blamed[b.Name]; d != 0 {
			return d
		}
		return b.lastHeard.Compare(a.lastHeard)
	})
	return cand[:min(k, len(cand))]
}

// probeEnd judges a probe that got no UDP ack by its deadline.
func (c *Core) probeEnd(now time.Time) {
	p := c.probe
	c.probe = probe{}
	if j := c.findPending(p.seq2); p.seq2 != 0 && j >= 0 {
		c.dropPending(j) // relayed acks come too late now
	}
	m := c.members[p.target]
	if m == nil || m.Gen != p.gen {
		return
	}
	if p.tcpAcked {
		c.probeOK(m, true)
		return
	}
	c.stats.ProbesFailed++
	missed := 1
	if p.expected > 0 {
		missed = p.expected - p.nacks
		c.blameRelays(&p, missed)
	}
	if p.nacks > 0 {
		// Some relays answered that they cannot reach the target either:
		// the target is the likelier failure, and if its own silence as a
		// relay was charged to us, that is given back.
		c.absolve(m.Name)
	} else if !c.silenceOpen {
		c.silenceOpen = true
		c.silentHealth, c.silentTrusted, c.silenceHeard, c.silenceTotal = c.health, !c.unhealthy, time.Time{}, false
	}
	if !c.vindicatedRecently() {
		// While other members confirm our suspicions, several members
		// have failed (or are cut off) at once, and silent relays are
		// more likely among them than a sign of our own slowness.
		c.addHealth(missed)
	}
	if p.nacks == 0 {
		// Not even a nack came back: nothing shows that our own packets
		// get through.
		c.consecFail++
		// If it had relays, they are silent too: either this node is cut
		// off or many members failed at once. It sweeps the membership
		// for members still up (see startSweep).
		if p.expected > 0 {
			c.startSweep(now, m)
		}
	}
	if m.State == StateAlive {
		c.stats.SuspicionsRaised++
	}
	// An accusation of a member already suspect is an independent
	// confirmation that shortens its timer.
	c.applySuspect(now, wire.Suspect{Name: m.Name, Gen: m.Gen, Incarnation: m.Incarnation, From: c.self.Name})
	if p.nacks >= p.expected && (p.expected >= 2 || p.expected == 1 && c.massFailure()) && m.susp != nil {
		// Every relay answered that it cannot reach the target either:
		// independent witnesses, as good as confirmations (a healthy
		// target behind ordinary loss rarely misses all of them). When
		// many members fail at once, waiting for other members' own
		// probes to confirm each suspicion is what made the survivors
		// declare them dead one at a time.
		for _, r := range p.relays[:p.expected] {
			m.susp.confirm(r.name)
		}
	}
}

// probeOK records a successful probe of m. An answer over TCP only proves
// m is up, not that our UDP works: it changes neither our health nor the
// count of failed probes behind the self-isolation guard.
func (c *Core) probeOK(m *member, tcpOnly bool) {
	m.TCPOnly = tcpOnly
	if tcpOnly {
		c.stats.TCPOnlyProbes++
		return
	}
	c.addHealth(-1)
	c.answered()
}

// answered notes an ack or nack for one of our probes: our packets get
// through. After a silence long enough to isolate us, the health that the
// silence cost is given back at once: a link that was down (a cut, a
// partition) and is back says nothing about how slow we are, and earning
// it back one probe at a time, at the slowed probe rate, kept a node that
// had been cut off from defending itself for tens of seconds after the
// heal.
//
// Only a silence that began while the node trusted itself, and during which
// nothing at all arrived until it had isolated the node (see wasCut),
// counts: a node on a lossy link has long silences too, but hears from
// others now and then during them; giving it back its health would let it
// defend itself again and flap.
func (c *Core) answered() {
	if c.silenceOpen && c.silentTrusted && c.health > c.silentHealth && c.wasCut() {
		c.stats.HealthAbsolved += uint64(c.health - c.silentHealth)
		c.health = c.silentHealth
	}
	c.consecFail = 0
	c.silenceOpen = false
}

// wasCut reports whether the run of unanswered probes that an answer ends
// looks like a link that was down and is back: nothing at all arrived
// until the silence had made this node distrust itself, and the answer
// came within IsolationProbes probe intervals of the first packet or
// stream heard since (the first datagrams after a heal are often lost: a
// neighbour entry that failed during the cut drops them until it is
// resolved again); or the silence lasted IsolationProbes probes and the
// answer came just after the first thing heard.
func (c *Core) wasCut() bool {
	heardFor := c.lastInput.Sub(c.silenceHeard)
	if c.silenceTotal {
		return heardFor <= time.Duration(c.cfg.IsolationProbes)*c.cfg.ProbeInterval
	}
	return c.consecFail >= c.cfg.IsolationProbes && (c.silenceHeard.IsZero() || heardFor <= 2*c.cfg.ProbeInterval)
}

// heard notes a packet or stream from another member while this node
// hears no answers to its probes: the link may be back, so the probe in
// progress pings its target again instead of waiting out its slowed
// deadline (or a new probe starts now). It pings again on every packet
// heard, at most once per ProbeTimeout: the first pings after a heal are
// often lost, and one lost ping must not leave the node waiting.
func (c *Core) heard(now time.Time) {
	if c.silenceOpen && c.silenceHeard.IsZero() {
		c.silenceHeard = now
		c.silenceTotal = c.consecFail >= c.cfg.IsolationProbes || c.unhealthy
	}
	c.startCheck(now)
	if c.consecFail < c.cfg.IsolationProbes && !(c.silenceOpen && c.silenceTotal) || c.leaving {
		return
	}
	p := &c.probe
	if !p.active {
		if c.nextProbe.After(now) {
			c.nextProbe = now
		}
		return
	}
	if !p.repingedAt.IsZero() && now.Sub(p.repingedAt) < c.cfg.ProbeTimeout {
		return
	}
	p.repingedAt = now
	if m := c.members[p.target]; m != nil && m.Gen == p.gen {
		c.sendPing(m, p.seq)
	}
}

func (c *Core) handlePing(now time.Time, from netip.AddrPort, p *wire.Ping) {
	if p.Target != "" && p.Target != c.self.Name {
		c.stats.WrongTarget++
		return
	}
	to := p.SourceAddr
	if !to.IsValid() {
		to = from
	}
	var extra wire.Message
	m := c.members[p.SourceName]
	if m != nil && m != c.self {
		m.lastHeard = now
		if m.State == StateSuspect {
			// A member we suspect pings us: tell it, so that it can
			// refute at once (its accusation may have been gossiped to
			// its end long ago, while it could not hear it).
			extra = &wire.Suspect{Name: m.Name, Gen: m.Gen, Incarnation: m.Incarnation, From: c.self.Name}
		}
	}
	c.send(to, &wire.Ack{Seq: p.Seq}, extra)
	if m != nil && m != c.self && m.State == StateAlive && c.silenceOpen && !c.leaving {
		// Our probes get no answer at all, and here is a member that is
		// up: tell it whom we accuse, so that it checks (a survivor of
		// many crashes that finds another one this way tells it too,
		// and each learns it is not alone).
		c.shareAccusations(m)
	}
}

func (c *Core) handleIndirect(now time.Time, from netip.AddrPort, ip *wire.IndirectPing) {
	src := ip.SourceAddr
	if !src.IsValid() {
		src = from
	}
	if !ip.TargetAddr.IsValid() || len(c.pending) >= 256 {
		return
	}
	if m := c.members[ip.SourceName]; m != nil && m != c.self {
		m.lastHeard = now
	}
	seq := c.nextSeq()
	timeout := c.cfg.ProbeTimeout
	if m := c.members[ip.Target]; m != nil {
		timeout = c.peerTimeout(m)
	}
	pd := pend{
		seq: seq, kind: pendRelay, target: ip.Target, sent: now,
		expires: now.Add(c.scale(timeout)), origSeq: ip.Seq, src: src, wantNack: ip.WantNack,
	}
	if ip.WantNack {
		pd.nackAt = now.Add(relayNackAfter(timeout))
	}
	c.pending = append(c.pending, pd)
	c.send(ip.TargetAddr, &wire.Ping{Seq: seq, Target: ip.Target, SourceName: c.self.Name, SourceAddr: c.self.Addr}, nil)
}

func (c *Core) findPending(seq uint32) int {
	for i := range c.pending {
		if c.pending[i].seq == seq {
			return i
		}
	}
	return -1
}

func (c *Core) dropPending(i int) {
	c.pending = append(c.pending[:i], c.pending[i+1:]...)
}

func (c *Core) handleAck(now time.Time, a *wire.Ack) {
	i := c.findPending(a.Seq)
	if i < 0 {
		return
	}
	pd := c.pending[i]
	c.dropPending(i)
	switch pd.kind {
	case pendRelay:
		c.send(pd.src, &wire.Ack{Seq: pd.origSeq}, nil)
		return
	case pendCheck:
		if m := c.members[pd.target]; m != nil {
			m.lastHeard = now
		}
		c.checkAcked()
		return
	case pendSide, pendDirect:
		rtt := now.Sub(pd.sent)
		c.rtt.add(rtt)
		m := c.members[pd.target]
		if m != nil {
			m.rtt.add(rtt)
			m.lastHeard = now
		}
		if pd.kind == pendSide {
			// A side ping is no part of the probe: it only finds a
			// member that answers and tells it what this node accuses.
			// A sweep has found a member still up: it ends.
			c.sweepLeft = 0
			if m != nil {
				c.shareAccusations(m)
			}
			return
		}
	}
	p := c.probe
	if p.active && (a.Seq == p.seq || a.Seq == p.seq2) {
		if m := c.members[p.target]; m != nil && m.Gen == p.gen {
			c.probeOK(m, false)
			if m.susp != nil && m.susp.verifying {
				// It answers: give its refutation time to arrive.
				m.susp.verifying = false
				m.susp.restart(now)
			}
		}
		if p.seq2 != 0 && a.Seq == p.seq {
			if j := c.findPending(p.seq2); j >= 0 {
				c.dropPending(j)
			}
		}
		c.probe = probe{}
		c.nextProbe = p.start.Add(c.probeInterval())

		if c.nextProbe.Before(now) {
			c.nextProbe = now
		}
	}
}

// handleNack counts a relay's nack for the probe in progress. A nack shows
// that our packets reach the relay and its answers reach us.
func (c *Core) handleNack(from netip.AddrPort, n *wire.Nack) {
	p := &c.probe
	if !p.active || p.seq2 != n.Seq || p.nacks >= p.expected {
		return
	}
	p.nacks++
	c.answered()
	// The relay cannot reach the target either: another member sees the
	// failure we see.
	by := ""
	for i := range p.relays[:p.expected] {
		if r := &p.relays[i]; !r.nacked && r.addr == from {
			r.nacked = true
			by = r.name
			if m := c.members[r.name]; m != nil {
				m.lastHeard = c.lastInput
			}
			break
		}
	}
	c.vindicate(c.lastInput, by)
}

// blameRelays notes the relays of a failed probe that did not nack (up to
// missed of them): the health they cost is given back if they turn out to
// have failed themselves (see absolve).
func (c *Core) blameRelays(p *probe, missed int) {
	for i := range p.relays[:p.expected] {
		if missed <= 0 {
			return
		}
		if r := p.relays[i]; !r.nacked {
			missed--
			if len(c.blamed) >= 4*maxRelays {
				c.expireBlame()
			}
			if len(c.blamed) < 4*maxRelays {
				c.blamed[r.name]++
			}
		}
	}
}

// absolve gives back the health that missing nacks from m cost: m was
// suspected by another member or declared dead, so its silence as a relay
// says nothing about us. With several members failing at once, most
// relays picked before the failures are known are dead, and without this
// the survivors' health would climb until they distrusted themselves.
func (c *Core) absolve(name string) {
	if n := c.blamed[name]; n > 0 {
		delete(c.blamed, name)
		c.addHealth(-n)
		c.stats.HealthAbsolved += uint64(n)
	}
}

// expireBlame forgets the blamed relays, a bound on memory: a relay still
// blamed after many probes is alive and simply did not answer.
func (c *Core) expireBlame() { clear(c.blamed) }

// relayNackAfter returns how long a relay waits for the target's ack
// before it sends its nack, given its unscaled timeout for the target:
// four fifths of it, as Lifeguard has it. The requester waits for nacks
// at least its own timeout after it asked (a probe's period is at least
// twice its direct timeout), so the nack arrives in time. A relay that
// waited its own timeout scaled by its health sent nacks that came after
// the requester's probe had ended: counted as silence, they raised the
// requester's health and hid that another member saw the same failure,
// which is what slowed the survivors of correlated crashes on real
// processes (the relay keeps passing on an ack that comes later).
func relayNackAfter(timeout time.Duration) time.Duration { return timeout * 4 / 5 }

// expirePending drops outstanding sequence numbers past their time; a relay
// whose target did not answer in time sends its nack.
func (c *Core) expirePending(now time.Time) {
	j := 0
	for _, p := range c.pending {
		if p.kind == pendRelay && p.wantNack && !p.nackAt.IsZero() && (!now.Before(p.nackAt) || !now.Before(p.expires)) {
			c.send(p.src, &wire.Nack{Seq: p.origSeq}, nil)
			p.nackAt = time.Time{}
		}
		if now.Before(p.expires) {
			c.pending[j] = p
			j++
			continue
		}
		if p.kind == pendCheck {
			c.checkExpired()
		}
		if p.kind == pendSide {
			c.sideExpired(now, p)
		}
	}
	clear(c.pending[j:])
	c.pending = c.pending[:j]
}

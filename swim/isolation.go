package swim

import "time"

// This file holds the guards that make a node distrust itself: pause
// detection and the self-isolation guard.

// observe notes an input at now and detects a pause of this process: a gap
// above PauseThreshold means the timers that ran out meanwhile prove nothing
// about the peers.
func (c *Core) observe(now time.Time) {
	gap := now.Sub(c.lastInput)
	if gap > 0 {
		c.lastInput = now
	}
	if gap <= c.cfg.PauseThreshold {
		return
	}
	c.stats.Pauses++
	c.probe = probe{}
	c.pending = c.pending[:0]
	c.nextProbe = now.Add(time.Duration(c.rng.Int64N(int64(c.cfg.ProbeInterval))))
	c.nextGossip = now
	c.consecFail = 0
	for _, m := range c.suspects {
		m.susp.restart(now)
	}
	// Others may have suspected or killed us while we were away: say we are
	// alive before they hear otherwise.
	if !c.leaving && c.live > 0 {
		c.self.Incarnation++
		c.broadcastRefutation()
		c.stats.Refutations++
	}
}

// Reasons a node distrusts itself, reported in EventIsolated.
const (
	ReasonHealth  = "poor health"       // the local health multiplier is near its maximum
	ReasonSilence = "no answers"        // recent probes got neither acks nor nacks
	ReasonAlone   = "suspects alone"    // it suspects a large share of the cluster and no one confirms
	ReasonRefutes = "refuted too often" // the cluster keeps failing to reach it
	reasonNone    = ""
)

// isolation returns why this node should assume it is itself the problem,
// or "" if it should not: its health is poor, its recent probes got no
// answer at all (neither ack nor nack), or it suspects a large share of the
// cluster on its own. An isolated node issues no death verdicts, does not
// refute accusations (so that a broken node is removed once rather than
// flapping) and re-contacts its seeds.
//
// Answers and confirmations from other members count against isolation: a
// nack resets the silence count (the relay got our request and we got its
// answer), a suspicion another member confirms is not counted as ours
// alone, and for a while after another member confirmed one of our
// suspicions the share rule does not apply at all. So members that still
// reach each other when many others fail at once keep their verdicts.
func (c *Core) isolation() string {
	if c.vindicatedRecently() {
		// Others see the failures we see: we are on the healthy side of
		// them (or on one side of a partition, with members to talk to).
		return reasonNone
	}
	if !c.cfg.DisableHealth && c.cfg.HealthMax > 0 && 4*c.health >= 3*c.cfg.HealthMax {
		return ReasonHealth
	}
	if c.consecFail >= c.cfg.IsolationProbes {
		return ReasonSilence
	}
	own := 0
	for _, m := range c.suspects {
		if m.susp.from[0] == c.self.Name && m.susp.confirmations() == 0 {
			own++
		}
	}
	if own >= 3 && 3*own >= c.live {
		return ReasonAlone
	}
	return reasonNone
}

// vindicatedRecently reports whether another member confirmed one of our
// suspicions within the maximum suspicion timeout.
func (c *Core) vindicatedRecently() bool {
	_, hi := c.cfg.suspicionBounds(c.live + 1)
	return !c.vindicated.IsZero() && c.lastInput.Sub(c.vindicated) < hi
}

// isolated reports whether this node withholds its death verdicts; see
// isolation.
func (c *Core) isolated() bool { return c.isolation() != reasonNone }

// maxRefutes refutations within refuteWindow probe intervals mean the
// cluster keeps failing to reach this node: it is the problem, and stops
// defending itself so that it is removed once rather than flapping.
const (
	maxRefutes   = 3
	refuteWindow = 20
)

// defending reports whether this node defends its membership: refutes
// accusations and advertises itself in push-pull. It stops when it is
// isolated or had to refute too often, and resumes only once it is not
// isolated, its last probe was answered, and either it is fully healthy
// again (health 0) or another member has confirmed one of its suspicions
// since it stopped (its poor health then came from failures others see
// too: a partition, or many members failing at once). So a node on a bad
// link, whose suspicions no one confirms, is removed once instead of
// flapping in and out with its health.
//
// Each change is reported as an event about this node (EventIsolated with
// the reason, EventRecovered) and counted in Stats.IsolationChanges. On
// resuming, a node that withheld refutations meanwhile refutes once, at
// once: the accusations it ignored may still stand, and no one may repeat
// them (after a partition heals, the other side holds it dead and neither
// probes nor gossips to it).
func (c *Core) defending() bool {
	reason := c.isolation()
	if reason == reasonNone && c.refutedTooOften() {
		reason = ReasonRefutes
	}
	switch {
	case reason != reasonNone && !c.unhealthy:
		c.unhealthy = true
		c.distrustSince = c.lastInput
		c.stats.IsolationChanges++
		c.out.Events = append(c.out.Events, Event{Kind: EventIsolated, At: c.lastInput, Member: c.self.Member, Reason: reason})
	case reason == reasonNone && c.unhealthy && c.consecFail == 0 && (c.health == 0 || c.vindicated.After(c.distrustSince)):
		c.unhealthy = false
		c.stats.IsolationChanges++
		c.out.Events = append(c.out.Events, Event{Kind: EventRecovered, At: c.lastInput, Member: c.self.Member})
		if c.withheld && !c.leaving {
			c.withheld = false
			c.refute(c.self.Incarnation)
		}
	}
	return !c.unhealthy
}

func (c *Core) refutedTooOften() bool {
	n := 0
	for _, t := range c.refutes {
		if !t.IsZero() && c.lastInput.Sub(t) < refuteWindow*c.cfg.ProbeInterval {
			n++
		}
	}
	return n >= maxRefutes
}

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

// isolated reports whether this node should assume it is itself the
// problem: its health is poor, its recent probes all failed without the
// nacks that would blame the targets, or it suspects a large share of the
// cluster on its own. An isolated node issues no death verdicts, does not
// refute accusations (so that a broken node is removed once rather than
// flapping) and re-contacts its seeds.
func (c *Core) isolated() bool {
	if !c.cfg.DisableHealth && c.cfg.HealthMax > 0 && 4*c.health >= 3*c.cfg.HealthMax {
		return true
	}
	if c.consecFail >= c.cfg.IsolationProbes {
		return true
	}
	own := 0
	for _, m := range c.suspects {
		if m.susp.from[0] == c.self.Name {
			own++
		}
	}
	return own >= 3 && 3*own >= c.live
}

// maxRefutes refutations within refuteWindow probe intervals mean the
// cluster keeps failing to reach this node: it is the problem, and stops
// defending itself so that it is removed once rather than flapping.
const (
	maxRefutes   = 3
	refuteWindow = 20
)

// defending reports whether this node defends its membership: refutes
// accusations and advertises itself in push-pull. It stops when it is
// isolated or had to refute too often, and resumes only once fully healthy
// again (health 0, last probe answered), so that a node on a bad link is
// removed once instead of flapping in and out with its health.
func (c *Core) defending() bool {
	switch {
	case c.isolated() || c.refutedTooOften():
		c.unhealthy = true
	case c.health == 0 && c.consecFail == 0:
		c.unhealthy = false
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

package swim

import (
	"time"

	"github.com/meshnode/meshnode/wire"
)

// This file holds the link check: how a node that distrusts itself finds
// out at once that its links work again (a partition healed, a cut ended)
// instead of earning its health back one slowed probe at a time.

// Link check bounds: checkPeers members are pinged at once (at least
// minCheckPeers, or there is no check), every one of them must answer
// directly within the check's deadline, and checks start at most once per
// probe interval.
const (
	checkPeers    = 6
	minCheckPeers = 4
)

// linkCheck is the link check in progress.
type linkCheck struct {
	active  bool
	seqs    [checkPeers]uint32
	n       int // pings sent
	acked   int // acks received
	started time.Time
}

// startCheck pings checkPeers random members (alive or suspect) at once
// while this node distrusts itself and hears from another member. If every
// one of them answers directly, the node's links work: the health its
// failed probes cost is given back, so that it resumes defending itself
// (and refutes the accusations it withheld) within a round trip, instead
// of tens of seconds of slowed probes after a partition heals.
//
// A node on a lossy link does not pass: at 80% loss each way, a round trip
// succeeds 4% of the time, four at once about 3 times in a million and six
// 4 times in a billion; such a node stays removed once instead of
// flapping. Six where the cluster has them: a lossy node hears from others
// now and then and checks once per probe interval, some 200 times in a bad
// spell of minutes, and over 400 simulated spells with four, one check
// passed and the node was removed twice. A node whose probes fail because
// the members it probes have crashed does not pass either.
func (c *Core) startCheck(now time.Time) {
	if !c.unhealthy || c.health == 0 || c.check.active || c.leaving ||
		(!c.check.started.IsZero() && now.Sub(c.check.started) < c.cfg.ProbeInterval) {
		return
	}
	var buf [checkPeers]*member
	ms := c.randomMembers(buf[:0], checkPeers, "", func(m *member) bool {
		return m.State == StateAlive || m.State == StateSuspect
	})
	if len(ms) < minCheckPeers {
		return // too few members to tell a working link from luck
	}
	c.check = linkCheck{active: true, started: now, n: len(ms)}
	c.stats.LinkChecks++
	for i, m := range ms {
		seq := c.nextSeq()
		c.check.seqs[i] = seq
		c.pending = append(c.pending, pend{seq: seq, kind: pendCheck, target: m.Name, sent: now, expires: now.Add(c.cfg.ProbeTimeout)})
		c.sendPing(m, seq) // a suspect is told of its accusation
	}
}

// checkAcked counts an ack for the link check; when every member pinged
// has answered, the check passes.
func (c *Core) checkAcked() {
	if !c.check.active {
		return
	}
	c.check.acked++
	if c.check.acked < c.check.n {
		return
	}
	c.check.active = false
	c.stats.LinkChecksPassed++
	c.stats.HealthAbsolved += uint64(c.health)
	c.health = 0
	c.consecFail = 0
	// The suspicions raised while the links were down prove little now
	// that they work: each suspect gets a full timeout again, and its
	// accusation is gossiped afresh (its earlier copies went to members
	// that could not hear them), so that a live suspect refutes instead
	// of being declared dead right after a heal.
	for _, m := range c.suspects {
		m.susp.verifying = false
		m.susp.restart(c.lastInput)
		c.enqueue(m.Name, &wire.Suspect{Name: m.Name, Gen: m.Gen, Incarnation: m.Incarnation, From: c.self.Name}, prioSuspect)
	}
	c.defending() // resume now: the refutations withheld go out with this input
}

// checkExpired ends a link check whose deadline passed without every
// answer.
func (c *Core) checkExpired() { c.check.active = false }

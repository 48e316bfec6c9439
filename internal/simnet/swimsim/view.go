package swimsim

import (
	"time"

	"github.com/meshnode/meshnode/swim"
)

// Running reports whether node i is up (not crashed).
func (c *Cluster) Running(i int) bool { return c.Net.Up(i) }

// SeesAlive reports whether observer obs sees node i alive (or suspect) in
// its current generation.
func (c *Cluster) SeesAlive(obs, i int) bool {
	m, ok := c.Nodes[obs].Core.Member(c.Nodes[i].Name)
	return ok && m.Gen == c.Nodes[i].Gen && (m.State == swim.StateAlive || m.State == swim.StateSuspect)
}

// Converged reports whether every running node of set sees every other
// running node of set as a member (alive or suspect) in its current
// generation.
func (c *Cluster) Converged(set []int) bool {
	running := 0
	for _, i := range set {
		if c.Running(i) {
			running++
		}
	}
	// Cheap first: an observer that counts fewer live members cannot see
	// them all.
	for _, obs := range set {
		if c.Running(obs) && c.Nodes[obs].Core.NumAlive() < running {
			return false
		}
	}
	for _, obs := range set {
		if !c.Running(obs) {
			continue
		}
		for _, i := range set {
			if i != obs && c.Running(i) && !c.SeesAlive(obs, i) {
				return false
			}
		}
	}
	return true
}

// All returns the IDs 0..n-1.
func (c *Cluster) All() []int {
	ids := make([]int, len(c.Nodes))
	for i := range ids {
		ids[i] = i
	}
	return ids
}

// StaleDead counts, over running observers, the entries that show a
// running node dead or left, or hold an older generation of it in any
// state.
func (c *Cluster) StaleDead() int {
	n := 0
	for obs := range c.Nodes {
		if !c.Running(obs) {
			continue
		}
		for i := range c.Nodes {
			if i == obs || !c.Running(i) {
				continue
			}
			m, ok := c.Nodes[obs].Core.Member(c.Nodes[i].Name)
			if ok && (m.Gen != c.Nodes[i].Gen || m.State == swim.StateDead || m.State == swim.StateLeft) {
				n++
			}
		}
	}
	return n
}

// SumStats adds up the cores' counters over the given nodes.
func (c *Cluster) SumStats(ids []int) swim.Stats {
	var s swim.Stats
	for _, i := range ids {
		t := c.Nodes[i].Core.Stats()
		s.ProbesSent += t.ProbesSent
		s.ProbesFailed += t.ProbesFailed
		s.TCPOnlyProbes += t.TCPOnlyProbes
		s.IndirectSent += t.IndirectSent
		s.SuspicionsRaised += t.SuspicionsRaised
		s.DeathVerdicts += t.DeathVerdicts
		s.VerdictsWithheld += t.VerdictsWithheld
		s.Refutations += t.Refutations
		s.RefutesWithheld += t.RefutesWithheld
		s.Pauses += t.Pauses
		s.BroadcastsDropped += t.BroadcastsDropped
		s.MembersDropped += t.MembersDropped
		s.WrongTarget += t.WrongTarget
		s.StreamsDropped += t.StreamsDropped
		s.Reaped += t.Reaped
		s.HealthAbsolved += t.HealthAbsolved
		s.IsolationChanges += t.IsolationChanges
		s.LinkChecks += t.LinkChecks
		s.LinkChecksPassed += t.LinkChecksPassed
		s.FastProbes += t.FastProbes
		s.SidePings += t.SidePings
		s.SideSuspicions += t.SideSuspicions
	}
	return s
}

// RunUntil runs in steps of 50 ms until cond holds or limit passes, and
// returns the time it took and whether cond held.
func (c *Cluster) RunUntil(limit time.Duration, cond func() bool) (time.Duration, bool) {
	start := c.Net.Now()
	for c.Net.Now().Sub(start) < limit {
		c.Net.RunFor(50 * time.Millisecond)
		if cond() {
			return c.Net.Now().Sub(start), true
		}
	}
	return limit, false
}

// Bootstrap makes every node join through the seed nodes within 2 s and
// runs until every node sees every other (or limit passes).
func (c *Cluster) Bootstrap(limit time.Duration, seeds ...int) (time.Duration, bool) {
	c.JoinAll(2*time.Second, seeds...)
	all := c.All()
	return c.RunUntil(limit, func() bool { return c.Converged(all) })
}

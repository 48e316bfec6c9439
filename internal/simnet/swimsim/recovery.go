package swimsim

import (
	"errors"
	"time"
)

// HealResult is what PartitionHeal saw.
type HealResult struct {
	// Detected is set if, just before healing, node 0 no longer saw node 1
	// alive (each half had noticed the other was gone).
	Detected bool
	// Remerge is the time from healing until all saw all again; Remerged
	// is set if that happened within the limit.
	Remerge  time.Duration
	Remerged bool
}

// PartitionHeal splits the cluster in two halves (even and odd IDs) for
// split, heals it, and runs until every node sees every other alive (at
// most limit).
func (s *Scenario) PartitionHeal(split, limit time.Duration) HealResult {
	var a, b []int
	for i := range s.Nodes {
		if i%2 == 0 {
			a = append(a, i)
		} else {
			b = append(b, i)
		}
	}
	s.Net.Partition(a, b)
	s.Net.RunFor(split)
	var res HealResult
	res.Detected = !s.SeesAlive(a[0], b[0])
	s.Net.Heal()
	res.Remerge, res.Remerged = s.RunUntil(limit, func() bool { return s.Converged(s.All()) })
	return res
}

// RestartResult is what RollingRestart saw.
type RestartResult struct {
	// Converged is the time from the last start until all saw all alive
	// with no stale entries; OK is set if that happened within the limit.
	Converged time.Duration
	OK        bool
	// Stale counts the stale entries left at the end (Cluster.StaleDead).
	Stale int
	// Err joins the errors of restarting cores.
	Err error
}

// RollingRestart restarts every node with its next generation: each goes
// down at a random time within 55 s and comes back (and rejoins through
// nodes 0, 1 and 2) at most 5 s later. After the last start it runs until
// every node sees every other alive and no stale entries remain (at most
// limit).
func (s *Scenario) RollingRestart(limit time.Duration) RestartResult {
	rng := s.Net.Rand()
	var last time.Time
	var errs []error
	for i := range s.Nodes {
		down := s.Net.Now().Add(time.Duration(rng.Int64N(int64(55 * time.Second))))
		up := down.Add(time.Duration(rng.Int64N(int64(5 * time.Second))))
		if up.After(last) {
			last = up
		}
		s.Net.At(down, func() { s.Crash(i) })
		s.Net.At(up, func() {
			if err := s.Start(i, s.Nodes[i].Gen+1); err != nil {
				errs = append(errs, err)
			}
			s.Join(i, seedNodes...)
		})
	}
	s.Net.RunUntil(last)
	var res RestartResult
	res.Converged, res.OK = s.RunUntil(limit, func() bool { return s.Converged(s.All()) && s.StaleDead() == 0 })
	res.Stale = s.StaleDead()
	res.Err = errors.Join(errs...)
	return res
}

package swimsim

import (
	"slices"
	"time"

	"github.com/meshnode/meshnode/swim"
)

// CorrelatedResult is what CrashTogether saw.
type CorrelatedResult struct {
	// DeadEverywhere is the time from the crash until every survivor had
	// marked every victim dead; OK is set if that happened within the limit.
	DeadEverywhere time.Duration
	OK             bool
	// PerVictim is, for each victim in order, the time until the last
	// survivor marked it dead (the limit if some never did).
	PerVictim []time.Duration
	// FalseDeaths are the death events about survivors from the crash on.
	FalseDeaths Records
	// Withheld counts the verdicts the survivors' self-isolation guards
	// deferred during the run.
	Withheld uint64
}

// CrashTogether crashes every victim at the same instant and runs until
// every survivor has marked every victim dead (at most limit).
func (s *Scenario) CrashTogether(victims []int, limit time.Duration) CorrelatedResult {
	at := s.Net.Now()
	for _, v := range victims {
		s.Crash(v)
	}
	survivors := slices.DeleteFunc(s.All(), func(i int) bool { return slices.Contains(victims, i) })
	before := s.SumStats(survivors).VerdictsWithheld
	var res CorrelatedResult
	res.DeadEverywhere, res.OK = s.RunUntil(limit, func() bool {
		for _, o := range survivors {
			for _, v := range victims {
				if s.SeesAlive(o, v) {
					return false
				}
			}
		}
		return true
	})
	for _, v := range victims {
		name := s.Nodes[v].Name
		dead := map[int]time.Time{}
		for _, e := range s.Rec.Filter(name, swim.EventDead, at) {
			if _, ok := dead[e.Obs]; !ok {
				dead[e.Obs] = e.At
			}
		}
		last := at.Add(limit)
		if len(dead) == len(survivors) {
			last = at
			for _, t := range dead {
				if t.After(last) {
					last = t
				}
			}
		}
		res.PerVictim = append(res.PerVictim, last.Sub(at))
	}
	for _, e := range s.Rec.Filter("", swim.EventDead, at) {
		if slices.ContainsFunc(survivors, func(i int) bool { return s.Nodes[i].Name == e.Name }) {
			res.FalseDeaths = append(res.FalseDeaths, e)
		}
	}
	res.Withheld = s.SumStats(survivors).VerdictsWithheld - before
	return res
}

// CutOffResult is what CutOff saw.
type CutOffResult struct {
	// Verdicts are the death events the cut-off node issued itself during
	// the cut.
	Verdicts Records
	// Removed is set if every other node had removed the cut-off node by
	// the end of the cut.
	Removed bool
	// Back is the time from the end of the cut until every node saw every
	// other alive (Cluster.Whole); BackInTime is set if that happened
	// within the limit.
	Back       time.Duration
	BackInTime bool
}

// CutOff cuts node i off (nothing reaches it, nothing it sends arrives) for
// d, then restores its links and runs until the membership is whole again
// (at most limit).
func (s *Scenario) CutOff(i int, d, limit time.Duration) CutOffResult {
	return s.CutOffWith(i, d, limit, CutOffOpts{})
}

// CutOffOpts makes a cut more like one on real hosts.
type CutOffOpts struct {
	// Lossy: once the links are back, the datagrams node i sends are lost
	// for this long (streams get through). A real node's neighbour entries
	// (ARP) for its peers fail during a cut and drop what it sends until
	// they are resolved again, while a peer's TCP connection to it
	// resolves both directions at once.
	Lossy time.Duration
	// Pause: node i stalls this long halfway through the cut (a process
	// starved of CPU on a busy host).
	Pause time.Duration
}

// CutOffWith is CutOff with opts.
func (s *Scenario) CutOffWith(i int, d, limit time.Duration, opts CutOffOpts) CutOffResult {
	at := s.Net.Now()
	s.Net.CutInbound(i, true)
	s.Net.CutOutbound(i, true)
	if opts.Pause > 0 {
		s.Net.RunFor(d / 2)
		s.Net.Pause(i)
		s.Net.RunFor(opts.Pause)
		s.Net.Resume(i)
		s.Net.RunFor(d - d/2 - opts.Pause)
	} else {
		s.Net.RunFor(d)
	}
	var res CutOffResult
	for _, e := range s.Rec.Filter("", swim.EventDead, at) {
		if e.Obs == i {
			res.Verdicts = append(res.Verdicts, e)
		}
	}
	res.Removed = true
	for _, o := range s.others(i) {
		if s.SeesAlive(o, i) {
			res.Removed = false
		}
	}
	s.Net.Heal()
	if opts.Lossy > 0 {
		for _, o := range s.others(i) {
			s.Net.DropDatagrams(i, o, s.Net.Now().Add(opts.Lossy))
		}
	}
	all := s.All()
	res.Back, res.BackInTime = s.RunUntil(limit, func() bool { return s.Whole(all) })
	return res
}

// SplitResult is what SplitHeal saw.
type SplitResult struct {
	// Detected is set if, just before healing, every node of the largest
	// group had stopped seeing alive every node of the other groups (a
	// node alone or in a small group may rightly distrust itself and
	// declare no one dead).
	Detected bool
	// Whole is the time from healing until every node saw every other
	// alive (Cluster.Whole); OK is set if that happened within the limit.
	Whole time.Duration
	OK    bool
	// Lagging lists, when not OK, the (observer, member) pairs that were not
	// alive at the end.
	Lagging [][2]int
}

// SplitHeal partitions the cluster into groups (nodes not listed form one
// more group) for split, heals it, and runs until every node sees every
// other alive (at most limit).
func (s *Scenario) SplitHeal(groups [][]int, split, limit time.Duration) SplitResult {
	s.Net.Partition(groups...)
	s.Net.RunFor(split)
	group := make([]int, len(s.Nodes))
	for g, ids := range groups {
		for _, i := range ids {
			group[i] = g + 1
		}
	}
	size := map[int]int{}
	for _, g := range group {
		size[g]++
	}
	largest := 0
	for g, k := range size {
		if k > size[largest] || k == size[largest] && g < largest {
			largest = g
		}
	}
	res := SplitResult{Detected: true}
	for o := range s.Nodes {
		for i := range s.Nodes {
			if group[o] == largest && group[i] != largest && s.SeesAlive(o, i) {
				res.Detected = false
			}
		}
	}
	s.Net.Heal()
	all := s.All()
	res.Whole, res.OK = s.RunUntil(limit, func() bool { return s.Whole(all) })
	if !res.OK {
		for o := range s.Nodes {
			for i := range s.Nodes {
				if o != i && !s.seesAliveOnly(o, i) {
					res.Lagging = append(res.Lagging, [2]int{o, i})
				}
			}
		}
	}
	return res
}

// seesAliveOnly reports whether observer obs sees node i alive, not
// suspect, in its current generation.
func (c *Cluster) seesAliveOnly(obs, i int) bool {
	m, ok := c.Nodes[obs].Core.Member(c.Nodes[i].Name)
	return ok && m.Gen == c.Nodes[i].Gen && m.State == swim.StateAlive
}

// Whole reports whether every running node of set sees every other running
// node of set alive (not suspect) in its current generation: stricter than
// Converged, which accepts suspects.
func (c *Cluster) Whole(set []int) bool {
	if !c.Converged(set) {
		return false
	}
	for _, obs := range set {
		if !c.Running(obs) {
			continue
		}
		for _, i := range set {
			if i != obs && c.Running(i) && !c.seesAliveOnly(obs, i) {
				return false
			}
		}
	}
	return true
}

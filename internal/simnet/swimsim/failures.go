package swimsim

import (
	"time"

	"github.com/meshnode/meshnode/swim"
)

// Detection is how the cluster noticed one crash.
type Detection struct {
	Victim int
	// Suspected is set if any node suspected the victim; ToSuspect is the
	// time from the crash to the first suspicion.
	Suspected bool
	ToSuspect time.Duration
	// ToDeadEverywhere is the time from the crash until the last survivor
	// that marked the victim dead did so.
	ToDeadEverywhere time.Duration
	// Survivors counts the running nodes after the crash; Missing lists
	// those that never marked the victim dead (empty when detection is
	// complete).
	Survivors int
	Missing   []int
}

// CrashResult is what Crashes saw.
type CrashResult struct {
	Detections []Detection
	Traffic    Traffic // over all the crashes
}

// Crashes crashes the victims one after another, running wait after each,
// and reports how each was detected.
func (s *Scenario) Crashes(victims []int, wait time.Duration) CrashResult {
	m := s.Measure()
	var res CrashResult
	for _, victim := range victims {
		at := s.Net.Now()
		s.Crash(victim)
		name := s.Nodes[victim].Name
		s.Net.RunFor(wait)
		d := Detection{Victim: victim}
		if sus := s.Rec.Filter(name, swim.EventSuspect, at); len(sus) > 0 {
			d.Suspected, d.ToSuspect = true, sus[0].At.Sub(at)
		}
		dead := map[int]time.Time{}
		for _, e := range s.Rec.Filter(name, swim.EventDead, at) {
			if _, ok := dead[e.Obs]; !ok {
				dead[e.Obs] = e.At
			}
		}
		var last time.Time
		for i := range s.Nodes {
			if !s.Running(i) {
				continue
			}
			d.Survivors++
			t, ok := dead[i]
			if !ok {
				d.Missing = append(d.Missing, i)
			} else if t.After(last) {
				last = t
			}
		}
		d.ToDeadEverywhere = last.Sub(at)
		res.Detections = append(res.Detections, d)
	}
	res.Traffic = m.Traffic()
	return res
}

// PauseResult is what Pause saw.
type PauseResult struct {
	// Back is the time from resuming until every other node saw the paused
	// one alive; BackInTime is set if that happened within the limit.
	Back       time.Duration
	BackInTime bool
	// Deaths are the death events (about anyone) from the pause on;
	// DeathsAfterResume those from resuming on.
	Deaths            Records
	DeathsAfterResume Records
	// VerdictsAfterResume counts the death verdicts the paused node issued
	// itself after resuming.
	VerdictsAfterResume uint64
}

// Pause pauses node victim for pause, resumes it, runs until every other
// node sees it alive (at most backLimit; with 0 it does not wait), then runs
// after.
func (s *Scenario) Pause(victim int, pause, backLimit, after time.Duration) PauseResult {
	start := s.Net.Now()
	s.Net.Pause(victim)
	s.Net.RunFor(pause)
	verdicts := s.Nodes[victim].Core.Stats().DeathVerdicts
	s.Net.Resume(victim)
	resumed := s.Net.Now()
	others := s.others(victim)
	var res PauseResult
	res.Back, res.BackInTime = s.RunUntil(backLimit, func() bool { return s.seenAliveByAll(others, victim) })
	s.Net.RunFor(after)
	res.Deaths = s.Rec.Filter("", swim.EventDead, start)
	res.DeathsAfterResume = s.Rec.Filter("", swim.EventDead, resumed)
	res.VerdictsAfterResume = s.Nodes[victim].Core.Stats().DeathVerdicts - verdicts
	return res
}

// Fault is how a bad node is bad.
type Fault string

// Faults of BadNode.
const (
	Loss80     Fault = "loss80"      // 80% of the packets to and from it are lost
	InboundCut Fault = "inbound-cut" // nothing reaches it; it can still send
)

// BadResult is what BadNode saw.
type BadResult struct {
	// Removed is the time from the fault until no other node saw the bad
	// node alive; RemovedInTime is set if that happened within the limit.
	Removed       time.Duration
	RemovedInTime bool
	// Deaths are the death events (about anyone, at any observer,
	// the bad node included) from the fault on.
	Deaths Records
	// AliveAgain lists the other nodes that see the bad node alive at the
	// end.
	AliveAgain []int
}

// BadNode gives node bad the fault, runs until every other node has removed
// it (at most limit), then runs after.
func (s *Scenario) BadNode(bad int, f Fault, limit, after time.Duration) BadResult {
	switch f {
	case Loss80:
		s.Net.SetLoss(bad, 0.8)
	case InboundCut:
		s.Net.CutInbound(bad, true)
	default:
		panic("swimsim: unknown fault " + string(f))
	}
	start := s.Net.Now()
	healthy := s.others(bad)
	var res BadResult
	res.Removed, res.RemovedInTime = s.RunUntil(limit, func() bool {
		for _, o := range healthy {
			if s.SeesAlive(o, bad) {
				return false
			}
		}
		return true
	})
	s.Net.RunFor(after)
	res.Deaths = s.Rec.Filter("", swim.EventDead, start)
	for _, o := range healthy {
		if s.SeesAlive(o, bad) {
			res.AliveAgain = append(res.AliveAgain, o)
		}
	}
	return res
}

package swim

import (
	"math"
	"time"
)

// suspicion is the Lifeguard suspicion timer of one member: it starts at the
// maximum timeout and shrinks towards the minimum as independent members
// confirm the suspicion, following
//
//	timeout(c) = max(lo, hi - (hi-lo) * log(c+1) / log(k+1))
//
// where c is the number of confirmations seen and k the number expected.
// k follows the cluster: it is the number of members that could confirm
// (alive, not suspect themselves), at most kMax, so that when several
// members fail at once the survivors do not wait for confirmations that
// no one is left to send.
type suspicion struct {
	start    time.Time
	lo, hi   time.Duration
	k, kMax  int
	from     []string // accusers so far, the first one included; at most kMax+1
	deadline time.Time
	// verifying is set while this node probes the suspect itself before a
	// verdict that too few members confirmed.
	verifying bool
	// askAt is when this node next asks the accusers whether they have
	// reached their verdict (see Core.askAccusers).
	askAt time.Time
}

func newSuspicion(now time.Time, from string, k, kMax int, lo, hi time.Duration) *suspicion {
	s := &suspicion{start: now, lo: lo, hi: hi, kMax: max(kMax, 0), from: []string{from}}
	s.k = min(max(k, 0), s.kMax)
	s.deadline = now.Add(s.timeout())
	s.askAt = now.Add(lo)
	return s
}

// expect sets the number of confirmations expected to k (at most kMax) and
// moves the deadline accordingly, unless the suspect is being verified.
func (s *suspicion) expect(k int) {
	k = min(max(k, 0), s.kMax)
	if k == s.k {
		return
	}
	s.k = k
	if !s.verifying {
		s.deadline = s.start.Add(s.timeout())
	}
}

// confirm records an accusation from another member and reports whether it
// was a new, independent one.
func (s *suspicion) confirm(from string) bool {
	if len(s.from) > s.kMax {
		return false
	}
	for _, f := range s.from {
		if f == from {
			return false
		}
	}
	s.from = append(s.from, from)
	if !s.verifying {
		s.deadline = s.start.Add(s.timeout())
	}
	return true
}

// confirmations returns the number of independent confirmations after the
// first accusation.
func (s *suspicion) confirmations() int { return len(s.from) - 1 }

func (s *suspicion) timeout() time.Duration {
	c := s.confirmations()
	if s.k < 1 || c >= s.k {
		// With no confirmations to wait for, waiting longer proves nothing.
		return s.lo
	}
	frac := math.Log(float64(c)+1) / math.Log(float64(s.k)+1)
	t := s.hi - time.Duration(frac*float64(s.hi-s.lo))
	return max(t, s.lo)
}

// restart starts the timer over at now, keeping its confirmations; used
// after a pause, when the time that passed proves nothing.
func (s *suspicion) restart(now time.Time) {
	s.start = now
	s.deadline = now.Add(s.timeout())
}

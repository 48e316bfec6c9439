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
type suspicion struct {
	start    time.Time
	lo, hi   time.Duration
	k        int
	from     []string // accusers so far, the first one included; at most k+1
	deadline time.Time
	// verifying is set while this node probes the suspect itself before a
	// verdict that too few members confirmed.
	verifying bool
}

func newSuspicion(now time.Time, from string, k int, lo, hi time.Duration) *suspicion {
	s := &suspicion{start: now, lo: lo, hi: hi, k: max(k, 0), from: []string{from}}
	s.deadline = now.Add(s.timeout())
	return s
}

// confirm records an accusation from another member and reports whether it
// was a new, independent one.
func (s *suspicion) confirm(from string) bool {
	if len(s.from) > s.k {
		return false
	}
	for _, f := range s.from {
		if f == from {
			return false
		}
	}
	s.from = append(s.from, from)
	s.deadline = s.start.Add(s.timeout())
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

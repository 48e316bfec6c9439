package swim

import (
	"testing"
	"time"
)

func TestSuspicionTimeoutShrinksWithConfirmations(t *testing.T) {
	lo, hi := 8*time.Second, 48*time.Second
	tests := []struct {
		accusers []string
		want     time.Duration
	}{
		{[]string{"a"}, 48 * time.Second},
		{[]string{"a", "b"}, 28 * time.Second},                   // 48 - 40*log2/log4
		{[]string{"a", "b", "c"}, 16300749986 * time.Nanosecond}, // 48 - 40*log3/log4
		{[]string{"a", "b", "c", "d"}, 8 * time.Second},
		{[]string{"a", "b", "c", "d", "e"}, 8 * time.Second},
		{[]string{"a", "a", "b", "b"}, 28 * time.Second}, // repeats are not independent
	}
	for _, tt := range tests {
		s := newSuspicion(t0, tt.accusers[0], 3, 3, lo, hi)
		for _, f := range tt.accusers[1:] {
			s.confirm(f)
		}
		got := s.deadline.Sub(t0)
		if d := got - tt.want; d < -time.Millisecond || d > time.Millisecond {
			t.Errorf("accusers %v: timeout %v, want %v", tt.accusers, got, tt.want)
		}
	}
	if s := newSuspicion(t0, "a", 0, 0, lo, hi); s.deadline.Sub(t0) != lo {
		t.Errorf("k=0: timeout %v, want the minimum %v", s.deadline.Sub(t0), lo)
	}
}

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// A suspicion expects no more confirmations than there are members left to
// send them: when the others are suspect too, its timeout shrinks to match,
// unless the suspect is being verified.
func TestSuspicionExpectsOnlyPossibleConfirmations(t *testing.T) {
	lo, hi := 8*time.Second, 48*time.Second
	tests := []struct {
		name      string
		accusers  []string
		k         int
		verifying bool
		want      time.Duration
	}{
		{"three could confirm", []string{"a"}, 3, false, 48 * time.Second},
		{"one could confirm, none did", []string{"a"}, 1, false, 48 * time.Second},
		{"one could confirm, it did", []string{"a", "b"}, 1, false, 8 * time.Second},
		{"no one could confirm", []string{"a"}, 0, false, 8 * time.Second},
		{"capped at kMax", []string{"a", "b"}, 9, false, 28 * time.Second},
		{"verifying keeps its deadline", []string{"a", "b"}, 1, true, 28 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSuspicion(t0, tt.accusers[0], 3, 3, lo, hi)
			for _, f := range tt.accusers[1:] {
				s.confirm(f)
			}
			s.verifying = tt.verifying
			s.expect(tt.k)
			if got := s.deadline.Sub(t0); got != tt.want {
				t.Errorf("timeout %v, want %v", got, tt.want)
			}
		})
	}
}

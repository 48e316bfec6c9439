package swimsim

import (
	"testing"
	"time"

	"github.com/meshnode/meshnode/swim"
)

func TestQuantile(t *testing.T) {
	ds := []time.Duration{5, 1, 4, 2, 3}
	for _, tt := range []struct {
		q    float64
		want time.Duration
	}{{0, 1}, {0.5, 3}, {0.99, 5}, {1, 5}} {
		if got := Quantile(ds, tt.q); got != tt.want {
			t.Errorf("Quantile(%v, %v) = %v, want %v", ds, tt.q, got, tt.want)
		}
	}
	if got := Median([]time.Duration{4, 1, 3, 2}); got != 3 {
		t.Errorf("upper median of 1..4 = %v, want 3", got)
	}
	if ds[0] != 5 {
		t.Error("Quantile sorted its argument")
	}
}

func TestRecords(t *testing.T) {
	rs := Records{
		{Obs: 1, Kind: swim.EventDead, Name: "a"},
		{Obs: 1, Kind: swim.EventDead, Name: "a"},
		{Obs: 2, Kind: swim.EventDead, Name: "a"},
		{Obs: 2, Kind: swim.EventDead, Name: "b"},
	}
	if got := len(rs.About("a")); got != 3 {
		t.Errorf("About(a): %d events, want 3", got)
	}
	if got := rs.About("a").MaxPerObserver(); got != 2 {
		t.Errorf("MaxPerObserver = %d, want 2", got)
	}
	if got := rs.PerObserver(); got[1] != 2 || got[2] != 2 || len(got) != 2 {
		t.Errorf("PerObserver = %v", got)
	}
}

// A scenario returns the same figures for the same seed, and a pause with
// no wait runs exactly pause plus after. Node 5 is n0005.
func TestScenarioDeterministic(t *testing.T) {
	run := func() (PauseResult, time.Duration) {
		s := NewScenario(t, 7, 12, LAN)
		s.Boot(t, 20*time.Second)
		s.Settle()
		start := s.Net.Now()
		short := s.Pause(5, 5*time.Second, 0, 20*time.Second)
		if got := s.Net.Now().Sub(start); got != 25*time.Second {
			t.Errorf("pause of 5s, no wait, 20s after: ran %v", got)
		}
		if short.BackInTime || short.Back != 0 {
			t.Errorf("no wait asked, got %+v", short)
		}
		long := s.Pause(5, 30*time.Second, time.Minute, 10*time.Second)
		return long, s.Net.Now().Sub(start)
	}
	a, da := run()
	b, db := run()
	if a.Back != b.Back || len(a.Deaths) != len(b.Deaths) || da != db {
		t.Errorf("same seed, different runs: %v/%d/%v and %v/%d/%v", a.Back, len(a.Deaths), da, b.Back, len(b.Deaths), db)
	}
	if !a.BackInTime || len(a.Deaths.About("n0005")) == 0 {
		t.Errorf("30 s pause: back in time %v, %d deaths of the paused node; want true and some", a.BackInTime, len(a.Deaths.About("n0005")))
	}
}

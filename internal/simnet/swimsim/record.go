package swimsim

import (
	"time"

	"github.com/meshnode/meshnode/swim"
)

// Record is one recorded event: observer Obs saw member Name (of
// generation Gen) change state.
type Record struct {
	At      time.Time
	Obs     int
	Kind    swim.EventKind
	Name    string
	Gen     uint64
	Verdict bool
}

// Records is a list of recorded events in the order they happened.
type Records []Record

// Recorder keeps the suspect, alive, dead and leave events of a cluster;
// joins and updates are left out, as there are too many at scale.
type Recorder struct{ evs Records }

// NewRecorder makes a recorder of c's events; it becomes c.OnEvent.
func NewRecorder(c *Cluster) *Recorder {
	r := &Recorder{}
	c.OnEvent = func(obs int, ev swim.Event) {
		if ev.Kind == swim.EventJoin || ev.Kind == swim.EventUpdate {
			return
		}
		r.evs = append(r.evs, Record{At: ev.At, Obs: obs, Kind: ev.Kind, Name: ev.Member.Name, Gen: ev.Member.Gen, Verdict: ev.Verdict})
	}
	return r
}

// Filter returns the events of kind about name (any member if name is
// empty) at or after since.
func (r *Recorder) Filter(name string, kind swim.EventKind, since time.Time) Records {
	var out Records
	for _, e := range r.evs {
		if (name == "" || e.Name == name) && e.Kind == kind && !e.At.Before(since) {
			out = append(out, e)
		}
	}
	return out
}

// About returns the events about member name.
func (rs Records) About(name string) Records {
	var out Records
	for _, e := range rs {
		if e.Name == name {
			out = append(out, e)
		}
	}
	return out
}

// PerObserver counts the events by observer.
func (rs Records) PerObserver() map[int]int {
	m := map[int]int{}
	for _, e := range rs {
		m[e.Obs]++
	}
	return m
}

// MaxPerObserver returns the largest number of events one observer saw.
func (rs Records) MaxPerObserver() int {
	n := 0
	for _, k := range rs.PerObserver() {
		n = max(n, k)
	}
	return n
}

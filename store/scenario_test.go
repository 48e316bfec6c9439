package store

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
)

// TestScenarios runs the scripts in testdata/scenarios: step-by-step
// stories of replication, garbage collection and resynchronisation with
// their expected output. Rewrite the expectations with
// go test ./store -run TestScenarios -rewrite.
func TestScenarios(t *testing.T) {
	datadriven.Walk(t, "testdata/scenarios", func(t *testing.T, path string) {
		sc := &scenario{stores: map[string]*Store{}, snaps: map[string][]byte{}, deltas: map[string][]byte{}}
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			return sc.run(t, d)
		})
	})
}

type scenario struct {
	stores map[string]*Store
	names  []string
	snaps  map[string][]byte
	deltas map[string][]byte
}

func (sc *scenario) store(t *testing.T, d *datadriven.TestData, arg string) *Store {
	var name string
	d.ScanArgs(t, arg, &name)
	s := sc.stores[name]
	if s == nil {
		t.Fatalf("%s: no store %q", d.Pos, name)
	}
	return s
}

// now is t0 plus the command's ms argument.
func (sc *scenario) now(t *testing.T, d *datadriven.TestData) time.Time {
	ms := 0
	d.MaybeScanArgs(t, "ms", &ms)
	return t0.Add(time.Duration(ms) * time.Millisecond)
}

func (sc *scenario) actors(t *testing.T, d *datadriven.TestData) []Actor {
	var names []string
	d.ScanArgs(t, "live", &names)
	var as []Actor
	for _, n := range names {
		as = append(as, sc.stores[n].Self())
	}
	return as
}

func (sc *scenario) run(t *testing.T, d *datadriven.TestData) string {
	ns, key := "ns", ""
	d.MaybeScanArgs(t, "ns", &ns)
	d.MaybeScanArgs(t, "key", &key)
	switch d.Cmd {
	case "store":
		var name string
		var gen uint64
		d.ScanArgs(t, "name", &name)
		d.ScanArgs(t, "gen", &gen)
		if _, ok := sc.stores[name]; !ok {
			sc.names = append(sc.names, name)
		}
		sc.stores[name] = newTestStore(t, name, gen)
		if d.HasArg("from") {
			var snap string
			d.ScanArgs(t, "from", &snap)
			if err := sc.stores[name].Restore(sc.snaps[snap]); err != nil {
				return err.Error()
			}
		}
		return ""
	case "put":
		var v string
		d.ScanArgs(t, "value", &v)
		return errString(sc.store(t, d, "s").Put(ns, key, []byte(v), sc.now(t, d)))
	case "delete":
		return errString(sc.store(t, d, "s").Delete(ns, key, sc.now(t, d)))
	case "get":
		v, ok := sc.store(t, d, "s").Get(ns, key)
		if !ok {
			return "absent"
		}
		return fmt.Sprintf("%q", v)
	case "deltas":
		s := sc.store(t, d, "s")
		b, ok, _ := s.AppendDeltas(nil, 1<<20)
		if !ok {
			return "nothing"
		}
		var as string
		d.ScanArgs(t, "as", &as)
		sc.deltas[as] = b
		var dd Delta
		must(t, DecodeDelta(b, &dd))
		return fmt.Sprintf("%d entries, %d ranges, %d counters, %d bytes", len(dd.Entries), len(dd.Ranges), len(dd.Counters), len(b))
	case "deliver":
		var name string
		d.ScanArgs(t, "delta", &name)
		return errString(sc.store(t, d, "to").Apply(sc.deltas[name], sc.now(t, d)))
	case "sync":
		from, to := sc.store(t, d, "from"), sc.store(t, d, "to")
		budget := 1 << 20
		d.MaybeScanArgs(t, "budget", &budget)
		exchange(t, from, to, sc.now(t, d), budget)
		return ""
	case "gossip":
		// Every store observes every other store's digest: contexts and
		// floors travel, entries do not.
		var names []string
		d.ScanArgs(t, "among", &names)
		for _, x := range names {
			for _, y := range names {
				if x != y {
					must(t, sc.stores[x].ObserveDigest(digestOf(t, sc.stores[y]), sc.now(t, d)))
				}
			}
		}
		return ""
	case "collect":
		horizon := time.Minute
		d.MaybeScanArgs(t, "horizon", &horizon)
		n := sc.store(t, d, "s").Collect(sc.actors(t, d), sc.now(t, d), horizon)
		return fmt.Sprintf("collected %d", n)
	case "tick":
		sc.store(t, d, "s").Tick(sc.now(t, d))
		return ""
	case "snapshot":
		var as string
		d.ScanArgs(t, "as", &as)
		sc.snaps[as] = sc.store(t, d, "s").AppendSnapshot(nil)
		return ""
	case "state":
		return sc.state(sc.store(t, d, "s"))
	}
	t.Fatalf("%s: unknown command %q", d.Pos, d.Cmd)
	return ""
}

func errString(err error) string {
	if err != nil {
		return err.Error()
	}
	return ""
}

// state prints a store's entries (by dot, not stamp: stamps depend on the
// start time), context, floor and the counters that moved.
func (sc *scenario) state(s *Store) string {
	var lines []string
	for i := range s.t.entries {
		e := &s.t.entries[i]
		v := fmt.Sprintf("%q", e.value())
		if e.tomb() {
			v = "deleted"
		}
		lines = append(lines, fmt.Sprintf("%s/%s = %s by %s#%d", s.nsNames[e.ns], e.key(), v, s.actors[e.actor], e.seq))
	}
	slices.Sort(lines)
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(l + "\n")
	}
	var ctx, floor []string
	for a := range s.ctx {
		c := s.ctx[a]
		if c.max > 0 || len(c.cloud) > 0 {
			ctx = append(ctx, fmt.Sprintf("%s:%d%v", s.actors[a], c.max, c.cloud))
		}
		if s.floor[a] > 0 {
			floor = append(floor, fmt.Sprintf("%s:%d", s.actors[a], s.floor[a]))
		}
	}
	slices.Sort(ctx)
	slices.Sort(floor)
	fmt.Fprintf(&b, "context: %s\nfloor: %s\n", strings.Join(ctx, " "), strings.Join(floor, " "))
	st := s.Stats()
	var stats []string
	for _, f := range []struct {
		name string
		v    uint64
	}{{"held", st.Held}, {"released", st.Released}, {"rejected", st.Rejected}, {"collected", st.Collected}, {"stale", st.Stale}, {"resyncs", st.Resyncs}} {
		if f.v > 0 {
			stats = append(stats, fmt.Sprintf("%s=%d", f.name, f.v))
		}
	}
	fmt.Fprintf(&b, "stats: %s", strings.Join(stats, " "))
	return b.String()
}

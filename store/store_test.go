package store

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"pgregory.net/rapid"
)

func TestLimits(t *testing.T) {
	s, err := New(Config{Actor: Actor{Name: "a", Gen: 1}, MaxBytes: 4096})
	must(t, err)
	tests := []struct {
		name    string
		ns, key string
		value   []byte
		want    error
	}{
		{"ok", "ns", "k", []byte("v"), nil},
		{"empty key", "ns", "", nil, ErrKeyTooLarge},
		{"key at limit", "ns", strings.Repeat("k", MaxKeyBytes), nil, nil},
		{"key over limit", "ns", strings.Repeat("k", MaxKeyBytes+1), nil, ErrKeyTooLarge},
		{"value over limit", "ns", "k", make([]byte, MaxValueBytes+1), ErrValueTooLarge},
		{"store full", "ns", "big", make([]byte, 3000), ErrStoreFull},
		{"empty namespace", "", "k", nil, ErrBadNamespace},
		{"long namespace", strings.Repeat("n", MaxNamespaceBytes+1), "k", nil, ErrBadNamespace},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.Put(tt.ns, tt.key, tt.value, t0)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Put: got %v, want %v", err, tt.want)
			}
			if err != nil && !strings.HasPrefix(err.Error(), "store: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
		})
	}
	if _, err := New(Config{}); err == nil {
		t.Error("New accepted a config without an actor name")
	}
	// A full store still deletes what it holds.
	if err := s.Delete("ns", "k", t0); err != nil {
		t.Errorf("Delete in a full store: %v", err)
	}
	if err := s.Put("ns", "new", make([]byte, 3000), t0); !errors.Is(err, ErrStoreFull) {
		t.Errorf("Put after delete: %v, want ErrStoreFull", err)
	}
}

// TestStoreFullRemote: remote writes a full store refuses are not marked
// seen, so they come again.
func TestStoreFullRemote(t *testing.T) {
	small, err := New(Config{Actor: Actor{Name: "small", Gen: 1}, MaxBytes: 1000})
	must(t, err)
	big := newTestStore(t, "big", 1)
	for i := range 20 {
		must(t, big.Put("ns", fmt.Sprintf("k%02d", i), make([]byte, 100), t0))
	}
	exchange(t, big, small, t0, 1<<20)
	st := small.Stats()
	if st.Rejected == 0 || st.Keys == 0 || st.Keys == 20 {
		t.Fatalf("stats %+v: want some keys stored and some refused", st)
	}
	if small.ctx[1].has(20) {
		t.Fatal("a refused write's dot is in the context")
	}
}

func TestPutGetDeleteList(t *testing.T) {
	s := newTestStore(t, "a", 1)
	now := t0
	must(t, s.Put("workers", "w/1", []byte("one"), now))
	must(t, s.Put("workers", "w/2", []byte("two"), now))
	must(t, s.Put("workers", "x/1", []byte("other"), now))
	must(t, s.Put("config", "w/1", []byte("cfg"), now))
	must(t, s.Put("workers", "w/1", []byte("uno"), now))
	must(t, s.Delete("workers", "w/2", now))
	tests := []struct {
		ns, key string
		want    string
		ok      bool
	}{
		{"workers", "w/1", "uno", true},
		{"workers", "w/2", "", false},
		{"config", "w/1", "cfg", true},
		{"config", "w/2", "", false},
		{"nope", "w/1", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.ns+"/"+tt.key, func(t *testing.T) {
			got, ok := s.Get(tt.ns, tt.key)
			if got != tt.want || ok != tt.ok {
				t.Fatalf("Get = %q, %v; want %q, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
	var keys []string
	for _, kv := range s.List("workers", "w/") {
		keys = append(keys, kv.Key+"="+kv.Value)
	}
	if d := cmp.Diff([]string{"w/1=uno"}, keys); d != "" {
		t.Errorf("List (-want +got):\n%s", d)
	}
	if st := s.Stats(); st.Keys != 3 || st.Tombstones != 1 {
		t.Errorf("stats %+v, want 3 keys and 1 tombstone", st)
	}
	if b, ok := s.AppendValue([]byte("v:"), "workers", "w/1"); !ok || string(b) != "v:uno" {
		t.Errorf("AppendValue = %q, %v", b, ok)
	}
}

// TestLastWriterWins: the greater (stamp, actor) wins whatever the arrival
// order, and a clock behind its peers still writes after what it has seen.
func TestLastWriterWins(t *testing.T) {
	a, b := newTestStore(t, "a", 1), newTestStore(t, "b", 1)
	must(t, a.Put("ns", "k", []byte("from a"), t0))
	must(t, b.Put("ns", "k", []byte("from b"), t0)) // same millisecond: b > a
	antiEntropy(t, []*Store{a, b}, t0, 1<<20)
	for _, s := range []*Store{a, b} {
		if v, _ := s.Get("ns", "k"); v != "from b" {
			t.Fatalf("%s: k = %q, want the tie broken by actor", s.Self(), v)
		}
	}
	// a's wall clock is behind, but having seen b's write its next write wins.
	must(t, a.Put("ns", "k", []byte("later from a"), t0.Add(-time.Second)))
	antiEntropy(t, []*Store{a, b}, t0, 1<<20)
	if v, _ := b.Get("ns", "k"); v != "later from a" {
		t.Fatalf("b: k = %q, want the causally later write", v)
	}
}

// TestModel checks the map against a plain Go map under random operations.
func TestModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		s := newTestStore(t, "a", 1)
		model := map[string]map[string]string{}
		now := t0
		for range rapid.IntRange(1, 200).Draw(t, "ops") {
			ns := rapid.SampledFrom([]string{"a", "b"}).Draw(t, "ns")
			key := rapid.SampledFrom([]string{"x", "xa", "xb", "y", "yy"}).Draw(t, "key")
			if rapid.Bool().Draw(t, "tick") {
				now = now.Add(time.Millisecond)
			}
			if model[ns] == nil {
				model[ns] = map[string]string{}
			}
			switch rapid.IntRange(0, 3).Draw(t, "op") {
			case 0, 1:
				v := rapid.StringN(0, 8, 8).Draw(t, "value")
				must(t, s.Put(ns, key, []byte(v), now))
				model[ns][key] = v
			case 2:
				must(t, s.Delete(ns, key, now))
				delete(model[ns], key)
			case 3:
				prefix := rapid.SampledFrom([]string{"", "x", "xa", "y", "z"}).Draw(t, "prefix")
				var want []string
				for k, v := range model[ns] {
					if strings.HasPrefix(k, prefix) {
						want = append(want, k+"="+v)
					}
				}
				var got []string
				for _, kv := range s.List(ns, prefix) {
					got = append(got, kv.Key+"="+kv.Value)
				}
				if d := cmp.Diff(want, got, cmpSorted); d != "" {
					t.Fatalf("List(%q, %q) (-want +got):\n%s", ns, prefix, d)
				}
			}
			got, ok := s.Get(ns, key)
			want, wok := model[ns][key]
			if got != want || ok != wok {
				t.Fatalf("Get(%q, %q) = %q, %v; model says %q, %v", ns, key, got, ok, want, wok)
			}
		}
		n := 0
		for _, m := range model {
			n += len(m)
		}
		if st := s.Stats(); st.Keys != n {
			t.Fatalf("Stats.Keys = %d, model has %d", st.Keys, n)
		}
	})
}

var cmpSorted = cmp.Transformer("sort", func(in []string) []string {
	out := append([]string(nil), in...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
})

func TestWatch(t *testing.T) {
	s := newTestStore(t, "a", 1)
	sub := s.Subscribe("workers", "w/", 3)
	other := s.Subscribe("config", "", 8)
	must(t, s.Put("workers", "w/1", []byte("a"), t0))
	must(t, s.Put("workers", "x/1", []byte("ignored"), t0))
	must(t, s.Put("config", "c", []byte("c"), t0))
	must(t, s.Delete("workers", "w/1", t0))
	var got []string
	for ev, ok := sub.Next(); ok; ev, ok = sub.Next() {
		got = append(got, fmt.Sprintf("%d %s=%q deleted=%v", ev.Seq, ev.Key, ev.Value, ev.Deleted))
	}
	want := []string{`1 w/1="a" deleted=false`, `2 w/1="" deleted=true`}
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("events (-want +got):\n%s", d)
	}
	if other.Len() != 1 {
		t.Fatalf("config subscriber has %d events, want 1", other.Len())
	}

	// Remote changes are events too; overflow gives one Lagged marker.
	b := newTestStore(t, "b", 1)
	for i := range 5 {
		must(t, b.Put("workers", fmt.Sprintf("w/%d", i), []byte("r"), t0))
	}
	exchange(t, b, s, t0, 1<<20)
	ev, ok := sub.Next()
	if !ok || !ev.Lagged || ev.Seq != 6 {
		t.Fatalf("after overflow got %+v, %v; want a Lagged event with seq 6 (3-5 were dropped)", ev, ok)
	}
	if _, ok := sub.Next(); ok {
		t.Fatal("events after the Lagged marker should be dropped")
	}
	if s.Stats().Lagged != 1 {
		t.Errorf("Stats.Lagged = %d, want 1", s.Stats().Lagged)
	}
	must(t, b.Put("workers", "w/9", []byte("again"), t0))
	exchange(t, b, s, t0, 1<<20)
	if ev, ok := sub.Next(); !ok || ev.Key != "w/9" || ev.Seq != 7 {
		t.Fatalf("after resync got %+v, %v; want w/9 with seq 7", ev, ok)
	}
	sub.Cancel()
	must(t, s.Put("workers", "w/10", nil, t0))
	if sub.Len() != 0 {
		t.Fatal("cancelled subscription still receives events")
	}
}

// TestClockSkewHoldBack: a write stamped beyond MaxSkew waits for local
// time; a full queue rejects instead of dropping silently, and the write
// comes again with anti-entropy.
func TestClockSkewHoldBack(t *testing.T) {
	fast := newTestStore(t, "fast", 1)
	must(t, fast.Put("ns", "k", []byte("future"), t0.Add(5*time.Second)))
	must(t, fast.Put("ns", "k2", []byte("future2"), t0.Add(5*time.Second)))
	delta, _, _ := fast.AppendDeltas(nil, 1<<20)

	s, err := New(Config{Actor: Actor{Name: "slow", Gen: 1}, MaxHeld: 1})
	must(t, err)
	must(t, s.Apply(delta, t0))
	if _, ok := s.Get("ns", "k"); ok {
		t.Fatal("write 5s ahead applied at once")
	}
	st := s.Stats()
	if st.Held != 1 || st.Rejected != 1 {
		t.Fatalf("stats %+v, want 1 held and 1 rejected", st)
	}
	s.Tick(t0.Add(3 * time.Second))
	if _, ok := s.Get("ns", "k"); ok {
		t.Fatal("held write released while still 2s ahead")
	}
	s.Tick(t0.Add(4 * time.Second))
	if v, ok := s.Get("ns", "k"); !ok || v != "future" {
		t.Fatalf("held write not released within skew: %q %v", v, ok)
	}
	if s.Stats().Released != 1 {
		t.Fatalf("Released = %d", s.Stats().Released)
	}
	if _, ok := s.Get("ns", "k2"); ok {
		t.Fatal("rejected write appeared")
	}
	exchange(t, fast, s, t0.Add(4*time.Second), 1<<20)
	if v, ok := s.Get("ns", "k2"); !ok || v != "future2" {
		t.Fatalf("rejected write did not come again with anti-entropy: %q %v", v, ok)
	}
	// The local clock moved past what it accepted.
	must(t, s.Put("ns", "k", []byte("mine"), t0))
	if v, _ := s.Get("ns", "k"); v != "mine" {
		t.Fatalf("local write after a held one lost: %q", v)
	}
}

func TestCounters(t *testing.T) {
	const window = 10 * time.Second
	a, b := newTestStore(t, "a", 1), newTestStore(t, "b", 1)
	now := t0
	ok, rem, reset := a.Take("rpm", 4, 10, window, now)
	if !ok || rem != 6 || !reset.Equal(t0.Truncate(window).Add(window)) {
		t.Fatalf("Take = %v, %d, %v", ok, rem, reset)
	}
	b.Take("rpm", 3, 10, window, now)
	d, _, _ := a.AppendDeltas(nil, 1<<20)
	must(t, b.Apply(d, now))
	must(t, b.Apply(d, now)) // duplicates change nothing
	if got := b.Count("rpm", window, now); got != 7 {
		t.Fatalf("b counts %d, want 7", got)
	}
	if ok, rem, _ := b.Take("rpm", 4, 10, window, now); ok || rem != 3 {
		t.Fatalf("over-limit Take = %v, %d; want refused with 3 left", ok, rem)
	}
	if ok, rem, _ := b.Take("rpm", 3, 10, window, now); !ok || rem != 0 {
		t.Fatalf("Take to the limit = %v, %d", ok, rem)
	}
	// A new window starts from zero; old slots are dropped.
	next := now.Truncate(window).Add(window)
	if ok, rem, _ := b.Take("rpm", 1, 10, window, next); !ok || rem != 9 {
		t.Fatalf("Take in the next window = %v, %d", ok, rem)
	}
	must(t, b.Apply(d, next)) // a delta of the old window
	if got := b.Count("rpm", window, next); got != 1 {
		t.Fatalf("old window's slot merged into the new one: count %d", got)
	}
}

func TestTakeAllocs(t *testing.T) {
	s := newTestStore(t, "a", 1)
	s.Take("rpm", 1, 1<<40, time.Minute, t0)
	allocs := testing.AllocsPerRun(100, func() { s.Take("rpm", 1, 1<<40, time.Minute, t0) })
	if allocs != 0 {
		t.Fatalf("Take allocates %.1f times", allocs)
	}
}

func TestCounterMergeWindows(t *testing.T) {
	const minute = 60000
	w := uint64(t0.UnixMilli()) / minute
	tests := []struct {
		name          string
		windowMs, win uint64
		want          uint64 // Count for a one-minute window at t0
	}{
		{"same window", minute, w, 5 + 7},
		{"older window dropped", minute, w - 1, 5},
		{"newer window replaces", minute, w + 1, 0},
		{"longer window later start replaces", 2 * minute, w/2 + 1, 0},
		{"shorter window earlier start ignored", 1000, (w*minute)/1000 - 1, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestStore(t, "a", 1)
			s.Take("rpm", 5, 100, time.Minute, t0)
			b := newTestStore(t, "b", 1)
			d := &Delta{Actors: []Actor{b.Self()}, Counters: []CounterDelta{{Limiter: []byte("rpm"), WindowMs: tt.windowMs, Window: tt.win, Count: 7}}}
			must(t, s.ApplyDelta(d, t0))
			if got := s.Count("rpm", time.Minute, t0); got != tt.want {
				t.Fatalf("Count = %d, want %d", got, tt.want)
			}
		})
	}
	s := newTestStore(t, "a", 1)
	s.Take("rpm", 5, 100, time.Minute, t0)
	s.AppendDeltas(nil, 1<<20)
	s.Tick(t0.Add(3 * time.Minute))
	if len(s.limiters) != 0 {
		t.Fatal("Tick kept a limiter whose window ended")
	}
}

func TestRestoreTellsSubscribers(t *testing.T) {
	s := newTestStore(t, "a", 1)
	must(t, s.Put("ns", "k", []byte("v"), t0))
	snap := s.AppendSnapshot(nil)
	sub := s.Subscribe("ns", "", 4)
	must(t, s.Put("ns", "k2", []byte("v"), t0))
	must(t, s.Restore(snap))
	if ev, ok := sub.Next(); !ok || !ev.Lagged {
		t.Fatalf("after Restore got %+v, %v; want Lagged", ev, ok)
	}
	must(t, s.Put("ns", "k3", []byte("v"), t0))
	if ev, ok := sub.Next(); !ok || ev.Key != "k3" {
		t.Fatalf("subscription dead after Restore: %+v, %v", ev, ok)
	}
	if _, ok := s.Get("ns", "k2"); ok {
		t.Fatal("Restore kept a write made after the snapshot")
	}
	if got := s.Actors(); len(got) != 1 || got[0] != s.Self() {
		t.Fatalf("Actors() = %v", got)
	}
}

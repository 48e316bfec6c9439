package replica_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/meshnode/meshnode/replica"
	"github.com/meshnode/meshnode/store"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func newEngine(t *testing.T, name string) *replica.Engine {
	t.Helper()
	st, err := store.New(store.Config{Actor: store.Actor{Name: name, Gen: 1}})
	if err != nil {
		t.Fatal(err)
	}
	return replica.New(st, nil, replica.Config{CollectInterval: 10 * time.Second, Horizon: time.Minute})
}

// exchange runs one anti-entropy exchange, opener first, as node and the
// simulation do.
func exchange(t *testing.T, opener, peer *replica.Engine, now time.Time) {
	t.Helper()
	for _, p := range [][2]*replica.Engine{{opener, peer}, {peer, opener}} {
		puller, server := p[0], p[1]
		for more, pages := true, 0; more; pages++ {
			if pages == 100 {
				t.Fatal("exchange did not finish")
			}
			var page []byte
			var err error
			page, more, err = server.Answer(nil, puller.AppendDigest(nil), now)
			if err != nil {
				t.Fatal(err)
			}
			if err := puller.Apply(page, now); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestEngineCollectsOverEveryKnownMember pins the rule the engine applies
// for node: a member that is dead, and whose digest never arrived, holds
// back collection until the horizon (60 s) has passed since it was last
// alive, or, when that time is unknown, since the store first heard of it;
// then the tombstone goes after two rounds (every 10 s from 10 s).
func TestEngineCollectsOverEveryKnownMember(t *testing.T) {
	tests := []struct {
		name  string
		since time.Time // when c was declared dead
		want  []int     // seconds at which a tombstone was collected
	}{
		// Past the horizon from 61 s: the round at 70 s starts the
		// two-phase check, the one at 80 s collects.
		{"dead since t0", t0, []int{80}},
		// First heard of at the round at 10 s: gone from 71 s.
		{"dead since unknown", time.Time{}, []int{90}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := newEngine(t, "a"), newEngine(t, "b")
			c := store.Actor{Name: "c", Gen: 1}
			if err := a.Store().Put("ns", "k", []byte("v"), t0); err != nil {
				t.Fatal(err)
			}
			if err := a.Store().Delete("ns", "k", t0); err != nil {
				t.Fatal(err)
			}
			members := []replica.Member{
				{Actor: a.Store().Self(), Live: true},
				{Actor: b.Store().Self(), Live: true},
				{Actor: c, Live: false, Since: tt.since}, // never heard from
			}
			a.SetMembers(members)
			var collected []int
			for s := 0; s <= 120; s++ {
				now := t0.Add(time.Duration(s) * time.Second)
				if s%2 == 0 {
					exchange(t, a, b, now)
				}
				if a.Tick(now).Collected > 0 {
					collected = append(collected, s)
				}
			}
			if diff := cmp.Diff(tt.want, collected); diff != "" {
				t.Errorf("seconds at which a tombstone was collected (-want +got):\n%s", diff)
			}
		})
	}
}

func TestEngineFlush(t *testing.T) {
	e := newEngine(t, "a")
	for _, k := range []string{"k1", "k2", "k3"} {
		if err := e.Store().Put("ns", k, make([]byte, 600), t0); err != nil {
			t.Fatal(err)
		}
	}
	deltas := e.Flush(1000)
	if len(deltas) != 3 {
		t.Fatalf("%d deltas for 3 writes of 600 bytes in a budget of 1000, want 3", len(deltas))
	}
	if more := e.Flush(1000); len(more) != 0 {
		t.Fatalf("second flush returned %d deltas, want none", len(more))
	}
	b := newEngine(t, "b")
	for _, d := range deltas {
		if err := b.Apply(d, t0); err != nil {
			t.Fatal(err)
		}
	}
	if got := len(b.Store().List("ns", "")); got != 3 {
		t.Fatalf("receiver holds %d keys, want 3", got)
	}
}

func TestAnswerRefusesGarbage(t *testing.T) {
	e := newEngine(t, "a")
	if _, _, err := e.Answer(nil, []byte{0xc1, 0x00}, t0); err == nil {
		t.Fatal("Answer accepted a malformed digest")
	}
}

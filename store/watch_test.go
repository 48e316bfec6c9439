package store

import (
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestObserve(t *testing.T) {
	s := newTestStore(t, "a", 1)
	var got []string
	obs := s.Observe(func(ev Event) {
		got = append(got, fmt.Sprintf("%s/%s=%q deleted=%v lagged=%v", ev.Namespace, ev.Key, ev.Value, ev.Deleted, ev.Lagged))
	})
	snap := s.AppendSnapshot(nil)
	must(t, s.Put("ns", "k", []byte("v"), t0))
	must(t, s.Put("other", "x", []byte("y"), t0))
	must(t, s.Delete("ns", "k", t0))
	// Remote writes reach the observer too, in the order they apply.
	b := newTestStore(t, "b", 1)
	must(t, b.Put("ns", "r", []byte("remote"), t0))
	exchange(t, b, s, t0, 1<<20)
	must(t, s.Restore(snap))
	obs.Cancel()
	must(t, s.Put("ns", "after", []byte("cancel"), t0))
	want := []string{
		`ns/k="v" deleted=false lagged=false`,
		`other/x="y" deleted=false lagged=false`,
		`ns/k="" deleted=true lagged=false`,
		`ns/r="remote" deleted=false lagged=false`,
		`/="" deleted=false lagged=true`,
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("observed (-want +got):\n%s", d)
	}
}

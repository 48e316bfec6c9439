package history

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestCheck(t *testing.T) {
	var h History
	h.Add(Write{Node: "a", Key: "k", Value: "k1", Stamp: 1, Actor: "a", Gen: 1})
	h.Add(Write{Node: "b", Key: "k", Value: "k2", Stamp: 2, Actor: "b", Gen: 1})
	h.Add(Write{Node: "a", Key: "d", Value: "d1", Stamp: 1, Actor: "a", Gen: 1})
	h.Add(Write{Node: "b", Key: "d", Deleted: true, Stamp: 3, Actor: "b", Gen: 1})
	// Same stamp: the greater actor name wins.
	h.Add(Write{Node: "a", Key: "t", Value: "t-a", Stamp: 5, Actor: "a", Gen: 1})
	h.Add(Write{Node: "b", Key: "t", Value: "t-b", Stamp: 5, Actor: "b", Gen: 1})
	tests := []struct {
		name  string
		final map[string]string
		want  []string // rule of each violation, in order
	}{
		{"exact", map[string]string{"k": "k2", "t": "t-b"}, nil},
		{"lost", map[string]string{"t": "t-b"}, []string{"lost"}},
		{"stale", map[string]string{"k": "k1", "t": "t-a"}, []string{"stale", "stale"}},
		{"resurrected", map[string]string{"k": "k2", "t": "t-b", "d": "d1"}, []string{"resurrected"}},
		{"unknown", map[string]string{"k": "k2", "t": "t-b", "x": "?"}, []string{"unknown"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, v := range h.Check(map[string]map[string]string{"n": tt.final}) {
				got = append(got, v.Rule)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("violations (-want +got):\n%s", diff)
			}
		})
	}
}

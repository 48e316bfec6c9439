//go:build linux

package faults

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestHistoryCheck pins the checker itself (it runs without MESHNODE_FAULTS):
// a checker that cannot fail proves nothing.
func TestHistoryCheck(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	put := func(key, v, node string, sent, acked int) op {
		return op{key: key, value: v, node: node, sent: at(sent), acked: at(acked)}
	}
	del := func(key, node string, sent, acked int) op {
		return op{key: key, del: true, node: node, sent: at(sent), acked: at(acked)}
	}
	tests := []struct {
		name  string
		ops   []op
		state map[string]string
		want  []string
	}{
		{
			name:  "all there",
			ops:   []op{put("a", "1", "n0", 0, 2), put("b", "2", "n3", 0, 2)},
			state: map[string]string{"a": "1", "b": "2"},
		},
		{
			name:  "lost write",
			ops:   []op{put("a", "1", "n0", 0, 2), put("b", "2", "n3", 0, 2)},
			state: map[string]string{"a": "1"},
			want:  []string{`key "b": absent, want "2" from n3`},
		},
		{
			name:  "later write wins",
			ops:   []op{put("same", "A", "n0", 0, 2), put("same", "B", "n3", 1000, 1002)},
			state: map[string]string{"same": "A"},
			want:  []string{`key "same": "A", want "B" from n3`},
		},
		{
			name:  "overlapping writes: either",
			ops:   []op{put("same", "A", "n0", 0, 20), put("same", "B", "n3", 10, 30)},
			state: map[string]string{"same": "A"},
		},
		{
			name:  "resurrection",
			ops:   []op{put("k", "1", "n0", 0, 2), del("k", "n1", 100, 102)},
			state: map[string]string{"k": "1"},
			want:  []string{`key "k": "1", want deleted on n1`},
		},
		{
			name:  "deleted stays deleted",
			ops:   []op{put("k", "1", "n0", 0, 2), del("k", "n1", 100, 102)},
			state: map[string]string{},
		},
		{
			name:  "key from nowhere",
			state: map[string]string{"x": "?"},
			want:  []string{`key "x": "?", never written`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHistory()
			for _, o := range tt.ops {
				h.record(o)
			}
			if diff := cmp.Diff(tt.want, h.check(tt.state)); diff != "" {
				t.Errorf("check (-want +got):\n%s", diff)
			}
		})
	}
}

package radix

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestBatchRoundTrip(t *testing.T) {
	var b Batch
	b.Add(Delta{Op: OpInsert, Worker: "w1", Epoch: 3, Stamp: 1000, Pages: []uint64{1, 2, 3}})
	b.Add(Delta{Op: OpInsert, Worker: "w1", Epoch: 3, Stamp: 1001, Anchor: 3, Pages: []uint64{4}}) // merges
	b.Add(Delta{Op: OpTouch, Worker: "w1", Epoch: 3, Stamp: 1005, Anchor: 4})                      // folds in
	b.Add(Delta{Op: OpTouch, Worker: "w2", Epoch: 0, Stamp: 999, Anchor: 1 << 63})
	b.Add(Delta{Op: OpInsert, Worker: "w3", Epoch: 1, Stamp: 7, Pages: []uint64{9}})
	b.Add(Delta{Op: OpRemove, Worker: "w3", Epoch: 1}) // drops w3's insert
	want := []Delta{
		{Op: OpInsert, Worker: "w1", Epoch: 3, Stamp: 1005, Pages: []uint64{1, 2, 3, 4}},
		{Op: OpTouch, Worker: "w2", Epoch: 0, Stamp: 999, Anchor: 1 << 63},
		{Op: OpRemove, Worker: "w3", Epoch: 1},
	}
	if diff := cmp.Diff(want, b.Deltas, cmpopts.EquateEmpty()); diff != "" {
		t.Fatalf("coalesced batch (-want +got):\n%s", diff)
	}
	buf, err := AppendBatch(nil, &b)
	if err != nil {
		t.Fatal(err)
	}
	var got Batch
	if err := DecodeBatch(&got, buf, DefaultLimits()); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got.Deltas, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("decoded (-want +got):\n%s", diff)
	}
}

// TestDeltaSizes checks the marginal size of each delta in a batch against
// the targets (stamps within 127 of the batch's smallest).
func TestDeltaSizes(t *testing.T) {
	name := "worker-17.example"
	size := func(ds ...Delta) int {
		var b Batch
		b.Deltas = ds
		buf, err := AppendBatch(nil, &b)
		if err != nil {
			t.Fatal(err)
		}
		return len(buf)
	}
	base := Delta{Op: OpTouch, Worker: name, Epoch: 2, Stamp: 1_700_000_000, Anchor: 0xfedcba9876543210}
	empty := size(base)
	pages := make([]uint64, 30)
	for i := range pages {
		pages[i] = uint64(i+1) * 0x9E3779B97F4A7C15
	}
	tests := []struct {
		name  string
		d     Delta
		limit int
	}{
		{"insert 1 page", Delta{Op: OpInsert, Worker: name, Epoch: 2, Stamp: 1_700_000_100, Anchor: 0xfedcba9876543210, Pages: pages[:1]}, 16 + 8},
		{"insert 30 pages", Delta{Op: OpInsert, Worker: name, Epoch: 2, Stamp: 1_700_000_100, Anchor: 0xfedcba9876543210, Pages: pages}, 16 + 8*30},
		{"insert at root", Delta{Op: OpInsert, Worker: name, Epoch: 2, Stamp: 1_700_000_100, Pages: pages[:4]}, 16 + 8*4},
		{"touch", Delta{Op: OpTouch, Worker: name, Epoch: 2, Stamp: 1_700_000_100, Anchor: 0xfedcba9876543210}, 16},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := size(base, tc.d) - empty; got > tc.limit {
				t.Errorf("marginal size %d bytes, limit %d", got, tc.limit)
			}
		})
	}
	t.Run("remove", func(t *testing.T) {
		other := "another-worker"
		got := size(base, Delta{Op: OpRemove, Worker: other, Epoch: 9}) - empty
		if got > 16+len(other) {
			t.Errorf("remove of a new worker: %d bytes, limit %d", got, 16+len(other))
		}
	})
}

func TestDecodeBatchErrors(t *testing.T) {
	good, err := AppendBatch(nil, &Batch{Deltas: []Delta{
		{Op: OpInsert, Worker: "w", Stamp: 5, Pages: []uint64{1, 2}},
		{Op: OpTouch, Worker: "w", Stamp: 6, Anchor: 2},
	}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		data []byte
		lim  Limits
	}{
		{"empty", nil, DefaultLimits()},
		{"truncated", good[:len(good)-3], DefaultLimits()},
		{"trailing", append(append([]byte(nil), good...), 0), DefaultLimits()},
		{"not an array", []byte{0xc0}, DefaultLimits()},
		{"bad version", []byte{0x94, 0x02, 0x90, 0x00, 0x90}, DefaultLimits()},
		{"huge worker count", []byte{0x94, 0x01, 0xdd, 0xff, 0xff, 0xff, 0xff}, DefaultLimits()},
		{"huge delta count", []byte{0x94, 0x01, 0x90, 0x00, 0xdd, 0x00, 0xff, 0xff, 0xff}, DefaultLimits()},
		{"worker over limit", good, Limits{MaxWorkers: 0, MaxDeltas: 10, MaxPages: 10}},
		{"pages over limit", good, Limits{MaxWorkers: 10, MaxDeltas: 10, MaxPages: 1}},
		{"deltas over limit", good, Limits{MaxWorkers: 10, MaxDeltas: 1, MaxPages: 10}},
		{"delta without workers", []byte{0x94, 0x01, 0x90, 0x00, 0x91, 0x92, 0x03, 0x00}, DefaultLimits()},
		{"unknown op", []byte{0x94, 0x01, 0x91, 0x92, 0xa1, 'w', 0x00, 0x00, 0x91, 0x92, 0x07, 0x00}, DefaultLimits()},
		{"worker ref out of range", []byte{0x94, 0x01, 0x91, 0x92, 0xa1, 'w', 0x00, 0x00, 0x91, 0x92, 0x03, 0x01}, DefaultLimits()},
		{"touch of page 0", []byte{0x94, 0x01, 0x91, 0x92, 0xa1, 'w', 0x00, 0x00, 0x91, 0x94, 0x02, 0x00, 0x00, 0x00}, DefaultLimits()},
		{"empty name", []byte{0x94, 0x01, 0x91, 0x92, 0xa0, 0x00, 0x00, 0x90}, DefaultLimits()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b Batch
			err := DecodeBatch(&b, tc.data, tc.lim)
			if !errors.Is(err, ErrDecode) {
				t.Fatalf("DecodeBatch = %v, want ErrDecode", err)
			}
			if !strings.HasPrefix(err.Error(), "radix: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
			if len(b.Deltas) != 0 {
				t.Errorf("failed decode left %d deltas", len(b.Deltas))
			}
		})
	}
}

func TestDigestRoundTrip(t *testing.T) {
	ix := New(Config{})
	if _, err := ix.Insert("b", 1, 5, []uint64{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	if _, err := ix.Insert("a", 0, 9, []uint64{1, 2, 4}); err != nil {
		t.Fatal(err)
	}
	if _, err := ix.RemoveWorker("c", 4); err != nil {
		t.Fatal(err)
	}
	d := ix.Digest()
	want := Digest{
		{Worker: "a", Pages: 3, MaxStamp: 9, Sum: d[0].Sum},
		{Worker: "b", Epoch: 1, Pages: 3, MaxStamp: 5, Sum: d[1].Sum},
		{Worker: "c", Epoch: 4, Removed: true},
	}
	if diff := cmp.Diff(want, d); diff != "" {
		t.Fatalf("digest (-want +got):\n%s", diff)
	}
	got, err := DecodeDigest(AppendDigest(nil, d), DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(d, got); diff != "" {
		t.Errorf("decoded digest (-want +got):\n%s", diff)
	}
	// Raising one stamp changes the sum, and only that worker differs.
	if _, err := ix.Touch("a", 0, 10, 2); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"a"}, Difference(d, ix.Digest())); diff != "" {
		t.Errorf("Difference after a touch (-want +got):\n%s", diff)
	}
	unsorted := AppendDigest(nil, Digest{{Worker: "b"}, {Worker: "a"}})
	if _, err := DecodeDigest(unsorted, DefaultLimits()); !errors.Is(err, ErrDecode) {
		t.Errorf("unsorted digest: %v, want ErrDecode", err)
	}
}

func TestDifference(t *testing.T) {
	a := Digest{{Worker: "a", Pages: 1}, {Worker: "b", Pages: 2}, {Worker: "d"}}
	b := Digest{{Worker: "b", Pages: 3}, {Worker: "c"}, {Worker: "d"}}
	if diff := cmp.Diff([]string{"a", "b", "c"}, Difference(a, b)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if got := Difference(a, a); len(got) != 0 {
		t.Errorf("Difference(a, a) = %v", got)
	}
}

func TestSnapshot(t *testing.T) {
	rng := newTestRand(9)
	u := newUniverse(rng, 30, 16)
	ix := New(Config{WorkerPages: 40})
	for i, p := range u.prompts {
		if _, err := ix.Insert([]string{"a", "b", "c"}[i%3], 1, uint32(i), p); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ix.RemoveWorker("gone", 2); err != nil {
		t.Fatal(err)
	}
	snap, err := ix.AppendSnapshot(nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Restore(Config{WorkerPages: 40}, snap)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(ix.Digest(), got.Digest()); diff != "" {
		t.Errorf("restored digest (-want +got):\n%s", diff)
	}
	for _, q := range u.prompts {
		if diff := cmp.Diff(matchSorted(ix, q), matchSorted(got, q)); diff != "" {
			t.Fatalf("restored Match (-want +got):\n%s", diff)
		}
	}
	small, err := Restore(Config{WorkerPages: 5}, snap)
	if err != nil {
		t.Fatalf("restore with smaller budgets: %v", err)
	}
	for _, s := range small.Digest() {
		if s.Pages > 5 {
			t.Errorf("restored with budget 5, %s holds %d pages", s.Worker, s.Pages)
		}
	}
	flip := func(i int) []byte { b := append([]byte(nil), snap...); b[i] ^= 1; return b }
	tests := []struct {
		name string
		data []byte
		want error
	}{
		{"short", snap[:5], ErrSnapshotMagic},
		{"magic", flip(0), ErrSnapshotMagic},
		{"version", flip(4), ErrSnapshotVersion},
		{"checksum", flip(len(snap) - 1), ErrSnapshotChecksum},
		{"truncated", snap[:len(snap)-8], ErrSnapshotChecksum},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ix, err := Restore(Config{}, tc.data)
			if !errors.Is(err, tc.want) || ix != nil {
				t.Errorf("Restore = %v, %v; want nil, %v", ix, err, tc.want)
			}
		})
	}
}

func TestBatchManyWorkers(t *testing.T) {
	var b Batch
	for i := range 200 {
		w := fmt.Sprintf("w%d", i%40)
		b.Deltas = append(b.Deltas, Delta{Op: OpTouch, Worker: w, Epoch: uint64(i % 3), Stamp: uint32(i), Anchor: uint64(i + 1)})
	}
	buf, err := AppendBatch(nil, &b)
	if err != nil {
		t.Fatal(err)
	}
	var got Batch
	if err := DecodeBatch(&got, buf, DefaultLimits()); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(b.Deltas, got.Deltas, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

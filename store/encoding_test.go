package store

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/vmihailenco/msgpack/v5"
)

func sampleDelta() *Delta {
	return &Delta{
		Actors: []Actor{{Name: "n1", Gen: 7}, {Name: "n2", Gen: 1 << 40}},
		Floor:  []SeqOf{{Actor: 1, Seq: 3}},
		Ranges: []Range{{Actor: 0, From: 0, To: 9}, {Actor: 1, From: 300, To: 70000}},
		Entries: []DeltaEntry{
			{Namespace: []byte("workers"), Key: []byte("w/1"), Value: []byte("x"), Stamp: 1 << 50, Actor: 0, Seq: 9},
			{Namespace: []byte("workers"), Key: bytes.Repeat([]byte("k"), 40), Value: bytes.Repeat([]byte{0xff}, 300), Stamp: 5, Actor: 1, Seq: 1 << 33},
			{Namespace: []byte("config"), Key: []byte("gone"), Deleted: true, Stamp: 6, Actor: 1, Seq: 2},
		},
		Counters: []CounterDelta{{Limiter: []byte("rpm"), WindowMs: 60000, Window: 29_000_000, Actor: 1, Count: 1234}},
	}
}

func TestDeltaRoundTrip(t *testing.T) {
	want := sampleDelta()
	b := AppendDelta([]byte("prefix"), want)
	var got Delta
	must(t, DecodeDelta(b[len("prefix"):], &got))
	if d := cmp.Diff(want, &got); d != "" {
		t.Fatalf("round trip (-want +got):\n%s", d)
	}
	// Standard msgpack: a generic decoder reads the same structure.
	var generic []any
	must(t, msgpack.Unmarshal(b[len("prefix"):], &generic))
	if len(generic) != 6 || generic[0] != int8(1) {
		t.Fatalf("generic decode: %#v", generic)
	}
	ents := generic[4].([]any)
	if e := ents[2].([]any); e[2] != nil || e[1] != "gone" {
		t.Fatalf("tombstone as generic msgpack: %#v", e)
	}
}

func TestDeltaDecodeErrors(t *testing.T) {
	good := AppendDelta(nil, sampleDelta())
	patch := func(f func(d *Delta)) []byte {
		d := sampleDelta()
		f(d)
		return AppendDelta(nil, d)
	}
	tests := []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, ErrMalformed},
		{"truncated", good[:len(good)-1], ErrMalformed},
		{"trailing", append(append([]byte(nil), good...), 0), ErrMalformed},
		{"version", append([]byte{0x96, 0x02}, good[2:]...), ErrVersion},
		{"no actors", patch(func(d *Delta) { d.Actors = nil; d.Floor = nil; d.Ranges = nil; d.Entries = nil; d.Counters = nil }), ErrMalformed},
		{"actor ref", patch(func(d *Delta) { d.Entries[0].Actor = 2 }), ErrMalformed},
		{"zero seq", patch(func(d *Delta) { d.Entries[0].Seq = 0 }), ErrMalformed},
		{"empty key", patch(func(d *Delta) { d.Entries[0].Key = nil }), ErrMalformed},
		{"key too large", patch(func(d *Delta) { d.Entries[0].Key = make([]byte, MaxKeyBytes+1) }), ErrMalformed},
		{"value too large", patch(func(d *Delta) { d.Entries[0].Value = make([]byte, MaxValueBytes+1) }), ErrMalformed},
		{"empty range", patch(func(d *Delta) { d.Ranges[0].To = 0 }), ErrMalformed},
		{"zero window", patch(func(d *Delta) { d.Counters[0].WindowMs = 0 }), ErrMalformed},
		{"huge count", []byte{0x96, 0x01, 0xdd, 0xff, 0xff, 0xff, 0xff}, ErrMalformed},
		{"not an array", []byte{0xc0}, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var d Delta
			err := DecodeDelta(tt.b, &d)
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			s := newTestStore(t, "a", 1)
			if err := s.Apply(tt.b, t0); err == nil {
				t.Fatal("Apply accepted what DecodeDelta refused")
			}
		})
	}
}

func TestDigestRoundTrip(t *testing.T) {
	s := newTestStore(t, "a", 1)
	b := newTestStore(t, "b", 3)
	for i := range 3 {
		must(t, b.Put("ns", string(rune('k'+i)), []byte("v"), t0))
	}
	d, _, _ := b.AppendDeltas(nil, 1<<20)
	// Deliver b's writes out of order so the digest has a cloud.
	var dd Delta
	must(t, DecodeDelta(d, &dd))
	dd.Entries = dd.Entries[2:]
	dd.Ranges = nil
	must(t, s.ApplyDelta(&dd, t0))
	s.floor[0] = 1
	var got Digest
	must(t, DecodeDigest(s.AppendDigest(nil), &got))
	want := &Digest{
		Actors:  []Actor{{Name: "a", Gen: 1}, {Name: "b", Gen: 3}},
		Columns: []Column{{Actor: 1, Max: 0, Cloud: []Run{{3, 3}}}},
		Floor:   []SeqOf{{Actor: 0, Seq: 1}},
	}
	if diff := cmp.Diff(want, &got); diff != "" {
		t.Fatalf("digest (-want +got):\n%s", diff)
	}
	var again Digest
	must(t, DecodeDigest(AppendDigest(nil, &got), &again))
	if diff := cmp.Diff(want, &again); diff != "" {
		t.Fatalf("re-encoded digest (-want +got):\n%s", diff)
	}
}

// TestCounterDeltaSize: one limiter slot costs at most 16 bytes plus the
// limiter's name for windows up to a minute and counts below 65536; longer
// windows and larger counts cost up to two bytes more each.
func TestCounterDeltaSize(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		window time.Duration
		count  uint64
		max    int
	}{
		{time.Second, 100, 16},
		{time.Minute, 65535, 16},
		{time.Hour, 65535, 18},
		{time.Hour, 1 << 31, 20},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.window, tt.count), func(t *testing.T) {
			wms := windowMillis(tt.window)
			b := appendCounter(nil, "rpm", wms, nowMillis(now)/wms, 3, tt.count)
			if got := len(b) - len("rpm"); got > tt.max {
				t.Errorf("counter record is name + %d bytes, want <= %d", got, tt.max)
			}
		})
	}
}

func TestSnapshotRestore(t *testing.T) {
	a, b := newTestStore(t, "a", 1), newTestStore(t, "b", 1)
	must(t, a.Put("ns", "k", []byte("v"), t0))
	must(t, a.Put("other", "k2", bytes.Repeat([]byte("z"), 1000), t0))
	must(t, b.Put("ns", "k3", []byte("from b"), t0))
	must(t, a.Delete("ns", "gone", t0))
	a.Take("rpm", 5, 100, time.Hour, t0)
	antiEntropy(t, []*Store{a, b}, t0, 1<<20)
	a.floor[1] = 1
	snap := a.AppendSnapshot(nil)

	r := newTestStore(t, "a", 1)
	must(t, r.Restore(snap))
	sameState(t, "restored state differs", a, r)
	if r.Count("rpm", time.Hour, t0) != 5 {
		t.Fatal("counters not restored")
	}
	// The same generation continues its sequence.
	must(t, r.Put("ns", "k4", nil, t0))
	if r.seq != a.seq+1 {
		t.Fatalf("restored seq %d, want %d", r.seq, a.seq+1)
	}

	// Every corruption or truncation fails and changes nothing.
	before := viewOf(r)
	for i := range snap {
		t.Run("", func(t *testing.T) {
			bad := append([]byte(nil), snap...)
			bad[i] ^= 0x55
			if err := r.Restore(bad); err == nil {
				t.Fatalf("flipping byte %d went unnoticed", i)
			}
			if err := r.Restore(snap[:i]); !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrChecksum) {
				t.Fatalf("truncated at %d: %v", i, err)
			}
		})
		if i > 200 {
			break // the checksum covers the rest in the same way
		}
	}
	if d := cmp.Diff(before, viewOf(r)); d != "" {
		t.Fatalf("failed restores changed the store:\n%s", d)
	}
	if err := r.Restore(append([]byte(nil), snap[:len(snap)-1]...)); err == nil {
		t.Fatal("short by one byte restored")
	}
	bad := append([]byte(nil), snap...)
	bad[4] = 9
	if err := r.Restore(bad); !errors.Is(err, ErrVersion) {
		t.Fatalf("version 9: %v", err)
	}
}

func TestApplyDeltaRefusesBadDeltaWhole(t *testing.T) {
	d := sampleDelta()
	d.Floor = nil
	d.Entries[2].Seq = 0 // the first two entries are fine
	s := newTestStore(t, "a", 1)
	if err := s.ApplyDelta(d, t0); !errors.Is(err, ErrMalformed) {
		t.Fatalf("ApplyDelta: %v, want ErrMalformed", err)
	}
	if _, ok := s.Get("workers", "w/1"); ok || s.Count("rpm", time.Minute, t0) != 0 {
		t.Fatal("a refused delta was partly applied")
	}
}

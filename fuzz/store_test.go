package fuzz

import (
	"bytes"
	"testing"
	"time"

	"github.com/meshnode/meshnode/store"
)

// storeNow is the fixed time the store fuzz targets run at.
var storeNow = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

func storeNew(t *testing.T, name string) *store.Store {
	s, err := store.New(store.Config{Actor: store.Actor{Name: name, Gen: 1}})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// storeSeeds returns real encodings to seed the corpora: a delta, an
// anti-entropy page, a digest and a snapshot of a small store.
func storeSeeds(f *testing.F) (delta, page, digest, snap []byte) {
	a, err := store.New(store.Config{Actor: store.Actor{Name: "a", Gen: 1}})
	if err != nil {
		f.Fatal(err)
	}
	b, err := store.New(store.Config{Actor: store.Actor{Name: "b", Gen: 2}})
	if err != nil {
		f.Fatal(err)
	}
	_ = a.Put("workers", "w/1", []byte("http://10.0.0.1"), storeNow)
	_ = a.Put("config", "limit", []byte{0, 1, 2}, storeNow)
	_ = a.Delete("workers", "w/0", storeNow)
	a.Take("rpm", 3, 100, time.Minute, storeNow)
	delta, _, _ = a.AppendDeltas(nil, 1<<20)
	_ = b.Put("workers", "w/2", []byte("x"), storeNow)
	digest = b.AppendDigest(nil)
	var d store.Digest
	if err := store.DecodeDigest(digest, &d); err != nil {
		f.Fatal(err)
	}
	page, _ = a.AppendMissing(nil, &d, 1<<20)
	return delta, page, digest, a.AppendSnapshot(nil)
}

func FuzzStoreDelta(f *testing.F) {
	delta, page, _, _ := storeSeeds(f)
	f.Add(delta)
	f.Add(page)
	f.Fuzz(func(t *testing.T, b []byte) {
		var d store.Delta
		if store.DecodeDelta(b, &d) != nil {
			return
		}
		enc := store.AppendDelta(nil, &d)
		var d2 store.Delta
		if err := store.DecodeDelta(enc, &d2); err != nil {
			t.Fatalf("re-encoded delta does not decode: %v", err)
		}
		if enc2 := store.AppendDelta(nil, &d2); !bytes.Equal(enc, enc2) {
			t.Fatalf("delta encoding unstable:\n%x\n%x", enc, enc2)
		}
		// Applying it again changes nothing. When part of it was held back
		// or refused, the first apply claims no ranges (so nothing is lost)
		// and a later one may; from the second on, nothing changes.
		s := storeNew(t, "fuzz")
		if s.Apply(b, storeNow) != nil {
			return
		}
		st := s.Stats()
		clean := st.Held+st.Rejected+st.Stale == 0
		once := s.AppendSnapshot(nil)
		for i := range 2 {
			if err := s.Apply(b, storeNow); err != nil {
				t.Fatalf("apply %d failed: %v", i+2, err)
			}
			again := s.AppendSnapshot(nil)
			if (clean || i > 0) && !bytes.Equal(once, again) {
				t.Fatalf("apply %d changed the store", i+2)
			}
			once = again
		}
	})
}

func FuzzStoreDigest(f *testing.F) {
	_, _, digest, _ := storeSeeds(f)
	f.Add(digest)
	f.Fuzz(func(t *testing.T, b []byte) {
		var d store.Digest
		if store.DecodeDigest(b, &d) != nil {
			return
		}
		enc := store.AppendDigest(nil, &d)
		var d2 store.Digest
		if err := store.DecodeDigest(enc, &d2); err != nil {
			t.Fatalf("re-encoded digest does not decode: %v", err)
		}
		if enc2 := store.AppendDigest(nil, &d2); !bytes.Equal(enc, enc2) {
			t.Fatalf("digest encoding unstable:\n%x\n%x", enc, enc2)
		}
		// A store must answer any digest with a page that decodes.
		s := storeNew(t, "fuzz")
		_ = s.Put("ns", "k", []byte("v"), storeNow)
		if err := s.ObserveDigest(&d, storeNow); err != nil {
			return
		}
		page, _ := s.AppendMissing(nil, &d, 1<<16)
		var p store.Delta
		if err := store.DecodeDelta(page, &p); err != nil {
			t.Fatalf("page for a fuzzed digest does not decode: %v", err)
		}
	})
}

func FuzzStoreSnapshot(f *testing.F) {
	_, _, _, snap := storeSeeds(f)
	f.Add(snap)
	f.Fuzz(func(t *testing.T, b []byte) {
		s := storeNew(t, "fuzz")
		_ = s.Put("ns", "before", []byte("v"), storeNow)
		before := s.AppendSnapshot(nil)
		if err := s.Restore(b); err != nil {
			if after := s.AppendSnapshot(nil); !bytes.Equal(before, after) {
				t.Fatalf("failed restore (%v) changed the store", err)
			}
			return
		}
		enc := s.AppendSnapshot(nil)
		s2 := storeNew(t, "fuzz")
		if err := s2.Restore(enc); err != nil {
			t.Fatalf("re-encoded snapshot does not restore: %v", err)
		}
		if enc2 := s2.AppendSnapshot(nil); !bytes.Equal(enc, enc2) {
			t.Fatalf("snapshot encoding unstable:\n%x\n%x", enc, enc2)
		}
	})
}

package replica_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/meshnode/meshnode/radix"
	"github.com/meshnode/meshnode/replica"
	"github.com/meshnode/meshnode/store"
)

func indexEngine(t *testing.T, name string) (*replica.Engine, *radix.Index) {
	t.Helper()
	st, err := store.New(store.Config{Actor: store.Actor{Name: name, Gen: 1}})
	if err != nil {
		t.Fatal(err)
	}
	ix := radix.New(radix.Config{})
	return replica.New(st, ix, replica.Config{}), ix
}

// indexPull runs the index half of an exchange: puller's digest, the
// other side's batches, applied in order.
func indexPull(t *testing.T, puller, server *replica.Engine) int {
	t.Helper()
	pages, err := server.AnswerIndex(puller.AppendIndexDigest(nil), time.Unix(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		b, ok, err := pages.Next(nil)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			return n
		}
		n++
		if err := puller.ApplyIndexPage(b); err != nil {
			t.Fatal(err)
		}
	}
}

// TestIndexExchange: one index pull leaves the puller with the other
// side's holdings of every worker that differed, in batches of bounded
// size; a second pull ships nothing.
func TestIndexExchange(t *testing.T) {
	a, ixA := indexEngine(t, "a")
	b, ixB := indexEngine(t, "b")
	// w1: 6000 pages in chains of 100 on a, 48 KB, more than one batch
	// (replica.IndexBatchBytes); w2 on both, different; w3 only on b.
	for c := range 60 {
		pages := make([]uint64, 100)
		for i := range pages {
			pages[i] = uint64(c)<<32 | uint64(i+1)
		}
		if _, err := ixA.Insert("w1", 1, 10, pages); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ixA.Insert("w2", 1, 10, []uint64{1<<60 | 7, 1<<60 | 8, 1<<60 | 9}); err != nil {
		t.Fatal(err)
	}
	if _, err := ixB.Insert("w2", 1, 11, []uint64{1<<60 | 7}); err != nil {
		t.Fatal(err)
	}
	if _, err := ixB.Insert("w3", 1, 10, []uint64{1<<61 | 5}); err != nil {
		t.Fatal(err)
	}
	if n := indexPull(t, b, a); n < 3 {
		t.Errorf("%d batches for 6003 pages of 2 workers, want at least 3", n)
	}
	if n := indexPull(t, a, b); n == 0 {
		t.Error("no batch for w3, which only b holds")
	}
	if diff := cmp.Diff(ixA.Digest(), ixB.Digest()); diff != "" {
		t.Errorf("digests differ after pulls both ways (-a +b):\n%s", diff)
	}
	if n := indexPull(t, b, a); n != 0 {
		t.Errorf("second pull shipped %d batches, want none", n)
	}
}

func TestIndexStepsWithoutIndex(t *testing.T) {
	e := newEngine(t, "a")
	if _, err := e.AnswerIndex(e.AppendIndexDigest(nil), time.Unix(0, 0)); err == nil {
		t.Error("AnswerIndex without an index: no error")
	}
	x, _ := indexEngine(t, "x")
	if _, err := x.AnswerIndex([]byte{0xc1}, time.Unix(0, 0)); err == nil {
		t.Error("AnswerIndex accepted a malformed digest")
	}
}

// TestIndexDeferBusyWorker: a worker whose holdings keep changing and that
// the puller nearly has is not shipped whole on every exchange (its deltas
// are in flight), but within IndexMaxDefer, or once it is quiet; a puller
// that lacks the worker gets it at once.
func TestIndexDeferBusyWorker(t *testing.T) {
	st, err := store.New(store.Config{Actor: store.Actor{Name: "s", Gen: 1}})
	if err != nil {
		t.Fatal(err)
	}
	ix := radix.New(radix.Config{})
	server := replica.New(st, ix, replica.Config{IndexSettle: 3 * time.Second, IndexMaxDefer: 30 * time.Second})
	puller, ixP := indexEngine(t, "p")
	empty, _ := indexEngine(t, "e")
	chain := uint64(0)
	grow := func(ix *radix.Index, n int) {
		pages := make([]uint64, n)
		for i := range pages {
			chain++
			pages[i] = chain<<20 | uint64(i+1)
		}
		if _, err := ix.Insert("w", 1, 10, pages); err != nil {
			t.Fatal(err)
		}
	}
	shipped := func(from *replica.Engine, at time.Duration) (bool, int) {
		t.Helper()
		p, err := server.AnswerIndex(from.AppendIndexDigest(nil), time.Unix(0, 0).Add(at))
		if err != nil {
			t.Fatal(err)
		}
		b, ok, err := p.Next(nil)
		if err != nil {
			t.Fatal(err)
		}
		_ = b
		return ok, p.Deferred
	}
	grow(ix, 2000)
	if ok, _ := shipped(puller, 0); !ok {
		t.Fatal("first answer: worker not shipped")
	}
	if _, err := puller.AnswerIndex(nil, time.Unix(0, 0)); err == nil {
		t.Fatal("AnswerIndex accepted an empty digest")
	}
	indexPull(t, puller, server)
	if len(ixP.Digest()) == 0 {
		t.Fatal("puller holds nothing after a pull")
	}
	// Busy: the server's worker changes every second; the puller's
	// differs by a few pages.
	at := time.Duration(0)
	for at < 29*time.Second {
		at += time.Second
		grow(ix, 10)
		ok, deferred := shipped(puller, at)
		if at == time.Second {
			// The first answer to a close puller ships: nothing was
			// shipped to one before.
			if !ok {
				t.Fatal("at 1s: the first close answer deferred")
			}
		} else if ok || deferred != 1 {
			t.Fatalf("at %v (busy, close): shipped=%v deferred=%d, want deferred", at, ok, deferred)
		}
		if ok, _ := shipped(empty, at); !ok {
			t.Fatalf("at %v: a puller without the worker was deferred", at)
		}
	}
	at += 2 * time.Second
	grow(ix, 10)
	if ok, _ := shipped(puller, at); !ok {
		t.Fatalf("at %v: not shipped within IndexMaxDefer", at)
	}
	// Quiet: shipped once the worker has not changed for IndexSettle.
	at += time.Second
	grow(ix, 10)
	if ok, _ := shipped(puller, at); ok {
		t.Fatalf("at %v: shipped again right after", at)
	}
	at += 3 * time.Second
	if ok, _ := shipped(puller, at); !ok {
		t.Fatalf("at %v: a quiet worker that differs not shipped", at)
	}
}

package replica_test

import (
	"testing"

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
	pages, err := server.AnswerIndex(puller.AppendIndexDigest(nil))
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
	if _, err := e.AnswerIndex(e.AppendIndexDigest(nil)); err == nil {
		t.Error("AnswerIndex without an index: no error")
	}
	x, _ := indexEngine(t, "x")
	if _, err := x.AnswerIndex([]byte{0xc1}); err == nil {
		t.Error("AnswerIndex accepted a malformed digest")
	}
}

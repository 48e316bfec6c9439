package engine

import (
	"encoding/binary"
	"testing"

	"github.com/cespare/xxhash/v2"
	"github.com/google/go-cmp/cmp"
)

// naiveHash is BlockHash written the obvious way, from its documentation.
func naiveHash(parent uint64, tokens []uint32) uint64 {
	b := binary.LittleEndian.AppendUint64(nil, parent)
	for _, t := range tokens {
		b = binary.LittleEndian.AppendUint32(b, t)
	}
	return xxhash.Sum64(b)
}

func seq(from, n int) []uint32 {
	t := make([]uint32, n)
	for i := range t {
		t[i] = uint32(from + i)
	}
	return t
}

func TestBlockHashMatchesItsDefinition(t *testing.T) {
	for _, n := range []int{0, 1, 16, 127, 128, 129, 512, 1000} {
		toks := seq(7, n)
		if got, want := BlockHash(42, toks), naiveHash(42, toks); got != want {
			t.Errorf("%d tokens: BlockHash %#x, definition %#x", n, got, want)
		}
	}
}

func TestAppendBlockHashes(t *testing.T) {
	a := seq(1, 40) // two full blocks of 16 and a partial one
	got := AppendBlockHashes(nil, 9, 16, a)
	h0 := naiveHash(9, a[:16])
	want := []uint64{h0, naiveHash(h0, a[16:32])}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("hashes (-want +got):\n%s", diff)
	}
	// The same second block after a different first block hashes apart.
	b := append(seq(100, 16), a[16:32]...)
	hb := AppendBlockHashes(nil, 9, 16, b)
	if hb[1] == got[1] {
		t.Error("a block's hash does not depend on its prefix")
	}
	if got := AppendBlockHashes(nil, 9, 16, a[:15]); len(got) != 0 {
		t.Errorf("a partial block was hashed: %v", got)
	}
}

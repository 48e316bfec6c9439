package radix

import (
	"encoding/binary"
	"testing"

	"github.com/cespare/xxhash/v2"
)

func TestXXH64Vectors(t *testing.T) {
	// Published XXH64 values (xxHash reference implementation).
	tests := []struct {
		in   string
		seed uint64
		want uint64
	}{
		{"", 0, 0xEF46DB3751D8E999},
		{"a", 0, 0xD24EC4F1A98C6E5B},
		{"abc", 0, 0x44BC2CF5AD770999},
		{"Nobody inspects the spammish repetition", 0, 0xFBCEA83C8A378BF1},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			if got := XXH64([]byte(tc.in), tc.seed); got != tc.want {
				t.Errorf("XXH64(%q, %d) = %#016x, want %#016x", tc.in, tc.seed, got, tc.want)
			}
		})
	}
}

// cespareXXH64 is XXH64 by github.com/cespare/xxhash/v2: Sum64 for seed 0,
// a seeded Digest otherwise.
func cespareXXH64(b []byte, seed uint64) uint64 {
	if seed == 0 {
		return xxhash.Sum64(b)
	}
	var d xxhash.Digest
	d.ResetWithSeed(seed)
	d.Write(b)
	return d.Sum64()
}

// TestXXH64MatchesCespare checks the hand-written XXH64 against the library
// it stands in for (see hash.go), over every length up to 300 bytes, so
// through every tail and both sides of the 32-byte stripe loop.
func TestXXH64MatchesCespare(t *testing.T) {
	b := make([]byte, 300)
	for i := range b {
		b[i] = byte(i*7 + 3)
	}
	for n := range len(b) + 1 {
		for _, seed := range []uint64{0, 1, 2, 255, 1 << 40, ^uint64(0)} {
			if got, want := XXH64(b[:n], seed), cespareXXH64(b[:n], seed); got != want {
				t.Fatalf("XXH64 of %d bytes, seed %d = %#x, cespare/xxhash %#x", n, seed, got, want)
			}
		}
	}
}

func TestTokenHashMatchesBytes(t *testing.T) {
	for n := 0; n <= 40; n++ {
		toks := make([]uint32, n)
		b := make([]byte, 4*n)
		for i := range toks {
			toks[i] = uint32(i*2654435761 + 7)
			binary.LittleEndian.PutUint32(b[4*i:], toks[i])
		}
		if got, want := xxh64Tokens(toks), XXH64(b, 0); got != want {
			t.Errorf("n=%d: xxh64Tokens = %#x, XXH64(bytes) = %#x", n, got, want)
		}
	}
}

func TestLineageMatchesBytes(t *testing.T) {
	var b [16]byte
	for _, pc := range [][2]uint64{{0, 0}, {1, 2}, {0xdeadbeef, 0xfeedface12345678}} {
		binary.LittleEndian.PutUint64(b[:8], pc[0])
		binary.LittleEndian.PutUint64(b[8:], pc[1])
		if got, want := lineage(pc[0], pc[1]), XXH64(b[:], 0); got != want && want != 0 {
			t.Errorf("lineage(%#x, %#x) = %#x, want %#x", pc[0], pc[1], got, want)
		}
	}
}

// TestPageVectors pins the page hashing of docs/wire.md (section 12).
func TestPageVectors(t *testing.T) {
	toks := make([]uint32, 40)
	for i := range toks {
		toks[i] = uint32(i)
	}
	got := AppendTokenPages(nil, TokenSeed("llama-3-8b"), 16, toks)
	want := []uint64{pageVector0, pageVector1}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("token pages of 0..39 (P=16, model llama-3-8b) = %#x, want %#x", got, want)
	}
	text := []byte("The quick brown fox jumps over the lazy dog. The quick brown fox jumps over the lazy dog.")
	gotText := AppendTextPages(nil, TextSeed("llama-3-8b"), 64, text)
	if len(gotText) != 1 || gotText[0] != textVector0 {
		t.Errorf("text pages = %#x, want [%#x]", gotText, textVector0)
	}
}

func TestPageHashingProperties(t *testing.T) {
	toks := make([]uint32, 100)
	for i := range toks {
		toks[i] = uint32(i * 31)
	}
	seed := TokenSeed("m")
	full := AppendTokenPages(nil, seed, 16, toks)
	if len(full) != 6 {
		t.Fatalf("100 tokens in pages of 16: got %d pages, want 6 (partial page not indexed)", len(full))
	}
	prefix := AppendTokenPages(nil, seed, 16, toks[:48])
	for i := range prefix {
		if prefix[i] != full[i] {
			t.Errorf("page %d of a prefix differs from the full prompt's", i)
		}
	}
	other := AppendTokenPages(nil, TokenSeed("n"), 16, toks)
	if other[0] == full[0] {
		t.Error("two models share a lineage hash for the same page")
	}
	toks2 := append([]uint32(nil), toks...)
	toks2[20]++
	changed := AppendTokenPages(nil, seed, 16, toks2)
	if changed[0] != full[0] || changed[1] == full[1] || changed[5] == full[5] {
		t.Error("changing page 1 must change lineage hashes from page 1 on and only those")
	}
}

// Vectors of docs/wire.md (section 12) (seed XXH64("llama-3-8b", 0) =
// 0xe39251d9742ebb6d, text seed XXH64("llama-3-8b", 1) = 0x14de80c735d5ccd8).
const (
	pageVector0 uint64 = 0xb618d000b06616a9
	pageVector1 uint64 = 0x814c63e7f8b4a283
	textVector0 uint64 = 0xd973b2a8c6933f6a
)

package radix

import (
	"encoding/binary"
	"math/bits"
)

// The page hash is XXH64 (Yann Collet's xxHash, 64-bit variant), pinned by
// the test vectors in docs/wire.md (section 12). It is written out here rather
// than taken from github.com/cespare/xxhash/v2, which computes the same values
// (TestXXH64MatchesCespare), because the library is slower on the page-hash
// path (BenchmarkXXH64; figures in bench/RESULTS.md, issue 11 items 9 and 10):
// a seeded hash needs its Digest, three times as slow as XXH64 below on a
// model name (TextSeed; node's payload hashes are seeded too); a token page
// would have to be copied out as bytes first (xxh64Tokens hashes the uint32s
// in place), more than twice as slow; and the 16-byte lineage step, unrolled
// here, is 14 % slower there. Only the unseeded hash of a 64-byte text page
// is faster in the library (by about 4 ns); taking it for that alone would
// keep two XXH64s in the tree.
const (
	prime1 uint64 = 0x9E3779B185EBCA87
	prime2 uint64 = 0xC2B2AE3D27D4EB4F
	prime3 uint64 = 0x165667B19E3779F9
	prime4 uint64 = 0x85EBCA77C2B2AE63
	prime5 uint64 = 0x27D4EB2F165667C5
)

// Default page sizes, used when a model has no configuration of its own.
const (
	DefaultPageTokens = 16
	DefaultPageBytes  = 64
)

func xxRound(acc, in uint64) uint64 {
	acc += in * prime2
	acc = bits.RotateLeft64(acc, 31)
	return acc * prime1
}

func xxMerge(acc, v uint64) uint64 {
	acc ^= xxRound(0, v)
	return acc*prime1 + prime4
}

func xxAvalanche(h uint64) uint64 {
	h ^= h >> 33
	h *= prime2
	h ^= h >> 29
	h *= prime3
	h ^= h >> 32
	return h
}

// XXH64 returns the XXH64 hash of b with the given seed.
func XXH64(b []byte, seed uint64) uint64 {
	n := len(b)
	var h uint64
	if n >= 32 {
		v1 := seed + prime1 + prime2
		v2 := seed + prime2
		v3 := seed
		v4 := seed - prime1
		for len(b) >= 32 {
			v1 = xxRound(v1, binary.LittleEndian.Uint64(b[0:]))
			v2 = xxRound(v2, binary.LittleEndian.Uint64(b[8:]))
			v3 = xxRound(v3, binary.LittleEndian.Uint64(b[16:]))
			v4 = xxRound(v4, binary.LittleEndian.Uint64(b[24:]))
			b = b[32:]
		}
		h = bits.RotateLeft64(v1, 1) + bits.RotateLeft64(v2, 7) + bits.RotateLeft64(v3, 12) + bits.RotateLeft64(v4, 18)
		h = xxMerge(h, v1)
		h = xxMerge(h, v2)
		h = xxMerge(h, v3)
		h = xxMerge(h, v4)
	} else {
		h = seed + prime5
	}
	h += uint64(n)
	for len(b) >= 8 {
		h ^= xxRound(0, binary.LittleEndian.Uint64(b))
		h = bits.RotateLeft64(h, 27)*prime1 + prime4
		b = b[8:]
	}
	if len(b) >= 4 {
		h ^= uint64(binary.LittleEndian.Uint32(b)) * prime1
		h = bits.RotateLeft64(h, 23)*prime2 + prime3
		b = b[4:]
	}
	for _, c := range b {
		h ^= uint64(c) * prime5
		h = bits.RotateLeft64(h, 11) * prime1
	}
	return xxAvalanche(h)
}

// xxh64Tokens is XXH64 of the little-endian bytes of toks with seed 0,
// computed without materialising the bytes.
func xxh64Tokens(toks []uint32) uint64 {
	n := len(toks) * 4
	var h uint64
	if n >= 32 {
		var seed uint64
		v1 := seed + prime1 + prime2
		v2 := prime2
		var v3 uint64
		v4 := seed - prime1
		for len(toks) >= 8 {
			t := toks[:8:8]
			v1 = xxRound(v1, uint64(t[0])|uint64(t[1])<<32)
			v2 = xxRound(v2, uint64(t[2])|uint64(t[3])<<32)
			v3 = xxRound(v3, uint64(t[4])|uint64(t[5])<<32)
			v4 = xxRound(v4, uint64(t[6])|uint64(t[7])<<32)
			toks = toks[8:]
		}
		h = bits.RotateLeft64(v1, 1) + bits.RotateLeft64(v2, 7) + bits.RotateLeft64(v3, 12) + bits.RotateLeft64(v4, 18)
		h = xxMerge(h, v1)
		h = xxMerge(h, v2)
		h = xxMerge(h, v3)
		h = xxMerge(h, v4)
	} else {
		h = prime5
	}
	h += uint64(n)
	for len(toks) >= 2 {
		h ^= xxRound(0, uint64(toks[0])|uint64(toks[1])<<32)
		h = bits.RotateLeft64(h, 27)*prime1 + prime4
		toks = toks[2:]
	}
	if len(toks) == 1 {
		h ^= uint64(toks[0]) * prime1
		h = bits.RotateLeft64(h, 23)*prime2 + prime3
	}
	return xxAvalanche(h)
}

// lineage returns L_i = XXH64(LE64(prev) || LE64(content), 0), with the
// reserved value 0 (the root anchor) replaced by 1. It is XXH64 of a 16-byte
// input unrolled.
func lineage(prev, content uint64) uint64 {
	h := prime5 + 16
	h ^= xxRound(0, prev)
	h = bits.RotateLeft64(h, 27)*prime1 + prime4
	h ^= xxRound(0, content)
	h = bits.RotateLeft64(h, 27)*prime1 + prime4
	h = xxAvalanche(h)
	if h == 0 {
		h = 1
	}
	return h
}

// TokenSeed returns the lineage seed L_-1 of token prompts for model:
// XXH64(model, 0).
func TokenSeed(model string) uint64 {
	return XXH64([]byte(model), 0)
}

// TextSeed returns the lineage seed L_-1 of text prompts for model:
// XXH64(model, 1), so that a text page never aliases a token page.
func TextSeed(model string) uint64 {
	return XXH64([]byte(model), 1)
}

// AppendTokenPages appends the lineage hashes of the full pages of toks
// (pageTokens tokens each) to dst. A partial last page is not hashed. The
// content hash of a page is XXH64 of its tokens as little-endian uint32s.
func AppendTokenPages(dst []uint64, seed uint64, pageTokens int, toks []uint32) []uint64 {
	if pageTokens <= 0 {
		pageTokens = DefaultPageTokens
	}
	l := seed
	for len(toks) >= pageTokens {
		l = lineage(l, xxh64Tokens(toks[:pageTokens]))
		dst = append(dst, l)
		toks = toks[pageTokens:]
	}
	return dst
}

// AppendTextPages appends the lineage hashes of the full pages of text
// (pageBytes bytes each) to dst. A partial last page is not hashed.
func AppendTextPages(dst []uint64, seed uint64, pageBytes int, text []byte) []uint64 {
	if pageBytes <= 0 {
		pageBytes = DefaultPageBytes
	}
	l := seed
	for len(text) >= pageBytes {
		l = lineage(l, XXH64(text[:pageBytes], 0))
		dst = append(dst, l)
		text = text[pageBytes:]
	}
	return dst
}

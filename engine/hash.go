package engine

import (
	"encoding/binary"

	"github.com/cespare/xxhash/v2"
)

// BlockHash returns the hash of one full block of tokens whose parent block
// has hash parent: XXH64 (seed 0) over LE64(parent) followed by LE32 of each
// token id. The first block of a prompt takes the cache's hash seed as its
// parent value (Config.HashSeed, 0 by default) but has no parent in its KV
// event.
//
// Like vLLM's block hash, it names a block together with its whole prefix:
// two prompts share block i's hash exactly when they share their first
// i+1 blocks of tokens.
func BlockHash(parent uint64, tokens []uint32) uint64 {
	var d xxhash.Digest
	d.Reset()
	var buf [512]byte
	b := binary.LittleEndian.AppendUint64(buf[:0], parent)
	for _, t := range tokens {
		if len(b)+4 > len(buf) {
			_, _ = d.Write(b)
			b = buf[:0]
		}
		b = binary.LittleEndian.AppendUint32(b, t)
	}
	_, _ = d.Write(b)
	return d.Sum64()
}

// AppendBlockHashes appends to dst the chain of hashes of the full blocks of
// tokens (blockTokens tokens each; a partial last block has none), the
// first chained to seed, and returns the extended slice.
func AppendBlockHashes(dst []uint64, seed uint64, blockTokens int, tokens []uint32) []uint64 {
	if blockTokens <= 0 {
		return dst
	}
	parent := seed
	for i := 0; i+blockTokens <= len(tokens); i += blockTokens {
		h := BlockHash(parent, tokens[i:i+blockTokens])
		dst = append(dst, h)
		parent = h
	}
	return dst
}

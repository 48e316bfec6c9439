package replay

import "github.com/meshnode/meshnode/radix"

// Model is the model name every replayed request uses: it seeds the page
// lineage hashes like a real model name does.
const Model = "replay"

// appendBlockTokens appends n synthetic token ids for the block id to dst.
// They depend only on the id, so equal ids give equal tokens, and the
// lineage hashes (radix's page hashing) make equal ids at the same
// position, after the same prefix, equal pages. Each token is a splitmix64
// output truncated to 32 bits.
func appendBlockTokens(dst []uint32, id uint64, n int) []uint32 {
	x := id*0x9E3779B97F4A7C15 + 0x632BE59BD9B4E019
	for range n {
		x += 0x9E3779B97F4A7C15
		z := x
		z = (z ^ z>>30) * 0xBF58476D1CE4E5B9
		z = (z ^ z>>27) * 0x94D049BB133111EB
		dst = append(dst, uint32(z^z>>31))
	}
	return dst
}

// AppendTokens appends the synthetic token ids of r's prompt
// (r.InputTokens of them, from blocks of blockTokens) to dst: what the
// replay sends engines and gateways as the prompt.
func AppendTokens(dst []uint32, r *Request, blockTokens int) []uint32 {
	return appendTokens(dst, r, blockTokens)
}

func appendTokens(dst []uint32, r *Request, blockTokens int) []uint32 {
	left := r.InputTokens
	for _, id := range r.Blocks {
		n := min(left, blockTokens)
		dst = appendBlockTokens(dst, id, n)
		left -= n
	}
	return dst
}

// appendPages appends the lineage hashes of r's full pages of pageTokens
// tokens, as a gateway computes them from the prompt's tokens.
func appendPages(dst []uint64, buf []uint32, r *Request, blockTokens, pageTokens int) ([]uint64, []uint32) {
	buf = appendTokens(buf[:0], r, blockTokens)
	return radix.AppendTokenPages(dst, radix.TokenSeed(Model), pageTokens, buf), buf
}

// blockLineage chains block ids like page lineage hashes chain pages: the
// i-th value names block i together with its whole prefix.
func blockLineage(prev, id uint64) uint64 {
	x := prev ^ (id+0x9E3779B97F4A7C15)*0xBF58476D1CE4E5B9
	x = (x ^ x>>31) * 0x94D049BB133111EB
	return x ^ x>>29
}

// InfiniteCacheHitRatio returns the hit ratio one engine with an unbounded
// prefix cache would reach on reqs in arrival order: a request's cached
// tokens are its leading full blocks that an earlier request already had
// at the same position after the same prefix, at most all its tokens but
// the last. No routing can do better
// (W engines of finite cache see a subset of what one unbounded engine
// does), so it is the trace's upper bound.
func InfiniteCacheHitRatio(reqs []Request, blockTokens int) float64 {
	seen := make(map[uint64]struct{})
	var cached, total int64
	for i := range reqs {
		r := &reqs[i]
		total += int64(r.InputTokens)
		full := r.InputTokens / blockTokens
		l, hit, n := uint64(0), true, 0
		for j, id := range r.Blocks {
			if j >= full {
				break
			}
			l = blockLineage(l, id)
			if _, ok := seen[l]; ok && hit {
				n++
				continue
			}
			hit = false
			seen[l] = struct{}{}
		}
		// Like the engines (and vLLM), at least the last prompt token is
		// computed.
		cached += int64(min(n*blockTokens, r.InputTokens-1))
	}
	if total == 0 {
		return 0
	}
	return float64(cached) / float64(total)
}

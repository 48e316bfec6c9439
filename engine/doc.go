// Package engine models an LLM inference engine's prefix cache and
// scheduling in virtual time: the deterministic core of `meshnode engine`
// (the emulator in engine/server) and of the engine model of `meshnode
// replay`.
//
// It does no I/O, starts no goroutines, reads no clock and uses no
// randomness: time is an argument (a time.Duration since an origin the
// caller picks) and what happens is returned as data.
//
// # Cache
//
// Cache is a prefix cache of a fixed number of blocks of B tokens, LRU by
// block, like vLLM's: only full blocks are cached; block i's hash is
// XXH64(LE64(hash of block i-1) || LE32 of each of its tokens), the first
// block chaining to a seed (0 by default), so a hash names a block with its
// whole prefix; a prompt's hit is its longest run of leading blocks present.
// Storing blocks emits a BlockStored event (hashes, parent, token ids,
// block size), evicting them a BlockRemoved event, and clearing an
// AllBlocksCleared event, in the shape of vLLM's KV events. The cache stays
// prefix-closed: eviction takes leaves before their parents.
//
// # Model
//
// Model is one engine: a FIFO queue, one prefill at a time at a rate in
// uncached tokens per second, decode at a rate in tokens per second per
// sequence, a batch limit, and a Cache. A request's cached tokens are its
// hit when its prefill starts; its blocks enter the cache when its prefill
// ends (its first token), which is why a follow-up that arrives while the
// previous turn is still queued misses it. TTFT = queue wait + uncached
// tokens / prefill rate. Defaults (DefaultConfig) are those of an 8B model
// on one GPU: 18750 blocks of 16 tokens (300k tokens), 10k prefill tokens/s,
// 50 decode tokens/s per sequence, 64 sequences.
//
// A caller submits requests (Submit), asks when the model next changes by
// itself (Next) and runs it to a time (Advance), which returns each
// request's schedule (Result: queue wait, cached tokens, TTFT, completion)
// and the KV events with the time they happened. The emulator drives it
// from a timer on the real clock; the replay drives it from a trace.
package engine

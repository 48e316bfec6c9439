// Package kvwork generates engine KV-event workloads shaped like vLLM's,
// for the benchmarks of the event path (decode, apply, replication lag).
// It is test machinery: nothing but tests and benchmarks may import it.
//
// An Engine is one inference engine's prefix cache (engine.Cache, LRU by
// block, the emulator's) fed with generated requests: prompts of
// MinPromptTokens to MaxPromptTokens tokens that start with one of a few
// shared system prompts (popular ones more often), a share of them the
// next turn of a recent conversation (its previous prompt plus a new
// turn). Each request's blocks that were not cached are stored, evicting
// least recent blocks, which yields vLLM's events in vLLM's order: a
// BlockRemoved of the evicted blocks, then a BlockStored of the new ones
// with their parent and token ids. Step makes one engine step's batch at
// a rate in blocks.
//
// Everything is deterministic for a seed: two runs make the same bytes.
package kvwork

// Package radix is the replicated prefix index used for cache-aware routing:
// prompts are cut into pages, each page is named by a lineage hash, and the
// index records which workers hold which chains of pages so that a gateway
// can send a prompt to the worker holding its longest cached prefix.
//
// radix never sees other replicas' prompts: its deltas carry page hashes
// only and apply in any order. It imports no meshnode package but wire.
package radix

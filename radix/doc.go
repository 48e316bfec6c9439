// Package radix is the replicated prefix index used for cache-aware routing:
// prompts are cut into pages, each page is named by a lineage hash, and the
// index records which workers hold which chains of pages so that a gateway
// can send a prompt to the worker holding its longest cached prefix.
//
// radix never sees other replicas' prompts: its deltas carry page hashes
// only and apply in any order. It imports no meshnode package, does no I/O,
// starts no goroutine and reads no clock: stamps are arguments.
//
// # Pages
//
// A token prompt is cut into pages of P tokens (ModelConfig.PageTokens,
// default 16), a text prompt into pages of B bytes (default 64); a partial
// last page is not indexed. Page i has a content hash C_i = XXH64(page) and a
// lineage hash L_i = XXH64(LE64(L_{i-1}) || LE64(C_i)), with L_-1 =
// XXH64(model) (seed 1 for text), 0 replaced by 1 because 0 names the root.
// docs/wire.md (section 12) specifies this byte for byte with test vectors.
// Because L_i names page i together with its whole prefix, the pages form a
// forest in which every page has one parent.
//
// # Structure
//
// Pages live in chains: runs of pages, each the only child of the one before
// it, stored as one []uint64 so that matching compares consecutive hashes in
// memory. Every page of a chain has the same holders with the same stamps; a
// chain is split where a fork starts or where holders or stamps change, and
// a worker extending its own leaf chain appends to it. A page table (open
// addressing, 8 bytes a slot, the key read back from the chain) maps any
// lineage hash to its chain and offset; matching uses it once to find L_0 and
// once per chain boundary, never once per page. The table grows by 3/2 and
// stays 8/15 to 4/5 full. Holders are (worker index, stamp) pairs per chain,
// so one entry covers every page of the chain: the benchmark workload needs
// 21-23 bytes per holder-page, most of it the 8-byte hash and the table
// slot (see bench/RESULTS.md, radix).
//
// # Workers, stamps and epochs
//
// Insert and touch make a worker hold a path from the root with a stamp of
// at least the given one: holding a page implies holding its prefix, and a
// page's stamp is never older than its children's. Each worker has an epoch
// (its registration generation). A delta of an older epoch than a replica
// knows is ignored, a newer one drops the worker's holdings first, and a
// removal drops them and ignores the rest of that epoch, so removal wins over
// concurrent inserts and a re-registered worker (higher epoch) starts empty.
//
// # Budgets and eviction
//
// Each worker has a page budget (Config.WorkerPages, SetWorkerBudget) and
// the index a cap (Config.MaxHolderPages). A worker over budget loses its
// lowest ranked pages by (stamp ascending, depth descending, hash
// descending): always leaves, so holdings stay prefix-closed. Over the cap,
// the worker with the oldest stamp (ties: smallest name) loses its pages of
// that stamp first. Both depend only on the replicated state (pages, stamps,
// budgets), never on arrival order or chain layout. Budgets must be the same
// on every replica.
//
// # Replication and what converges
//
// Deltas (Delta, Batch) are self-contained: an insert carries its anchor
// (the last page the worker already held, 0 for the root) and the new pages;
// a touch carries one page; a removal the worker and epoch. Merging is by
// maximum stamp, so Apply is idempotent and commutative. A delta whose anchor
// is unknown waits in a bounded pending set until the anchor arrives.
//
// The exact claims, each tested:
//   - Without budget pressure, any order and duplication of a set of deltas
//     gives the same index (same digest, same Match answers).
//   - With budgets and the cap, the same holds for root-anchored inserts
//     (eviction then equals "keep the top B of the merged state"). A touch or
//     an anchored insert that arrives after its page was evicted cannot
//     resurrect it, because the replica no longer knows the page's path; such
//     replicas differ until anti-entropy.
//   - Anti-entropy converges: Digest summarises each worker (epoch, pages,
//     max stamp and a layout-independent sum over (page, stamp)); Difference
//     names the workers that differ; Holdings ships a worker's full state as
//     chains in parent-first order, each anchored at its parent's last page,
//     paged; applying both ways until the digests agree leaves identical
//     indexes.
//
// AppendSnapshot and Restore persist and bootstrap a whole index (CRC32C
// checked, all or nothing).
//
// # Queries and concurrency
//
// Match (and MatchPages for pre-hashed prompts) returns every worker's
// matched depth, deepest first, without allocating when dst has room.
// MatchAndInsert does the match and the insert in one call and returns the
// minimal delta. Route applies the gateways' cache-aware policy and says
// which rule decided. Index is safe for concurrent use: queries share a
// read lock, changes take the write lock.
//
// Typical use at a gateway:
//
//	pages := ix.AppendPages(buf[:0], model, tokens)
//	d, err := ix.RoutePages(pages, candidates, radix.DefaultPolicy())
//	// ... send the request to d.Worker, then:
//	_, delta, err := ix.MatchAndInsert(hits[:0], d.Worker, epoch, stamp, pages)
//	batch.Add(delta) // and replicate the batch
package radix

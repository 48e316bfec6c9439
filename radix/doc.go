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
// once per chain boundary, never once per page. The table grows by 3/2 when
// its live entries pass 7/10 of it (and is rebuilt at the same size when
// deletions pile up), so it stays 7/15 to 4/5 full. Holders are (worker
// index, stamp, ver) per chain, so one entry covers every page of the
// chain: the benchmark workload needs 21-23 bytes per holder-page, most of
// it the 8-byte hash and the table slot (see bench/RESULTS.md, radix).
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
// checked, all or nothing), event-sourced state included; pending pages
// are not kept (they expire within seconds anyway).
//
// # Engine events
//
// A worker whose engine publishes KV events (vLLM, SGLang) holds what the
// engine reports rather than what gateways guessed. The node decides which
// workers are event-sourced; radix stores what it is given:
//
//   - StoreEvents (BlockStored): the worker holds the block's pages like an
//     insert, and its engine map records engine block hash -> the lineage
//     hash of the block's last page. RemoveEvents (BlockRemoved) resolves
//     each hash through the map to the block's first page F and drops F and
//     what the worker holds below it (holdings stay prefix-closed).
//     ClearEvents (AllBlocksCleared, or any discontinuity the subscriber
//     cannot replay) starts a new generation: the worker's holdings, engine
//     map and tombstones go, and ops of older generations are ignored.
//   - Ops are ordered by (Gen, Ver), Ver = engine batch seq << 16 | event
//     index, not by time. A page's ver is the greatest Ver of the stores
//     that cover it (max-merged along the path, like stamps); a removal at
//     Ver v drops the pages below F held at a ver below v, so a removal that
//     arrives after a newer re-store leaves the re-stored pages alone, and a
//     tombstone (F, v) cuts a store older than v that arrives later at F, so
//     it cannot bring the pages back. Tombstones are a window, not state:
//     at most Config.MaxEventTombstones per worker (the oldest to arrive go
//     first, and once the window is full one no newer than the oldest kept
//     is not kept; both counted), not covered by digests, shipped by
//     Holdings. A store
//     older than a tombstone that has gone, or a replica that heals after
//     missing more removals than the window, can bring removed pages back
//     until the engine stores and removes them again or the generation
//     changes.
//   - The engine map lives with the pages: an event-sourced holder keeps an
//     array of engine hashes beside its chain's pages (8 bytes a page), so
//     an entry exists exactly while the worker holds its page, and goes
//     with it whatever drops the page (its removal, a removal above it,
//     eviction, a clear). Two hashes for one page keep the greater; engine
//     hash 0 is not recorded. The subscribing node resolves hashes to pages
//     (RemoveEvents, EngineLineage) through an index it builds on first use
//     and keeps up to date, so only subscribers pay for it. A removal's
//     delta carries the first pages it resolved, so replicas need no map to
//     apply it.
//   - What converges (TestEventsConverge, over vLLM-like streams with
//     shared prefixes, LRU removals and clears): deltas applied in any order
//     with duplicates give the subscriber's index (which applied them in
//     order), same digest, Match answers and engine map, except while a
//     store waits for an anchor page a later removal took away (its
//     ancestors then keep an older stamp and ver until anti-entropy); with
//     losses, anti-entropy makes every replica equal to the subscriber. A
//     store whose parent block the index no longer holds (the engine evicted
//     a block above it while keeping it) cannot be placed: EngineLineage
//     does not know the parent, and the node skips it.
//   - Digest covers each worker's generation, its pages with their vers and
//     its engine map; Holdings ships a ClearEvents of the generation, the
//     chains as stores at their vers, the tombstones and the engine map.
//     A worker should be either recorded or event-sourced: a recorded
//     insert or touch into a worker with events is cut at its tombstones
//     like a store at ver 0 (so it and a removal commute), but it converges
//     only through anti-entropy, not order-insensitively, against the
//     worker's clears.
//
// # In-flight routes and sources
//
// A prefix is in an engine's cache only once its prefill is done, so a
// follow-up turn routed before would miss it. InsertPending records a routed
// prompt as pending on the worker, in a shadow holder with the worker's name
// and epoch that digests, holdings, snapshots and the worker count ignore.
// Pending deltas are always root-anchored, because ExpirePending drops
// pending pages older than a stamp on each replica's own clock (local, not
// a delta). Match and Route take a worker's depth as the greater of its own
// and its pending depth; Decision.Sources says which gave it (recorded,
// events, pending). Stamps are whole seconds (the node's index stamp), so
// expiry has a resolution of one second: ExpirePending(now - T), called
// often, keeps a pending page between T and T+1 seconds. That suits
// timeouts around a p99 prefill time of 1-10 s; finer ones would need
// finer stamps.
//
// # Queries and concurrency
//
// Match (and MatchPages for pre-hashed prompts) returns every worker's
// matched depth, deepest first, without allocating when dst has room.
// MatchAndInsert does the match and the insert in one call and returns the
// minimal delta. Route applies the gateways' cache-aware policy and says
// which rule decided and which sources matched. Ties (equal load for the
// least loaded, equal depth and load for the best match) go to the
// candidate with the highest rendezvous rank XXH64(name, first page of the
// prompt) (0 for an empty prompt): equal workers share distinct prefixes,
// and a prefix goes to the same worker on every replica whatever the order
// of the candidates. Index is safe for concurrent use: queries share a
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

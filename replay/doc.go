// Package replay replays LLM request traces through a fleet of G gateway
// replicas in front of W modeled engines and measures how well each routing
// strategy uses the engines' prefix caches: the hit ratio, the modeled time
// to first token, the queue wait, the load imbalance and the utilisation.
// `meshnode replay TRACE` is its command-line face.
//
// # Traces
//
// ParseTrace reads Mooncake's FAST'25 format: one JSON object per line
// with "timestamp" (ms), "input_length", "output_length" and "hash_ids",
// the ids of the prompt's blocks of BlockTokens tokens (512), equal ids at
// the same position meaning a shared prefix. Each block id becomes
// synthetic token ids derived from the id alone, so gateways hash prompts
// into pages (radix.AppendTokenPages, any page size dividing the block
// size) and engines hash them into blocks exactly as they would hash real
// tokens.
//
// # The simulation
//
// A run is deterministic from Config.Seed. Time is virtual: an
// internal/simnet network carries the trace's arrivals, the engines'
// timers, the gateways' replication and the engines' KV events, each
// delayed by simnet's link model. Request i arrives at gateway i mod G,
// which routes it at once with what it knows.
//
// The gateways of the strategies that share an index replicate it with
// the product's code, not a model of it (internal/simnet/replsim): each
// gateway is a swim core with node's configuration for the
// Network.Profile and a replication core (replica.Engine, node's
// configuration) over its radix.Index. Local changes go to the core as
// radix batches, which addresses them as a node does: to every gateway in
// a packet up to 16 of them (node.DefaultEagerMembers), cut to the packet
// budget and gossiped by swim above; anti-entropy (store and index pages)
// runs at the core's pace. The mesh forms (swim's join) before the trace
// starts. The other strategies need no mesh and run without one.
//
// Engines are package engine's Model, the core `meshnode engine` runs: a
// FIFO queue, one prefill at a time at PrefillTokensPerSecond uncached
// tokens per second, decode at DecodeTokensPerSecond per sequence in
// batches of MaxBatch, and an LRU prefix cache of CacheTokens tokens in
// blocks of BlockTokens that stores a prompt's blocks when its prefill
// ends and publishes vLLM-style KV events. TTFT = queue wait + uncached
// input tokens / prefill rate. Loads are what a gateway's proxy can count:
// requests queued or running, or, for the cost rule (Config.Policy), the
// prefill tokens queued (prompt tokens routed and not yet prefilled, less
// what each route expected cached). By default (Config.LoadInterval 0)
// every strategy sees them exactly and at once; with an interval they are
// a snapshot renewed that often, plus, with Config.LoadOwnRoutes, the
// gateway's own routes since; and with both and a mesh, they travel as a
// node's proxy publishes them: each gateway writes its own counts into its
// store every interval and reads the others' from there (loads.go).
// `meshnode replay` uses 50 ms and own routes, as agents' proxies do.
//
// # Strategies
//
//   - random, round-robin (each gateway cycles on its own), least-loaded
//     (fewest requests in flight, ties at random), hash (rendezvous hashing
//     of the first block over the engines, blind to load);
//   - local-index: a radix.Index per gateway, routed with the cache-aware
//     policy (radix.Index.RoutePages with Config.Policy) and recording
//     every route in it, never replicated: a fleet without a working mesh;
//   - meshnode-recorded: the same, and every recorded route is a
//     radix.Delta that the gateway's mesh member replicates to the others
//     (see above);
//   - meshnode-events: each engine's KV events of one instant become one
//     vLLM-format batch (kvevents) that travels to the gateway subscribing
//     to the engine, where node's KV-event applier (node.KVApplier) turns
//     it into event-sourced index deltas, replicated like recorded ones;
//     routing gateways add the prompt's pages as pending on the chosen
//     engine until events confirm them or Config.PendingTimeout passes;
//   - oracle: one global router with the engines' exact caches and queues
//     and no delay, choosing the lowest estimated TTFT
//     (engine.Model.EstimateTTFT).
//
// InfiniteCacheHitRatio is the trace's upper bound: one engine with an
// unbounded cache.
//
// # Figures
//
// Run returns a Report: per fleet size and strategy the hit ratio (input
// tokens served from cache / input tokens), TTFT p50, p90 and p99, queue
// wait p99, imbalance (max / mean prefill-busy time of the engines),
// utilisation (prefill-busy time / (W x span)) and routing decisions per
// second of wall time (with Options.Wall), each also as a ratio to the
// oracle. WriteTable prints it; AppendSVG draws hit ratio and p99 TTFT
// against G.
package replay

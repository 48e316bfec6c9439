// Package node is meshnode's composition root: it owns the sockets, the
// goroutines and the timers, wires the swim membership layer to the store
// and radix replicas, and serves the HTTP API, metrics and persistence.
//
// Only cmd/meshnode and bench import node.
//
// # Use
//
//	n, err := node.New(cfg)          // validates cfg, loads keys, restores snapshots
//	err = n.Start()                  // binds the gossip port and the API
//	err = n.Join("10.0.0.1:7946")   // returns at once; /readyz says when done, JoinError why not yet
//	...
//	err = n.Leave(5 * time.Second)   // announce, flush, snapshot
//	err = n.Shutdown(ctx)            // stop every goroutine
//
// # Structure
//
// One port carries UDP (swim probes and gossip, eager deltas) and TCP. Every
// TCP connection starts with a channel byte: 'S' streams go to the
// swimnet.Runner (push-pull, TCP pings), 'A' streams are anti-entropy, 'D'
// streams carry deltas too large for a packet. TLS, when configured, wraps
// the connection before the channel byte.
//
// Input refused for its key, label, plaintext setting, certificate or
// encoding is never silent: packets and streams are counted by reason
// (meshnode_swim_packets_bad_total, meshnode_stream_rejected_total) and
// logged, rate-limited, with the remote address, on the side that refuses
// them (authlog.go); a joiner logs each failed attempt with what probably
// went wrong.
//
// The store is not goroutine-safe: the node serialises every access behind
// one mutex (state.mu). The radix index is safe on its own. Workers live in
// the "workers" namespace as JSON records; a subscription to it keeps the
// index in step, so a worker deleted on any replica leaves every replica's
// index when the delete is applied. Rate-limit definitions live in the
// "config" namespace; the KV API refuses writes to both.
//
// # Watches
//
// A store observer numbers every change the node applies, its own writes
// and merged remote ones, with an index that grows by one per change and is
// local to the node and the process (history, watch.go). Each namespace
// keeps its last Config.WatchHistory changes, all namespaces together at
// most Config.WatchHistoryBytes. KV and worker reads answer the namespace's
// index (X-Meshnode-Index); a watch answers the changes after the index it
// is given, at once or when the next one comes, and 410 when they are no
// longer all kept. A store resynchronisation or restore voids every earlier
// index.
//
// # Replication: delta flushing and anti-entropy
//
// Each word names one thing: the flush loop sends deltas, anti-entropy
// repairs what they missed, and streams (of either, and swim's) have a
// timeout, Config.StreamTimeout.
//
// Local writes signal the flush loop, which drains store.AppendDeltas and
// the pending radix.Batch and sends them: to every live member directly
// (one UDP packet each, or a 'D' stream when too large) while the cluster
// has at most Config.EagerMembers members; by swim gossip otherwise, each
// member gossiping a delta on when it first sees it. Every AntiEntropyInterval
// (with jitter) the node runs anti-entropy with a random live member: store
// digest, then the missing pages (each followed by a fresh digest), then the
// index digest and the holdings of the workers that differ, both ways on one
// stream, lz4-compressed and chunked by wire frames, under a deadline and a
// bound on concurrent exchanges. The decisions (who gets a delta and how,
// which received delta is gossiped on, when and with whom anti-entropy
// runs, what a step sends, how an answer is applied, when collection runs
// and over which members) live in package replica, which returns them as
// data; node owns the sockets, timers, goroutines and the mutex, and ticks
// the core every 50 ms. The
// digests a peer sends feed store.ObserveDigest; collection counts every
// member swim knows, in any state, so a dead or departed member stops
// holding back garbage collection only after Config.GCHorizon since it was
// last alive.
// After Join, anti-entropy runs at once until a first round succeeds: that
// is the bootstrap, and readiness waits for it.
//
// # Lifecycle
//
// Every goroutine the node starts (the API server, the UDP read loop, the
// accept loop and the connections it serves, the flush, anti-entropy and
// maintenance loops, delta pushes, swim event delivery and the join loop)
// runs in one errgroup and ends when the context Shutdown cancels; Shutdown
// then closes the sockets and waits for the group. Concurrency limits are
// semaphores that refuse rather than queue (TryAcquire). There is one join
// loop at a time: a Join through the seeds of the loop in flight joins it,
// a Join through other seeds stops it and starts one through them, and the
// loop ends when an attempt succeeds or the node shuts down.
//
// # Engine KV events
//
// A worker whose record names its engine's KV event endpoints (KVEvents)
// is followed by its owners: rendezvous hashing (Owners) of the worker ID
// over the live members, Config.KVSubscribers of them. kvLoop recomputes
// the owners every second and at once on a membership or worker change,
// and starts or stops this node's subscriptions (kvsub.go); each runs in
// the node's group. A subscription subscribes (Config.KVEventsDial), then
// catches up: by replay from the sequence number after the last one the
// index holds for the worker (radix EventState, replicated by the previous
// owner's deltas), or, without a replay endpoint, by clearing the worker's
// event-sourced pages. Messages go through a KVApplier (kvapply.go), the
// deterministic core: it checks the sequence (gaps, duplicates, restarts),
// turns events into index deltas, and the runner disseminates them like
// any local index change. A broken stream reconnects with backoff (reset
// only by a message: a stream that ends before its first one counts as a
// failed connection). An engine unreachable past Config.KVGrace has its
// event-sourced pages dropped: unreachable means no dial succeeded, no
// message arrived and no probe was answered; a stream silent for
// min(KVGrace/3, 5 s) is probed through the engine's replay endpoint
// (without one, only failed dials count). Routes recorded on an event-streaming worker insert pending
// pages, which every replica expires after Config.PendingTimeout.
//
// # Partitions
//
// A node sees a majority when the members it holds alive are more than half
// of the last known cluster (members not known to have left). /v1/status and
// /readyz report it; with Config.MinorityShare a rate limiter on the minority
// side admits only limit * alive / known.
//
// # Persistence
//
// With Config.DataDir the node keeps its generation there (bumped at every
// start) and snapshots the store and the index every SnapshotInterval and on
// Leave, each written atomically. At start a snapshot that does not load is
// renamed aside (".corrupt-<time>") and reported; that part starts empty and
// anti-entropy refills it. A restart without a clean Leave loses the writes
// since the last snapshot that no peer received. Keyring changes made
// through the API are saved there too (keyring.json) and restored at start,
// where they win over the configured gossip key.
//
// # Routing proxy
//
// With Config.ProxyAddr the node also serves an OpenAI-compatible proxy
// (proxy.go): each completion is routed by n.route, the function behind
// /v1/route, recorded in the index, and forwarded by an
// httputil.ReverseProxy whose RoundTrip routes, retries before the first
// byte on the next-best worker, and feeds a node-local health book
// (proxy_health.go). Each node counts its in-flight requests and queued
// prompt tokens per worker (a lease per request, released when the answer
// ends, fails or its client goes away) and publishes them in the reserved
// namespace "load" under its name, at most every 100 ms while they change;
// routing adds the counts of the live members to each worker's reported
// load, so a crashed node's counts stop counting when swim finds it dead,
// and a node that leaves deletes its key first (proxy_load.go). The
// cluster-wide rate limits "model:NAME" and "api-key" apply to it
// (proxy_limits.go).
//
// # Tests
//
// The tests of cluster behaviour (replication, partition and heal,
// readiness and majority, join, leave, crash, restart from a data
// directory, key rotation) run whole nodes in virtual time: each runs in a
// testing/synctest bubble, the nodes' gossip ports on a
// swimnet.MemNetwork (memnet.go; a test sets Node.memNet before Start),
// and the test calls the API handlers directly. Partitions are the
// network's loss rule. They take no wall time and depend on no scheduling
// luck (e2e_virtual_test.go, ready_test.go, join_test.go,
// api_keyring_test.go).
//
// A few tests stay on real loopback sockets on purpose, each saying why:
// TestClusterEndToEnd (the one end-to-end run over real UDP, TCP and HTTP),
// TestHostileStreams and the admission tests of conns_test.go (raw TCP
// clients, kernel resets, the heap of idle connections), TestSecureCluster
// and TestWrongCAIsNotSilent (TLS handshakes), the wrong-key tests of
// authlog_test.go (raw UDP bursts, logged kernel addresses), the swim
// Runner's tests on the shipped transport (swimnet_e2e_test.go),
// TestKVEventsEndToEnd (the ZMQ client against emulated engines; the same
// behaviour runs in virtual time, with in-memory engines, in
// kvsub_virtual_test.go) and TestKVLagLoopback (a small run of the
// loopback KV-event lag benchmark, kvlag_loopback_bench_test.go).
package node

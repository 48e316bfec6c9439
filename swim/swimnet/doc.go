// Package swimnet runs the swim core over a network: the Runner (the
// protocol loop, stream workers, the bounded event and delivery channels),
// the Transport it drives (NetTransport over UDP and TCP on one port,
// MemTransport over an in-memory MemNetwork for tests), the stream framing,
// and the resolution of seed names (ResolveSeeds, Runner.Join).
//
// Everything that reads the clock, starts goroutines, opens sockets or
// looks up names lives here, so that package swim stays a deterministic
// state machine (internal/layering enforces it). The Runner owns the join
// retries: each attempt re-resolves the seeds and asks the core for one
// round of push-pulls; the core keeps no retry schedule of its own.
//
// swimnet imports swim and wire.
package swimnet

// Package swimnet runs the swim core over a network: the Runner (the
// protocol loop, stream workers, the bounded event and delivery channels),
// the Transport interface it drives, the stream framing, MemTransport over
// an in-memory MemNetwork for tests, and the resolution of seed names
// (ResolveSeeds, Runner.Join). The one transport over sockets is node's
// (node.SwimTransport on its own): UDP and TCP on one port, TLS, a channel
// byte per connection and first-frame admission; the daemon, the
// real-socket tests and the memberlist comparison all run on it.
//
// Everything that reads the clock, starts goroutines, opens sockets or
// looks up names lives here, so that package swim stays a deterministic
// state machine (internal/layering enforces it). The Runner owns the join
// retries: each attempt re-resolves the seeds and asks the core for one
// round of push-pulls; the core keeps no retry schedule of its own.
//
// swimnet imports swim and wire.
package swimnet

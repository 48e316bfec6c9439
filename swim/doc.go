// Package swim implements cluster membership and failure detection: the
// SWIM protocol with the Lifeguard refinements, as a deterministic state
// machine with no I/O, plus a runner that drives it over a Transport.
//
// The core never reads the wall clock, starts no goroutines and opens no
// sockets: it takes received messages, the current time and a seeded random
// source, and returns what to send, what happened and when it next needs to
// run. swim imports wire only.
package swim

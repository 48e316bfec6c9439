// Package node is meshnode's composition root: it owns the sockets, the
// goroutines and the timers, wires the swim membership layer to the store
// and radix replicas, and serves the HTTP API, metrics and persistence.
//
// Only cmd/meshnode and bench import node.
package node

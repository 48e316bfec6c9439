// Package store holds meshnode's replicated state as CRDTs: a hybrid logical
// clock, dots and causal contexts, last-writer-wins map namespaces with
// tombstones that are collected once causally stable, and windowed counters
// for global rate limits, with deltas, digests and anti-entropy.
//
// store does no I/O, starts no goroutines and never reads the clock: time and
// identity are arguments. It imports no meshnode package but wire.
package store

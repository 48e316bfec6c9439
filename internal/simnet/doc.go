// Package simnet is test machinery: an in-memory network with virtual time
// on which many nodes run in one process, with seeded loss, delay, jitter,
// duplication, reordering, partitions and paused nodes.
package simnet

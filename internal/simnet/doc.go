// Package simnet is test machinery: a discrete-event simulator of a network
// with virtual time, on which many nodes run in one process, with seeded
// loss, delay, jitter, duplication, reordering, one-way and two-way
// partitions, slowed nodes, paused nodes and crashes.
//
// The simulator starts no goroutines and never reads the wall clock. It
// keeps a priority queue of events ordered by virtual time, ties broken by
// the order in which they were scheduled, and drives each node through the
// Node interface: packets are delivered with Receive, timers fire with Tick
// at the time the node asked for, stream exchanges (TCP) are modelled as a
// reliable, delayed request and response that fail on a partition or a
// deadline. A node is anything that implements Node; simnet knows nothing of
// the protocol it runs. The same seed and the same calls give the same run.
//
// A paused node (SIGSTOP, a long GC pause) neither sends nor processes
// anything: packets addressed to it wait in a bounded backlog, its timers do
// not fire, and on Resume the backlog is delivered in order before its next
// Tick. A crashed node drops everything until Restart puts a new Node in its
// place at the same address.
//
// Usage:
//
//	n := simnet.New(seed, simnet.Link{Delay: time.Millisecond, Jitter: time.Millisecond})
//	id := n.Add(addr, node) // node sends through n.Host(id)
//	n.RunFor(time.Minute)
package simnet

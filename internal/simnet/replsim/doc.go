// Package replsim runs the product's replication on simnet: every member
// is a real swim core (internal/simnet/swimsim) for membership and gossip
// and a real replication core (replica.Engine) over a real store and,
// optionally, a real prefix index (radix.Index). The engine decides
// everything node lets it decide: which deltas go where (directly while
// the cluster has at most its EagerMembers members, by swim's gossip above,
// each member forwarding a delta the first time it receives it; streams
// for deltas too large for a packet), and when and with whom anti-entropy
// runs. The driver does what node's runners do: it hands gossip to swim's
// broadcast queue, sends packets and pushes, and runs each anti-entropy
// exchange's steps (store pages, then index pages, pulled then served, as
// node's pull and serveMissing do) over simulated streams.
//
// replsim imports neither node nor anything above it: callers pass node's
// configuration (node.SwimConfig, node.ReplicaConfig, node.DeltaBudget,
// node.DefaultStreamTimeout). The replication benchmarks (bench) and the
// trace replay (replay) run on it.
//
// Usage:
//
//	c, err := replsim.New(seed, n, replsim.Config{...})
//	err = c.Form(90 * time.Second)
//	m := c.Members[i]
//	m.Eng.Store().Put(ns, key, value, c.Net.Now())
//	m.Disseminate()
//	c.Net.RunFor(time.Second)
package replsim

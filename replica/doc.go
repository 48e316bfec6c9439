// Package replica is the replication core of a meshnode node: a
// deterministic engine over its store (and prefix index) that decides who
// gets each local delta and by which way (one packet to each member, swim
// gossip, or a stream), which received delta is gossiped on, when and with
// whom anti-entropy runs and what each of its steps sends, when the first
// sync after a join is done, and which members count for tombstone
// collection. It does no I/O, starts no goroutines, reads no clock and
// uses no global randomness: time and membership are arguments, a seeded
// *rand.Rand is passed in Config, and what to send is returned as data.
//
// It is built like etcd-io/raft's RawNode: every input (Disseminate,
// Broadcast, Receive, SetMembers, Tick, Bootstrap, ExchangeDone) returns a
// Ready with the messages to send (to whom, over a packet, gossip or a
// stream, the kind and payload), the exchange to open, whether the first
// sync is done, and when Tick is next due. node drives it from its runners
// (sockets, timers, the store's mutex); the simulations in this package's
// tests and in bench drive the same code on an in-memory network in
// virtual time.
//
// An Engine wraps one store.Store and is not safe for concurrent use; the
// caller serialises access (node holds its state mutex around every call).
//
// # Dissemination
//
// While the cluster has at most Config.EagerMembers members (self
// included), a delta goes to every live member in one packet (over a
// stream when larger than the packet budget). Above, it goes into swim's
// gossip queue (ViaGossip), and every member that receives it in a packet
// for the first time gossips it on: the delta spreads by infection, each
// member paying a bounded share. A delta too large to gossip is pushed
// over streams to Config.PushFanout random live members; anti-entropy
// takes it to the rest.
//
// # Scheduling
//
// Every Config.ExchangeInterval, jittered over [1/2, 3/2) of it, Tick
// hands out one exchange with a random live member; one runs at a time,
// until ExchangeDone. After Bootstrap (a join succeeded), Tick hands one out
// at once, and again every Config.RetryInterval while it fails; the first
// success (or finding no live member) sets Ready.Synced.
//
// # Collection
//
// A tombstone may be collected, and the GC floor raised, only over dots
// that every member which may still come back has seen. So every member the
// node has known counts, whatever its state (alive, suspect, dead, left),
// until the collection horizon has passed since it was last known alive;
// and nothing is collected while the causal context of any such member is
// unknown. Counting only the live members lets the two sides of a partition
// each raise a floor over writes the other side never saw: on the heal,
// both resynchronise against floors no one can back, and acknowledged
// writes are lost (issue 10, item 1).
//
// # Anti-entropy
//
// One exchange between an opener and a peer runs two pulls, the opener's
// first: the puller sends AppendDigest; the other side answers with Answer
// (it records the digest for stability and returns the page of what the
// puller lacks); the puller applies the page with Apply and sends a fresh
// digest while the page says more follow, up to Config.MaxPages pages.
// Then the index: the puller sends AppendIndexDigest; the other side walks
// the batches of the workers that differ (AnswerIndex, IndexPages.Next),
// which the puller applies with ApplyIndexPage. A busy worker (one whose
// holdings changed within Config.IndexSettle, such as an engine streaming
// KV events) that the puller nearly has differs only by deltas in flight:
// its holdings are shipped to such pullers at most once per
// Config.IndexMaxDefer, or once it is quiet, not on every exchange.
package replica

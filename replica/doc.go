// Package replica holds the replication decisions of a meshnode node as a
// deterministic core: which members count for tombstone collection, when
// collection and store time run, what one anti-entropy step sends and how
// its answer is applied, and how pending local deltas are cut for
// dissemination. It does no I/O, starts no goroutines, reads no clock and
// uses no global randomness: time and membership are arguments, messages
// are returned as bytes. node drives it from its runners (sockets, timers,
// the store's mutex); the simulation in this package's tests drives the same
// code on an in-memory network in virtual time.
//
// An Engine wraps one store.Store and is not safe for concurrent use; the
// caller serialises access (node holds its state mutex around every call).
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
package replica

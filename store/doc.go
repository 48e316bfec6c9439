// Package store holds meshnode's replicated state as CRDTs: a hybrid logical
// clock, dots and causal contexts, last-writer-wins map namespaces with
// tombstones that are collected once causally stable, and windowed counters
// for global rate limits, with deltas, digests and anti-entropy pages.
//
// store does no I/O, starts no goroutines and never reads the clock: time and
// identity are arguments. It imports no other meshnode package. A Store is
// not safe for concurrent use; node serialises access behind one mutex.
//
// # Model
//
// An actor is (node name, generation); a restarted process, or one restored
// from a snapshot, must use a new generation. Inside a store an actor is a
// compact index (0 is the local actor); on the wire deltas and digests carry
// a table of (name, generation) and refer to it by position.
//
// Every write (put or delete) gets a dot (actor, seq) and a stamp from the
// hybrid logical clock (Unix milliseconds << 16 | logical counter). For each
// key the write with the greater (stamp, actor name, generation) wins. A
// store's causal context records every dot it has seen, whether the write
// still lives or was overwritten: per actor a maximum (all seqs up to it)
// plus a cloud of runs received out of order, folded into the maximum as
// gaps fill. A write whose dot the context holds is skipped on arrival; that
// is what makes Apply idempotent and order-insensitive.
//
// # Replication
//
// Node drives it like this:
//
//   - local writes: Put, Delete, Take; then AppendDeltas for eager
//     dissemination (the writes and counter slots since the last call);
//   - any delta or page received: Apply (duplicates, loss and reordering
//     are fine; what is lost comes back with anti-entropy);
//   - anti-entropy: the receiver sends AppendDigest (context and GC floor);
//     the sender calls ObserveDigest then AppendMissing, which range-scans a
//     per-actor index of entries ordered by seq for the dots the peer lacks,
//     so two 1M-key stores that differ in 100 keys exchange a digest and a
//     page of about 100 entries. Pages also carry ranges of dots the sender
//     has seen but no longer holds (overwritten or collected), so contexts,
//     and hence digests, converge;
//   - periodically: Collect (tombstone GC) and Tick (held writes, old
//     windows).
//
// # Deletes and resurrection
//
// A delete is a tombstone that replicates like a write. CollectPeers
// computes, over the contexts (from their digests) of every member the
// store has heard of, live or not, stable = min and join = max. A member
// that is dead, has left, or was never heard from still counts until the
// horizon has passed since it was last known alive, and while any counting
// member's context is unknown nothing is collected: otherwise each side of
// a partition that cut members off before their first digest arrived would
// raise a floor over writes the other side never saw, and both would
// resynchronise against it on the heal, dropping writes no one else holds.
// A restarted member's old generation stops counting as soon as its new
// one is listed. A tombstone is collected once its dot is under some
// round's stable vector and a later round's stable vector dominates that
// round's join: by
// then every member has seen the tombstone and every write that could have
// been concurrent with it (such a write was in its writer's context, hence
// under join), so no late copy can arrive from a live member. The collected
// region becomes the GC floor, a version vector that only grows. Floors
// travel in digests and pages and merge by max. A store that receives a
// floor its context covers just collects its tombstones under it. A store
// whose context does not cover the floor (one restored from an old snapshot,
// or back after the horizon) has missed writes whose tombstones are gone, so
// it resynchronises: it drops every entry under the floor and forgets the
// dots it does not hold, and then takes entries under its floor only from
// pages whose sender's floor is at least as high (a sender consistent for
// that region). A sender that sees such a peer's digest answers for the
// state the peer will have after the resync, so one exchange restores it.
// Any other copy of a write under the floor that the store has not seen is
// discarded as stale (Stats.Stale).
//
// Limits. A write seen by no live member before its writer left, and still
// in transit after the horizon, can reappear; the horizon must exceed any
// realistic delivery delay. A partition that outlasts the horizon lets each
// side collect without the other: on the heal the resync can drop writes
// acknowledged on either side during the cut (floors merge by max, so a
// store may adopt a floor whose entries it does not hold yet and pass it
// on), and a write that lost to a delete made on the other side, whose
// tombstone is gone, comes back. The horizon must exceed any partition
// whose writes and deletes must hold.
//
// # Counters
//
// Take(limiter, n, limit, window, now) admits against the sum of all
// actors' slots of the current window (aligned to multiples of the window
// since the Unix epoch) and counts only in the local actor's slot; slots
// merge by max and older windows are dropped, so nothing counted at a
// replica that stays up is lost. Every replica admits against what it has
// heard, so the cluster can over-admit by what others admitted but had not
// yet propagated: at most (cluster admission rate) x (propagation delay)
// per window; with 100 req/s and 200 ms gossip, about 20 requests.
//
// # Clock skew
//
// A remote write stamped more than Config.MaxSkew ahead of now is held in a
// bounded queue (Stats.Held) and applied by a later Tick or Apply
// (Stats.Released). When the queue is full it is refused (Stats.Rejected);
// either way its dot stays out of the context, so anti-entropy sends it
// again: nothing is silently dropped.
//
// # Memory
//
// Entries live in one arena of 32-byte records (pointer to one allocation
// holding key and value, stamp, seq, packed lengths, 16-bit actor and
// namespace), indexed by an open-addressing table of 32-bit tagged slots
// and, per actor, by parallel seq/index slices for range scans: about 56
// bytes per key beyond key and value at 1M keys. The arena caps a store at
// 2^25 - 2 keys and tombstones. List scans the arena: namespaces meant for
// listing are small.
//
// # Limits
//
// Keys are 1 to 1024 bytes, values up to 1 MiB, names up to 255 bytes;
// Config.MaxBytes bounds keys + values + 64 bytes per entry. Decoders check
// every count against the bytes that remain before allocating. Encodings
// are specified byte for byte in docs/wire.md (section 11).
package store

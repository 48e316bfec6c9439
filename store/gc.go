package store

import (
	"slices"
	"time"
)

// gcRound is the first half of a two-phase stability check (see Collect).
type gcRound struct {
	pending bool
	stable  []uint64 // pointwise min of the members' version vectors
	join    []uint64 // pointwise max
}

// dominates reports whether a >= b pointwise (missing entries are 0).
func dominates(a, b []uint64) bool {
	for i, y := range b {
		var x uint64
		if i < len(a) {
			x = a[i]
		}
		if x < y {
			return false
		}
	}
	return true
}

// floorVector turns a delta's or digest's floor into a vector by local
// actor index.
func (s *Store) floorVector(fs []SeqOf, amap []uint32) []uint64 {
	fl := make([]uint64, len(s.actors))
	for _, f := range fs {
		la := amap[f.Actor]
		fl[la] = max(fl[la], f.Seq)
	}
	return fl
}

// Peer is a member of the cluster as CollectPeers sees it.
type Peer struct {
	Actor Actor
	// Live is set for members alive or suspect.
	Live bool
	// LastLive is, for a member not live, when it was last known alive
	// (zero: unknown, taken as now the first time the store hears of it).
	LastLive time.Time
}

// Collect is CollectPeers with live as the live members and no others.
func (s *Store) Collect(live []Actor, now time.Time, horizon time.Duration) int {
	peers := make([]Peer, len(live))
	for i, a := range live {
		peers[i] = Peer{Actor: a, Live: true}
	}
	return s.CollectPeers(peers, now, horizon)
}

// CollectPeers collects the tombstones that are causally stable. peers
// lists every member the caller knows, live or not (dead, left); their
// contexts come from ObserveDigest. Every member the store has heard of,
// through peers or a digest, counts until horizon has passed since it was
// last known alive (listed live, LastLive, or its last digest), listed or
// not; then it leaves the computation, as it does at once when peers list a
// newer generation of its name. CollectPeers does nothing while the context
// of any member that counts is unknown.
//
// Counting only the live members would let each side of a partition raise
// its floor over writes the other side never saw (members of the other
// side whose digest had not arrived before the cut would not count): on the
// heal each side would resynchronise against the other's floor and drop
// writes that no one else holds.
//
// Stability is two-phase. A round takes stable = min and join = max of the
// members' version vectors. A tombstone under a round's stable vector has
// been seen by everyone; but a write concurrent with it (one that loses to
// it) may still be in flight, and would come back once the tombstone is
// gone. Such a write was in its writer's context, so it is under join.
// Hence tombstones under round r's stable vector are collected only once a
// later round's stable vector dominates round r's join. What was collected
// raises the GC floor, which peers adopt through digests and pages.
func (s *Store) CollectPeers(peers []Peer, now time.Time, horizon time.Duration) int {
	rows := [][]uint64{s.selfRow()}
	for _, p := range peers {
		if p.Actor == s.actors[0] {
			continue
		}
		m := s.members[p.Actor]
		switch {
		case m != nil:
		case p.Live || p.LastLive.IsZero():
			m = &member{seen: now} // context unknown until its digest
		default:
			m = &member{seen: p.LastLive}
		}
		s.members[p.Actor] = m
		switch {
		case p.Live:
			m.seen = now
		case p.LastLive.After(m.seen):
			m.seen = p.LastLive
		}
	}
	// A restarted process has a new generation: the old one never comes
	// back, and what it wrote that others lack only they can bring, so it
	// stops counting as soon as a newer generation of its name is listed.
	newest := map[string]uint64{}
	for _, p := range peers {
		newest[p.Actor.Name] = max(newest[p.Actor.Name], p.Actor.Gen)
	}
	unknown := false
	for a, m := range s.members {
		if now.Sub(m.seen) > horizon || a.Gen < newest[a.Name] {
			// Kept, not deleted: a member still listed must not count
			// as newly heard of (and unknown) on the next round. Its row
			// goes: should it come back, its next digest tells.
			m.row = nil
			continue
		}
		if m.row == nil {
			unknown = true
		}
		rows = append(rows, m.row)
	}
	if unknown {
		return 0
	}
	n := len(s.actors)
	stable, join := make([]uint64, n), make([]uint64, n)
	copy(stable, rows[0])
	for _, r := range rows {
		for a := range n {
			var v uint64
			if a < len(r) {
				v = r[a]
			}
			stable[a] = min(stable[a], v)
			join[a] = max(join[a], v)
		}
	}
	before := s.stats.Collected
	if s.gc.pending && dominates(stable, s.gc.join) {
		s.raiseFloor(s.gc.stable)
		s.gc.pending = false
	}
	if !s.gc.pending {
		s.gc = gcRound{pending: true, stable: stable, join: join}
	}
	return int(s.stats.Collected - before)
}

func (s *Store) selfRow() []uint64 {
	r := make([]uint64, len(s.ctx))
	for a := range s.ctx {
		r[a] = s.ctx[a].max
	}
	return r
}

// Floor returns the store's GC floor: for each actor, the seq up to which
// tombstones may have been collected somewhere.
func (s *Store) Floor() map[Actor]uint64 {
	out := map[Actor]uint64{}
	for a, f := range s.floor {
		if f > 0 {
			out[s.actors[a]] = f
		}
	}
	return out
}

// mergeFloor raises the floor to fl. When the store's context does not
// cover fl, the store has missed writes (tombstones among them) that are
// gone for good, so its entries under fl cannot be trusted: it resyncs.
func (s *Store) mergeFloor(fl []uint64) {
	raised, behind := false, false
	for a, f := range fl {
		if f > s.floor[a] {
			raised = true
			behind = behind || f > s.ctx[a].max
		}
	}
	if !raised {
		return
	}
	if behind {
		s.resync(fl)
	}
	s.raiseFloor(fl)
}

// raiseFloor raises the floor to fl and collects the tombstones between
// the old floor and the new: a range scan of each actor's dot index, so the
// cost follows what is collected, not the size of the store. (A tombstone
// arriving under the floor later is collected on arrival; see applyEntry.)
func (s *Store) raiseFloor(fl []uint64) {
	var doomed []int
	for a, f := range fl {
		if f <= s.floor[a] {
			continue
		}
		di := &s.dots[a]
		for i, end := di.after(s.floor[a]), di.after(f); i < end; i++ {
			if idx := di.idxs[i]; idx != deadIdx && s.t.entries[idx].tomb() {
				doomed = append(doomed, int(idx))
			}
		}
		s.floor[a] = f
	}
	s.removeAll(doomed)
}

// removeAll removes the entries at idxs (distinct), counting them as
// collected. Going from the highest index down keeps the indices still to
// remove valid: removeAt only moves the last entry.
func (s *Store) removeAll(idxs []int) {
	slices.Sort(idxs)
	for i := len(idxs) - 1; i >= 0; i-- {
		s.removeAt(idxs[i])
		s.stats.Collected++
	}
}

// resync drops every entry whose dot is under fl and forgets, for each
// actor with a floor, every dot it does not hold, so peers (whose floors
// dominate fl) send back the entries that survive. Until then entries
// under the floor are only taken from such peers (see ApplyDelta). The
// local write counter is separate, so local writes keep their sequence.
func (s *Store) resync(fl []uint64) {
	s.stats.Resyncs++
	for i := len(s.t.entries) - 1; i >= 0; i-- {
		e := &s.t.entries[i]
		if int(e.actor) < len(fl) && e.seq <= fl[e.actor] {
			s.removeAt(i)
		}
	}
	for a, f := range fl {
		if f == 0 {
			continue
		}
		c := actorCtx{}
		di := &s.dots[a]
		for i, seq := range di.seqs {
			if di.idxs[i] != deadIdx {
				c.add(seq)
			}
		}
		s.ctx[a] = c
	}
	for _, sub := range s.subs {
		sub.markLagged()
	}
}

// collectUnderFloor drops every tombstone under the floor, scanning the
// whole store (after a restore).
func (s *Store) collectUnderFloor() {
	if s.tombs == 0 {
		return
	}
	var doomed []int
	for i := range s.t.entries {
		if e := &s.t.entries[i]; e.tomb() && e.seq <= s.floor[e.actor] {
			doomed = append(doomed, i)
		}
	}
	s.removeAll(doomed)
}

// removeAt drops entry idx, moving the last entry into its place.
func (s *Store) removeAt(idx int) {
	e := &s.t.entries[idx]
	s.dots[e.actor].remove(e.seq)
	s.bytes -= e.size()
	if e.tomb() {
		s.tombs--
	}
	s.t.unslot(s.t.slotOf(idx))
	last := len(s.t.entries) - 1
	if idx != last {
		m := s.t.entries[last]
		slot := s.t.slotOf(last)
		s.t.entries[idx] = m
		s.t.setSlot(slot, idx)
		di := &s.dots[m.actor]
		di.idxs[di.find(m.seq)] = uint32(idx)
	}
	s.t.entries[last] = entry{}
	s.t.entries = s.t.entries[:last]
}

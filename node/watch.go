package node

import (
	"errors"
	"sort"
	"strings"

	"github.com/meshnode/meshnode/store"
)

// Bounds of the watch history.
const (
	// DefaultWatchHistory is how many changes of each namespace the node
	// keeps for watches to resume from: a watcher that comes back within
	// that many changes of its namespace misses nothing.
	DefaultWatchHistory = 1024
	// DefaultWatchHistoryBytes bounds the keys and values the history of
	// all namespaces holds; past it the oldest changes go first.
	DefaultWatchHistoryBytes = 64 << 20
	// changeOverheadBytes is what one kept change costs besides its key and
	// value, charged against WatchHistoryBytes.
	changeOverheadBytes = 96
)

// errIndexGone: the changes after the index a watcher gave are no longer all
// kept (evicted, the store resynchronised, or the index is from another
// process). The watcher must list the namespace again.
var errIndexGone = errors.New("node: watch index older than the kept history")

// history keeps the recent changes of every namespace with their index, so
// that a watch resumes exactly where the previous one ended, as Consul's
// blocking queries do.
//
// The index is local to this node and this process: it counts the changes
// the node applied (local writes and merged remote ones) in the order it
// applied them, one per change, across all namespaces. A namespace's index is
// the index of its latest change. Two nodes hand out unrelated indexes for
// the same change. The counter starts at the process's start time in
// microseconds and so stays below the current time in microseconds: an index
// another process handed out (an earlier one of this node, or another node)
// is below this process's first index or above its last, unless one of them
// averaged more than a million changes a second, and is answered with
// errIndexGone rather than misread.
//
// Memory is bounded: each namespace keeps at most maxEvents changes, and all
// namespaces together at most maxBytes of keys and values (oldest first).
// history is guarded by state.mu.
type history struct {
	maxEvents int
	maxBytes  int64
	// index is the last index handed out.
	index uint64
	// floor is the index of the last reset (a resynchronisation or a
	// restore of the store changed contents without events): answers about
	// earlier indexes are void.
	floor uint64
	ns    map[string]*nsHistory
	// order holds one entry per kept change, oldest first from orderHead,
	// to evict the oldest change of all namespaces when over maxBytes.
	// Entries whose change a namespace evicted on its own go stale and are
	// skipped, and compacted away when they outnumber the live ones.
	order     []orderEntry
	orderHead int
	kept      int
	bytes     int64
	// evicted counts the changes dropped from the history, by its bounds
	// or a reset: meshnode_watch_history_evicted_total.
	evicted uint64
}

// nsHistory is one namespace's kept changes.
type nsHistory struct {
	last uint64 // index of the namespace's latest change
	lost uint64 // index of the latest change dropped from changes
	// changes holds the kept changes, oldest first from head.
	changes []change
	head    int
}

type change struct {
	index uint64
	ev    store.Event
}

type orderEntry struct {
	h     *nsHistory
	index uint64
}

func newHistory(maxEvents int, maxBytes int64, start uint64) *history {
	return &history{maxEvents: maxEvents, maxBytes: maxBytes, index: start, floor: start, ns: map[string]*nsHistory{}}
}

func changeBytes(ev *store.Event) int64 {
	return int64(len(ev.Key)+len(ev.Value)) + changeOverheadBytes
}

// add records one change the store applied (the store's observer).
func (h *history) add(ev store.Event) {
	if ev.Lagged {
		h.reset()
		return
	}
	h.index++
	nh := h.ns[ev.Namespace]
	if nh == nil {
		nh = &nsHistory{}
		h.ns[ev.Namespace] = nh
	}
	nh.last = h.index
	ev.Seq = 0
	nh.changes = append(nh.changes, change{index: h.index, ev: ev})
	h.order = append(h.order, orderEntry{h: nh, index: h.index})
	h.kept++
	h.bytes += changeBytes(&ev)
	if len(nh.changes)-nh.head > h.maxEvents {
		h.evictOldest(nh)
	}
	for h.bytes > h.maxBytes && h.kept > 0 {
		e := h.order[h.orderHead]
		h.order[h.orderHead] = orderEntry{}
		h.orderHead++
		if e.h.head < len(e.h.changes) && e.h.changes[e.h.head].index == e.index {
			h.evictOldest(e.h)
		}
	}
	h.compactOrder()
}

// evictOldest drops the oldest kept change of nh.
func (h *history) evictOldest(nh *nsHistory) {
	c := &nh.changes[nh.head]
	nh.lost = c.index
	h.bytes -= changeBytes(&c.ev)
	h.kept--
	h.evicted++
	*c = change{}
	nh.head++
	// Shrink into a new array rather than in place: a namespace that was
	// busy once must not hold a large array for good (there may be many
	// namespaces).
	if nh.head == len(nh.changes) {
		nh.changes, nh.head = nil, 0
	} else if nh.head >= 64 && nh.head*2 >= len(nh.changes) {
		nh.changes, nh.head = append([]change(nil), nh.changes[nh.head:]...), 0
	}
}

// compactOrder copies the live entries of order into a new array once
// stale entries outnumber them or the popped head is half the array, so
// that order stays within a few times the kept changes.
func (h *history) compactOrder() {
	n := len(h.order) - h.orderHead
	if n <= 2*h.kept+64 && (h.orderHead < 64 || h.orderHead*2 < len(h.order)) {
		return
	}
	live := make([]orderEntry, 0, h.kept+h.kept/4+16)
	for _, e := range h.order[h.orderHead:] {
		if e.h.head < len(e.h.changes) && e.index >= e.h.changes[e.h.head].index {
			live = append(live, e)
		}
	}
	h.order, h.orderHead = live, 0
}

// reset voids every index handed out so far: the store's contents changed
// without events.
func (h *history) reset() {
	h.evicted += uint64(h.kept)
	h.index++
	h.floor = h.index
	h.ns = map[string]*nsHistory{}
	h.order, h.orderHead, h.kept, h.bytes = nil, 0, 0, 0
}

// nsIndex returns the index of namespace ns: that of its latest change, or
// of the last reset if later.
func (h *history) nsIndex(ns string) uint64 {
	if nh := h.ns[ns]; nh != nil && nh.last > h.floor {
		return nh.last
	}
	return h.floor
}

// since returns up to max changes of ns with a key under prefix and an index
// above after, oldest first, and the index to resume from: the namespace's
// index when nothing more waits, else the index of the last change returned.
// It fails with errIndexGone when changes after after are no longer all kept
// or after is not an index of this process.
func (h *history) since(ns, prefix string, after uint64, max int) ([]change, uint64, error) {
	nh := h.ns[ns]
	if after < h.floor || after > h.index || (nh != nil && after < nh.lost) {
		return nil, h.nsIndex(ns), errIndexGone
	}
	if nh == nil {
		return nil, h.nsIndex(ns), nil
	}
	kept := nh.changes[nh.head:]
	i := sort.Search(len(kept), func(i int) bool { return kept[i].index > after })
	var out []change
	if prefix == "" {
		out = make([]change, 0, min(max, len(kept)-i))
	}
	for _, c := range kept[i:] {
		if !strings.HasPrefix(c.ev.Key, prefix) {
			continue
		}
		if len(out) == max {
			return out, out[len(out)-1].index, nil
		}
		out = append(out, c)
	}
	return out, h.nsIndex(ns), nil
}

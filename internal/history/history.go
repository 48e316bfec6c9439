// Package history is test machinery: a checker of the replication promise
// over a history of acknowledged writes, shared by the simulation (replica
// tests) and real-process fault suites.
//
// The rules, once the cluster is healed and quiet:
//
//  1. Every acknowledged write is on every node, or superseded by a write
//     or delete of the same key that is greater in (stamp, actor name,
//     actor generation) order. Equivalently: on every node, each key holds
//     the value of its greatest acknowledged write.
//  2. No resurrection: a key whose greatest write is a delete is absent
//     everywhere.
//  3. Nothing appears that no one wrote.
//  4. All nodes hold identical state.
//
// Values must be unique per write (say "key@node#n"), so that a value found
// on a node names the write it came from.
package history

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Write is one acknowledged write (or delete) of a key.
type Write struct {
	Node    string // the node that acknowledged it
	Key     string
	Value   string // unique per write; empty for a delete
	Deleted bool
	// Stamp, Actor and Gen order the writes of a key: the greater (Stamp,
	// Actor, Gen) wins.
	Stamp uint64
	Actor string
	Gen   uint64
}

// less reports whether write a loses to write b.
func less(a, b *Write) bool {
	return cmp.Or(cmp.Compare(a.Stamp, b.Stamp), strings.Compare(a.Actor, b.Actor), cmp.Compare(a.Gen, b.Gen)) < 0
}

// History is a set of acknowledged writes. The zero value is empty.
type History struct {
	writes  []Write
	byValue map[string]*Write
}

// Add records an acknowledged write.
func (h *History) Add(w Write) { h.writes = append(h.writes, w) }

// Len returns the number of writes recorded.
func (h *History) Len() int { return len(h.writes) }

// Winners returns, per key, its greatest acknowledged write.
func (h *History) Winners() map[string]Write {
	out := map[string]Write{}
	for i := range h.writes {
		w := &h.writes[i]
		if cur, ok := out[w.Key]; !ok || less(&cur, w) {
			out[w.Key] = *w
		}
	}
	return out
}

// Violation is one broken rule on one node.
type Violation struct {
	Node string
	Key  string
	Rule string // "lost", "stale", "resurrected", "unknown"
	Want string // the winning write
	Got  string // what the node holds
}

func (v Violation) String() string {
	return fmt.Sprintf("%s: key %q %s: want %s, got %s", v.Node, v.Key, v.Rule, v.Want, v.Got)
}

// Check checks the final state of every node (node -> key -> value; absent
// keys are deleted or never written) against the history. It returns every
// violation, in a stable order. Identical state on every node follows from
// no violation: every node then holds exactly the winners.
func (h *History) Check(final map[string]map[string]string) []Violation {
	win := h.Winners()
	if h.byValue == nil || len(h.byValue) != len(h.writes) {
		h.byValue = make(map[string]*Write, len(h.writes))
		for i := range h.writes {
			if !h.writes[i].Deleted {
				h.byValue[h.writes[i].Value] = &h.writes[i]
			}
		}
	}
	describe := func(w *Write) string {
		if w == nil {
			return "absent"
		}
		op := "put " + w.Value
		if w.Deleted {
			op = "delete"
		}
		return fmt.Sprintf("%s at %s (stamp %d, actor %s/%d)", op, w.Node, w.Stamp, w.Actor, w.Gen)
	}
	var out []Violation
	for _, node := range slices.Sorted(maps.Keys(final)) {
		kv := final[node]
		for _, key := range slices.Sorted(maps.Keys(win)) {
			w := win[key]
			got, ok := kv[key]
			switch {
			case w.Deleted && ok:
				out = append(out, Violation{node, key, "resurrected", describe(&w), describe(h.byValue[got])})
			case !w.Deleted && !ok:
				out = append(out, Violation{node, key, "lost", describe(&w), "absent"})
			case !w.Deleted && got != w.Value:
				g := h.byValue[got]
				rule := "stale"
				if g == nil || g.Key != key {
					rule = "unknown"
				}
				out = append(out, Violation{node, key, rule, describe(&w), describe(g)})
			}
		}
		for _, key := range slices.Sorted(maps.Keys(kv)) {
			if _, ok := win[key]; !ok {
				out = append(out, Violation{node, key, "unknown", "absent", kv[key]})
			}
		}
	}
	return out
}

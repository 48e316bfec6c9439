//go:build linux

package faults

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"
)

// op is one acknowledged write: a PUT (del false) or a DELETE of key,
// sent at sent and acknowledged at acked by the wall clock of this
// process, which the agents share (they run on the same host).
type op struct {
	key   string
	value string
	del   bool
	node  string
	sent  time.Time
	acked time.Time
}

// history records the acknowledged writes of one namespace. Safe for
// concurrent use.
type history struct {
	mu  sync.Mutex
	ops map[string][]op
	n   int
}

func newHistory() *history { return &history{ops: map[string][]op{}} }

// clockSlack is how much later than another write's acknowledgement a write
// must be sent to count as definitely after it: the agents stamp writes
// with hybrid clocks at millisecond resolution from the same host clock.
const clockSlack = 5 * time.Millisecond

// put writes key = value through a and records it if acknowledged.
func (h *history) put(a *agent, ns, key, value string) error {
	sent := time.Now()
	if err := a.put(ns, key, value); err != nil {
		return err
	}
	h.record(op{key: key, value: value, node: a.name, sent: sent, acked: time.Now()})
	return nil
}

// del deletes key through a and records it if acknowledged.
func (h *history) del(a *agent, ns, key string) error {
	sent := time.Now()
	if err := a.del(ns, key); err != nil {
		return err
	}
	h.record(op{key: key, del: true, node: a.name, sent: sent, acked: time.Now()})
	return nil
}

func (h *history) record(o op) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ops[o.key] = append(h.ops[o.key], o)
	h.n++
}

// writes returns the number of acknowledged writes recorded.
func (h *history) writes() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.n
}

// allowed returns, for key, the writes whose outcome may be the final
// state: those that no other write of the key definitely followed.
func allowed(ops []op) []op {
	var out []op
next:
	for _, o := range ops {
		for _, p := range ops {
			if p.sent.After(o.acked.Add(clockSlack)) {
				continue next
			}
		}
		out = append(out, o)
	}
	return out
}

// check compares one node's final state of the namespace (key -> value)
// with the history: every key written must hold the outcome of an allowed
// write (a lost write or a resurrected delete is an error); keys never
// written are errors too. It returns one line per problem, sorted.
func (h *history) check(state map[string]string) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var probs []string
	for key, ops := range h.ops {
		got, present := state[key]
		ok := false
		var want []string
		for _, o := range allowed(ops) {
			switch {
			case o.del:
				ok = ok || !present
				want = append(want, fmt.Sprintf("deleted on %s", o.node))
			default:
				ok = ok || (present && got == o.value)
				want = append(want, fmt.Sprintf("%q from %s", o.value, o.node))
			}
		}
		if ok {
			continue
		}
		gotS := "absent"
		if present {
			gotS = fmt.Sprintf("%q", got)
		}
		probs = append(probs, fmt.Sprintf("key %q: %s, want %s", key, gotS, strings.Join(want, " or ")))
	}
	for key, v := range state {
		if _, ok := h.ops[key]; !ok {
			probs = append(probs, fmt.Sprintf("key %q: %q, never written", key, v))
		}
	}
	sort.Strings(probs)
	return probs
}

// diffStates returns the keys on which two states differ, sorted.
func diffStates(a, b map[string]string) []string {
	var d []string
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			d = append(d, k)
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			d = append(d, k)
		}
	}
	sort.Strings(d)
	return d
}

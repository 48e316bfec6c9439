package store

import "strings"

// Event is one change seen by a subscription. Lagged events carry nothing
// else: the subscriber missed changes and must resynchronise with List.
type Event struct {
	Seq       uint64 // per-subscription, increasing by one per event
	Namespace string
	Key       string
	Value     string // empty when Deleted
	Deleted   bool
	Stamp     Stamp
	Lagged    bool
}

// Subscription buffers the changes of one namespace (optionally one key
// prefix) in a bounded ring that the caller drains with Next. The store
// never blocks on a subscriber: when the ring is full the subscription
// drops what it holds and delivers one Lagged event instead.
type Subscription struct {
	s       *Store
	ns      string
	prefix  string
	ring    []Event
	head, n int
	seq     uint64
	lagged  bool
	// fn, when set, receives every event at once instead of the ring
	// (Observe).
	fn func(Event)
}

// Subscribe starts watching namespace ns for keys with the given prefix,
// buffering up to size events (at least 1).
func (s *Store) Subscribe(ns, prefix string, size int) *Subscription {
	size = max(size, 1)
	sub := &Subscription{s: s, ns: ns, prefix: prefix, ring: make([]Event, size)}
	s.subs = append(s.subs, sub)
	return sub
}

// Observe calls fn with every change of every namespace, synchronously and
// in the order the store applies them (local writes and merged remote ones
// alike), and with one Lagged event (Namespace "") when the store's contents
// changed without events: a resynchronisation or a restore. fn runs inside
// the store's methods, so it must not call the store; it may keep the
// event's strings. Cancel the returned subscription to stop.
func (s *Store) Observe(fn func(Event)) *Subscription {
	sub := &Subscription{s: s, fn: fn}
	s.subs = append(s.subs, sub)
	return sub
}

// Cancel stops the subscription; buffered events stay readable.
func (sub *Subscription) Cancel() {
	subs := sub.s.subs
	for i, x := range subs {
		if x == sub {
			sub.s.subs = append(subs[:i], subs[i+1:]...)
			return
		}
	}
}

// Len returns the number of events waiting.
func (sub *Subscription) Len() int {
	if sub.lagged {
		return 1
	}
	return sub.n
}

// Next returns the oldest waiting event, or false when none waits.
func (sub *Subscription) Next() (Event, bool) {
	if sub.lagged {
		sub.lagged = false
		sub.seq++
		return Event{Seq: sub.seq, Namespace: sub.ns, Lagged: true}, true
	}
	if sub.n == 0 {
		return Event{}, false
	}
	ev := sub.ring[sub.head]
	sub.ring[sub.head] = Event{}
	sub.head = (sub.head + 1) % len(sub.ring)
	sub.n--
	return ev, true
}

func (sub *Subscription) push(ev Event) {
	if sub.fn != nil {
		sub.fn(ev)
		return
	}
	if sub.lagged {
		return // everything up to the resync is lost anyway
	}
	if sub.n == len(sub.ring) {
		for i := range sub.ring {
			sub.ring[i] = Event{}
		}
		sub.head, sub.n = 0, 0
		sub.lagged = true
		sub.s.stats.Lagged++
		return
	}
	sub.seq++
	ev.Seq = sub.seq
	sub.ring[(sub.head+sub.n)%len(sub.ring)] = ev
	sub.n++
}

func (s *Store) notify(e *entry) {
	ns := s.nsNames[e.ns]
	for _, sub := range s.subs {
		if sub.fn == nil && (sub.ns != ns || !strings.HasPrefix(e.key(), sub.prefix)) {
			continue
		}
		sub.push(Event{Namespace: ns, Key: e.key(), Value: e.value(), Deleted: e.tomb(), Stamp: Stamp(e.stamp)})
	}
}

// markLagged tells the subscriber its view is void (the store resynced or
// was restored).
func (sub *Subscription) markLagged() {
	if sub.fn != nil {
		sub.fn(Event{Lagged: true})
		return
	}
	clear(sub.ring)
	sub.head, sub.n = 0, 0
	sub.lagged = true
}

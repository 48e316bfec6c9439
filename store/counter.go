package store

import (
	"time"
)

// limiter is one windowed counter: the current window (aligned to multiples
// of its length since the Unix epoch) and one slot per actor. Each actor
// only ever increments its own slot, so merging by max loses nothing, and
// the window's total is the sum of the slots.
type limiter struct {
	windowMs uint64
	window   uint64 // window index: start = window * windowMs
	slots    []uint64
	sum      uint64
	dirty    bool // local slot changed since the last AppendDeltas
}

// maxLimiters bounds the limiters remote deltas may create.
const maxLimiters = 1 << 16

func windowMillis(d time.Duration) uint64 { return uint64(max(d.Milliseconds(), 1)) }

func nowMillis(now time.Time) uint64 { return uint64(max(now.UnixMilli(), 0)) }

// roll moves l to window w, dropping the old window's slots.
func (l *limiter) roll(windowMs, w uint64) {
	l.windowMs, l.window, l.sum = windowMs, w, 0
	clear(l.slots)
}

// Take admits n units against a limit of limit per window when the current
// window's total (all actors) leaves room, and counts them against the local
// actor. It returns whether it admitted them, what remains in the window
// and when the window ends. n = 0 reads without taking. A window shorter
// than a millisecond counts as one millisecond.
//
// Every replica admits against the total it has heard of, so the cluster
// may over-admit by what the other replicas admitted but had not yet
// propagated: at most (cluster rate) x (propagation delay) per window.
func (s *Store) Take(name string, n, limit uint64, window time.Duration, now time.Time) (allowed bool, remaining uint64, reset time.Time) {
	wms := windowMillis(window)
	w := nowMillis(now) / wms
	l := s.limiters[name]
	if l == nil {
		l = &limiter{windowMs: wms, window: w, slots: make([]uint64, 1, 4)}
		s.limiters[name] = l
	}
	if l.windowMs != wms || w > l.window {
		l.roll(wms, w)
	}
	if n <= limit && l.sum <= limit-n {
		allowed = n > 0 || l.sum < limit
		l.slots[0] += n
		l.sum += n
		l.dirty = l.dirty || n > 0
	}
	if l.sum < limit {
		remaining = limit - l.sum
	}
	return allowed, remaining, time.UnixMilli(int64((l.window + 1) * wms))
}

// Count returns the total counted in the current window of limiter name as
// of now, across all actors.
func (s *Store) Count(name string, window time.Duration, now time.Time) uint64 {
	l := s.limiters[name]
	if l == nil || l.windowMs != windowMillis(window) || nowMillis(now)/l.windowMs != l.window {
		return 0
	}
	return l.sum
}

// mergeCounter folds a remote slot into the limiter by max. Slots of older
// windows are dropped; a newer window replaces the current one.
func (s *Store) mergeCounter(name []byte, windowMs, w uint64, actor uint32, count uint64) {
	l := s.limiters[string(name)]
	if l == nil {
		if len(s.limiters) >= maxLimiters || windowMs == 0 {
			s.stats.Skipped++
			return
		}
		l = &limiter{windowMs: windowMs, window: w, slots: make([]uint64, 1, 4)}
		s.limiters[string(name)] = l
	}
	if l.windowMs != windowMs {
		// Replicas disagree on the window (a config change in flight):
		// the later-starting window wins.
		if windowMs == 0 || w*windowMs <= l.window*l.windowMs {
			s.stats.Skipped++
			return
		}
		l.roll(windowMs, w)
	}
	switch {
	case w < l.window:
		return
	case w > l.window:
		l.roll(windowMs, w)
	}
	if int(actor) >= len(l.slots) {
		l.slots = append(l.slots, make([]uint64, int(actor)+1-len(l.slots))...)
	}
	if count > l.slots[actor] {
		l.slots[actor] = count
		l.sum = 0
		for _, c := range l.slots {
			if l.sum+c < l.sum {
				l.sum = ^uint64(0) // saturate: hostile counts cannot wrap
				break
			}
			l.sum += c
		}
	}
}

// expireLimiters drops limiters whose window ended before now.
func (s *Store) expireLimiters(now time.Time) {
	ms := nowMillis(now)
	for name, l := range s.limiters {
		if (l.window+1)*l.windowMs < ms && !l.dirty {
			delete(s.limiters, name)
		}
	}
}

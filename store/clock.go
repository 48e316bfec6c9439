package store

import "time"

// Stamp is a hybrid logical clock reading: physical Unix milliseconds in the
// high 48 bits and a logical counter in the low 16. Stamps compare as
// integers; a logical counter that overflows carries into the millisecond
// field, which keeps the order.
type Stamp uint64

// Millis returns the physical part of s in Unix milliseconds.
func (s Stamp) Millis() int64 { return int64(s >> 16) }

// Logical returns the logical counter of s.
func (s Stamp) Logical() uint16 { return uint16(s) }

// physical converts now into a stamp with logical counter zero.
func physical(now time.Time) uint64 {
	ms := now.UnixMilli()
	if ms < 0 {
		return 0
	}
	return uint64(ms) << 16
}

// hlc is the hybrid logical clock. It never reads the wall clock: every
// reading is given now.
type hlc struct{ last uint64 }

// tick returns a stamp greater than every stamp issued or observed so far and
// no less than now.
func (c *hlc) tick(now time.Time) uint64 {
	p := physical(now)
	if p > c.last {
		c.last = p
	} else {
		c.last++
	}
	return c.last
}

// observe advances the clock past a remote stamp the store accepted.
func (c *hlc) observe(st uint64) {
	if st > c.last {
		c.last = st
	}
}

// skewLimit is the greatest remote stamp accepted at now: anything more
// than skew ahead is held back.
func skewLimit(now time.Time, skew time.Duration) uint64 {
	return physical(now.Add(skew)) | 0xffff
}

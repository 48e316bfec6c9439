package store

import (
	"slices"
)

// actorCtx is one actor's column of the causal context: every dot with seq
// <= max has been seen, plus the dots in cloud (sorted, all > max+1) that
// arrived out of order. Adding the dot max+1 folds the cloud's leading run
// into max, so the cloud only holds true gaps.
type actorCtx struct {
	max   uint64
	cloud []uint64
}

func (c *actorCtx) has(seq uint64) bool {
	if seq <= c.max {
		return true
	}
	if len(c.cloud) == 0 {
		return false
	}
	_, ok := slices.BinarySearch(c.cloud, seq)
	return ok
}

func (c *actorCtx) add(seq uint64) {
	switch {
	case seq <= c.max:
		return
	case seq == c.max+1:
		c.max = seq
		c.compact()
	default:
		i, ok := slices.BinarySearch(c.cloud, seq)
		if !ok {
			c.cloud = slices.Insert(c.cloud, i, seq)
		}
	}
}

// addRange records every dot in (from, to] as seen. A range that starts
// beyond max opens a gap, so its dots go to the cloud one by one; only up to
// maxGapRange of them, so hostile input cannot make the cloud huge. A longer
// gap range is ignored: the context may under-approximate, the dots come
// again with anti-entropy.
func (c *actorCtx) addRange(from, to uint64) {
	switch {
	case to <= c.max:
		return
	case from <= c.max:
		c.max = to
		i := 0
		for i < len(c.cloud) && c.cloud[i] <= to {
			i++
		}
		c.cloud = c.cloud[:copy(c.cloud, c.cloud[i:])]
		c.compact()
	case to-from <= maxGapRange:
		for seq := from + 1; seq <= to; seq++ {
			c.add(seq)
		}
	}
}

// maxGapRange bounds the dots a range past the context's max may add.
const maxGapRange = 4096

func (c *actorCtx) compact() {
	i := 0
	for i < len(c.cloud) && c.cloud[i] <= c.max+1 {
		if c.cloud[i] == c.max+1 {
			c.max++
		}
		i++
	}
	if i > 0 {
		c.cloud = c.cloud[:copy(c.cloud, c.cloud[i:])]
	}
}

// dominates reports whether c has seen every dot up to seq.
func (c *actorCtx) covers(seq uint64) bool { return seq <= c.max }

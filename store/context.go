package store

import "sort"

// Run is the sequence numbers First through Last, inclusive.
type Run struct{ First, Last uint64 }

// actorCtx is one actor's column of the causal context: every dot with seq
// <= max has been seen, plus the runs in cloud, which arrived out of order.
// Cloud runs are sorted, disjoint, not adjacent, and start past max+1;
// filling the gap before the first run folds it into max, so the cloud only
// holds true gaps, and a gap costs one run however many dots follow it.
type actorCtx struct {
	max   uint64
	cloud []Run
}

// maxSeq bounds sequence numbers from the network, so seq+1 never wraps.
const maxSeq = 1 << 62

func (c *actorCtx) has(seq uint64) bool {
	if seq <= c.max {
		return true
	}
	if len(c.cloud) == 0 {
		return false
	}
	i := sort.Search(len(c.cloud), func(i int) bool { return c.cloud[i].Last >= seq })
	return i < len(c.cloud) && c.cloud[i].First <= seq
}

// hasRun reports whether every seq of r has been seen.
func (c *actorCtx) hasRun(r Run) bool {
	if r.Last <= c.max {
		return true
	}
	i := sort.Search(len(c.cloud), func(i int) bool { return c.cloud[i].Last >= r.Last })
	return i < len(c.cloud) && c.cloud[i].First <= max(r.First, c.max+1)
}

func (c *actorCtx) add(seq uint64) { c.addRun(seq, seq) }

// addRange records every dot in (from, to] as seen.
func (c *actorCtx) addRange(from, to uint64) {
	if from < to {
		c.addRun(from+1, to)
	}
}

func (c *actorCtx) addRun(lo, hi uint64) {
	if hi <= c.max || lo > hi {
		return
	}
	if lo <= c.max+1 {
		c.max = hi
		i := 0
		for i < len(c.cloud) && c.cloud[i].First <= c.max+1 {
			c.max = max(c.max, c.cloud[i].Last)
			i++
		}
		if i > 0 {
			c.cloud = c.cloud[:copy(c.cloud, c.cloud[i:])]
		}
		return
	}
	// Merge with every run that overlaps or touches [lo, hi].
	i := sort.Search(len(c.cloud), func(i int) bool { return c.cloud[i].Last+1 >= lo })
	j := i
	for j < len(c.cloud) && c.cloud[j].First <= hi+1 {
		lo, hi = min(lo, c.cloud[j].First), max(hi, c.cloud[j].Last)
		j++
	}
	if i == j {
		c.cloud = append(c.cloud, Run{})
		copy(c.cloud[i+1:], c.cloud[i:])
		c.cloud[i] = Run{lo, hi}
		return
	}
	c.cloud[i] = Run{lo, hi}
	c.cloud = append(c.cloud[:i+1], c.cloud[j:]...)
}

// top returns the highest seq seen.
func (c *actorCtx) top() uint64 {
	if n := len(c.cloud); n > 0 {
		return c.cloud[n-1].Last
	}
	return c.max
}

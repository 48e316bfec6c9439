package swim

import "github.com/meshnode/meshnode/wire"

// Broadcast priorities: lower is sent first.
const (
	prioAlive   = 0 // alive and refutations: they stop false deaths
	prioSuspect = 1 // suspect and dead
	prioData    = 2 // payloads of the layer above
	numPrio     = 3
)

// bcast is one queued broadcast.
type bcast struct {
	key  string // member name, "" for data (never replaced)
	msg  wire.Message
	size int
	prio int
	tx   int // times sent
	idx  int // index in its bucket
	mult int // the retransmit limit is multiplied by mult (if above 1)
}

// queue holds the broadcasts waiting to be piggybacked. Items are bucketed by
// priority and by the number of times they were sent, so that filling a
// packet takes the most urgent, least-sent items first without sorting. News
// about a member replaces older news about it. Iteration order is a pure
// function of the operations applied, so outputs are deterministic.
type queue struct {
	buckets [numPrio][][]*bcast
	byKey   map[string]*bcast
	n       int
	taken   []*bcast
}

func newQueue() queue { return queue{byKey: make(map[string]*bcast)} }

// len returns the number of queued broadcasts.
func (q *queue) len() int { return q.n }

// push queues msg, replacing queued news with the same key. It reports false
// if the queue is full (bound max) and nothing could be evicted to make room.
func (q *queue) push(key string, msg wire.Message, size, prio int, max int) bool {
	if key != "" {
		if old, ok := q.byKey[key]; ok {
			q.remove(old)
		}
	}
	if q.n >= max && !q.evict(prio) {
		return false
	}
	b := &bcast{key: key, msg: msg, size: size, prio: prio}
	q.add(b)
	if key != "" {
		q.byKey[key] = b
	}
	return true
}

// boost multiplies the retransmit limit of the queued news under key by
// mult.
func (q *queue) boost(key string, mult int) {
	if b := q.byKey[key]; b != nil {
		b.mult = mult
	}
}

// evict drops the most-sent item of the lowest priority not more urgent than
// prio, and reports whether it found one.
func (q *queue) evict(prio int) bool {
	for p := numPrio - 1; p >= prio; p-- {
		bs := q.buckets[p]
		for t := len(bs) - 1; t >= 0; t-- {
			if n := len(bs[t]); n > 0 {
				q.remove(bs[t][n-1])
				return true
			}
		}
	}
	return false
}

func (q *queue) add(b *bcast) {
	bs := &q.buckets[b.prio]
	for len(*bs) <= b.tx {
		*bs = append(*bs, nil)
	}
	b.idx = len((*bs)[b.tx])
	(*bs)[b.tx] = append((*bs)[b.tx], b)
	q.n++
}

func (q *queue) remove(b *bcast) {
	s := q.buckets[b.prio][b.tx]
	last := len(s) - 1
	s[b.idx] = s[last]
	s[b.idx].idx = b.idx
	s[last] = nil
	q.buckets[b.prio][b.tx] = s[:last]
	q.n--
	if b.key != "" && q.byKey[b.key] == b {
		delete(q.byKey, b.key)
	}
}

// fill appends to dst the queued messages that fit in budget bytes, most
// urgent and least sent first, counts a transmission for each and drops
// those sent limit times. It returns dst and the bytes used.
func (q *queue) fill(dst []wire.Message, budget, limit int) ([]wire.Message, int) {
	used := 0
	q.taken = q.taken[:0]
	misses := 0
	const minMsg = 8 // no broadcast is smaller than this
	for p := 0; p < numPrio && budget-used >= minMsg && misses < 64; p++ {
		bs := q.buckets[p]
		for t := 0; t < len(bs) && budget-used >= minMsg && misses < 64; t++ {
			for _, b := range bs[t] {
				if b.size > budget-used {
					misses++
					if misses >= 64 {
						break
					}
					continue
				}
				used += b.size
				dst = append(dst, b.msg)
				q.taken = append(q.taken, b)
			}
		}
	}
	for _, b := range q.taken {
		q.remove(b)
		b.tx++
		if b.tx < limit*max(b.mult, 1) {
			q.add(b)
			if b.key != "" {
				q.byKey[b.key] = b
			}
		}
	}
	return dst, used
}

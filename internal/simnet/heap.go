package simnet

const (
	evTick uint8 = iota + 1
	evPacket
	evStreamServe
	evStreamDone
	evFunc
)

// event is one scheduled happening. Events are values in the heap, so
// scheduling one does not allocate beyond the heap's growth.
type event struct {
	at       int64 // ns since Start
	seq      uint64
	kind     uint8
	epoch    uint32
	node     int // the node it happens at
	from     int
	size     int
	tok      uint64
	stream   uint64
	deadline int64
	payload  any
	err      error
	fn       func()
}

// eventHeap is a binary min-heap ordered by (at, seq): events at the same
// time run in the order they were scheduled.
type eventHeap []event

func (h eventHeap) less(i, j int) bool {
	if h[i].at != h[j].at {
		return h[i].at < h[j].at
	}
	return h[i].seq < h[j].seq
}

func (h *eventHeap) push(ev event) {
	*h = append(*h, ev)
	s := *h
	i := len(s) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !s.less(i, p) {
			break
		}
		s[i], s[p] = s[p], s[i]
		i = p
	}
}

func (h *eventHeap) pop() event {
	s := *h
	top := s[0]
	last := len(s) - 1
	s[0] = s[last]
	s[last] = event{}
	s = s[:last]
	i := 0
	for {
		l := 2*i + 1
		if l >= len(s) {
			break
		}
		m := l
		if r := l + 1; r < len(s) && s.less(r, l) {
			m = r
		}
		if !s.less(m, i) {
			break
		}
		s[i], s[m] = s[m], s[i]
		i = m
	}
	*h = s
	return top
}

package engine

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// Config configures a Model. Zero fields take the defaults of
// DefaultConfig; negative ones are errors.
type Config struct {
	// Blocks is the KV cache's size in blocks [18750: 300k tokens].
	Blocks int
	// BlockTokens is the number of tokens per block [16, vLLM's default].
	BlockTokens int
	// HashSeed is the parent value of every prompt's first block [0].
	HashSeed uint64
	// PrefillTPS is the prefill rate in uncached input tokens per second
	// [10000: an 8B model on one GPU].
	PrefillTPS float64
	// DecodeTPS is the decode rate of one sequence in output tokens per
	// second [50].
	DecodeTPS float64
	// MaxBatch is the most sequences in prefill or decode at once [64].
	MaxBatch int
	// MaxQueue is the most requests waiting to start; Submit refuses more
	// with ErrQueueFull [4096].
	MaxQueue int
}

// DefaultConfig returns defaults realistic for an 8B model on one GPU.
func DefaultConfig() Config {
	return Config{
		Blocks:      18750,
		BlockTokens: 16,
		PrefillTPS:  10000,
		DecodeTPS:   50,
		MaxBatch:    64,
		MaxQueue:    4096,
	}
}

// WithDefaults returns c with its zero fields set to DefaultConfig's.
func (c Config) WithDefaults() Config {
	d := DefaultConfig()
	if c.Blocks == 0 {
		c.Blocks = d.Blocks
	}
	if c.BlockTokens == 0 {
		c.BlockTokens = d.BlockTokens
	}
	if c.PrefillTPS == 0 {
		c.PrefillTPS = d.PrefillTPS
	}
	if c.DecodeTPS == 0 {
		c.DecodeTPS = d.DecodeTPS
	}
	if c.MaxBatch == 0 {
		c.MaxBatch = d.MaxBatch
	}
	if c.MaxQueue == 0 {
		c.MaxQueue = d.MaxQueue
	}
	return c
}

// Validate reports every problem of c (after WithDefaults) at once.
func (c Config) Validate() error {
	var errs []error
	if c.Blocks < 1 || c.Blocks > maxBlocks {
		errs = append(errs, fmt.Errorf("engine: blocks %d outside [1, %d]", c.Blocks, maxBlocks))
	}
	if c.BlockTokens < 1 || c.BlockTokens > maxBlockTokens {
		errs = append(errs, fmt.Errorf("engine: block tokens %d outside [1, %d]", c.BlockTokens, maxBlockTokens))
	}
	if !(c.PrefillTPS > 0) || math.IsInf(c.PrefillTPS, 0) {
		errs = append(errs, fmt.Errorf("engine: prefill rate %v tokens/s is not positive and finite", c.PrefillTPS))
	}
	if !(c.DecodeTPS > 0) || math.IsInf(c.DecodeTPS, 0) {
		errs = append(errs, fmt.Errorf("engine: decode rate %v tokens/s is not positive and finite", c.DecodeTPS))
	}
	if c.MaxBatch < 1 {
		errs = append(errs, fmt.Errorf("engine: max batch %d is less than 1", c.MaxBatch))
	}
	if c.MaxQueue < 1 {
		errs = append(errs, fmt.Errorf("engine: max queue %d is less than 1", c.MaxQueue))
	}
	return errors.Join(errs...)
}

// Errors of Submit.
var (
	// ErrQueueFull: Config.MaxQueue requests are already waiting.
	ErrQueueFull = errors.New("engine: queue full")
	// ErrBadRequest: the request is malformed (see Request).
	ErrBadRequest = errors.New("engine: bad request")
)

// ID names a submitted request; IDs count from 1 in submission order.
type ID uint64

// Request is a prompt to serve.
type Request struct {
	// Tokens are the prompt's token ids. The model keeps the slice (its
	// BlockStored events alias it) until the request is done: the caller
	// must not modify it.
	Tokens []uint32
	// BlockHashes, when set, are the prompt's block hashes (as the cache's
	// AppendHashes would compute them), so that a caller that knows them
	// saves the hashing; they are kept like Tokens. With Tokens set they
	// must number len(Tokens)/BlockTokens.
	BlockHashes []uint64
	// InputTokens is the prompt's length when Tokens is nil (then the
	// prompt's blocks are BlockHashes, and events carry no token ids).
	InputTokens int
	// OutputTokens is the number of tokens to generate, at least 1.
	OutputTokens int
}

// Result is a request's schedule, given when its prefill ends (its first
// token): everything after is decided, so Done is known then too.
type Result struct {
	ID ID
	// Arrival is when it was submitted, Start when its prefill began,
	// FirstToken when its prefill ended and Done when its last token is
	// out (FirstToken + (OutputTokens-1) / DecodeTPS).
	Arrival, Start, FirstToken, Done time.Duration
	// InputTokens of the prompt, CachedTokens of them served from the
	// cache (found at Start), OutputTokens generated.
	InputTokens, CachedTokens, OutputTokens int
}

// QueueWait is the time the request waited before its prefill began.
func (r Result) QueueWait() time.Duration { return r.Start - r.Arrival }

// TTFT is the time to first token: queue wait plus prefill time.
func (r Result) TTFT() time.Duration { return r.FirstToken - r.Arrival }

// Output is what a model did between two calls of Advance, in time order.
type Output struct {
	// Results of the requests whose prefill ended.
	Results []Result
	// Events of the cache, each with its time.
	Events []Event
}

// Stats are a model's counters since it was made.
type Stats struct {
	Submitted, Rejected, Started, Completed, Cancelled int64
	// InputTokens and CachedTokens of the started requests.
	InputTokens, CachedTokens int64
	// Busy is the time with at least one request in prefill or decode;
	// PrefillBusy the time spent in prefill.
	Busy, PrefillBusy time.Duration
	// Queued are waiting to start; Running are in prefill or decode.
	Queued, Running int
	// Blocks are cached now.
	Blocks int
}

// Model is an inference engine in virtual time: a FIFO queue, one prefill
// at a time at Config.PrefillTPS uncached tokens per second, decode at
// Config.DecodeTPS tokens per second per sequence, at most Config.MaxBatch
// sequences in prefill or decode, and a prefix Cache.
//
// A request starts its prefill when the prefill is free and the batch has
// room; its cached tokens are its cache hit at that moment (vLLM recomputes
// at least the last prompt token, so at most InputTokens-1). Its blocks
// are stored when its prefill ends, which is also its first token:
// TTFT = queue wait + uncached tokens / PrefillTPS. It leaves the batch
// after its last token. Only prompt blocks are cached, not output.
//
// Time is a time.Duration since an origin the caller picks (the start of a
// trace, or of the process). Every method that takes now first runs the
// model up to now; a now before the latest one counts as the latest.
// Results and events accumulate until Advance returns them.
//
// A Model is not safe for concurrent use and does no I/O.
type Model struct {
	cfg   Config
	cache *Cache
	now   time.Duration

	nextID    ID
	byID      map[ID]*request
	queue     []*request // FIFO, queue[qhead:] waiting
	qhead     int
	prefill   *request   // in prefill, or nil
	decoding  []*request // min-heap by (done, id)
	running   int
	pool      []*request
	hashes    arena
	queuedEst time.Duration // estimated prefill time of the queue

	stats     Stats
	busySince time.Duration
	out       Output
	spare     Output // the other buffer: Advance swaps them
}

type request struct {
	id                               ID
	arrival, start, firstToken, done time.Duration
	tokens                           []uint32
	hashes                           []uint64
	input, output, cached            int
	est                              time.Duration
	heapIdx                          int
}

// NewModel returns an idle model with an empty cache.
func NewModel(cfg Config) (*Model, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c, err := NewCache(cfg.Blocks, cfg.BlockTokens, cfg.HashSeed)
	if err != nil {
		return nil, err
	}
	return &Model{cfg: cfg, cache: c, byID: make(map[ID]*request)}, nil
}

// Config returns the model's configuration, defaults filled in.
func (m *Model) Config() Config { return m.cfg }

// Cache returns the model's cache, to inspect (Match, Contains); changing
// it behind the model's back is allowed but emits no timed events.
func (m *Model) Cache() *Cache { return m.cache }

// Now is the latest time the model has run to.
func (m *Model) Now() time.Duration { return m.now }

// Submit queues a request at now and returns its ID. It fails with
// ErrQueueFull when the queue is full and ErrBadRequest when the request
// is malformed.
func (m *Model) Submit(now time.Duration, req Request) (ID, error) {
	m.run(now)
	input := req.InputTokens
	if req.Tokens != nil {
		input = len(req.Tokens)
	}
	bt := m.cfg.BlockTokens
	switch {
	case input < 1:
		return 0, fmt.Errorf("%w: no input tokens", ErrBadRequest)
	case req.OutputTokens < 1:
		return 0, fmt.Errorf("%w: output tokens %d is less than 1", ErrBadRequest, req.OutputTokens)
	case req.Tokens != nil && req.BlockHashes != nil && len(req.BlockHashes) != len(req.Tokens)/bt:
		return 0, fmt.Errorf("%w: %d block hashes for %d tokens of blocks of %d", ErrBadRequest, len(req.BlockHashes), len(req.Tokens), bt)
	case len(req.BlockHashes) > input/bt:
		return 0, fmt.Errorf("%w: %d block hashes for %d input tokens", ErrBadRequest, len(req.BlockHashes), input)
	}
	if len(m.queue)-m.qhead >= m.cfg.MaxQueue {
		m.stats.Rejected++
		return 0, ErrQueueFull
	}
	hashes := req.BlockHashes
	if hashes == nil && req.Tokens != nil {
		n := len(req.Tokens) / bt
		hashes = AppendBlockHashes(m.hashes.alloc(n)[:0], m.cfg.HashSeed, bt, req.Tokens)
	}
	r := m.alloc()
	m.nextID++
	*r = request{
		id: m.nextID, arrival: m.now, tokens: req.Tokens, hashes: hashes,
		input: input, output: req.OutputTokens, heapIdx: -1,
	}
	r.est = m.prefillTime(input - m.cachedTokens(input, m.cache.Match(hashes)))
	m.byID[r.id] = r
	m.queue = append(m.queue, r)
	m.queuedEst += r.est
	m.stats.Submitted++
	m.startPrefills()
	return r.id, nil
}

// Cancel drops request id at now, wherever it is (queued, in prefill, in
// decode), as vLLM aborts the request of a client that went away; a
// prefill cut short stores no blocks. It reports whether the request was
// still there.
func (m *Model) Cancel(now time.Duration, id ID) bool {
	m.run(now)
	r, ok := m.byID[id]
	if !ok {
		return false
	}
	switch {
	case r == m.prefill:
		m.stats.PrefillBusy += m.now - r.start
		m.prefill = nil
		m.leave()
	case r.heapIdx >= 0:
		m.heapRemove(r.heapIdx)
		m.leave()
	default:
		for i := m.qhead; i < len(m.queue); i++ {
			if m.queue[i] == r {
				copy(m.queue[i:], m.queue[i+1:])
				m.queue[len(m.queue)-1] = nil
				m.queue = m.queue[:len(m.queue)-1]
				break
			}
		}
		m.queuedEst -= r.est
	}
	m.stats.Cancelled++
	m.release(r)
	m.startPrefills()
	return true
}

// Clear empties the cache at now (an AllBlocksCleared event).
func (m *Model) Clear(now time.Duration) {
	m.run(now)
	n := len(m.out.Events)
	m.out.Events = m.cache.Clear(m.out.Events)
	m.stamp(n)
}

// Next returns when the model next changes state by itself (a prefill
// ends, a sequence finishes), or false when it is idle.
func (m *Model) Next() (time.Duration, bool) {
	t, ok := time.Duration(0), false
	if m.prefill != nil {
		t, ok = m.prefill.firstToken, true
	}
	if len(m.decoding) > 0 && (!ok || m.decoding[0].done < t) {
		t, ok = m.decoding[0].done, true
	}
	return t, ok
}

// Advance runs the model up to now and returns the results and events
// since the previous call of Advance (including those of the Submit,
// Cancel and Clear calls in between), in time order. The returned slices
// stay valid until the next call of Advance.
func (m *Model) Advance(now time.Duration) Output {
	m.run(now)
	out := m.out
	m.out, m.spare = m.spare, out
	m.out.Results, m.out.Events = m.out.Results[:0], m.out.Events[:0]
	return out
}

// Queued is the number of requests waiting to start.
func (m *Model) Queued() int { return len(m.queue) - m.qhead }

// Running is the number of requests in prefill or decode.
func (m *Model) Running() int { return m.running }

// EstimateTTFT estimates the time to first token of a prompt with the
// given block hashes and input length if it were submitted at now: the
// rest of the current prefill, the prefills queued before it (their cache
// hits estimated at their submission) and its own uncached tokens at the
// cache's state now. It ignores the batch limit and changes nothing.
func (m *Model) EstimateTTFT(now time.Duration, hashes []uint64, inputTokens int) time.Duration {
	wait := m.queuedEst
	if m.prefill != nil && m.prefill.firstToken > now {
		wait += m.prefill.firstToken - now
	}
	return wait + m.prefillTime(inputTokens-m.cachedTokens(inputTokens, m.cache.Match(hashes)))
}

// Stats returns the model's counters, Busy counted up to Now.
func (m *Model) Stats() Stats {
	s := m.stats
	if m.running > 0 {
		s.Busy += m.now - m.busySince
	}
	s.Queued, s.Running, s.Blocks = m.Queued(), m.running, m.cache.Len()
	return s
}

// run processes every state change up to now.
func (m *Model) run(now time.Duration) {
	for {
		t, ok := m.Next()
		if !ok || t > now {
			break
		}
		if t > m.now {
			m.now = t
		}
		// Finished sequences leave the batch before a prefill ending at the
		// same time starts the next one.
		for len(m.decoding) > 0 && m.decoding[0].done <= m.now {
			r := m.decoding[0]
			m.heapRemove(0)
			m.leave()
			m.stats.Completed++
			m.release(r)
		}
		if r := m.prefill; r != nil && r.firstToken <= m.now {
			m.finishPrefill(r)
		}
		m.startPrefills()
	}
	if now > m.now {
		m.now = now
	}
}

// startPrefills starts the next queued request's prefill if the prefill is
// free and the batch has room.
func (m *Model) startPrefills() {
	if m.prefill != nil || m.running >= m.cfg.MaxBatch || m.qhead == len(m.queue) {
		return
	}
	r := m.queue[m.qhead]
	m.queue[m.qhead] = nil
	m.qhead++
	if m.qhead == len(m.queue) {
		m.queue, m.qhead = m.queue[:0], 0
	} else if m.qhead > 1024 && m.qhead > len(m.queue)/2 {
		n := copy(m.queue, m.queue[m.qhead:])
		clear(m.queue[n:])
		m.queue, m.qhead = m.queue[:n], 0
	}
	m.queuedEst -= r.est
	if m.running == 0 {
		m.busySince = m.now
	}
	m.running++
	r.start = m.now
	r.cached = m.cachedTokens(r.input, m.cache.Touch(r.hashes))
	d := m.prefillTime(r.input - r.cached)
	r.firstToken = m.now + d
	r.done = r.firstToken + time.Duration(float64(r.output-1)/m.cfg.DecodeTPS*float64(time.Second))
	m.prefill = r
	m.stats.Started++
	m.stats.InputTokens += int64(r.input)
	m.stats.CachedTokens += int64(r.cached)
}

// finishPrefill stores r's blocks, gives its result and moves it to decode.
func (m *Model) finishPrefill(r *request) {
	m.prefill = nil
	m.stats.PrefillBusy += r.firstToken - r.start
	n := len(m.out.Events)
	m.out.Events = m.cache.Store(m.out.Events, r.hashes, r.tokens)
	m.stamp(n)
	m.out.Results = append(m.out.Results, Result{
		ID: r.id, Arrival: r.arrival, Start: r.start, FirstToken: r.firstToken, Done: r.done,
		InputTokens: r.input, CachedTokens: r.cached, OutputTokens: r.output,
	})
	m.heapPush(r)
}

// stamp sets the time of the events from index n on.
func (m *Model) stamp(n int) {
	for i := n; i < len(m.out.Events); i++ {
		m.out.Events[i].At = m.now
	}
}

// leave takes one sequence out of the batch.
func (m *Model) leave() {
	m.running--
	if m.running == 0 {
		m.stats.Busy += m.now - m.busySince
	}
}

func (m *Model) cachedTokens(input, hitBlocks int) int {
	return min(hitBlocks*m.cfg.BlockTokens, input-1)
}

func (m *Model) prefillTime(tokens int) time.Duration {
	return time.Duration(math.Ceil(float64(tokens) / m.cfg.PrefillTPS * float64(time.Second)))
}

func (m *Model) alloc() *request {
	if n := len(m.pool); n > 0 {
		r := m.pool[n-1]
		m.pool = m.pool[:n-1]
		return r
	}
	return new(request)
}

func (m *Model) release(r *request) {
	delete(m.byID, r.id)
	*r = request{}
	m.pool = append(m.pool, r)
}

// The decode heap orders by (done, id) so that ties break the same way in
// every run.
func (m *Model) less(i, j int) bool {
	a, b := m.decoding[i], m.decoding[j]
	return a.done < b.done || a.done == b.done && a.id < b.id
}

func (m *Model) swap(i, j int) {
	h := m.decoding
	h[i], h[j] = h[j], h[i]
	h[i].heapIdx, h[j].heapIdx = i, j
}

func (m *Model) heapPush(r *request) {
	r.heapIdx = len(m.decoding)
	m.decoding = append(m.decoding, r)
	m.up(r.heapIdx)
}

func (m *Model) heapRemove(i int) {
	last := len(m.decoding) - 1
	r := m.decoding[i]
	if i != last {
		m.swap(i, last)
	}
	m.decoding[last] = nil
	m.decoding = m.decoding[:last]
	if i != last {
		m.down(i)
		m.up(i)
	}
	r.heapIdx = -1
}

func (m *Model) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !m.less(i, p) {
			return
		}
		m.swap(i, p)
		i = p
	}
}

func (m *Model) down(i int) {
	n := len(m.decoding)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		j := l
		if r := l + 1; r < n && m.less(r, l) {
			j = r
		}
		if !m.less(j, i) {
			return
		}
		m.swap(i, j)
		i = j
	}
}

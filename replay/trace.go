package replay

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"
)

// Request is one request of a trace.
type Request struct {
	// At is the arrival time from the start of the trace, after spreading
	// requests that share a coarse timestamp (see ParseTrace).
	At time.Duration
	// InputTokens and OutputTokens are the prompt and completion lengths.
	InputTokens  int
	OutputTokens int
	// Blocks are the ids of the prompt's blocks of Limits.BlockTokens
	// tokens: equal ids at the same position mean a shared prefix. The last
	// block may be partial.
	Blocks []uint64
}

// Limits bound what ParseTrace accepts, so that a hostile or corrupt file
// cannot exhaust memory.
type Limits struct {
	MaxLineBytes  int // [1 MiB]
	MaxRequests   int // [1,000,000]
	MaxBlocks     int // block ids per request [65,536]
	MaxTokens     int // input or output tokens per request [1<<26]
	BlockTokens   int // tokens per block [512]
	MaxTimestamp  int64
	AllowUnsorted bool // accept timestamps going back (sorted stably); false: an error
}

// DefaultLimits returns the limits the replay tool uses.
func DefaultLimits() Limits {
	return Limits{
		MaxLineBytes: 1 << 20,
		MaxRequests:  1_000_000,
		MaxBlocks:    1 << 16,
		MaxTokens:    1 << 26,
		BlockTokens:  512,
		MaxTimestamp: int64(365 * 24 * time.Hour / time.Millisecond),
	}
}

// ErrTrace is wrapped by every error about a trace's content.
var ErrTrace = errors.New("replay: bad trace")

// traceLine is one line of Mooncake's FAST'25 trace format.
type traceLine struct {
	Timestamp    *int64    `json:"timestamp"`
	InputLength  *int      `json:"input_length"`
	OutputLength *int      `json:"output_length"`
	HashIDs      *[]uint64 `json:"hash_ids"`
}

// ParseTrace reads a trace in Mooncake's FAST'25 format: one JSON object
// per line with "timestamp" (ms from the start), "input_length" and
// "output_length" (tokens) and "hash_ids" (ids of the prompt's blocks of
// lim.BlockTokens tokens). Every field is required, unknown fields and
// blank lines are errors, and each error names its line. The number of
// block ids must be ceil(input_length / BlockTokens).
//
// Timestamps are often coarse (many requests share one millisecond or
// second): the k requests sharing timestamp T are spread evenly over
// [T, T'), T' the next distinct timestamp; the last group spreads over the
// trace's smallest gap between distinct timestamps.
func ParseTrace(r io.Reader, lim Limits) ([]Request, error) {
	d := DefaultLimits()
	if lim.MaxLineBytes <= 0 {
		lim.MaxLineBytes = d.MaxLineBytes
	}
	if lim.MaxRequests <= 0 {
		lim.MaxRequests = d.MaxRequests
	}
	if lim.MaxBlocks <= 0 {
		lim.MaxBlocks = d.MaxBlocks
	}
	if lim.MaxTokens <= 0 {
		lim.MaxTokens = d.MaxTokens
	}
	if lim.BlockTokens <= 0 {
		lim.BlockTokens = d.BlockTokens
	}
	if lim.MaxTimestamp <= 0 {
		lim.MaxTimestamp = d.MaxTimestamp
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, min(64<<10, lim.MaxLineBytes)), lim.MaxLineBytes)
	var (
		reqs []Request
		ts   []int64
		line int
	)
	for sc.Scan() {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			return nil, fmt.Errorf("%w: line %d: empty line", ErrTrace, line)
		}
		if len(reqs) >= lim.MaxRequests {
			return nil, fmt.Errorf("%w: line %d: more than %d requests", ErrTrace, line, lim.MaxRequests)
		}
		var tl traceLine
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&tl); err != nil {
			return nil, fmt.Errorf("%w: line %d: %v", ErrTrace, line, err)
		}
		if dec.More() {
			return nil, fmt.Errorf("%w: line %d: more than one JSON value", ErrTrace, line)
		}
		req, t, err := checkLine(&tl, lim)
		if err != nil {
			return nil, fmt.Errorf("%w: line %d: %v", ErrTrace, line, err)
		}
		if n := len(ts); n > 0 && t < ts[n-1] && !lim.AllowUnsorted {
			return nil, fmt.Errorf("%w: line %d: timestamp %d before the previous line's %d", ErrTrace, line, t, ts[n-1])
		}
		reqs = append(reqs, req)
		ts = append(ts, t)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, fmt.Errorf("%w: line %d: longer than %d bytes", ErrTrace, line+1, lim.MaxLineBytes)
		}
		return nil, fmt.Errorf("replay: read trace: %w", err)
	}
	if len(reqs) == 0 {
		return nil, fmt.Errorf("%w: no requests", ErrTrace)
	}
	spread(reqs, ts)
	return reqs, nil
}

func checkLine(tl *traceLine, lim Limits) (Request, int64, error) {
	switch {
	case tl.Timestamp == nil:
		return Request{}, 0, errors.New(`missing "timestamp"`)
	case tl.InputLength == nil:
		return Request{}, 0, errors.New(`missing "input_length"`)
	case tl.OutputLength == nil:
		return Request{}, 0, errors.New(`missing "output_length"`)
	case tl.HashIDs == nil:
		return Request{}, 0, errors.New(`missing "hash_ids"`)
	}
	t, in, out, ids := *tl.Timestamp, *tl.InputLength, *tl.OutputLength, *tl.HashIDs
	switch {
	case t < 0 || t > lim.MaxTimestamp:
		return Request{}, 0, fmt.Errorf("timestamp %d out of range [0, %d]", t, lim.MaxTimestamp)
	case in <= 0 || in > lim.MaxTokens:
		return Request{}, 0, fmt.Errorf("input_length %d out of range [1, %d]", in, lim.MaxTokens)
	case out < 0 || out > lim.MaxTokens:
		return Request{}, 0, fmt.Errorf("output_length %d out of range [0, %d]", out, lim.MaxTokens)
	case len(ids) > lim.MaxBlocks:
		return Request{}, 0, fmt.Errorf("%d hash_ids, more than %d", len(ids), lim.MaxBlocks)
	}
	if want := (in + lim.BlockTokens - 1) / lim.BlockTokens; len(ids) != want {
		return Request{}, 0, fmt.Errorf("%d hash_ids for input_length %d: want %d blocks of %d tokens", len(ids), in, want, lim.BlockTokens)
	}
	return Request{InputTokens: in, OutputTokens: out, Blocks: ids}, t, nil
}

// spread sets each request's arrival time from the timestamps ts (ms),
// spreading the requests that share one over the interval to the next.
func spread(reqs []Request, ts []int64) {
	order := make([]int, len(reqs))
	for i := range order {
		order[i] = i
	}
	// Stable: unsorted traces (AllowUnsorted) keep their line order among
	// equal timestamps.
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(ts[a], ts[b]) })
	gap := int64(0)
	for i := 1; i < len(order); i++ {
		if d := ts[order[i]] - ts[order[i-1]]; d > 0 && (gap == 0 || d < gap) {
			gap = d
		}
	}
	if gap == 0 {
		gap = 1
	}
	out := make([]Request, 0, len(reqs))
	for i := 0; i < len(order); {
		j := i
		for j < len(order) && ts[order[j]] == ts[order[i]] {
			j++
		}
		t0 := ts[order[i]]
		span := gap
		if j < len(order) {
			span = ts[order[j]] - t0
		}
		k := int64(j - i)
		for m := i; m < j; m++ {
			r := reqs[order[m]]
			r.At = time.Duration(t0)*time.Millisecond + time.Duration(int64(m-i))*time.Duration(span)*time.Millisecond/time.Duration(k)
			out = append(out, r)
		}
		i = j
	}
	copy(reqs, out)
}

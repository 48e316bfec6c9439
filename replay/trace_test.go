package replay

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseTrace(t *testing.T) {
	lim := DefaultLimits()
	lim.BlockTokens = 4
	// Three requests share timestamp 0 and spread over [0, 30 ms); the
	// last group spreads over the smallest gap (30 ms).
	in := `{"timestamp": 0, "input_length": 8, "output_length": 2, "hash_ids": [1, 2]}
{"timestamp": 0, "input_length": 5, "output_length": 1, "hash_ids": [1, 3]}
{"timestamp": 0, "input_length": 4, "output_length": 0, "hash_ids": [9]}
{"timestamp": 30, "input_length": 1, "output_length": 7, "hash_ids": [4]}
{"timestamp": 30, "input_length": 12, "output_length": 7, "hash_ids": [1, 2, 5]}
`
	got, err := ParseTrace(strings.NewReader(in), lim)
	if err != nil {
		t.Fatal(err)
	}
	want := []Request{
		{At: 0, InputTokens: 8, OutputTokens: 2, Blocks: []uint64{1, 2}},
		{At: 10 * time.Millisecond, InputTokens: 5, OutputTokens: 1, Blocks: []uint64{1, 3}},
		{At: 20 * time.Millisecond, InputTokens: 4, OutputTokens: 0, Blocks: []uint64{9}},
		{At: 30 * time.Millisecond, InputTokens: 1, OutputTokens: 7, Blocks: []uint64{4}},
		{At: 45 * time.Millisecond, InputTokens: 12, OutputTokens: 7, Blocks: []uint64{1, 2, 5}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
}

func TestParseTraceErrors(t *testing.T) {
	ok := `{"timestamp": 0, "input_length": 8, "output_length": 2, "hash_ids": [1, 2]}`
	for _, tc := range []struct {
		name, in, want string
	}{
		{"empty file", "", "no requests"},
		{"blank line", ok + "\n\n" + ok, "line 2: empty line"},
		{"not json", ok + "\n{nope", "line 2: invalid character"},
		{"unknown field", `{"timestamp": 0, "input_length": 8, "output_length": 2, "hash_ids": [1, 2], "x": 1}`, `line 1: json: unknown field "x"`},
		{"missing field", `{"timestamp": 0, "input_length": 8, "hash_ids": [1, 2]}`, `line 1: missing "output_length"`},
		{"two values", ok + ok, "line 1: more than one JSON value"},
		{"wrong block count", `{"timestamp": 0, "input_length": 9, "output_length": 2, "hash_ids": [1, 2]}`, "line 1: 2 hash_ids for input_length 9: want 3 blocks of 4 tokens"},
		{"negative timestamp", `{"timestamp": -1, "input_length": 8, "output_length": 2, "hash_ids": [1, 2]}`, "line 1: timestamp -1 out of range"},
		{"no input", `{"timestamp": 0, "input_length": 0, "output_length": 2, "hash_ids": []}`, "line 1: input_length 0 out of range"},
		{"negative id", `{"timestamp": 0, "input_length": 4, "output_length": 2, "hash_ids": [-1]}`, "line 1: json: cannot unmarshal number -1"},
		{"time goes back", `{"timestamp": 5, "input_length": 4, "output_length": 2, "hash_ids": [1]}` + "\n" + `{"timestamp": 4, "input_length": 4, "output_length": 2, "hash_ids": [1]}`, "line 2: timestamp 4 before the previous line's 5"},
		{"line too long", ok + "\n" + `{"timestamp": 0, "input_length": 4, "output_length": 2, "hash_ids": [1]}` + strings.Repeat(" ", 200), "line 2: longer than 160 bytes"},
		{"too many blocks", `{"timestamp": 0, "input_length": 40, "output_length": 2, "hash_ids": [1,2,3,4,5,6,7,8,9,10]}`, "line 1: 10 hash_ids, more than 8"},
		{"too many requests", ok + "\n" + ok + "\n" + ok + "\n" + ok, "line 4: more than 3 requests"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lim := Limits{BlockTokens: 4, MaxLineBytes: 160, MaxBlocks: 8, MaxRequests: 3}
			_, err := ParseTrace(strings.NewReader(tc.in), lim)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
			if strings.HasPrefix(tc.want, "line") && !errors.Is(err, ErrTrace) {
				t.Errorf("error %v does not wrap ErrTrace", err)
			}
		})
	}
}

func TestParseTraceUnsorted(t *testing.T) {
	in := `{"timestamp": 5, "input_length": 4, "output_length": 2, "hash_ids": [1]}
{"timestamp": 1, "input_length": 4, "output_length": 2, "hash_ids": [2]}
`
	got, err := ParseTrace(strings.NewReader(in), Limits{BlockTokens: 4, AllowUnsorted: true})
	if err != nil {
		t.Fatal(err)
	}
	if got[0].Blocks[0] != 2 || got[0].At != time.Millisecond || got[1].At != 5*time.Millisecond {
		t.Errorf("not sorted by time: %+v", got)
	}
}

func TestInfiniteCacheHitRatio(t *testing.T) {
	// Blocks of 4 tokens. Hand count of the cached tokens:
	//  [1 2]   8 tokens: nothing seen             -> 0
	//  [1 2 3] 12: 1, 2 seen; 3 new               -> 8
	//  [2 1]   8: 2 is not at position 0 before   -> 0
	//  [1 2]   8: all seen, last token recomputed -> 7
	//  [1 9]   6 (partial 2nd block): 1 seen      -> 4
	//  [5]     3 (partial only)                   -> 0
	reqs := []Request{
		{InputTokens: 8, Blocks: []uint64{1, 2}},
		{InputTokens: 12, Blocks: []uint64{1, 2, 3}},
		{InputTokens: 8, Blocks: []uint64{2, 1}},
		{InputTokens: 8, Blocks: []uint64{1, 2}},
		{InputTokens: 6, Blocks: []uint64{1, 9}},
		{InputTokens: 3, Blocks: []uint64{5}},
	}
	got := InfiniteCacheHitRatio(reqs, 4)
	want := float64(0+8+0+7+4+0) / float64(8+12+8+8+6+3)
	if got != want {
		t.Errorf("hit ratio %v, want %v", got, want)
	}
}

// FuzzParseTrace: any bytes either fail with ErrTrace (or a read error)
// or give requests that keep the parser's promises: block counts match
// the input lengths, arrival times never go back, limits hold.
func FuzzParseTrace(f *testing.F) {
	f.Add([]byte(`{"timestamp": 0, "input_length": 8, "output_length": 2, "hash_ids": [1, 2]}` + "\n" +
		`{"timestamp": 0, "input_length": 5, "output_length": 1, "hash_ids": [1, 3]}`))
	f.Add([]byte(`{"timestamp": 3, "input_length": 1, "output_length": 0, "hash_ids": [18446744073709551615]}`))
	f.Add([]byte("{}\n"))
	lim := Limits{BlockTokens: 4, MaxLineBytes: 512, MaxBlocks: 16, MaxRequests: 32, MaxTokens: 64}
	f.Fuzz(func(t *testing.T, b []byte) {
		reqs, err := ParseTrace(bytes.NewReader(b), lim)
		if err != nil {
			if !errors.Is(err, ErrTrace) {
				t.Fatalf("error %v does not wrap ErrTrace", err)
			}
			return
		}
		if len(reqs) == 0 || len(reqs) > lim.MaxRequests {
			t.Fatalf("%d requests", len(reqs))
		}
		for i, r := range reqs {
			if len(r.Blocks) != (r.InputTokens+3)/4 || len(r.Blocks) > lim.MaxBlocks || r.InputTokens > lim.MaxTokens {
				t.Fatalf("request %d: %d blocks for %d tokens", i, len(r.Blocks), r.InputTokens)
			}
			if i > 0 && r.At < reqs[i-1].At {
				t.Fatalf("request %d arrives at %v, before %v", i, r.At, reqs[i-1].At)
			}
		}
	})
}

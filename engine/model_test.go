package engine

import (
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const ms = time.Millisecond

// testConfig: 1000 prefill tokens/s (1 ms a token), 100 decode tokens/s
// (10 ms a token), blocks of 2 tokens.
func testConfig() Config {
	return Config{Blocks: 1000, BlockTokens: 2, PrefillTPS: 1000, DecodeTPS: 100, MaxBatch: 8, MaxQueue: 8}
}

// runAll runs m until idle and returns every result.
func runAll(t *testing.T, m *Model) []Result {
	t.Helper()
	var out []Result
	for i := 0; ; i++ {
		next, ok := m.Next()
		if !ok {
			break
		}
		if i > 1e6 {
			t.Fatal("model never goes idle")
		}
		out = append(out, m.Advance(next).Results...)
	}
	return append(out, m.Advance(m.Now()).Results...)
}

func TestModelTiming(t *testing.T) {
	p100 := seq(1, 100)
	p101 := append(seq(1, 100), 7)
	other := seq(1000, 100)
	type submit struct {
		at     time.Duration
		tokens []uint32
		output int
	}
	for _, tc := range []struct {
		name    string
		cfg     func(*Config)
		submits []submit
		want    []Result
	}{
		{
			name:    "cold prompt: prefill of every token, then decode",
			submits: []submit{{0, p100, 3}},
			want:    []Result{{ID: 1, Start: 0, FirstToken: 100 * ms, Done: 120 * ms, InputTokens: 100, OutputTokens: 3}},
		},
		{
			name:    "a repeated prompt recomputes its last token only",
			submits: []submit{{0, p100, 1}, {500 * ms, p100, 1}},
			want: []Result{
				{ID: 1, FirstToken: 100 * ms, Done: 100 * ms, InputTokens: 100, OutputTokens: 1},
				{ID: 2, Arrival: 500 * ms, Start: 500 * ms, FirstToken: 501 * ms, Done: 501 * ms, InputTokens: 100, CachedTokens: 99, OutputTokens: 1},
			},
		},
		{
			name:    "a longer prompt hits its cached blocks",
			submits: []submit{{0, p100, 1}, {500 * ms, p101, 1}},
			want: []Result{
				{ID: 1, FirstToken: 100 * ms, Done: 100 * ms, InputTokens: 100, OutputTokens: 1},
				{ID: 2, Arrival: 500 * ms, Start: 500 * ms, FirstToken: 501 * ms, Done: 501 * ms, InputTokens: 101, CachedTokens: 100, OutputTokens: 1},
			},
		},
		{
			name: "queued behind a prefill: the wait counts, and the blocks stored meanwhile hit",
			submits: []submit{
				{0, other, 5}, {10 * ms, p100, 5}, {20 * ms, p101, 5},
			},
			want: []Result{
				{ID: 1, FirstToken: 100 * ms, Done: 140 * ms, InputTokens: 100, OutputTokens: 5},
				{ID: 2, Arrival: 10 * ms, Start: 100 * ms, FirstToken: 200 * ms, Done: 240 * ms, InputTokens: 100, OutputTokens: 5},
				{ID: 3, Arrival: 20 * ms, Start: 200 * ms, FirstToken: 201 * ms, Done: 241 * ms, InputTokens: 101, CachedTokens: 100, OutputTokens: 5},
			},
		},
		{
			name:    "a full batch waits for a sequence to finish",
			cfg:     func(c *Config) { c.MaxBatch = 1 },
			submits: []submit{{0, p100, 11}, {0, other, 1}},
			want: []Result{
				{ID: 1, FirstToken: 100 * ms, Done: 200 * ms, InputTokens: 100, OutputTokens: 11},
				{ID: 2, Start: 200 * ms, FirstToken: 300 * ms, Done: 300 * ms, InputTokens: 100, OutputTokens: 1},
			},
		},
		{
			name:    "a cache smaller than the prompt keeps its head",
			cfg:     func(c *Config) { c.Blocks = 10 },
			submits: []submit{{0, p100, 1}, {200 * ms, p100, 1}},
			want: []Result{
				{ID: 1, FirstToken: 100 * ms, Done: 100 * ms, InputTokens: 100, OutputTokens: 1},
				{ID: 2, Arrival: 200 * ms, Start: 200 * ms, FirstToken: 280 * ms, Done: 280 * ms, InputTokens: 100, CachedTokens: 20, OutputTokens: 1},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig()
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			m, err := NewModel(cfg)
			if err != nil {
				t.Fatal(err)
			}
			var got []Result
			for _, s := range tc.submits {
				got = append(got, m.Advance(s.at).Results...)
				if _, err := m.Submit(s.at, Request{Tokens: s.tokens, OutputTokens: s.output}); err != nil {
					t.Fatal(err)
				}
			}
			got = append(got, runAll(t, m)...)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("results (-want +got):\n%s", diff)
			}
			for _, r := range got {
				if r.TTFT() != r.QueueWait()+m.prefillTime(r.InputTokens-r.CachedTokens) {
					t.Errorf("request %d: TTFT %v is not queue wait %v + prefill of %d tokens", r.ID, r.TTFT(), r.QueueWait(), r.InputTokens-r.CachedTokens)
				}
			}
			if s := m.Stats(); s.Running != 0 || s.Queued != 0 || s.Completed != int64(len(tc.submits)) {
				t.Errorf("stats at the end: %+v", s)
			}
		})
	}
}

// TestModelStoresAtPrefillEnd: a prompt's blocks enter the cache (and its
// events are stamped) when its prefill ends, not when it arrives.
func TestModelStoresAtPrefillEnd(t *testing.T) {
	m, _ := NewModel(testConfig())
	toks := seq(1, 10)
	if _, err := m.Submit(0, Request{Tokens: toks, OutputTokens: 2}); err != nil {
		t.Fatal(err)
	}
	hs := m.Cache().AppendHashes(nil, toks)
	if next, ok := m.Next(); !ok || next != 10*ms {
		t.Fatalf("Next = %v, %v; want the end of the prefill at 10ms", next, ok)
	}
	out := m.Advance(9 * ms)
	if m.Cache().Match(hs) != 0 || len(out.Events) != 0 || len(out.Results) != 0 {
		t.Fatalf("before the prefill ends: match %d, output %+v", m.Cache().Match(hs), out)
	}
	out = m.Advance(10 * ms)
	want := Output{
		Results: []Result{{ID: 1, FirstToken: 10 * ms, Done: 20 * ms, InputTokens: 10, OutputTokens: 2}},
		Events:  []Event{{At: 10 * ms, Kind: KindBlockStored, BlockHashes: hs, TokenIDs: toks, BlockSize: 2}},
	}
	if diff := cmp.Diff(want, out); diff != "" {
		t.Errorf("output at the end of the prefill (-want +got):\n%s", diff)
	}
	m.Clear(15 * ms)
	out = m.Advance(30 * ms)
	if diff := cmp.Diff([]Event{{At: 15 * ms, Kind: KindAllBlocksCleared}}, out.Events); diff != "" {
		t.Errorf("events of Clear (-want +got):\n%s", diff)
	}
	s := m.Stats()
	if s.Busy != 20*ms || s.PrefillBusy != 10*ms || s.Completed != 1 {
		t.Errorf("stats %+v: want 20ms busy, 10ms in prefill, 1 completed", s)
	}
}

func TestModelQueueFullAndCancel(t *testing.T) {
	cfg := testConfig()
	cfg.MaxQueue, cfg.MaxBatch = 2, 2
	m, _ := NewModel(cfg)
	n := 0
	sub := func(at time.Duration, out int) (ID, error) {
		n++
		return m.Submit(at, Request{Tokens: seq(1000*n, 100), OutputTokens: out})
	}
	a, _ := sub(0, 50) // prefill to 100ms, decode to 590ms
	b, _ := sub(0, 1)  // queued
	c, _ := sub(0, 1)  // queued
	if _, err := sub(0, 1); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("a fourth request with two queued: %v, want ErrQueueFull", err)
	}
	if !m.Cancel(50*ms, b) {
		t.Fatal("cancel of a queued request found nothing")
	}
	if m.Cancel(50*ms, b) {
		t.Fatal("cancel of a cancelled request found it")
	}
	// c is next: it starts at 100ms, then the batch (a and c) is full until c ends.
	out := m.Advance(200 * ms)
	want := []Result{
		{ID: a, FirstToken: 100 * ms, Done: 590 * ms, InputTokens: 100, OutputTokens: 50},
		{ID: c, Start: 100 * ms, FirstToken: 200 * ms, Done: 200 * ms, InputTokens: 100, OutputTokens: 1},
	}
	if diff := cmp.Diff(want, out.Results); diff != "" {
		t.Errorf("results (-want +got):\n%s", diff)
	}
	// Cancelling a in decode frees its slot at once.
	d, _ := sub(200*ms, 1)
	e, _ := sub(200*ms, 1)
	if !m.Cancel(250*ms, a) {
		t.Fatal("cancel of a decoding request found nothing")
	}
	got := runAll(t, m)
	var ids []ID
	for _, r := range got {
		ids = append(ids, r.ID)
	}
	if diff := cmp.Diff([]ID{d, e}, ids); diff != "" {
		t.Errorf("later results (-want +got):\n%s", diff)
	}
	if s := m.Stats(); s.Cancelled != 2 || s.Rejected != 1 || s.Completed != 3 || s.Running != 0 {
		t.Errorf("stats %+v", s)
	}
}

func TestModelBadRequests(t *testing.T) {
	m, _ := NewModel(testConfig())
	for _, r := range []Request{
		{},
		{Tokens: seq(0, 4)},
		{Tokens: seq(0, 4), BlockHashes: []uint64{1}, OutputTokens: 1},
		{InputTokens: 3, BlockHashes: []uint64{1, 2}, OutputTokens: 1},
	} {
		if _, err := m.Submit(0, r); !errors.Is(err, ErrBadRequest) {
			t.Errorf("Submit(%+v) = %v, want ErrBadRequest", r, err)
		}
	}
	if _, err := NewModel(Config{PrefillTPS: -1, MaxBatch: -2}); err == nil {
		t.Error("NewModel accepted a negative rate and batch")
	}
}

// TestModelGivenHashes: a caller that knows the block hashes (the replay)
// gets the same schedule as one that gives tokens, with events without
// token ids.
func TestModelGivenHashes(t *testing.T) {
	withTokens, _ := NewModel(testConfig())
	withHashes, _ := NewModel(testConfig())
	toks := seq(3, 21)
	hs := withHashes.Cache().AppendHashes(nil, toks)
	for i := range 2 {
		at := time.Duration(i) * time.Second
		if _, err := withTokens.Submit(at, Request{Tokens: toks, OutputTokens: 2}); err != nil {
			t.Fatal(err)
		}
		if _, err := withHashes.Submit(at, Request{BlockHashes: hs, InputTokens: len(toks), OutputTokens: 2}); err != nil {
			t.Fatal(err)
		}
	}
	a, b := runAll(t, withTokens), runAll(t, withHashes)
	if diff := cmp.Diff(a, b); diff != "" {
		t.Errorf("results differ (-tokens +hashes):\n%s", diff)
	}
	if b[1].CachedTokens != 20 {
		t.Errorf("second request cached %d tokens, want 20", b[1].CachedTokens)
	}
}

// TestModelDeterministic runs the same random workload twice.
func TestModelDeterministic(t *testing.T) {
	run := func() ([]Result, []Event, Stats) {
		rng := rand.New(rand.NewPCG(1, 2))
		cfg := testConfig()
		cfg.Blocks, cfg.MaxBatch, cfg.MaxQueue = 60, 4, 1000
		m, _ := NewModel(cfg)
		var res []Result
		var evs []Event
		at := time.Duration(0)
		for range 300 {
			at += time.Duration(rng.IntN(40)) * ms
			out := m.Advance(at)
			res, evs = append(res, out.Results...), append(evs, out.Events...)
			toks := append(seq(rng.IntN(3)*1000, 2*rng.IntN(20)), seq(rng.IntN(50), 1+rng.IntN(30))...)
			id, err := m.Submit(at, Request{Tokens: toks, OutputTokens: 1 + rng.IntN(20)})
			if err != nil {
				t.Fatal(err)
			}
			if rng.IntN(20) == 0 {
				m.Cancel(at, id)
			}
		}
		out := m.Advance(time.Hour)
		return append(res, out.Results...), append(evs, out.Events...), m.Stats()
	}
	r1, e1, s1 := run()
	r2, e2, s2 := run()
	if diff := cmp.Diff(r1, r2); diff != "" {
		t.Errorf("results differ between runs:\n%s", diff)
	}
	if diff := cmp.Diff(e1, e2); diff != "" {
		t.Errorf("events differ between runs:\n%s", diff)
	}
	if s1 != s2 {
		t.Errorf("stats differ: %+v, %+v", s1, s2)
	}
	if s1.CachedTokens == 0 || s1.Completed == 0 {
		t.Errorf("the workload hit nothing or completed nothing: %+v", s1)
	}
	for i := 1; i < len(e1); i++ {
		if e1[i].At < e1[i-1].At {
			t.Fatalf("event %d at %v before event %d at %v", i, e1[i].At, i-1, e1[i-1].At)
		}
	}
}

func TestModelEstimateTTFT(t *testing.T) {
	m, _ := NewModel(testConfig())
	toks := seq(1, 100)
	hs := m.Cache().AppendHashes(nil, toks)
	if got := m.EstimateTTFT(0, hs, 100); got != 100*ms {
		t.Errorf("idle, cold: %v, want 100ms", got)
	}
	if _, err := m.Submit(0, Request{Tokens: toks, OutputTokens: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Submit(0, Request{Tokens: seq(500, 50), OutputTokens: 1}); err != nil {
		t.Fatal(err)
	}
	// 70ms of the first prefill left, 50ms queued, then 100ms cold.
	if got := m.EstimateTTFT(30*ms, hs, 100); got != 220*ms {
		t.Errorf("busy, cold: %v, want 220ms", got)
	}
	m.Advance(200 * ms)
	if got := m.EstimateTTFT(200*ms, hs, 100); got != ms {
		t.Errorf("idle, cached: %v, want 1ms", got)
	}
}

func TestTokenizer(t *testing.T) {
	chat := AppendChatText(AppendChatText(nil, "system", "Be brief."), "user", "héllo")
	if got, want := string(chat), "system: Be brief.\nuser: héllo\n"; got != want {
		t.Errorf("chat text %q, want %q", got, want)
	}
	got := AppendTokens([]uint32{7}, "aé")
	if diff := cmp.Diff([]uint32{7, 'a', 0xc3, 0xa9}, got); diff != "" {
		t.Errorf("tokens (-want +got):\n%s", diff)
	}
}

package server

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/meshnode/meshnode/engine"
	"github.com/meshnode/meshnode/kvevents"
	"go.uber.org/goleak"
)

// e2eDeadline bounds every wait of the end-to-end test on a busy machine.
const e2eDeadline = 30 * time.Second

// TestEndToEnd starts the emulator on loopback sockets, sends completions
// (streaming and not), and follows its KV events over ZMQ: live on a
// subscriber, then again through replay from sequence 0.
func TestEndToEnd(t *testing.T) {
	// zmq4 v0.17.0's PUB socket never stops its writer goroutine (its
	// Close does not close the writer): one per publisher, not ours.
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent(), goleak.IgnoreAnyFunction("github.com/go-zeromq/zmq4.(*pubMWriter).run"))
	ctx, cancel := context.WithTimeout(t.Context(), e2eDeadline)
	defer cancel()
	s, err := New(Config{
		Addr: "127.0.0.1:0", Models: []string{"tiny"},
		Engine:   engine.Config{Blocks: 12, BlockTokens: 4, PrefillTPS: 1e6, DecodeTPS: 1e5},
		KVEvents: "tcp://127.0.0.1:0", KVReplay: "tcp://127.0.0.1:0", KVTopic: "kv@tiny",
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !strings.HasPrefix(s.KVEventsAddr(), "tcp://127.0.0.1:") || !strings.HasPrefix(s.KVReplayAddr(), "tcp://127.0.0.1:") {
		t.Fatalf("endpoints %q %q", s.KVEventsAddr(), s.KVReplayAddr())
	}
	sub, err := kvevents.Subscribe(ctx, s.KVEventsAddr(), "kv@tiny")
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	for !s.KVSubscribed() {
		if ctx.Err() != nil {
			t.Fatal("the subscription never reached the publisher")
		}
		time.Sleep(5 * time.Millisecond) // polling real sockets
	}

	p1, p2 := strings.Repeat("a", 42), strings.Repeat("b", 42) // 10 blocks of 4 each
	for i, tc := range []struct {
		prompt string
		stream bool
		cached int
	}{{p1, false, 0}, {p1, true, 40}, {p2, true, 0}} {
		if got := complete(t, s.Addr(), tc.prompt, tc.stream); got != tc.cached {
			t.Errorf("request %d: %d cached tokens, want %d", i, got, tc.cached)
		}
	}
	resp, err := http.Post("http://"+s.Addr()+"/reset_prefix_cache", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	h1 := engine.AppendBlockHashes(nil, 0, 4, engine.AppendTokens(nil, p1))
	h2 := engine.AppendBlockHashes(nil, 0, 4, engine.AppendTokens(nil, p2))
	// p2's 10 blocks evict 8 of p1's, leaves first.
	want := []string{
		"0 BlockStored " + names(h1, h1, h2) + " tokens=40 size=4 GPU",
		"1 BlockRemoved " + names(reverse(h1[2:]), h1, h2) + " GPU",
		"1 BlockStored " + names(h2, h1, h2) + " tokens=40 size=4 GPU",
		"2 AllBlocksCleared",
	}
	var live []string
	for len(live) < len(want) {
		m, err := sub.Recv()
		if err != nil {
			t.Fatalf("after %q: %v", live, err)
		}
		live = append(live, describe(t, m, h1, h2)...)
	}
	if diff := cmp.Diff(want, live); diff != "" {
		t.Errorf("live events (-want +got):\n%s", diff)
	}
	var replayed []string
	err = kvevents.Replay(ctx, s.KVReplayAddr(), 0, func(m kvevents.Message) error {
		replayed = append(replayed, describe(t, m, h1, h2)...)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, replayed); diff != "" {
		t.Errorf("replayed events (-want +got):\n%s", diff)
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

// complete sends one completion and returns its cached tokens.
func complete(t *testing.T, addr, prompt string, stream bool) int {
	t.Helper()
	body, _ := json.Marshal(map[string]any{
		"model": "tiny", "prompt": prompt, "max_tokens": 3, "stream": stream,
		"stream_options": map[string]bool{"include_usage": true},
	})
	resp, err := http.Post("http://"+addr+"/v1/completions", "application/json", strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	text := string(raw)
	if stream {
		events := strings.Split(strings.TrimSpace(text), "\n\n")
		if len(events) != 5 || events[4] != "data: [DONE]" {
			t.Fatalf("stream %q: want 3 tokens, usage, [DONE]", text)
		}
		text = strings.TrimPrefix(events[3], "data: ")
	}
	var a answer
	if err := json.Unmarshal([]byte(text), &a); err != nil || a.Usage == nil {
		t.Fatalf("answer %q: %v", text, err)
	}
	return a.Usage.PromptTokensDetails.CachedTokens
}

// describe decodes a message into one line per event, naming block
// hashes by prompt ("a3" is block 3 of p1, "b0" block 0 of p2).
func describe(t *testing.T, m kvevents.Message, h1, h2 []uint64) []string {
	t.Helper()
	var b kvevents.Batch
	if err := kvevents.DecodeBatch(&b, m.Payload, kvevents.Limits{}); err != nil {
		t.Fatalf("seq %d: %v", m.Seq, err)
	}
	if b.TS < float64(time.Now().Add(-time.Hour).Unix()) {
		t.Errorf("seq %d: ts %v is not the wall-clock time", m.Seq, b.TS)
	}
	var out []string
	for _, e := range b.Events {
		s := strings.TrimSpace(strings.Join([]string{itoa(m.Seq), e.Kind.String(), names(e.BlockHashes, h1, h2)}, " "))
		if e.HasParent {
			s += " parent=" + names([]uint64{e.ParentHash}, h1, h2)
		}
		if e.Kind == kvevents.KindBlockStored {
			s += " tokens=" + itoa(int64(len(e.TokenIDs))) + " size=" + itoa(int64(e.BlockSize))
			if want := engine.AppendBlockHashes(nil, 0, e.BlockSize, e.TokenIDs); !cmp.Equal(want, e.BlockHashes) {
				t.Errorf("seq %d: the hashes are not those of the token ids", m.Seq)
			}
		}
		if e.Medium != "" {
			s += " " + e.Medium
		}
		out = append(out, s)
	}
	return out
}

func names(hs, h1, h2 []uint64) string {
	var out []string
	for _, h := range hs {
		n := "?"
		for i := range h1 {
			if h1[i] == h {
				n = "a" + itoa(int64(i))
			}
			if h2[i] == h {
				n = "b" + itoa(int64(i))
			}
		}
		out = append(out, n)
	}
	return strings.Join(out, ",")
}

func reverse(hs []uint64) []uint64 {
	out := make([]uint64, len(hs))
	for i, h := range hs {
		out[len(hs)-1-i] = h
	}
	return out
}

func itoa(v int64) string { return strconv.FormatInt(v, 10) }

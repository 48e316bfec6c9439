package server

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/meshnode/meshnode/engine"
)

const ms = time.Millisecond

// testConfig: 1 ms per prefilled token, 10 ms per decoded token, blocks of
// 16 tokens.
func testConfig() Config {
	return Config{
		Models: []string{"m1", "m2"},
		Engine: engine.Config{Blocks: 100, BlockTokens: 16, PrefillTPS: 1000, DecodeTPS: 100, MaxBatch: 4, MaxQueue: 4},
	}
}

func newServer(t *testing.T, cfg Config) *Server {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// flush is what a client received at one flush, and when.
type flush struct {
	at   time.Duration
	data string
}

// timedWriter records each flush with the time since start (virtual time
// under synctest).
type timedWriter struct {
	start   time.Time
	header  http.Header
	code    int
	pending bytes.Buffer
	flushes []flush
}

func newTimedWriter() *timedWriter {
	return &timedWriter{start: time.Now(), header: http.Header{}}
}

func (w *timedWriter) Header() http.Header { return w.header }
func (w *timedWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
}

func (w *timedWriter) Write(b []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return w.pending.Write(b)
}

func (w *timedWriter) Flush() {
	if w.pending.Len() > 0 {
		w.flushes = append(w.flushes, flush{time.Since(w.start), w.pending.String()})
		w.pending.Reset()
	}
}

func (w *timedWriter) body() string {
	w.Flush()
	var b strings.Builder
	for _, f := range w.flushes {
		b.WriteString(f.data)
	}
	return b.String()
}

// do sends one request to s's handler and returns the writer once the
// handler returns.
func do(ctx context.Context, s *Server, method, path, body string) *timedWriter {
	r := httptest.NewRequestWithContext(ctx, method, path, strings.NewReader(body))
	w := newTimedWriter()
	s.Handler().ServeHTTP(w, r)
	return w
}

type usage struct {
	PromptTokens        int `json:"prompt_tokens"`
	CompletionTokens    int `json:"completion_tokens"`
	TotalTokens         int `json:"total_tokens"`
	PromptTokensDetails struct {
		CachedTokens int `json:"cached_tokens"`
	} `json:"prompt_tokens_details"`
}

type answer struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Model   string `json:"model"`
	Choices []struct {
		Text    string `json:"text"`
		Message struct {
			Role, Content string
		} `json:"message"`
		Delta struct {
			Role, Content string
		} `json:"delta"`
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
	Usage *usage `json:"usage"`
}

func decode(t *testing.T, s string) answer {
	t.Helper()
	var a answer
	if err := json.Unmarshal([]byte(s), &a); err != nil {
		t.Fatalf("answer %q: %v", s, err)
	}
	return a
}

// TestCompletionTimingAndCache: a cold prompt takes its prefill (1 ms a
// token) plus its decode (10 ms a token after the first); the same prompt
// again hits its full blocks and prefills only the rest.
func TestCompletionTimingAndCache(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newServer(t, testConfig())
		prompt := strings.Repeat("x", 100) // 6 full blocks of 16
		body := `{"model":"m1","prompt":"` + prompt + `","max_tokens":3}`
		for i, want := range []struct {
			elapsed time.Duration
			cached  int
		}{{100*ms + 20*ms, 0}, {4*ms + 20*ms, 96}} {
			start := time.Now()
			w := do(t.Context(), s, "POST", "/v1/completions", body)
			if w.code != 200 {
				t.Fatalf("request %d: %d %s", i, w.code, w.body())
			}
			if el := time.Since(start); el != want.elapsed {
				t.Errorf("request %d took %v, want %v", i, el, want.elapsed)
			}
			a := decode(t, w.body())
			wantUsage := usage{PromptTokens: 100, CompletionTokens: 3, TotalTokens: 103}
			wantUsage.PromptTokensDetails.CachedTokens = want.cached
			if diff := cmp.Diff(&wantUsage, a.Usage); diff != "" {
				t.Errorf("request %d usage (-want +got):\n%s", i, diff)
			}
			if a.Object != "text_completion" || a.Model != "m1" || len(a.Choices) != 1 || len(strings.Fields(a.Choices[0].Text)) != 3 {
				t.Errorf("request %d answer %+v", i, a)
			}
		}
	})
}

// TestStreaming: the first chunk leaves at the end of the prefill, one
// chunk per token every 10 ms after, then the usage chunk and [DONE].
func TestStreaming(t *testing.T) {
	for _, chat := range []bool{false, true} {
		name := map[bool]string{false: "completions", true: "chat"}[chat]
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := newServer(t, testConfig())
				path, body := "/v1/completions", `{"prompt":[1,2,3,4,5,6,7,8,9,10],"max_tokens":4,"stream":true,"stream_options":{"include_usage":true}}`
				if chat {
					path, body = "/v1/chat/completions", `{"model":"m2","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":[{"type":"text","text":"hi"}]}],"max_completion_tokens":4,"stream":true,"stream_options":{"include_usage":true}}`
				}
				w := do(t.Context(), s, "POST", path, body)
				if w.code != 200 || w.header.Get("Content-Type") != "text/event-stream" {
					t.Fatalf("%d %q", w.code, w.header.Get("Content-Type"))
				}
				input := 10
				if chat {
					input = len("system: Be brief.\nuser: hi\n")
				}
				ttft := time.Duration(input) * ms
				var times []time.Duration
				for _, f := range w.flushes {
					times = append(times, f.at)
				}
				// Tokens at ttft, +10, +20, +30; the last flush carries the
				// last token, the usage and [DONE].
				want := []time.Duration{ttft, ttft + 10*ms, ttft + 20*ms, ttft + 30*ms}
				if diff := cmp.Diff(want, times); diff != "" {
					t.Errorf("flush times (-want +got):\n%s", diff)
				}
				events := strings.Split(strings.TrimSuffix(w.body(), "\n\n"), "\n\n")
				if len(events) != 6 || events[5] != "data: [DONE]" {
					t.Fatalf("events %q: want 4 tokens, usage, [DONE]", events)
				}
				var text []string
				for i, e := range events[:4] {
					a := decode(t, strings.TrimPrefix(e, "data: "))
					c := a.Choices[0]
					text = append(text, c.Text+c.Delta.Content)
					if last := i == 3; (c.FinishReason != nil) != last || last && *c.FinishReason != "length" {
						t.Errorf("chunk %d finish_reason %v", i, c.FinishReason)
					}
					if chat && (a.Object != "chat.completion.chunk" || (i == 0) != (c.Delta.Role == "assistant")) {
						t.Errorf("chat chunk %d: %+v", i, a)
					}
				}
				u := decode(t, strings.TrimPrefix(events[4], "data: ")).Usage
				if u == nil || u.PromptTokens != input || u.CompletionTokens != 4 {
					t.Errorf("usage chunk %+v, want %d prompt tokens and 4 completion tokens", u, input)
				}
				// The same request without streaming says the same.
				w2 := do(t.Context(), s, "POST", path, strings.Replace(body, `"stream":true`, `"stream":false`, 1))
				a := decode(t, w2.body())
				got := a.Choices[0].Text + a.Choices[0].Message.Content
				if got != strings.Join(text, "") {
					t.Errorf("streamed %q, answered %q", strings.Join(text, ""), got)
				}
				if a.Usage.PromptTokensDetails.CachedTokens != input/16*16 {
					t.Errorf("second request cached %d tokens, want %d", a.Usage.PromptTokensDetails.CachedTokens, input/16*16)
				}
			})
		})
	}
}

func TestRequestErrors(t *testing.T) {
	cfg := testConfig()
	cfg.MaxBodyBytes, cfg.MaxPromptTokens, cfg.MaxTokens = 300, 50, 8
	for _, tc := range []struct {
		name, path, body string
		code             int
		msg              string
	}{
		{"not JSON", "/v1/completions", `{"prompt":`, 400, "body:"},
		{"unknown model", "/v1/completions", `{"model":"gpt","prompt":"hi"}`, 404, `the model "gpt" does not exist`},
		{"no prompt", "/v1/completions", `{"model":"m1"}`, 400, "prompt: missing"},
		{"empty prompt", "/v1/completions", `{"prompt":""}`, 400, "prompt: empty"},
		{"batch", "/v1/completions", `{"prompt":["a","b"]}`, 400, "batches are not supported"},
		{"negative token", "/v1/completions", `{"prompt":[1,-2]}`, 400, "prompt:"},
		{"long prompt", "/v1/completions", `{"prompt":"` + strings.Repeat("a", 51) + `"}`, 400, "longer than 50"},
		{"big body", "/v1/completions", `{"prompt":"` + strings.Repeat("a", 300) + `"}`, 413, "larger than 300 bytes"},
		{"max tokens", "/v1/completions", `{"prompt":"hi","max_tokens":9}`, 400, "max_tokens 9 outside [1, 8]"},
		{"zero max tokens", "/v1/chat/completions", `{"messages":[{"role":"user","content":"x"}],"max_tokens":0}`, 400, "max_tokens 0"},
		{"no messages", "/v1/chat/completions", `{"messages":[]}`, 400, "messages is empty"},
		{"bad content", "/v1/chat/completions", `{"messages":[{"role":"user","content":7}]}`, 400, "messages[0].content"},
		{"unknown path", "/v1/embeddings", `{}`, 404, "no endpoint"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := newServer(t, cfg)
				w := do(t.Context(), s, "POST", tc.path, tc.body)
				var e struct{ Error struct{ Message string } }
				_ = json.Unmarshal([]byte(w.body()), &e)
				if w.code != tc.code || !strings.Contains(e.Error.Message, tc.msg) {
					t.Errorf("%d %q, want %d and %q", w.code, w.body(), tc.code, tc.msg)
				}
			})
		})
	}
}

// TestQueueFullAndCancel: with one sequence at a time and one queued, a
// third request gets 429; a queued client that goes away is cancelled.
func TestQueueFullAndCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := testConfig()
		cfg.Engine.MaxBatch, cfg.Engine.MaxQueue = 1, 1
		s := newServer(t, cfg)
		var wg sync.WaitGroup
		codes := make([]int, 2)
		ctx, cancel := context.WithCancel(t.Context())
		for i, c := range []context.Context{t.Context(), ctx} {
			wg.Go(func() { codes[i] = do(c, s, "POST", "/v1/completions", `{"prompt":"abcdef","max_tokens":5}`).code })
			synctest.Wait() // the first is running before the second queues
		}
		w := do(t.Context(), s, "POST", "/v1/completions", `{"prompt":"x"}`)
		if w.code != 429 || w.header.Get("Retry-After") != "1" {
			t.Errorf("third request: %d (Retry-After %q), want 429", w.code, w.header.Get("Retry-After"))
		}
		cancel()
		wg.Wait()
		if codes[0] != 200 {
			t.Errorf("first request: %d", codes[0])
		}
		st := s.Stats()
		if st.Cancelled != 1 || st.Rejected != 1 || st.Completed != 1 || st.Running != 0 || st.Queued != 0 {
			t.Errorf("stats %+v: want 1 cancelled, 1 rejected, 1 completed, nothing left", st)
		}
	})
}

// TestStreamClientGoesAway: a streaming client that disconnects mid-decode
// frees its place in the batch.
func TestStreamClientGoesAway(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newServer(t, testConfig())
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan *timedWriter)
		go func() {
			done <- do(ctx, s, "POST", "/v1/completions", `{"prompt":"abc","max_tokens":100,"stream":true}`)
		}()
		time.Sleep(50 * ms) // virtual: 3 ms of prefill, then decoding
		if st := s.Stats(); st.Running != 1 {
			t.Fatalf("running %d, want 1", st.Running)
		}
		cancel()
		w := <-done
		if strings.Contains(w.body(), "[DONE]") {
			t.Error("a cancelled stream was completed")
		}
		if st := s.Stats(); st.Running != 0 || st.Cancelled != 1 {
			t.Errorf("after the client left: %+v", st)
		}
	})
}

func TestModelsHealthReset(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newServer(t, testConfig())
		w := do(t.Context(), s, "GET", "/v1/models", "")
		var list struct {
			Object string
			Data   []struct{ ID, Object string }
		}
		if err := json.Unmarshal([]byte(w.body()), &list); err != nil || w.code != 200 {
			t.Fatalf("%d %q: %v", w.code, w.body(), err)
		}
		if list.Object != "list" || len(list.Data) != 2 || list.Data[0].ID != "m1" || list.Data[1].ID != "m2" {
			t.Errorf("models %+v", list)
		}
		if w := do(t.Context(), s, "GET", "/health", ""); w.code != 200 {
			t.Errorf("health %d", w.code)
		}
		body := `{"prompt":"` + strings.Repeat("y", 40) + `","max_tokens":1}`
		do(t.Context(), s, "POST", "/v1/completions", body)
		if n := len(s.CachedBlocks()); n != 2 {
			t.Errorf("%d blocks cached, want 2", n)
		}
		if w := do(t.Context(), s, "POST", "/reset_prefix_cache", ""); w.code != 200 {
			t.Errorf("reset %d", w.code)
		}
		a := decode(t, do(t.Context(), s, "POST", "/v1/completions", body).body())
		if a.Usage.PromptTokensDetails.CachedTokens != 0 {
			t.Errorf("after a reset: %d cached tokens", a.Usage.PromptTokensDetails.CachedTokens)
		}
		var st map[string]any
		if err := json.Unmarshal([]byte(do(t.Context(), s, "GET", "/stats", "").body()), &st); err != nil || st["completed"] != 2.0 {
			t.Errorf("stats %v (%v)", st, err)
		}
	})
}

func TestConfigValidate(t *testing.T) {
	err := Config{Models: []string{"a", "a"}, KVReplay: "tcp://127.0.0.1:1", MaxTokens: -1, Engine: engine.Config{PrefillTPS: -1}}.Validate()
	for _, want := range []string{`model name "a"`, "replay endpoint needs an events endpoint", "max tokens -1", "prefill rate"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to say %q", err, want)
		}
	}
}

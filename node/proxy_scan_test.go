package node

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// scanBodies are the fast path's cases, those it answers and those it
// leaves to parseCompletion.
var scanBodies = []struct {
	name string
	body string
	chat bool
	fast bool // scanCompletion answers
}{
	{"chat", `{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true}`, true, true},
	{"chat with other fields", ` { "max_tokens" : 4 , "tools":[{"a":[1,{"b":null}]}], "model" : "m", "messages" : [ {"name":"x","role":"system","content":"be\nbrief \"now\" \u00e9\/"} , {"role":"user","content":null}, {"role":"user"} ] } `, true, true},
	{"chat unicode", `{"model":"m","messages":[{"role":"user","content":"héllo ☃ \u2603"}]}`, true, true},
	{"escaped model", `{"model":"a\/b\u0063","messages":[{"role":"user","content":"a"}]}`, true, true},
	{"chat with parts", `{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"a"}]}]}`, true, false},
	{"chat surrogate pair", `{"model":"m","messages":[{"role":"user","content":"\ud83d\ude00"}]}`, true, false},
	{"chat invalid utf-8", "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"\xff\"}]}", true, false},
	{"chat no messages", `{"model":"m","messages":[]}`, true, false},
	{"chat messages null", `{"model":"m","messages":null}`, true, false},
	{"chat message null", `{"model":"m","messages":[null]}`, true, false},
	{"chat role number", `{"model":"m","messages":[{"role":1,"content":"a"}]}`, true, false},
	{"chat content number", `{"model":"m","messages":[{"role":"user","content":1}]}`, true, false},
	{"chat folded key", `{"model":"m","messages":[{"Role":"user","content":"a"}]}`, true, false},
	{"chat escaped key", `{"model":"m","messages":[{"rol\u0065":"user","content":"a"}]}`, true, false},
	{"duplicate model", `{"model":"m","model":"n","messages":[{"role":"user","content":"a"}]}`, true, false},
	{"folded model", `{"MODEL":"m","messages":[{"role":"user","content":"a"}]}`, true, false},
	{"non-ASCII key", `{"model":"m","ſtream":true,"messages":[{"role":"user","content":"a"}]}`, true, false},
	{"stream string", `{"model":"m","stream":"yes","messages":[{"role":"user","content":"a"}]}`, true, false},
	{"model number", `{"model":1,"messages":[{"role":"user","content":"a"}]}`, true, false},
	{"bad model", `{"model":"","messages":[{"role":"user","content":"a"}]}`, true, false},
	{"invalid JSON", `{"model":"m","messages":[{"role":"user","content":"a"}]`, true, false},
	{"not an object", `["model"]`, true, false},
	{"completion text", `{"model":"m","prompt":"hello\tworld","stream":false}`, false, true},
	{"completion tokens", `{"model":"m","prompt":[1,2,3]}`, false, true},
	{"completion batch", `{"model":"m","prompt":[[1,2],[3]]}`, false, true},
	{"completion with messages", `{"model":"m","prompt":"a","messages":5}`, false, false},
	{"completion no prompt", `{"model":"m"}`, false, false},
	{"completion empty text", `{"model":"m","prompt":""}`, false, true},
}

// TestScanCompletion: where the fast path answers, its answer is
// parseCompletion's; the cases it must leave alone it leaves alone.
func TestScanCompletion(t *testing.T) {
	for _, tc := range scanBodies {
		for _, bytesTokens := range []bool{false, true} {
			t.Run(tc.name, func(t *testing.T) {
				sc := new(promptScratch)
				req, in, ok := scanCompletion([]byte(tc.body), tc.chat, bytesTokens, sc)
				if ok != tc.fast {
					t.Fatalf("fast path answered %t, want %t", ok, tc.fast)
				}
				if !ok {
					return
				}
				checkSameAsParse(t, []byte(tc.body), tc.chat, bytesTokens, req, in)
			})
		}
	}
}

// TestScanCompletionReusesScratch: a request's text and tokens land in the
// scratch buffers, which the next request reuses.
func TestScanCompletionReusesScratch(t *testing.T) {
	sc := new(promptScratch)
	body := []byte(`{"model":"meta-llama/Llama-3.1-8B-Instruct","messages":[{"role":"user","content":"` + strings.Repeat("a", 300) + `"}]}`)
	if _, _, ok := scanCompletion(body, true, true, sc); !ok {
		t.Fatal("fast path refused")
	}
	if cap(sc.text) < 300 || cap(sc.tokens) < 300 {
		t.Fatalf("scratch not kept: text cap %d, tokens cap %d", cap(sc.text), cap(sc.tokens))
	}
	if n := testing.AllocsPerRun(100, func() { scanCompletion(body, true, true, sc) }); n > 1 {
		t.Errorf("%v allocations a request with warm scratch, want at most 1 (the model's name)", n)
	}
}

func checkSameAsParse(t *testing.T, body []byte, chat, bytesTokens bool, req completionRequest, in routingInput) {
	t.Helper()
	wreq, win, err := parseCompletion(body, chat, bytesTokens)
	if err != nil {
		t.Fatalf("fast path accepted %q; parseCompletion: %v", body, err)
	}
	if req.Model != wreq.Model || req.Stream != wreq.Stream {
		t.Fatalf("model %q stream %t, parseCompletion %q %t", req.Model, req.Stream, wreq.Model, wreq.Stream)
	}
	if diff := cmp.Diff(string(win.text), string(in.text)); diff != "" {
		t.Fatalf("text of %q (-parseCompletion +fast):\n%s", body, diff)
	}
	if diff := cmp.Diff(win.tokens, in.tokens); diff != "" {
		t.Fatalf("tokens of %q (-parseCompletion +fast):\n%s", body, diff)
	}
	if (win.tokens == nil) != (in.tokens == nil) || (win.text == nil) != (in.text == nil) {
		t.Fatalf("input kinds differ: tokens nil %t/%t text nil %t/%t", win.tokens == nil, in.tokens == nil, win.text == nil, in.text == nil)
	}
}

// FuzzScanCompletion: whatever the fast path accepts, parseCompletion
// accepts with the same model, stream flag and routing input; it never
// panics.
func FuzzScanCompletion(f *testing.F) {
	for _, tc := range scanBodies {
		f.Add([]byte(tc.body), tc.chat, false)
		f.Add([]byte(tc.body), tc.chat, true)
	}
	f.Fuzz(func(t *testing.T, b []byte, chat, bytesTokens bool) {
		req, in, ok := scanCompletion(b, chat, bytesTokens, new(promptScratch))
		if ok {
			checkSameAsParse(t, b, chat, bytesTokens, req, in)
		}
	})
}

// BenchmarkScanCompletion compares the fast path with parseCompletion on
// a chat of about 1 KB.
func BenchmarkScanCompletion(b *testing.B) {
	body := []byte(`{"model":"m","stream":true,"max_tokens":4,"messages":[{"role":"user","content":"` + strings.Repeat("You are a helpful assistant; answer briefly. ", 22) + `"}]}`)
	b.Run("scan", func(b *testing.B) {
		sc := new(promptScratch)
		b.ReportAllocs()
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			if _, _, ok := scanCompletion(body, true, false, sc); !ok {
				b.Fatal("refused")
			}
		}
	})
	b.Run("parse", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			if _, _, err := parseCompletion(body, true, false); err != nil {
				b.Fatal(err)
			}
		}
	})
}

package server

import (
	"testing"
)

// FuzzParseRequest feeds request bodies (untrusted bytes from the network)
// to the completion parser: it must never panic, and what it accepts must
// be within the configured caps.
func FuzzParseRequest(f *testing.F) {
	for _, seed := range []string{
		`{"model":"m1","prompt":"hello","max_tokens":3,"stream":true,"stream_options":{"include_usage":true}}`,
		`{"prompt":[1,2,3]}`,
		`{"prompt":[[1,2,3]]}`,
		`{"prompt":["a"]}`,
		`{"prompt":["a","b"]}`,
		`{"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":null}]}`,
		`{"messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"image_url"}]}],"max_completion_tokens":2}`,
		`{"prompt":[-1]}`, `{"prompt":{}}`, `[]`, `null`, `{"prompt":"` + "\xff" + `"}`,
	} {
		f.Add([]byte(seed), false)
		f.Add([]byte(seed), true)
	}
	cfg := testConfig()
	cfg.MaxPromptTokens, cfg.MaxTokens = 64, 32
	s, err := New(cfg)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte, chat bool) {
		p, aerr := s.parse(body, chat)
		if aerr != nil {
			if aerr.code < 400 || aerr.code > 499 || aerr.msg == "" {
				t.Fatalf("error %+v", aerr)
			}
			return
		}
		if len(p.tokens) == 0 && !chat || len(p.tokens) > cfg.MaxPromptTokens {
			t.Fatalf("accepted %d prompt tokens (cap %d)", len(p.tokens), cfg.MaxPromptTokens)
		}
		if p.output < 1 || p.output > cfg.MaxTokens {
			t.Fatalf("accepted max_tokens %d (cap %d)", p.output, cfg.MaxTokens)
		}
		if p.model != "m1" && p.model != "m2" {
			t.Fatalf("accepted model %q", p.model)
		}
		if chat {
			for _, tok := range p.tokens {
				if tok > 255 {
					t.Fatalf("chat token %d is not a byte", tok)
				}
			}
		}
	})
}

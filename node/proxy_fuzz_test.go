package node

import (
	"encoding/json"
	"testing"
)

// FuzzParseCompletion feeds arbitrary bodies to the proxy's request
// parser, which reads bytes from any client of the proxy. It must never
// panic; what it accepts is valid JSON with a valid model, and a prompt
// it reads as tokens is the token array (or the batch's first) the body
// holds.
func FuzzParseCompletion(f *testing.F) {
	for _, s := range []string{
		`{"model":"m","prompt":"hello"}`,
		`{"model":"m","prompt":[1,2,3],"max_tokens":4}`,
		`{"model":"m","prompt":[[1,2],[3]]}`,
		`{"model":"m","prompt":["a","b"]}`,
		`{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true}`,
		`{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"a"}]}]}`,
		`{"model":"m","prompt":[[[1]]]}`,
		`{"model":"m","prompt":[01]}`,
		`{"model":"m"`,
	} {
		f.Add([]byte(s), false, false)
		f.Add([]byte(s), true, false)
		f.Add([]byte(s), true, true)
	}
	f.Fuzz(func(t *testing.T, b []byte, chat, bytesTokens bool) {
		req, in, err := parseCompletion(b, chat, bytesTokens)
		if err != nil {
			return
		}
		if !json.Valid(b) {
			t.Fatalf("accepted invalid JSON %q", b)
		}
		if ValidName("model", req.Model, 255) != nil {
			t.Fatalf("accepted model %q", req.Model)
		}
		if in.estTokens() < 0 {
			t.Fatalf("negative token estimate")
		}
		if chat || in.tokens == nil || bytesTokens {
			return
		}
		var flat []uint32
		var nested [][]uint32
		if json.Unmarshal(req.Prompt, &flat) != nil {
			if err := json.Unmarshal(req.Prompt, &nested); err != nil || len(nested) == 0 {
				t.Fatalf("tokens %v from prompt %s, which is no token array: %v", in.tokens, req.Prompt, err)
			}
			flat = nested[0]
		}
		if len(flat) != len(in.tokens) {
			t.Fatalf("tokens %v, want %v", in.tokens, flat)
		}
		for i := range flat {
			if flat[i] != in.tokens[i] {
				t.Fatalf("tokens %v, want %v", in.tokens, flat)
			}
		}
	})
}
